"""Append-only, fsync'd journal of tracking writes, so an unreachable server loses nothing.

Every write of :class:`microtune.tracking.mlflow_io.Tracker` is first appended here as one JSON
line (a *record*: ``{"id", "op", "t", ...payload}``), then sent to MLflow; when MLflow accepts it,
an *acknowledgement* line ``{"ack": id, ...result}`` is appended. Records without an
acknowledgement are pending; they are replayed, in order, by ``Tracker.flush()`` or
``sync_spools()`` (``microtune sweep sync``). Nothing is ever rewritten in place.

Replays are idempotent: a record keeps the millisecond timestamp it was logged with, so a metric
replayed after MLflow stored it but before the acknowledgement was written is an exact duplicate
that MLflow's store drops (its primary key is key, step, timestamp, value); a run is created with
a tag holding its key, and a replayed creation looks that tag up before creating anything.

One process writes a spool at a time (a trial writes its own in its trial directory); appends
take an exclusive lock on the file (:func:`microtune.io.exclusive`) so that a ``sync`` beside a writer cannot interleave partial lines.
A line cut short by a crash is skipped with a warning when the file is read again.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import warnings
from pathlib import Path

from microtune.io import exclusive

SPOOL_FILENAME = "mlflow_spool.jsonl"


class Spool:
    """The journal of one directory (or an in-memory one when ``directory`` is None).

    Parameters
    ----------
    directory : path-like or None
        Directory that holds :data:`SPOOL_FILENAME`; created when missing. None keeps the
        journal in memory only (no durability; for single-process tools and tests).
    """

    def __init__(self, directory: str | os.PathLike | None):
        self.path: Path | None = None
        self.records: list[dict] = []          # every record, in append order
        self.acks: dict[str, dict] = {}        # record id -> its acknowledgement
        self.loaded_ids: set[str] = set()      # records read from disk (possibly attempted before)
        self._lock = threading.Lock()          # one line at a time from this process
        if directory is not None:
            directory = Path(directory)
            if directory.name == SPOOL_FILENAME:
                directory = directory.parent
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / SPOOL_FILENAME
            self._load()

    # -- reading -----------------------------------------------------------------------------------
    def _load(self) -> None:
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        bad = 0
        for line in raw.splitlines():
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if "ack" in item:
                self.acks[item["ack"]] = item
            elif "op" in item and "id" in item:
                self.records.append(item)
                self.loaded_ids.add(item["id"])
        if bad:
            warnings.warn(f"{self.path}: skipped {bad} unreadable line(s) (cut short by a crash?).",
                          RuntimeWarning, stacklevel=3)
        if raw and not raw.endswith(b"\n"):  # a torn last line: start the next one cleanly
            self._write_lines([b""])

    def pending(self) -> list[dict]:
        """Records not yet acknowledged, in the order they were written."""
        return [r for r in self.records if r["id"] not in self.acks]

    def __len__(self) -> int:
        return len(self.records)

    # -- writing -----------------------------------------------------------------------------------
    def append(self, op: str, **payload) -> dict:
        """Write a new record durably and return it (with its ``id`` and wall time ``t``)."""
        record = {"id": uuid.uuid4().hex, "op": op, "t": time.time(), **payload}
        with self._lock:
            self._write_lines([_dump(record)])
            self.records.append(record)
        return record

    def ack(self, record_id: str, **result) -> dict:
        """Mark a record delivered (or given up on, with ``error=...``)."""
        item = {"ack": record_id, **result}
        with self._lock:
            self._write_lines([_dump(item)])
            self.acks[record_id] = item
        return item

    def _write_lines(self, lines: list[bytes]) -> None:
        if self.path is None:
            return
        data = b"".join(line + b"\n" for line in lines)
        with exclusive(self.path) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def _dump(item: dict) -> bytes:
    # allow_nan: NaN/inf metric values are legal in MLflow and json round-trips them.
    return json.dumps(item, separators=(",", ":"), allow_nan=True).encode()


def find_spools(paths) -> list[Path]:
    """Spool files at or under ``paths`` (files named :data:`SPOOL_FILENAME`, or directories).

    Parameters
    ----------
    paths : iterable of path-like
        Spool files, directories holding one, or trees to search (e.g. a Ray Tune study dir).

    Returns
    -------
    list of pathlib.Path
        Sorted, without duplicates.
    """
    found: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path.is_file():
            found.add(path.resolve())
        elif path.is_dir():
            found.update(p.resolve() for p in path.rglob(SPOOL_FILENAME))
    return sorted(found)
