"""User-facing errors.

Every problem with what a user handed us (a file, a folder, a YAML field, a CLI value) is raised
as :class:`MicrotuneError` whose message is one sentence naming the file or field and the problem.
The CLI prints that sentence and exits non-zero; library callers can catch it.

Output paths: every command calls :func:`check_output` on what it will write before any work, and
runs its writing inside :func:`writing`, which turns an OS error into one sentence naming the path
(:func:`os_error_sentence`); ``microtune.cli.main`` does the same for any OSError that escapes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path


class MicrotuneError(Exception):
    """Bad input or an unmet precondition, described in one sentence."""


class DatasetError(MicrotuneError):
    """A dataset directory or a source image is missing, malformed or inconsistent."""


# -- output paths -----------------------------------------------------------------------------------

_REASONS = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space is left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EEXIST: "it already exists",
    errno.ENOENT: "no such file or folder",
    errno.ELOOP: "too many symbolic links",
    errno.EMFILE: "too many open files",
}


def _reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno, (exc.strerror or str(exc)).rstrip(".").lower())


def os_error_sentence(exc: OSError, *, option: str | None = None, path: str | os.PathLike | None = None) -> str:
    """One sentence for an OS error: the option and path being written (when given), the file the
    system refused and why, e.g. ``"OUT /proc/ds: cannot write /proc/.ds.partial-1: no such file or
    folder."``"""
    target = exc.filename if exc.filename is not None else path
    if option is not None and path is not None:
        head = f"{option} {path}: cannot write"
        if target is not None and str(target) != str(path):
            head += f" {target}"
        head += ": "
    else:
        head = f"{target}: " if target is not None else ""
    tail = f" (renaming to {exc.filename2})" if exc.filename2 is not None else ""
    return f"{head}{_reason(exc)}{tail}."


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    return probe


def _probe_writable(folder: Path) -> None:
    """Create and remove a hidden temporary folder in ``folder``: raises OSError if that fails (this,
    unlike os.access, also catches read-only mounts, /proc and the root user's real limits)."""
    tmp = tempfile.mkdtemp(prefix=".microtune-probe-", dir=folder)
    os.rmdir(tmp)


def check_output(path: str | os.PathLike, *, option: str = "OUT", kind: str = "dir", force: bool = False,
                 reuse: bool = False, inputs: dict[str, str | os.PathLike | None] | None = None,
                 inside_inputs: bool = False) -> Path:
    """Check, before any work, that ``path`` can be written as a command's output; returns it absolute.

    ``kind="dir"``: a folder the command creates. An existing folder is refused unless ``force``
    (the command replaces it) or ``reuse`` (the command writes into it); an existing file is always
    refused. ``kind="file"``: a file the command writes (an existing file is replaced, a folder is
    refused). In every case the nearest existing ancestor must be a folder in which a folder can be
    created (checked by creating and removing a hidden one), so an OUT under a file, under /proc or
    on a read-only mount is refused here, in one sentence, before anything is created.
    ``inputs`` (name → path, e.g. ``{"SRC": src}``): folders the command reads; an output that is
    one of them or holds one (``--force`` would delete it) is refused, and so is one inside them
    unless ``inside_inputs`` (folders searched recursively would read the output back as input).
    Raises :class:`MicrotuneError`.
    """
    if kind not in ("dir", "file"):
        raise ValueError(f"kind must be 'dir' or 'file', got {kind!r}")
    if str(path).strip() == "":
        raise MicrotuneError(f"{option}: an empty path was given.")
    path = Path(os.path.abspath(os.path.expanduser(str(path))))
    for name, source in (inputs or {}).items():
        if source is None or str(source) == "":
            continue
        source = Path(os.path.realpath(os.path.expanduser(str(source))))
        real = Path(os.path.realpath(path))
        if real == source or source.is_relative_to(real):
            verb = "is" if real == source else "holds"
            raise MicrotuneError(f"{option} {path}: {verb} the input {name} {source}; choose an output "
                                 f"outside it.")
        if not inside_inputs and real.is_relative_to(source) and source.is_dir():
            raise MicrotuneError(f"{option} {path}: lies inside the input {name} {source}, whose files "
                                 f"would be read back as input; choose an output outside it.")
    if os.path.lexists(path):
        if kind == "dir" and not path.is_dir():
            noun = "a file" if path.is_file() else "something other than a folder"
            raise MicrotuneError(f"{option} {path}: exists and is {noun}, not a folder; choose another path.")
        if kind == "file" and path.is_dir():
            raise MicrotuneError(f"{option} {path}: is a folder, not a file.")
        if kind == "dir" and not (force or reuse):
            raise MicrotuneError(f"{option} {path}: output already exists; pass --force to replace it.")
        where = path if kind == "dir" and reuse else path.parent
    else:
        where = _nearest_existing(path.parent)
        if not where.is_dir():
            raise MicrotuneError(f"{option} {path}: cannot be created because {where} is a file, not a folder.")
    try:
        _probe_writable(where)
    except OSError as exc:
        reason = "" if exc.errno == errno.ENOENT else f" ({_reason(exc)})"  # /proc: ENOENT
        raise MicrotuneError(f"{option} {path}: cannot be written, {where} accepts no new files or "
                             f"folders{reason}.") from None
    return path


@contextlib.contextmanager
def writing(path: str | os.PathLike, *, option: str = "OUT"):
    """Run the block that writes ``path``: an OSError becomes a :class:`MicrotuneError` naming
    ``option``, ``path`` and the file refused, and folders above ``path`` that the block created
    are removed again when it fails (only while they are still empty of other files)."""
    path = Path(os.path.abspath(str(path)))
    first_missing = None
    probe = path.parent
    while not os.path.lexists(probe) and probe.parent != probe:
        first_missing, probe = probe, probe.parent
    try:
        yield path
    except BaseException as exc:
        if first_missing is not None and first_missing.is_dir() and not _has_files(first_missing):
            shutil.rmtree(first_missing, ignore_errors=True)
        if isinstance(exc, OSError):
            if exc.filename is not None and not _is_output_file(exc.filename, path):
                raise MicrotuneError(os_error_sentence(exc)) from exc  # an input: name that file
            raise MicrotuneError(os_error_sentence(exc, option=option, path=path)) from exc
        raise


def _is_output_file(filename, path: Path) -> bool:
    """Whether ``filename`` is ``path``, inside it, one of its parents, or inside a hidden temporary
    sibling of it (``.NAME.partial-*``, ``.NAME.tmp-*``: how :mod:`microtune.io` writes outputs atomically)."""
    name = Path(os.path.abspath(os.fsdecode(filename)))
    if name == path or name.is_relative_to(path) or path.is_relative_to(name):
        return True
    if name.is_relative_to(path.parent):
        first = name.relative_to(path.parent).parts[0]
        return first.startswith(f".{path.name}") or first.startswith(f".{path.stem}")
    return False


def _has_files(folder: Path) -> bool:
    return any(not p.is_dir() for p in folder.rglob("*"))
