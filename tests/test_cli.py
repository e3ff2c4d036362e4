"""The command line: help everywhere, version, and usage errors in one sentence."""

from __future__ import annotations

import subprocess

import pytest

from microtune import __version__
from microtune.cli import build_parser, main
from tests.conftest import microtune_cmd


def _subcommand_paths(parser, prefix=()):
    """Every sub-command path of the parser, e.g. ('data', 'prepare')."""
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _subcommand_paths(sub, (*prefix, name))


def test_every_subcommand_has_help(capsys):
    paths = list(_subcommand_paths(build_parser()))
    assert ("data", "prepare") in paths and ("data", "synth") in paths and ("data", "inspect") in paths
    for path in paths:
        with pytest.raises(SystemExit) as info:
            main([*path, "--help"])
        assert info.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: microtune " + " ".join(path)), path


def test_version_and_top_level_help():
    result = subprocess.run(microtune_cmd("--version"), capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == f"microtune {__version__}"
    result = subprocess.run(microtune_cmd("--help"), capture_output=True, text=True)
    assert result.returncode == 0 and "data" in result.stdout


@pytest.mark.parametrize(
    ("argv", "phrase"),
    [
        (["data", "prepare", "src"], "the following arguments are required: OUT"),
        (["data", "prepare", "a", "b", "--crop", "diagonal"], "invalid choice: 'diagonal'"),
        (["data", "prepare", "a", "b", "--resolution", "big"], "expected a whole number, got 'big'"),
        (["data", "synth", "out", "--count", "-3"], "expected a non-negative number, got -3"),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_usage_errors_exit_2_with_one_sentence(argv, phrase):
    result = subprocess.run(microtune_cmd(*argv), capture_output=True, text=True)
    assert result.returncode == 2
    assert phrase in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("microtune")


def test_group_without_subcommand_prints_help(capsys):
    assert main(["data"]) == 2
    assert "prepare" in capsys.readouterr().out
