"""An advisory exclusive file lock: concurrent processes on one machine take turns."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path


@contextlib.contextmanager
def exclusive(path: str | Path):
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block. On a file
    system without flock the block runs unlocked: callers must still write atomically."""
    with open(path, "a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        except OSError:
            pass
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
