"""`microtune segment` through the library's argparse registration (cli.py wiring is the lead's)."""

from __future__ import annotations

import argparse
import json

import pytest

from microtune.errors import MicrotuneError
from microtune.seg.commands import register


def _parse(*argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["segment", *argv])


def test_segment_otsu_writes_outputs(synth3, tmp_path):
    args = _parse("--data", str(synth3), "--method", "otsu", "--out", str(tmp_path / "run"))
    assert args.handler(args) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["method"] == "OTSU" and final["seg_acc"] > 0.5
    assert json.loads((tmp_path / "run" / "options.json").read_text())["method"] == "otsu"


def test_segment_dry_run_and_bad_depths(synth3, tmp_path, capsys):
    args = _parse("--data", str(synth3), "--out", str(tmp_path / "r"), "--dry-run", "--depths", "conv2,fc7,upscore2")
    assert args.handler(args) == 0
    assert json.loads(capsys.readouterr().out)["depths"] == "conv2,fc7,upscore2"
    bad = _parse("--data", str(synth3), "--out", str(tmp_path / "r"), "--depths", "2,8")
    with pytest.raises(MicrotuneError, match="--depths"):
        bad.handler(bad)


def test_help_lists_methods(capsys):
    with pytest.raises(SystemExit):
        _parse("--help")
    out = capsys.readouterr().out
    assert "hptl-2h" in out and "--freeze" in out and "--width" in out


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a CUDA device is present")
def test_missing_gpu_is_refused_before_out_is_created(synth3, tmp_path):
    args = _parse("--data", str(synth3), "--out", str(tmp_path / "run"), "--device", "cuda")
    with pytest.raises(MicrotuneError, match="--device cuda was requested but no CUDA device"):
        args.handler(args)
    assert not (tmp_path / "run").exists()  # nothing half-written
