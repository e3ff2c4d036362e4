"""`microtune segment` through the library's argparse registration (cli.py wiring is the lead's)."""

from __future__ import annotations

import argparse
import json
import re

import numpy as np
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
    with pytest.raises(SystemExit) as info:  # a bad value is a usage error, refused as it is parsed
        _parse("--data", str(synth3), "--out", str(tmp_path / "r"), "--depths", "2,8")
    assert info.value.code == 2
    assert "argument --depths: needs three values t1,t2,t3, got '2,8'" in capsys.readouterr().err


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


# -- everything is checked before OUT exists (issue 12, defect 5) ----------------------------------

def _write_dataset(out, images, masks, specimens, sources, class_names=("ferrite", "martensite")):
    from microtune.data.dataset import DatasetWriter

    with DatasetWriter(out, resolution=images.shape[-1], with_masks=masks is not None) as writer:
        for k in range(len(images)):
            writer.add(images[k], {"source": sources[k], "specimen": specimens[k], "tile": [0, 0],
                                   "preprocessing": {}}, None if masks is None else masks[k])
        return writer.commit(class_names=list(class_names) if masks is not None else None, source="test")


def test_dataset_without_masks_is_refused_and_out_never_appears(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (4, 32, 32), dtype=np.uint8)
    data = _write_dataset(tmp_path / "plain", images, None, ["a", "b", "c", "d"], [f"m{k}.png" for k in range(4)])
    args = _parse("--data", str(data), "--method", "otsu", "--out", str(tmp_path / "run"))
    with pytest.raises(MicrotuneError, match="has no masks"):
        args.handler(args)
    assert not (tmp_path / "run").exists()


def test_split_lists_are_checked_before_out_appears(synth3, tmp_path):
    # the fixture's sources are synth_000.png ... synth_015.png
    (tmp_path / "none.txt").write_text("IMG_0001.tif\nIMG_0002.tif\n")
    (tmp_path / "train.txt").write_text("\n".join(f"synth_{k:03d}.png" for k in range(12)) + "\n")
    (tmp_path / "test.txt").write_text("synth_012.png\nsynth_013.png\n")
    (tmp_path / "overlap.txt").write_text("synth_011.png\nsynth_014.png\n")
    cases = [("none.txt", "test.txt", "no image of --data"),
             ("train.txt", "none.txt", "no image of --data"),
             ("train.txt", "overlap.txt", "1 images of --data .* are listed both in")]
    for train, test, message in cases:
        split = f"lists:{tmp_path / train},{tmp_path / test}"
        args = _parse("--data", str(synth3), "--method", "otsu", "--out", str(tmp_path / "run"), "--split", split)
        with pytest.raises(MicrotuneError, match=message):
            args.handler(args)
        assert not (tmp_path / "run").exists()
    args = _parse("--data", str(synth3), "--method", "otsu", "--out", str(tmp_path / "run"), "--subset", "13")
    with pytest.raises(MicrotuneError, match="--subset: a subset of 13 images is larger than the 12 training images"):
        args.handler(args)
    assert not (tmp_path / "run").exists()


def test_earlier_results_need_force(synth3, tmp_path, capsys):
    run = tmp_path / "run"
    args = _parse("--data", str(synth3), "--method", "otsu", "--out", str(run))
    assert args.handler(args) == 0
    (run / "final.json").write_text('{"seg_acc": 0.123}')
    with pytest.raises(MicrotuneError, match="holds the results of an earlier run .*final.json.*--force"):
        args.handler(args)
    assert json.loads((run / "final.json").read_text()) == {"seg_acc": 0.123}
    forced = _parse("--data", str(synth3), "--method", "otsu", "--out", str(run), "--force")
    assert forced.handler(forced) == 0
    assert json.loads((run / "final.json").read_text())["method"] == "OTSU"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 1  # the new run's one report, not two


# -- accuracy beside the majority-class rate --------------------------------------------------------

def test_otsu_prints_no_nan_and_the_majority_rate(synth3, tmp_path, capsys):
    from microtune.data.dataset import Dataset
    from tests.seg.conftest import majority_rate

    args = _parse("--data", str(synth3), "--method", "otsu", "--out", str(tmp_path / "run"))
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert not re.search(r"\bnan\b", out)  # was: "train nan test nan"
    ds = Dataset.open(synth3)
    test_masks = np.asarray(ds.masks)[ds.specimens == "S03"]  # the fixture's test specimen
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["seg_majority"] == pytest.approx(majority_rate(test_masks))
    assert final["seg_near_majority"] == 0.0 and "warning" not in captured.err
    assert f"(majority class {final['seg_majority']:.4f})" in out
    assert f"IoU ferrite {final['seg_iou_ferrite']:.3f}" in out
    logged = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert logged["seg_majority"] == final["seg_majority"]


def test_a_model_predicting_the_majority_class_is_flagged(tmp_path, capsys):
    """Images carry no information about the masks (noise vs. independent random labels, 60 % class
    0): Otsu's every intensity band gets the majority class, so it predicts class 0 everywhere and
    its accuracy is exactly the majority rate: the issue's 0.567 against 0.565."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (8, 32, 32), dtype=np.uint8)
    masks = (rng.random((8, 32, 32)) > 0.6).astype(np.uint8)
    data = _write_dataset(tmp_path / "noise", images, masks, ["a", "a", "b", "b", "c", "c", "d", "d"],
                          [f"n{k}.png" for k in range(8)])
    args = _parse("--data", str(data), "--method", "otsu", "--out", str(tmp_path / "run"))
    assert args.handler(args) == 0
    captured = capsys.readouterr()
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    assert final["seg_acc"] == pytest.approx(final["seg_majority"])
    assert final["seg_near_majority"] == 1.0
    assert "no better)" in captured.out
    assert captured.err.startswith(f"warning: the pixel accuracy {final['seg_acc']:.4f} is not a point above")
    assert "predicting ferrite everywhere" in captured.err


def test_majority_rate_and_flag_by_hand():
    from microtune.metrics.segmentation import confusion_matrix, segmentation_scores

    target = np.array([0] * 75 + [1] * 25)
    constant = segmentation_scores(confusion_matrix(target, np.zeros(100, int), 2))
    assert constant["seg_acc"] == constant["seg_majority"] == 0.75 and constant["seg_near_majority"] == 1.0
    assert constant["seg_iou_1"] == 0.0
    one_point = target.copy()
    one_point[75:76] = 0  # 1 of 25 minority pixels wrong: accuracy 0.99, 0.24 above the majority rate
    scores = segmentation_scores(confusion_matrix(target, one_point, 2))
    assert scores["seg_acc"] == 0.99 and scores["seg_near_majority"] == 0.0
    barely = np.zeros(100, int)
    barely[75:77] = 1  # 2 minority pixels right: 0.77, within 0.02 but more than a point above
    assert segmentation_scores(confusion_matrix(target, barely, 2))["seg_near_majority"] == 0.0
    within = np.zeros(100, int)
    within[75:76] = 1  # 0.76: one point above, flagged
    assert segmentation_scores(confusion_matrix(target, within, 2))["seg_near_majority"] == 1.0
