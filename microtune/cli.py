"""The ``microtune`` command: parse, validate, call the library.

Sub-command groups live next to their library code (``microtune/<area>/commands.py``), each with a
``register(subparsers)`` that adds its parsers and sets ``handler`` to a function taking the parsed
namespace and returning an exit code. Heavy imports (torch, ray, mlflow) happen inside handlers so
that ``microtune --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from microtune import __version__
from microtune.errors import MicrotuneError, os_error_sentence

# Modules whose register(subparsers) adds top-level commands; missing ones are skipped so the CLI
# works while an area is still being built.
COMMAND_MODULES = (
    "microtune.data.commands",
    "microtune.gan.commands",
    "microtune.metrics.commands",
    "microtune.sweep.commands",
    "microtune.seg.commands",
    "microtune.demo",
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one sentence and exit status 2."""

    def error(self, message: str) -> None:  # noqa: D102 - argparse API
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}.\n" if not message.endswith(".") else
                  f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``microtune``."""
    parser = _Parser(
        prog="microtune",
        description=(
            "Hyperparameter studies of generative (StyleGAN2-ADA, DCGAN) and segmentation (HPTL) "
            "models of micrographs, from a laptop to a Ray cluster."
        ),
    )
    parser.add_argument("--version", action="version", version=f"microtune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that area is not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(handler(args) or 0)
    except MicrotuneError as exc:
        print(f"microtune: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("microtune: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        # the safety net: commands check their paths first and translate what they write
        # (microtune.errors.check_output / writing); an OS error that still escapes is one sentence
        # naming the file, not a traceback (shown with --verbose)
        logging.getLogger("microtune").debug("OS error", exc_info=True)
        print(f"microtune: error: {os_error_sentence(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
