"""microtune.io: atomic file and folder writes, their permissions, and the advisory lock."""

import errno
import fcntl
import json
import multiprocessing
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from microtune.io import (atomic_directory, atomic_output, atomic_write_bytes, atomic_write_json,
                          atomic_write_text, exclusive, partial_directory, replace_directory)


class _Boom(Exception):
    pass


def _mode(path) -> int:
    return os.stat(path).st_mode & 0o777


@pytest.fixture
def umask_027():
    """A group-readable umask, as on a shared project folder; restored after the test."""
    old = os.umask(0o027)
    yield 0o027
    os.umask(old)


def test_a_writer_that_fails_half_way_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "manifest.json"
    target.write_text("old contents")
    with pytest.raises(_Boom):
        with atomic_output(target) as tmp:
            with open(tmp, "w") as fh:
                fh.write("new conte")  # half of the new file reached the disk
                fh.flush()
            assert target.read_text() == "old contents"  # a reader meanwhile sees the old file
            raise _Boom
    assert target.read_text() == "old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_a_successful_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "state.bin"
    target.write_bytes(b"old")
    atomic_write_bytes(target, b"\x00new\xff")
    assert target.read_bytes() == b"\x00new\xff"
    atomic_write_text(tmp_path / "note.txt", "Größe ≤ 5 µm\n")
    assert (tmp_path / "note.txt").read_text(encoding="utf-8") == "Größe ≤ 5 µm\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["note.txt", "state.bin"]


def test_the_temporary_keeps_the_suffix_so_numpy_writes_the_target_itself(tmp_path):
    """np.save/np.savez append .npy/.npz to a name that lacks it: with a '.tmp' temporary the
    target would be an empty file and the arrays would be left beside it."""
    target = tmp_path / "stats.npz"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".stats.npz.") and tmp.suffix == ".npz"
        np.savez(tmp, features=np.arange(6.0).reshape(2, 3))
    with np.load(target) as data:
        np.testing.assert_array_equal(data["features"], np.arange(6.0).reshape(2, 3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.npz"]


def test_json_round_trip(tmp_path):
    value = {"name": "uhcs-äöü", "lr": 0.0025, "nan": float("nan"), "grid": [[1, 2], [3, None]],
             "nested": {"ok": True, "n": 10**12}}
    atomic_write_json(tmp_path / "v.json", value, indent=2, sort_keys=True)
    text = (tmp_path / "v.json").read_text(encoding="utf-8")
    back = json.loads(text)
    assert np.isnan(back.pop("nan")) and back == {k: v for k, v in value.items() if k != "nan"}
    assert text.endswith("}\n") and text.index('"grid"') < text.index('"lr"')  # sort_keys reached json


def test_files_folders_and_lock_files_follow_the_umask(tmp_path, umask_027):
    """The reference is what open()/mkdir() give under the same umask (0640/0750 for 027), not
    mkstemp's 0600 or mkdtemp's 0700."""
    (tmp_path / "plain").write_text("x")
    (tmp_path / "plain-dir").mkdir()
    assert _mode(tmp_path / "plain") == 0o640 and _mode(tmp_path / "plain-dir") == 0o750

    atomic_write_text(tmp_path / "a.txt", "x")
    with atomic_output(tmp_path / "b.npy") as tmp:
        np.save(tmp, np.zeros(3))
    with atomic_directory(tmp_path / "ds") as folder:
        (folder / "images.npy").write_bytes(b"")
    with exclusive(tmp_path / "x.lock"):
        pass
    assert {name: _mode(tmp_path / name) for name in ("a.txt", "b.npy", "ds", "x.lock")} == {
        "a.txt": 0o640, "b.npy": 0o640, "ds": 0o750, "x.lock": 0o640}
    atomic_write_text(tmp_path / "private", "x", mode=0o600)  # an explicit mode wins
    assert _mode(tmp_path / "private") == 0o600


def test_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "dataset"
    with atomic_directory(out) as folder:
        (folder / "manifest.json").write_text("v1")
    assert (out / "manifest.json").read_text() == "v1"

    with pytest.raises(_Boom):
        with atomic_directory(out, replace=True) as folder:
            (folder / "manifest.json").write_text("v2")
            raise _Boom
    assert (out / "manifest.json").read_text() == "v1"

    with pytest.raises(FileExistsError):
        with atomic_directory(out) as folder:  # without replace an existing folder stays
            (folder / "manifest.json").write_text("v3")
    assert (out / "manifest.json").read_text() == "v1"

    with atomic_directory(out, replace=True) as folder:
        (folder / "manifest.json").write_text("v4")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert (out / "manifest.json").read_text() == "v4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]  # no partial or old folder left


def test_partial_folders_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    out = tmp_path / "ds"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".ds.partial-{dead.pid}-abcd"
    stale.mkdir()
    (stale / "images.raw").write_bytes(b"\0" * 10)
    live = tmp_path / f".ds.partial-{os.getppid()}-efgh"  # our parent is alive
    live.mkdir()
    mine = partial_directory(out)
    assert not stale.exists() and live.is_dir() and mine.is_dir()
    replace_directory(mine, out)
    assert out.is_dir() and not mine.exists()


def _append_records(path, tag, count, start):
    start.wait()  # both writers are running before either writes
    for i in range(count):
        with exclusive(path) as fh:
            # one record in three writes, each reaching the file on its own, with a pause between
            # them: without the lock the other process's writes land in the pauses
            for piece in (f"{tag} {i:04d} ".encode(), tag.encode() * 40, b"\n"):
                fh.write(piece)
                fh.flush()
                time.sleep(0.0003)


def test_two_processes_appending_under_the_lock_do_not_interleave(tmp_path):
    path = tmp_path / "journal.jsonl"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    count = 300
    procs = [ctx.Process(target=_append_records, args=(path, tag, count, start)) for tag in "AB"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 2 * count + 1
    for tag in "AB":
        mine = [line for line in lines if line.startswith(tag.encode() + b" ")]
        assert [line.decode() for line in mine] == [f"{tag} {i:04d} " + tag * 40 for i in range(count)]


_TRY_LOCKF = """
import errno, fcntl, sys
with open(sys.argv[1], "ab") as fh:
    try:
        fcntl.lockf(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        sys.exit(3 if exc.errno in (errno.EAGAIN, errno.EACCES) else 4)
"""


def _flock_refused(*_args):
    raise OSError(errno.ENOLCK, "No locks available")  # what NFS without flock support answers


def test_without_flock_the_lock_is_a_posix_record_lock(tmp_path, monkeypatch, capfd):
    """A file system that refuses flock (simulated: flock raises ENOLCK as on such NFS mounts) still
    gets mutual exclusion: another process's lockf on the file is refused while the block runs."""
    path = tmp_path / "journal.lock"
    monkeypatch.setattr(fcntl, "flock", _flock_refused)
    probe = [sys.executable, "-c", _TRY_LOCKF, str(path)]
    with exclusive(path):
        assert subprocess.run(probe).returncode == 3  # held
    assert subprocess.run(probe).returncode == 0      # released
    assert capfd.readouterr().err == ""


def test_without_any_lock_the_block_runs_after_one_warning(tmp_path, monkeypatch, capfd):
    path = tmp_path / "journal.lock"
    monkeypatch.setattr(fcntl, "flock", _flock_refused)
    monkeypatch.setattr(fcntl, "lockf", _flock_refused)
    for _ in range(2):
        with exclusive(path) as fh:
            fh.write(b"x\n")
    assert path.read_bytes() == b"x\nx\n"
    err = capfd.readouterr().err
    assert err.count("warning: cannot lock") == 1 and str(path) in err and "No locks available" in err
