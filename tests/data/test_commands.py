"""``data synth`` and ``data inspect`` through the real command line."""

from __future__ import annotations

import json
import subprocess

import numpy as np
from PIL import Image

from microtune.data.dataset import Dataset
from tests.conftest import microtune_cmd


def run(*argv):
    return subprocess.run(microtune_cmd(*argv), capture_output=True, text=True, timeout=300)


def test_synth_writes_a_dataset_with_masks_and_inspect_reads_it(tmp_path):
    out = tmp_path / "syn"
    result = run("data", "synth", str(out), "--count", "12", "--resolution", "64", "--specimens", "3",
                 "--inclusions", "--seed", "7")
    assert result.returncode == 0, result.stderr
    ds = Dataset.open(out)
    assert (ds.count, ds.resolution) == (12, 64)
    assert ds.class_names == ["ferrite", "martensite", "inclusion"]
    assert sorted(set(ds.specimens)) == ["S00", "S01", "S02"]
    assert set(np.unique(ds.masks)) <= {0, 1, 2}
    # same seed, same bytes
    assert run("data", "synth", str(tmp_path / "again"), "--count", "12", "--resolution", "64",
               "--specimens", "3", "--inclusions", "--seed", "7").returncode == 0
    assert Dataset.open(tmp_path / "again").content_hash == ds.content_hash

    sheet = tmp_path / "sheet.png"
    result = run("data", "inspect", str(out), "--sheet", str(sheet), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["count"] == 12 and summary["specimens"] == 3
    assert abs(summary["intensity"]["mean"] - float(np.asarray(ds.images).mean())) < 1e-3
    assert abs(sum(summary["classes"].values()) - 1) < 1e-3
    with Image.open(sheet) as im:
        assert im.width > 500 and im.height > 100  # 12 images + 12 masks at 128 px


def test_synth_images_then_prepare_recovers_the_micrographs(tmp_path):
    raw = tmp_path / "raw"
    assert run("data", "synth", str(raw), "--as-images", "--count", "4", "--resolution", "64",
               "--specimens", "2", "--databar", "16").returncode == 0
    pngs = sorted((raw / "images").rglob("*.png"))
    assert len(pngs) == 4 and np.asarray(Image.open(pngs[0])).shape == (80, 64)
    result = run("data", "prepare", str(raw / "images"), str(tmp_path / "ds"), "--resolution", "64",
                 "--specimens", "FOLDERS", "--median", "0", "--masks", str(raw / "masks"), "--quiet")
    assert result.returncode == 0, result.stderr
    ds = Dataset.open(tmp_path / "ds")
    assert [r["preprocessing"]["databar_rows"] for r in ds.manifest["images"]] == [16] * 4
    np.testing.assert_array_equal(ds.images[0], np.asarray(Image.open(pngs[0]))[:64])
    assert ds.class_names == ["class0", "class1"]


def test_synth_bad_values_and_existing_output(tmp_path):
    result = run("data", "synth", str(tmp_path / "x"), "--resolution", "100")
    assert result.returncode == 1 and "--resolution" in result.stderr
    (tmp_path / "x").mkdir()
    result = run("data", "synth", str(tmp_path / "x"), "--count", "2", "--resolution", "16")
    assert result.returncode == 1 and "already exists; pass --force" in result.stderr


def test_inspect_of_a_missing_dataset_is_one_sentence(tmp_path):
    result = run("data", "inspect", str(tmp_path / "none"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"microtune: error: {tmp_path / 'none'}: not a dataset directory (it does not exist or is a file)."
