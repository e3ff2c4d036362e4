"""Each analysis script against a real MLflow store filled with known curves (tests/analysis/fake_studies.py)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import augmentations, compute, dataset_size, hptl_tables, pareto, report, samples, target_rt
from analysis.loader import load_study
from microtune.tracking import schema
from tests.analysis import fake_studies as fake

REPO = Path(__file__).resolve().parents[2]


def run_script(module, store, experiment, out, *extra) -> int:
    return module.main(["--tracking-uri", store, "--experiment", experiment, "--out", str(out), *extra])


def assert_figure(out: Path, stem: str) -> None:
    png, pdf = out / f"{stem}.png", out / f"{stem}.pdf"
    with Image.open(png) as image:
        assert image.format == "PNG" and image.width > 800 and image.height > 400
        assert np.asarray(image.convert("L")).std() > 10  # not a blank canvas
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 5000


def assert_groups(table: pd.DataFrame, label_col: str, expected: dict, key: str = "fid") -> None:
    rows = table.set_index(label_col)
    assert list(rows.index) == list(expected)
    for label, (median, low, high) in expected.items():
        assert rows.loc[label, f"median best {key}"] == pytest.approx(median)
        assert rows.loc[label, f"min best {key}"] == pytest.approx(low)
        assert rows.loc[label, f"max best {key}"] == pytest.approx(high)
        assert rows.loc[label, "trials"] == 3


def test_augmentations(store, tmp_path, capsys):
    assert run_script(augmentations, store, "augmentations", tmp_path) == 0
    printed = capsys.readouterr()
    assert "warning: ignoring 1 failed trial(s) of 'augmentations': broken." in printed.err
    assert "augmentations.png" in printed.out
    assert_figure(tmp_path, "augmentations")
    table = pd.read_csv(tmp_path / "augmentations_best_fid.csv")
    assert_groups(table, "augmentation type (augpipe)", fake.expected_best(fake.AUG_BEST))  # no "bgc": it failed
    # the best of each curve happens at its known evaluation k* (3 + i % 5 evaluations of 40 kimg)
    at = dict(zip(table.iloc[:, 0], table["median kimg at best"]))
    assert at["none"] == 3 * fake.KIMG_PER_EVAL and at["geom"] == 5 * fake.KIMG_PER_EVAL


def test_target_rt_is_flagged_as_random_detector(store, tmp_path):
    assert run_script(target_rt, store, "target_rt", tmp_path) == 0
    assert_figure(tmp_path, "target_rt")
    table = pd.read_csv(tmp_path / "target_rt_best_fid.csv")
    expected = {f"r_t = {t:g}": v for t, v in fake.expected_best(fake.RT_BEST).items()}
    assert_groups(table, "ADA target r_t", expected)
    assert "random-weight detector" in (tmp_path / "target_rt_best_fid.md").read_text()
    study = load_study(store, "target_rt")
    assert study.offline_detector == "random-weight detector" and "random-weight detector" in study.title("x")
    # a study scored with the texture-trained detector is flagged too, as what it is
    study.detector = "texture-vgg19-seed:0:865a403a0bef"
    assert "detector trained here on textures: not comparable" in study.title("x")
    study.detector = "standard"
    assert study.offline_detector is None and study.title("x") == "x (target_rt)"


def test_dataset_size_and_scaling_laws(store, tmp_path):
    assert run_script(dataset_size, store, "dataset_size", tmp_path) == 0
    for stem in ("dataset_size", "dataset_size_scaling"):
        assert_figure(tmp_path, stem)
    label = "training-set size (images)"
    best_fid = {f"{fake.size_of(s)} images": fake.size_best_fid(s) for s in fake.SIZES}
    assert_groups(pd.read_csv(tmp_path / "dataset_size_best_fid.csv"), label, fake.expected_best(best_fid))
    recall = pd.read_csv(tmp_path / "dataset_size_best_recall.csv").set_index(label)
    for s in fake.SIZES:
        row = recall.loc[f"{fake.size_of(s)} images"]
        assert row["median best recall"] == pytest.approx(fake.size_best_recall(s))
        assert row["min best recall"] == pytest.approx(fake.size_best_recall(s) - 0.01)
        assert row["max best recall"] == pytest.approx(fake.size_best_recall(s) + 0.015)

    fits = pd.read_csv(tmp_path / "dataset_size_scaling.csv").set_index("quantity")
    sizes = np.array([fake.size_of(s) for s in fake.SIZES], dtype=float)
    for quantity, x, y in (("best fid", np.log10(sizes), [fake.size_best_fid(s) for s in fake.SIZES]),
                           ("best recall", np.sqrt(sizes), [fake.size_best_recall(s) for s in fake.SIZES])):
        slope, intercept = np.polyfit(x, y, 1)
        r2 = np.corrcoef(x, y)[0, 1] ** 2  # = 1 − SS_res/SS_tot for a least-squares line
        row = fits.loc[quantity]
        assert row["slope"] == pytest.approx(slope) and row["intercept"] == pytest.approx(intercept)
        assert row["r2"] == pytest.approx(r2) and 0.98 < row["r2"] < 1.0 and row["n_points"] == len(sizes)
    assert fits.loc["best fid", "slope"] == pytest.approx(-14.0, abs=1.0)


def test_pareto_front(store, tmp_path):
    assert run_script(pareto, store, "pareto", tmp_path) == 0
    assert_figure(tmp_path, "pareto")
    table = pd.read_csv(tmp_path / "pareto.csv").set_index("run_name")
    assert set(table.index[table["pareto"]]) == {"p0", "p1", "p2"}
    for name, fid, recall in fake.pareto_points():
        assert table.loc[name, "best_fid"] == pytest.approx(fid) and table.loc[name, "best_recall"] == pytest.approx(recall)
    assert list(pareto.pareto_front([1, 1, 2], [0.5, 0.5, 0.4])) == [True, True, False]  # ties both stay


def test_compute(store, tmp_path):
    assert run_script(compute, store, "dataset_size", tmp_path) == 0
    study = pd.read_csv(tmp_path / "compute_study.csv").iloc[0]
    assert study["trials"] == 18 and study["failed"] == 0
    assert study["CPU_hours"] == pytest.approx(6 * (0.5 + 1.0 + 1.5)) and study["GPU_hours"] == 0
    assert study["energy_kwh"] == pytest.approx(3.0) and study["trials_with_energy"] == 6
    assert run_script(compute, store, "augmentations", tmp_path) == 0
    study = pd.read_csv(tmp_path / "compute_study.csv").iloc[0]
    assert study["trials"] == 22 and study["failed"] == 1 and math.isnan(study["energy_kwh"])
    trials = pd.read_csv(tmp_path / "compute_trials.csv")
    assert (trials["hours_from"] == "run wall clock").all() and (trials["hours"] >= 0).all()


def test_samples_show_the_median_trial_latest_grid(store, tmp_path):
    assert run_script(samples, store, "dataset_size", tmp_path) == 0
    assert_figure(tmp_path, "samples")
    table = pd.read_csv(tmp_path / "samples.csv")
    assert list(table["group"]) == [f"{fake.size_of(s)} images" for s in fake.SIZES]
    assert all(t.endswith("_s1") for t in table["trial"])  # seed 1 has the median best FID
    assert (table["grid"] == "samples/fakes000600.png").all()
    assert run_script(samples, store, "augmentations", tmp_path) == 1  # no grids logged there


def test_hptl_tables(store, tmp_path):
    assert run_script(hptl_tables, store, "hptl", tmp_path) == 0
    table = pd.read_csv(tmp_path / "hptl_methods.csv").set_index("method")
    for method, (l1, l2, ms, acc, miou) in fake.HPTL_FINAL.items():
        row = table.loc[method]
        assert row["train loss l1"] == pytest.approx(l1 * 1.05) and row["test loss l2"] == pytest.approx(l2 * 1.05)
        assert row["gap l_d = l2 - l1"] == pytest.approx((l2 - l1) * 1.05)
        assert row["inference ms/image"] == pytest.approx(ms * 1.05) and row["mean IoU"] == pytest.approx(miou * 1.05)
        assert row["pixel accuracy (%)"] == pytest.approx(100 * acc) and row["trials"] == 2
    variants = pd.read_csv(tmp_path / "hptl_variants.csv")
    assert set(variants["method"]) == {"HPTL", "HPTL-2H", "HPTL-R"}
    assert run_script(hptl_tables, store, "augmentations", tmp_path) == 1


def test_report_indexes_what_applies(store, tmp_path):
    assert run_script(report, store, "dataset_size", tmp_path) == 0
    index = (tmp_path / "index.md").read_text()
    for name in ("dataset_size.png", "dataset_size_scaling.png", "pareto.png", "samples.png", "compute_study.csv"):
        assert name in index and (tmp_path / name).stat().st_size > 0
    assert "augmentations.png" not in index and "Segmentation" not in index
    page = (tmp_path / "index.html").read_text()
    assert page.startswith("<!doctype html>") and '<img src="dataset_size.png"' in page and "<table" in page
    out = tmp_path / "rt"
    assert run_script(report, store, "target_rt", out) == 0
    text = (out / "index.md").read_text()
    assert "target_rt.png" in text and "random-weight detector" in text and "Skipped: no trial" in text


@pytest.mark.parametrize("experiment, extra, message", [
    ("nope", (), "MLflow experiment 'nope' does not exist"),
    ("empty", (), "has no trial runs"),
    ("mixed", (), "mixes results of detectors"),
    ("mixed", ("--detector", "nothing"), "no trial of 'mixed' was scored with detector 'nothing'"),
])
def test_bad_input_is_one_sentence(store, tmp_path, capsys, experiment, extra, message):
    assert run_script(augmentations, store, experiment, tmp_path, *extra) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and err.count("\n") == 0
    assert not any(tmp_path.iterdir())


def test_detector_choice_unmixes(store, tmp_path):
    assert run_script(augmentations, store, "mixed", tmp_path, "--detector", fake.RANDOM) == 0
    assert pd.read_csv(tmp_path / "augmentations_best_fid.csv")["trials"].tolist() == [1]


def test_scripts_run_as_commands(store, tmp_path):
    """As a user runs them: ``python analysis/NAME.py ...`` from any directory."""
    ok = subprocess.run([sys.executable, str(REPO / "analysis" / "target_rt.py"), "--tracking-uri", store,
                         "--experiment", "target_rt", "--out", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "target_rt.png").stat().st_size > 0
    bad = subprocess.run([sys.executable, str(REPO / "analysis" / "dataset_size.py"), "--tracking-uri",
                          "sqlite:///" + str(tmp_path / "none.db"), "--experiment", "x", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: there is no MLflow database")


def test_interpolation_from_a_logged_checkpoint(store, tmp_path):
    """A tiny DCGAN generator saved in microtune's checkpoint format, logged as checkpoints/best.pt."""
    torch = pytest.importorskip("torch")
    from analysis import interpolation
    from microtune.gan.checkpoint import FORMAT, build_networks
    from microtune.gan.config import make_options
    from microtune.tracking.mlflow_io import Tracker

    options = make_options(cfg="demo", model="dcgan", resolution=32)
    G, _ = build_networks(options)
    path = tmp_path / "best.pt"
    torch.save({"format": FORMAT, "kind": "network", "options": options.to_dict(), "G_ema": G.state_dict(), "nimg": 0}, path)
    tracker = Tracker(store)
    parent = tracker.start_study_run("interp", name="launch")
    run = tracker.start_trial_run("interp", parent_run_id=parent, name="t0", params={"seed": 0})
    tracker.log_metrics(run, {"fid": 30.0}, step=1000)
    tracker.log_artifact(run, path, artifact_path="checkpoints")
    tracker.end_run(run)
    out = tmp_path / "out"
    assert run_script(interpolation, store, "interp", out, "--frames", "8", "--seeds", "3,4") == 0
    assert_figure(out, "interpolation")
    assert (out / "interpolation.mp4").stat().st_size > 0
    assert "checkpoints/best.pt" in (out / "interpolation.md").read_text()
    assert run_script(interpolation, store, "interp", out, "--seeds", "3") == 1
    assert interpolation.checkpoint_artifact(["checkpoints/final/network-nimg000000400.pt",
                                              "checkpoints/best/network-nimg000000200.pt"]) == "checkpoints/best/network-nimg000000200.pt"
    assert interpolation.checkpoint_artifact(["checkpoints/final.pt"]) == "checkpoints/final.pt"
    assert interpolation.checkpoint_artifact(["checkpoints/notes.txt"]) is None


def test_hptl_labels_split_a_depth_sweep_only_where_depths_vary():
    runs = pd.DataFrame({
        "run_id": list("abcdef"),
        f"params.{schema.PARAM_METHOD}": ["HPTL", "HPTL", "HPTL", "HPTL-R", "OTSU", "OTSU"],
        "params.depths": ["2,8,9", "2,8,9", "0,8,9", "2,8,9", "2,8,9", "0,0,0"],
        "params.freeze": ["False", "True", "False", "False", "False", "False"],
    })
    assert list(hptl_tables.method_labels(runs)) == [
        "HPTL t=2,8,9", "HPTL t=2,8,9 frozen", "HPTL t=0,8,9",  # depths and freezing vary among HPTL runs
        "HPTL-R", "OTSU", "OTSU"]                                 # one HPTL-R setting; baselines never split
