"""``data prepare`` end to end on real files: pipeline, specimens, masks, bad input, atomicity."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtune.data.commands import add_databar
from microtune.data.dataset import Dataset
from microtune.data.prepare import PrepareOptions, prepare_dataset
from microtune.errors import DatasetError, MicrotuneError
from tests.conftest import microtune_cmd, textured, write_png


def prep(src, out, **kw):
    return Dataset.open(prepare_dataset(src, out, PrepareOptions(**kw), show_progress=False))


def test_center_crop_pipeline_matches_manual_steps(micrograph_folder, tmp_path):
    ds = prep(micrograph_folder, tmp_path / "ds", resolution=64, median=3, databar="none")
    assert ds.count == 6 and ds.resolution == 64
    # default specimens: one per source image
    assert sorted(ds.specimens) == ["A/A0", "A/A1", "A/A2", "B/B0", "B/B1", "B/B2"]
    from skimage.filters import median

    source = np.asarray(Image.open(micrograph_folder / "A" / "A0.png"))
    expected = median(source, footprint=np.ones((3, 3), bool))[8:72, 16:80]  # centre of 80×96
    np.testing.assert_array_equal(ds.images[0], expected)
    rec = ds.manifest["images"][0]
    assert rec["source"] == "A/A0.png" and rec["tile"] == [8, 16]
    assert rec["preprocessing"]["median"] == 3


def test_tiles_and_specimen_folders(micrograph_folder, tmp_path):
    ds = prep(micrograph_folder, tmp_path / "ds", resolution=32, crop="tiles", specimens="FOLDERS")
    assert ds.count == 6 * 2 * 3  # 80×96 → 2×3 tiles of 32
    assert Counter(ds.specimens) == {"A": 18, "B": 18}


def test_specimen_csv(micrograph_folder, tmp_path):
    csv = tmp_path / "spec.csv"
    csv.write_text("file,specimen\n" + "".join(f"{s}/{s}{k}.png,sheet{k}\n" for s in "AB" for k in range(3)))
    ds = prep(micrograph_folder, tmp_path / "ds", resolution=32, specimens=str(csv))
    assert Counter(ds.specimens) == {"sheet0": 2, "sheet1": 2, "sheet2": 2}


def test_unknown_specimen_mapping_is_an_error(micrograph_folder, tmp_path):
    csv = tmp_path / "spec.csv"
    csv.write_text("file,specimen\nA/A0.png,x\n")
    with pytest.raises(DatasetError, match=r"A1\.png: no specimen for this file in .*spec\.csv"):
        prep(micrograph_folder, tmp_path / "ds", resolution=32, specimens=str(csv))
    write_png(micrograph_folder / "loose.png", textured(np.random.default_rng(0), 40, 40))
    with pytest.raises(DatasetError, match=r"loose\.png: --specimens FOLDERS needs"):
        prep(micrograph_folder, tmp_path / "ds", resolution=32, specimens="FOLDERS")
    csv.write_text("name,sheet\n")
    with pytest.raises(DatasetError, match="header 'file,specimen'"):
        prep(micrograph_folder, tmp_path / "ds", resolution=32, specimens=str(csv))
    assert not (tmp_path / "ds").exists()


def test_mixed_formats_16bit_rgb_jpeg(tmp_path, rng):
    src = tmp_path / "src"
    src.mkdir()
    gray = textured(rng, 48, 48)
    tifffile.imwrite(src / "deep.tif", (gray.astype(np.uint16) * 16 + 7))
    write_png(src / "rgb.png", np.repeat(gray[..., None], 3, 2))
    colour = np.dstack([gray, gray // 2, 255 - gray])
    write_png(src / "colour.png", colour)
    Image.fromarray(gray).save(src / "a.jpg", quality=95)
    Image.fromarray(gray).save(src / "a.bmp")
    with pytest.warns(UserWarning, match="colour image converted to luminance"):
        ds = prep(src, tmp_path / "ds", resolution=48, median=0, databar="none")
    assert ds.count == 5
    by_source = {r["source"]: r for r in ds.manifest["images"]}
    assert by_source["deep.tif"]["preprocessing"]["source_dtype"] == "uint16"
    np.testing.assert_array_equal(ds.images[[r["source"] for r in ds.manifest["images"]].index("rgb.png")], gray)
    assert any("luminance" in w for w in ds.manifest["warnings"])


def test_databar_is_removed_before_cropping(tmp_path, rng):
    src = tmp_path / "src"
    micrograph = textured(rng, 64, 64)
    write_png(src / "a.png", add_databar(micrograph, 20))
    ds = prep(src, tmp_path / "ds", resolution=64, median=0)
    np.testing.assert_array_equal(ds.images[0], micrograph)
    assert ds.manifest["images"][0]["preprocessing"]["databar_rows"] == 20


def test_too_small_after_databar_names_file_and_sizes(tmp_path, rng):
    src = tmp_path / "src"
    write_png(src / "small.png", add_databar(textured(rng, 50, 70), 20))
    with pytest.raises(DatasetError, match=r"small\.png: image is 70×50 pixels after removing the 20-row databar, "
                                           r"smaller than --resolution 64"):
        prep(src, tmp_path / "ds", resolution=64)


def test_reference_auto_and_file(micrograph_folder, tmp_path):
    ds = prep(micrograph_folder, tmp_path / "auto", resolution=64, reference="auto", median=0)
    chosen = ds.manifest["preprocessing"]["reference"]
    assert chosen in {r["source"] for r in ds.manifest["images"]}
    ref = write_png(tmp_path / "ref.png", (textured(np.random.default_rng(5), 80, 96) // 2 + 100).astype(np.uint8))
    ds2 = prep(micrograph_folder, tmp_path / "file", resolution=64, reference=str(ref), median=0, databar="none")
    # every image now has (up to quantisation) the reference's grey-level range 110..215
    assert ds2.images[:].min() >= 100 and ds2.images[:].max() <= 215
    with pytest.raises(DatasetError, match="--reference file does not exist"):
        prep(micrograph_folder, tmp_path / "x", resolution=64, reference=str(tmp_path / "nope.png"))


def test_masks_follow_the_crop(tmp_path, rng):
    src, masks = tmp_path / "src", tmp_path / "masks"
    image = textured(rng, 70, 90)
    mask = (image > 110).astype(np.uint8) + (image > 170).astype(np.uint8)
    write_png(src / "a.png", image)
    masks.mkdir()
    np.save(masks / "a.npy", mask.astype(np.int8))
    ds = prep(src, tmp_path / "ds", resolution=32, crop="tiles", median=0, databar="none",
              masks=str(masks), class_names=("lo", "mid", "hi"))
    assert ds.class_names == ["lo", "mid", "hi"] and ds.count == 2 * 2
    for i, rec in enumerate(ds.manifest["images"]):
        y, x = rec["tile"]
        np.testing.assert_array_equal(ds.masks[i], mask[y:y + 32, x:x + 32])
    with pytest.raises(DatasetError, match="a.npy: the mask contains class id 2 but --class-names lists only 2"):
        prep(src, tmp_path / "ds2", resolution=32, masks=str(masks), class_names=("lo", "mid"))
    np.save(masks / "a.npy", mask[:10])
    with pytest.raises(DatasetError, match=r"a\.npy: mask is 10×90 \(rows×columns\) but its image is 70×90"):
        prep(src, tmp_path / "ds3", resolution=32, masks=str(masks))
    (masks / "a.npy").unlink()
    with pytest.raises(DatasetError, match=r"a\.png: no mask file for this image in .*masks/: looked for a, "
                                           r"a_mask, a_label, a_labels, a_gt with extension"):
        prep(src, tmp_path / "ds4", resolution=32, masks=str(masks))


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        # an unsupported format (Gatan .dm3) is not a known non-image type: it still stops a prepare
        ("scan.dm3", b"not an image", "not an image file"),
        ("broken.png", b"\x89PNG\r\n\x1a\n garbage", "not a readable image|truncated"),
    ],
)
def test_bad_file_fails_then_skip_bad_lists_it(micrograph_folder, tmp_path, name, content, phrase):
    (micrograph_folder / "A" / name).write_bytes(content)
    with pytest.raises(DatasetError, match=phrase) as info:
        prep(micrograph_folder, tmp_path / "ds", resolution=32)
    assert name in str(info.value)
    assert not (tmp_path / "ds").exists()
    ds = prep(micrograph_folder, tmp_path / "ds", resolution=32, skip_bad=True)
    assert ds.count == 6
    assert [s["file"] for s in ds.manifest["skipped"]] == [f"A/{name}"]


def test_skip_bad_still_fails_when_nothing_is_left(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.dm3").write_text("x")
    with pytest.raises(DatasetError, match="no usable image is left"):
        prep(src, tmp_path / "ds", resolution=32, skip_bad=True)
    assert not (tmp_path / "ds").exists()


def test_empty_and_missing_source(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / ".hidden").write_text("ignored")
    with pytest.raises(DatasetError, match="empty: the source folder is empty"):
        prep(tmp_path / "empty", tmp_path / "ds", resolution=32)
    with pytest.raises(DatasetError, match="does not exist"):
        prep(tmp_path / "nope", tmp_path / "ds", resolution=32)


def test_output_exists_without_force(micrograph_folder, tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(DatasetError, match="already exists; pass --force"):
        prep(micrograph_folder, tmp_path / "ds", resolution=32)
    assert prep(micrograph_folder, tmp_path / "ds", resolution=32, force=True).count == 6


@pytest.mark.parametrize(
    ("options", "phrase"),
    [({"median": 4}, "--median"), ({"databar": "lots"}, "--databar"), ({"crop": "random"}, "--crop"),
     ({"workers": 0}, "--workers"), ({"resolution": 4}, "--resolution")],
)
def test_invalid_options_name_the_option(micrograph_folder, tmp_path, options, phrase):
    with pytest.raises(MicrotuneError, match=phrase):
        prep(micrograph_folder, tmp_path / "ds", **{"resolution": 32, **options})


def test_workers_give_identical_datasets(micrograph_folder, tmp_path):
    one = prep(micrograph_folder, tmp_path / "one", resolution=32, crop="tiles", reference="auto")
    two = prep(micrograph_folder, tmp_path / "two", resolution=32, crop="tiles", reference="auto", workers=2)
    assert one.content_hash == two.content_hash
    assert one.manifest["images"] == two.manifest["images"]


def test_kill_during_prepare_leaves_no_dataset(tmp_path, rng):
    src = tmp_path / "src"
    for k in range(60):
        write_png(src / f"m{k:03d}.png", textured(rng, 512, 512))
    out = tmp_path / "ds"
    proc = subprocess.Popen(microtune_cmd("data", "prepare", str(src), str(out), "--resolution", "64",
                                          "--crop", "tiles", "--median", "7", "--quiet"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    partial = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = [p for p in tmp_path.glob(".ds.partial-*") if (p / "images.raw").exists()
                 and (p / "images.raw").stat().st_size > 0]
        if found:
            partial = found[0]
            break
        time.sleep(0.05)
    assert partial is not None and proc.poll() is None, "prepare finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    # the next run cleans up what the killed one left and produces the full dataset
    ds = prep(src, out, resolution=64, crop="tiles", median=0)
    assert ds.count == 60 * 64 and not partial.exists()


def test_real_uhcs_micrographs_to_tiles(uhcs, tmp_path):
    # The acceptance command: data prepare ../shared/data/uhcs/images OUT --resolution 128 --crop tiles
    out = tmp_path / "uhcs"
    result = subprocess.run(microtune_cmd("data", "prepare", str(uhcs / "images"), str(out),
                                          "--resolution", "128", "--crop", "tiles", "--quiet",
                                          "--masks", str(uhcs / "labels"),
                                          "--class-names", "matrix,network,spheroidite,widmanstatten"),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ds = Dataset.open(out)
    # 645×484 images give 5×3 tiles of 128 each; 24 images → 360 tiles from 24 specimens
    assert ds.count == 24 * 15 and ds.manifest["specimen_count"] == 24
    assert ds.class_names == ["matrix", "network", "spheroidite", "widmanstatten"]
    assert ds.images[:].std() > 20  # real texture, not blank crops
    labels = np.load(uhcs / "labels" / "uhcs0006.npy")
    y, x = ds.manifest["images"][0]["tile"]
    np.testing.assert_array_equal(ds.masks[0], labels[y:y + 128, x:x + 128])
    ds.verify()


def test_cli_reports_bad_input_in_one_sentence(tmp_path):
    (tmp_path / "empty").mkdir()
    result = subprocess.run(microtune_cmd("data", "prepare", str(tmp_path / "empty"), str(tmp_path / "ds")),
                            capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("microtune: error: ") and "empty" in lines[0]
    assert not Path(tmp_path / "ds").exists()
