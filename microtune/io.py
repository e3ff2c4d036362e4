"""Atomic writes and advisory locks: the one place microtune writes a file safely.

Every file a reader may open while it is being written (manifests, caches, checkpoints, trial
state, server records, reports) is written to a hidden temporary file in the same directory and
moved over the target with ``os.replace`` (atomic on POSIX within one file system): a reader sees
the old file or the new one, never half of one, and a writer that fails or is killed leaves the
old file. Files get the permissions ``open()`` would give (0666 minus the umask), not
``mkstemp``'s 0600; folders those of ``mkdir`` (0777 minus the umask), not ``mkdtemp``'s 0700.

* :func:`atomic_output` yields the temporary path for any writer (``torch.save``, ``np.savez``,
  ``PIL.Image.save``, ffmpeg); the temporary name ends in the target's suffix, so writers that
  pick the format from it (or append ``.npy``/``.npz`` when it is missing) do the right thing.
  :func:`atomic_write_bytes`, :func:`atomic_write_text` and :func:`atomic_write_json` build on it.
* :func:`atomic_directory` does the same for a folder a command fills file by file (a dataset);
  :func:`partial_directory` and :func:`replace_directory` are its two halves for writers that
  are objects rather than ``with`` blocks.
* :func:`exclusive` is an advisory lock (``flock``, else ``lockf``): processes that take it on the
  same file take turns. It yields the locked file opened for appending, so a journal can lock the file
  it appends to (no separate lock file).

Temporary names start with ``.NAME.`` (``.NAME.tmp-*`` for files, ``.NAME.partial-PID-*`` for
folders), which :func:`microtune.errors.writing` recognises as belonging to output ``NAME``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_output", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_directory", "partial_directory", "replace_directory", "exclusive", "default_mode"]


def _umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def default_mode(*, directory: bool = False) -> int:
    """The mode ``mkdir`` (``directory``) or ``open`` would give a new folder or file now."""
    return (0o777 if directory else 0o666) & ~_umask()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the block to write; when the block ends without
    an exception the file is flushed to disk and moved over ``path`` (with ``mode``, default 0666
    minus the umask), otherwise it is removed and ``path`` is untouched. The parent must exist.

    Example: ``with atomic_output(ckpt) as tmp: torch.save(state, tmp)``.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, default_mode() if mode is None else mode)
        _fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, mode: int | None = None, **dumps: Any) -> None:
    """Write ``json.dumps(obj, **dumps)`` and a final newline to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, **dumps) + "\n", mode=mode)


# -- folders ---------------------------------------------------------------------------------------

_PARTIAL = ".partial-"


def partial_directory(path: str | os.PathLike) -> Path:
    """Create and return an empty hidden folder ``.NAME.partial-PID-XXXX`` beside ``path`` (its
    parents are created), first removing such folders left by writers of ``path`` that died."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}{_PARTIAL}*"):
        try:
            os.kill(int(stale.name.rsplit(_PARTIAL, 1)[1].split("-", 1)[0]), 0)
        except ProcessLookupError:
            shutil.rmtree(stale, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OverflowError):
            continue  # not ours, or a live process of another user
    return Path(tempfile.mkdtemp(prefix=f".{path.name}{_PARTIAL}{os.getpid()}-", dir=path.parent))


def replace_directory(tmp: str | os.PathLike, path: str | os.PathLike, *, replace: bool = False) -> Path:
    """Move the finished folder ``tmp`` (from :func:`partial_directory`) to ``path`` with mode
    0777 minus the umask. An existing ``path`` raises :class:`FileExistsError` unless ``replace``;
    then it is first renamed aside and removed only once the new folder is in place, so ``path``
    is never missing a complete folder for longer than one rename."""
    tmp, path = Path(tmp), Path(path)
    os.chmod(tmp, default_mode(directory=True))
    old = None
    if os.path.lexists(path):
        if not replace:
            raise FileExistsError(errno.EEXIST, "output already exists", str(path))
        old = path.parent / f".{path.name}.old-{os.getpid()}-{os.urandom(3).hex()}"
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, replace: bool = False) -> Iterator[Path]:
    """Yield a new empty folder for the block to fill; when the block ends without an exception it
    becomes ``path`` (see :func:`replace_directory`), otherwise it is removed and ``path`` is
    untouched."""
    tmp = partial_directory(path)
    try:
        yield tmp
        replace_directory(tmp, path, replace=replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# -- locks -----------------------------------------------------------------------------------------

_UNLOCKABLE: set[str] = set()  # files already reported as not lockable (said once per process)


def _lock(fd: int, path: str) -> Callable[[], None] | None:
    """Take an exclusive lock on ``fd``: ``flock``, else a POSIX record lock (``lockf``, which NFS
    serves through its lock manager where it refuses ``flock``). Returns the unlock function, or
    None, after one line on stderr, when the file system supports neither."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return lambda: fcntl.flock(fd, fcntl.LOCK_UN)
    except OSError:
        pass
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        return lambda: fcntl.lockf(fd, fcntl.LOCK_UN)
    except OSError as exc:
        if path not in _UNLOCKABLE:
            _UNLOCKABLE.add(path)
            print(f"microtune: warning: cannot lock {path} ({exc.strerror or exc}); its file system supports "
                  "neither flock nor lockf, so concurrent writers are not serialised (each write stays atomic).",
                  file=sys.stderr, flush=True)
        return None


@contextlib.contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """Hold an exclusive lock on ``path`` (created, 0666 minus the umask, if missing) for the ``with``
    block and yield it opened for binary appending. Processes taking it on the same file take turns
    (so do two opens in one process: do not nest them). ``flock`` first, ``lockf`` where the file
    system refuses flock; where it supports neither, the block runs unlocked after a warning on
    stderr (callers still write atomically)."""
    with open(path, "ab") as fh:
        unlock = _lock(fh.fileno(), os.fspath(path))
        try:
            yield fh
        finally:
            with contextlib.suppress(OSError, ValueError):
                fh.flush()
            if unlock is not None:
                with contextlib.suppress(OSError, ValueError):
                    unlock()
