"""Hold a virtual environment to the lock file: `check` and `prune`.

    python tools/venv_lock.py check requirements/lock.txt   # exit 1 and list every difference
    python tools/venv_lock.py prune requirements/lock.txt   # uninstall what the lock does not name

Run it with the environment's own interpreter (the Makefile does). `pip install -r LOCK` installs
the locked versions but leaves packages that an older lock or a manual `pip install` added; `prune`
removes those, `check` proves the result: every locked distribution installed at exactly its
version, nothing else besides the environment's own tooling (pip, setuptools, wheel) and microtune.
"""
from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

TOOLING = {"pip", "setuptools", "wheel", "microtune"}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def normalise(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    if not pins:
        raise SystemExit(f"{path}: no 'name==version' lines; is this a lock file?")
    return pins


def installed() -> dict[str, str]:
    return {normalise(d.metadata["Name"]): d.version for d in metadata.distributions()}


def differences(pins: dict[str, str], have: dict[str, str]) -> list[str]:
    out = []
    for name, version in sorted(pins.items()):
        if name not in have:
            out.append(f"missing   {name}=={version}")
        elif have[name] != version:
            out.append(f"version   {name}=={have[name]} (locked {version})")
    out += [f"unlocked  {name}=={have[name]}" for name in sorted(set(have) - set(pins) - TOOLING)]
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("check", "prune"):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python tools/venv_lock.py check|prune LOCK", file=sys.stderr)
        return 2
    command, lock = argv[0], Path(argv[1])
    pins = locked(lock)
    if command == "prune":
        extra = sorted(set(installed()) - set(pins) - TOOLING)
        if extra:
            print(f"removing packages {lock} does not name: {' '.join(extra)}")
            subprocess.run([sys.executable, "-m", "pip", "uninstall", "--quiet", "--yes", *extra], check=True)
        return 0
    diff = differences(pins, installed())
    if diff:
        print(f"{sys.prefix} does not hold exactly the versions of {lock}:", file=sys.stderr)
        print("\n".join("  " + d for d in diff), file=sys.stderr)
        return 1
    print(f"{sys.prefix}: {len(pins)} packages, exactly as {lock}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
