"""Bad output paths: every command refuses them in one sentence naming the path, exit 1, before it
creates anything; an OS error met while writing is one sentence too, and leaves nothing behind.

The tests run as root here, so chmod cannot make a folder unwritable: the unwritable places are a
path under a regular file, a path under /proc (which accepts no new entries, even for root) and a
file size limit (RLIMIT_FSIZE) that makes a write fail half-way.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import numpy as np
import pytest

from microtune.cli import main
from microtune.errors import MicrotuneError, check_output, os_error_sentence, writing
from tests.conftest import microtune_cmd, textured, write_png

PROC_OUT = "/proc/microtune-outpaths-test/out"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny dataset with masks, a folder of micrographs and a stand-in checkpoint file."""
    root = tmp_path_factory.mktemp("inputs")
    assert main(["data", "synth", str(root / "ds"), "--count", "8", "--resolution", "32", "--specimens", "4"]) == 0
    rng = np.random.default_rng(0)
    for k in range(3):
        write_png(root / "src" / f"m{k}.png", textured(rng, 48, 48))
    (root / "ckpt.pt").write_bytes(b"not loaded: OUT is refused first")
    return root


def _commands(inputs: Path, out: str) -> dict[str, list[str]]:
    return {
        "data prepare": ["data", "prepare", str(inputs / "src"), out, "--resolution", "32", "--quiet"],
        "data synth": ["data", "synth", out, "--count", "4", "--resolution", "16"],
        "data synth --as-images": ["data", "synth", out, "--count", "4", "--resolution", "16", "--as-images"],
        "train": ["train", "--data", str(inputs / "ds"), "--out", out, "--cfg", "demo", "--device", "cpu"],
        "segment": ["segment", "--data", str(inputs / "ds"), "--out", out, "--method", "otsu"],
        "generate": ["generate", "--ckpt", str(inputs / "ckpt.pt"), "--out", out, "--device", "cpu"],
        "demo": ["demo", "--out", out, "--skip-sweep"],
    }


def _file_commands(inputs: Path, out: str) -> dict[str, list[str]]:
    return {
        "interpolate": ["interpolate", "--ckpt", str(inputs / "ckpt.pt"), "--seeds", "0,1", "--out", out,
                        "--device", "cpu"],
        "data inspect --sheet": ["data", "inspect", str(inputs / "ds"), "--sheet", out, "--no-verify"],
    }


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _refused(argv, capsys, named: str) -> str:
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if not line.startswith(("INFO ", "WARNING "))]
    assert len(lines) == 1 and lines[0].startswith("microtune: error: "), err
    assert named in lines[0], err
    return lines[0]


@pytest.mark.parametrize("command", ["data prepare", "data synth", "data synth --as-images", "train", "segment",
                                     "generate", "demo"])
@pytest.mark.parametrize("place", ["under a file", "under /proc", "is a file"])
def test_bad_output_folder_is_refused_before_anything_is_created(inputs, tmp_path, capsys, command, place):
    blocker = tmp_path / "afile"
    blocker.write_text("a user's file")
    out = {"under a file": str(blocker / "out"), "under /proc": PROC_OUT, "is a file": str(blocker)}[place]
    before = _tree(tmp_path), _tree(inputs)
    line = _refused(_commands(inputs, out)[command], capsys, named=out)
    assert {"under a file": "is a file, not a folder", "under /proc": "accepts no new files or folders",
            "is a file": "exists and is a file"}[place] in line
    assert (_tree(tmp_path), _tree(inputs)) == before  # nothing created, nothing half-written
    assert blocker.read_text() == "a user's file"


@pytest.mark.parametrize("command", ["interpolate", "data inspect --sheet"])
@pytest.mark.parametrize("place", ["under a file", "under /proc", "is a folder"])
def test_bad_output_file_is_refused_before_anything_is_created(inputs, tmp_path, capsys, command, place):
    blocker = tmp_path / "afile"
    blocker.write_text("a user's file")
    (tmp_path / "folder.mp4").mkdir()
    out = {"under a file": str(blocker / "out.mp4"), "under /proc": PROC_OUT + ".mp4",
           "is a folder": str(tmp_path / "folder.mp4")}[place]
    before = _tree(tmp_path), _tree(inputs)
    _refused(_file_commands(inputs, out)[command], capsys, named=out)
    assert (_tree(tmp_path), _tree(inputs)) == before


@pytest.mark.parametrize("command", ["data prepare", "data synth"])
def test_existing_output_needs_force(inputs, tmp_path, capsys, command):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("earlier work")
    _refused(_commands(inputs, str(out))[command], capsys, named="pass --force to replace it")
    assert _tree(out) == {"keep.txt"}


def test_force_never_replaces_an_input(tmp_path, capsys):
    """`data prepare raw/images raw --force` used to replace raw (and the micrographs in it) by the dataset."""
    src = tmp_path / "raw" / "images"
    rng = np.random.default_rng(1)
    for k in range(2):
        write_png(src / f"m{k}.png", textured(rng, 40, 40))
    before = _tree(tmp_path)
    _refused(["data", "prepare", str(src), str(tmp_path / "raw"), "--resolution", "32", "--force", "--quiet"],
             capsys, named="holds the input SRC")
    _refused(["data", "prepare", str(src), str(src), "--resolution", "32", "--force", "--quiet"],
             capsys, named="is the input SRC")
    _refused(["data", "prepare", str(src), str(src / "ds"), "--resolution", "32", "--quiet"],
             capsys, named="lies inside the input SRC")
    assert _tree(tmp_path) == before


def test_a_write_that_fails_half_way_is_one_sentence_and_leaves_nothing(tmp_path):
    """A 64 KiB file size limit (Python ignores SIGXFSZ, so write() fails with EFBIG) stops
    `data synth` while it writes images.raw; OUT, its temporary folder and the parent folders the
    command created are all gone, and the user reads one sentence."""
    out = tmp_path / "new" / "deeper" / "ds"

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 << 10, 64 << 10))

    result = subprocess.run(microtune_cmd("data", "synth", str(out), "--count", "64", "--resolution", "128"),
                            capture_output=True, text=True, preexec_fn=limit)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert lines[0].startswith(f"microtune: error: OUT {out}: cannot write") and "file too large" in lines[0]
    assert _tree(tmp_path) == set()


def test_an_oserror_that_escapes_a_command_is_one_sentence(tmp_path, capsys, monkeypatch):
    """The safety net in cli.main: a real OS error (opening a file under a regular file) that a
    handler does not translate is printed as one sentence naming the file, exit 1."""
    import microtune.data.commands as data_commands

    blocker = tmp_path / "afile"
    blocker.write_text("x")

    def handler(args):
        (blocker / "sub.txt").write_text("never")

    monkeypatch.setattr(data_commands, "_inspect", handler)
    line = _refused(["data", "inspect", str(tmp_path)], capsys, named=str(blocker / "sub.txt"))
    assert "a part of the path is a file, not a folder" in line


def test_check_output_and_writing_directly(tmp_path):
    assert check_output(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # the probe leaves nothing
    assert check_output(tmp_path, reuse=True) == tmp_path
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(MicrotuneError, match="output already exists"):
        check_output(tmp_path)
    # writing(): an OSError naming the output becomes one sentence, created parents are removed
    out = tmp_path / "p" / "q" / "out"
    with pytest.raises(MicrotuneError, match=f"OUT {out}: cannot write {out}/x: no such file or folder"):
        with writing(out):
            out.parent.mkdir(parents=True)
            open(out / "x", "w")
    assert not (tmp_path / "p").exists()
    # an OSError on an input names the input, not the output
    with pytest.raises(MicrotuneError, match=r"^/nonexistent-microtune/in\.png: no such file or folder\.$"):
        with writing(tmp_path / "o"):
            open("/nonexistent-microtune/in.png")
    sentence = os_error_sentence(PermissionError(13, "Permission denied", "/x/y"))
    assert sentence == "/x/y: permission denied."


# -- train -------------------------------------------------------------------------------------------

def test_train_refuses_to_overwrite_a_run_and_says_what_it_does_first(inputs, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint-latest.pt").write_bytes(b"an earlier run's state")
    _refused(["train", "--data", str(inputs / "ds"), "--out", str(run), "--cfg", "demo", "--device", "cpu"],
             capsys, named="already holds a training run")
    assert _tree(run) == {"checkpoint-latest.pt"}
    # a fresh run prints what it does before the first (slow) step
    fresh = tmp_path / "fresh"
    assert main(["train", "--data", str(inputs / "ds"), "--out", str(fresh), "--cfg", "demo", "--device", "cpu",
                 "--batch", "4", "--kimg", "0.004", "--tick-kimg", "0.004", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("train: stylegan2 cfg demo, 32x32x1, batch 4, 0.004 kimg") and "8 images" in lines[0]
    assert lines[1].startswith("train: loading torch")
    assert lines[2].startswith("training stylegan2") and "M parameters" in lines[2]


def test_train_that_fails_before_its_first_report_leaves_no_run(inputs, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    run = tmp_path / "run"
    _refused(["train", "--data", str(inputs / "ds"), "--out", str(run), "--cfg", "demo", "--device", "cpu",
              "--resume", str(bad)], capsys, named=f"checkpoint {bad} cannot be read")
    assert not run.exists()


def test_pace_announces_the_first_report_and_the_end(monkeypatch):
    """Deterministic clock: 2 s per step of 16 images = 125 s/kimg; measured after 3 steps (6 s)."""
    from microtune.gan import loop
    from microtune.gan.config import make_options

    clock = iter(range(0, 1000, 2))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: float(next(clock)))
    options = make_options(cfg="tiny", model="stylegan2", resolution=32, batch=16, tick_kimg=2.0, kimg=10.0)
    said = []
    pace = loop._Pace(0, 10000, options)
    for nimg in range(16, 16 * 10, 16):
        pace.step(nimg, said.append)
    # 48 images in 6 s; at nimg 64: (2000 - 64) * 0.125 s = 242 s; (10000 - 64) * 0.125 s = 1242 s
    assert said == ["speed 125 s/kimg over the first 64 images: first report at kimg 2.000 in about 4.0 min, "
                    "the end (kimg 10.000) in about 20.7 min"]
