"""Label images as users' labelling tools write them: colour masks, palettes, overlays, masks of the
image minus its databar, mixed folders, suffixed names, stray files; and the refusals."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtune.data import labels
from microtune.data.commands import add_databar
from microtune.data.dataset import Dataset
from microtune.data.prepare import PrepareOptions, prepare_dataset
from microtune.errors import DatasetError, MicrotuneError
from tests.conftest import microtune_cmd, textured, write_png

# A labelling tool's five-colour palette (class id = index); black, red, green, blue, yellow.
PALETTE = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
FIVE = "matrix=#000000,austenite=#ff0000,ferrite=#00ff00,pearlite=#0000ff,bainite=#ffff00"


def prep(src, out, **kw):
    return Dataset.open(prepare_dataset(src, out, PrepareOptions(**kw), show_progress=False))


def blocks(height: int, width: int, classes: int, seed: int) -> np.ndarray:
    """Class ids in rectangular blocks of 8×8 pixels, every class present, seeded."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, classes, (-(-height // 8), -(-width // 8)))
    coarse.flat[:classes] = np.arange(classes)
    return np.kron(coarse, np.ones((8, 8), np.int64))[:height, :width].astype(np.uint8)


def five_colour_folder(tmp_path, count=3, height=48, width=64):
    src, masks = tmp_path / "src", tmp_path / "masks"
    truth = {}
    for k in range(count):
        ids = blocks(height, width, 5, seed=k)
        truth[f"m{k}.png"] = ids
        write_png(src / f"m{k}.png", textured(np.random.default_rng(k), height, width))
        write_png(masks / f"m{k}.png", PALETTE[ids])           # RGB colour mask
    return src, masks, truth


def masks_by_source(ds):
    return {r["source"]: ds.masks[i] for i, r in enumerate(ds.manifest["images"])}


# -- colour masks -----------------------------------------------------------------------------------

def test_rgb_masks_without_a_map_are_refused_with_a_proposal_that_works(tmp_path):
    # The issue: such masks became luminance (ids {0, 29, 76, 150, 226}) and 227 classes, exit 0.
    src, masks, truth = five_colour_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"m0\.png: a colour mask \(5 colours\) needs --mask-colors") as info:
        prep(src, tmp_path / "ds", resolution=48, median=0, databar="none", masks=str(masks))
    assert not (tmp_path / "ds").exists()
    proposal = re.search(r"--mask-colors '([^']+)'", str(info.value)).group(1)
    assert sorted(v.split("=")[1] for v in proposal.split(",")) == sorted(
        "#{:02x}{:02x}{:02x}".format(*c) for c in PALETTE)
    # copying the proposal gives five classes; its order (by pixel count) is a permutation of ours
    ds = prep(src, tmp_path / "ds", resolution=48, median=0, databar="none", masks=str(masks),
              mask_colors=proposal)
    assert ds.class_names == [f"class{k}" for k in range(5)]
    order = [PALETTE.tolist().index([int(v[i:i + 2], 16) for i in (1, 3, 5)])
             for v in (e.split("=")[1] for e in proposal.split(","))]
    for source, mask in masks_by_source(ds).items():
        np.testing.assert_array_equal(np.asarray(order)[mask], truth[source][:48, 8:56])


def test_rgb_masks_through_an_explicit_map_give_the_right_ids(tmp_path):
    src, masks, truth = five_colour_folder(tmp_path)
    ds = prep(src, tmp_path / "ds", resolution=48, median=0, databar="none", masks=str(masks), mask_colors=FIVE)
    assert ds.class_names == ["matrix", "austenite", "ferrite", "pearlite", "bainite"]
    assert len(np.unique(ds.masks[:])) == 5
    for source, mask in masks_by_source(ds).items():
        np.testing.assert_array_equal(mask, truth[source][:48, 8:56])  # centre crop of 48×64
    assert ds.manifest["images"][0]["preprocessing"]["mask"]["reading"] == "colour map"
    assert ds.manifest["preprocessing"]["mask_colors"] == FIVE


def test_map_from_json_and_yaml_files(tmp_path):
    src, masks, truth = five_colour_folder(tmp_path, count=1)
    pairs = [p.split("=") for p in FIVE.split(",")]
    (tmp_path / "map.json").write_text(json.dumps(dict(pairs)))
    (tmp_path / "map.yaml").write_text("".join(f"{n}: '{c}'\n" for n, c in pairs))
    for name in ("map.json", "map.yaml"):
        ds = prep(src, tmp_path / name.replace(".", "_"), resolution=48, median=0, databar="none",
                  masks=str(masks), mask_colors=str(tmp_path / name))
        assert ds.class_names[0] == "matrix"
        np.testing.assert_array_equal(ds.masks[0], truth["m0.png"][:48, 8:56])


def test_colour_not_in_the_map_is_refused_with_its_count(tmp_path):
    src, masks, _ = five_colour_folder(tmp_path, count=1)
    rgb = np.asarray(Image.open(masks / "m0.png")).copy()
    rgb[0, :3] = (10, 200, 30)   # three anti-aliasing pixels of a colour nobody named
    write_png(masks / "m0.png", rgb)
    with pytest.raises(DatasetError, match=r"m0\.png: 3 pixels \(0\.1%\) have colours that --mask-colors does "
                                           r"not map: #0ac81e \(3 px\); add them to the map"):
        prep(src, tmp_path / "ds", resolution=48, median=0, databar="none", masks=str(masks), mask_colors=FIVE)


def test_palette_png_indices_are_class_ids_and_its_colours_follow_a_map(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    ids = blocks(40, 40, 3, seed=4)
    write_png(src / "a.png", textured(np.random.default_rng(0), 40, 40))
    masks.mkdir()
    im = Image.fromarray(ids, mode="P")
    im.putpalette([255, 255, 255, 200, 0, 0, 0, 0, 200] + [0] * 759)   # white, red, blue
    im.save(masks / "a.png")
    assert Image.open(masks / "a.png").mode == "P"
    ds = prep(src, tmp_path / "ds", resolution=40, median=0, databar="none", masks=str(masks))
    np.testing.assert_array_equal(ds.masks[0], ids)        # palette indices, not luminance
    assert ds.class_names == ["class0", "class1", "class2"]
    # with a map the palette colours decide, in the map's order
    ds2 = prep(src, tmp_path / "ds2", resolution=40, median=0, databar="none", masks=str(masks),
               mask_colors="blue=#0000c8,red=#c80000,white=#ffffff")
    np.testing.assert_array_equal(ds2.masks[0], np.array([2, 1, 0])[ids])


def overlay(micrograph: np.ndarray, ids: np.ndarray, alpha: bool = False) -> np.ndarray:
    """The grey micrograph with class 1 painted blue and class 2 painted red, as RGBA."""
    rgba = np.dstack([micrograph, micrograph, micrograph, np.full_like(micrograph, 255)])
    rgba[ids == 1, :3] = (0, 0, 255)
    rgba[ids == 2, :3] = (255, 0, 0)
    if alpha:
        rgba[ids == 0, 3] = 0
    return rgba


@pytest.mark.parametrize("alpha", [False, True], ids=["grey-unpainted", "transparent-unpainted"])
def test_rgba_overlays_become_three_classes(tmp_path, alpha):
    # The issue: overlays of a grey micrograph with phases painted blue and red gave 236 classes.
    src, masks = tmp_path / "src", tmp_path / "masks"
    truth = {}
    for k in range(2):
        micrograph = textured(np.random.default_rng(10 + k), 56, 56)
        ids = blocks(56, 56, 3, seed=k)
        ids[ids == 2] = np.where(np.random.default_rng(k).random((ids == 2).sum()) < 0.5, 2, 0)  # red rarer
        truth[f"o{k}.png"] = ids
        write_png(src / f"o{k}.png", micrograph)
        write_png(masks / f"o{k}.png", overlay(micrograph, ids, alpha))
    with pytest.raises(DatasetError, match=r"needs --mask-colors") as info:
        prep(src, tmp_path / "ds", resolution=56, median=0, databar="none", masks=str(masks))
    # unpainted first, then the painted colours by pixel count (blue covers more than red)
    assert "--mask-colors 'class0=gray,class1=#0000ff,class2=#ff0000'" in str(info.value)
    ds = prep(src, tmp_path / "ds", resolution=56, median=0, databar="none", masks=str(masks),
              mask_colors="matrix=gray,martensite=#0000ff,carbide=#ff0000")
    assert ds.class_names == ["matrix", "martensite", "carbide"]
    for source, mask in masks_by_source(ds).items():
        np.testing.assert_array_equal(mask, truth[source])


def test_overlay_without_an_unpainted_class_is_refused_with_the_hint(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    micrograph = textured(np.random.default_rng(1), 40, 40)
    write_png(src / "o.png", micrograph)
    write_png(masks / "o.png", overlay(micrograph, blocks(40, 40, 3, seed=0)))
    with pytest.raises(DatasetError, match=r"o\.png: \d+ pixels \(.*\) have colours that --mask-colors does not "
                                           r"map: .*; add them to the map; or, if they are the unpainted"):
        prep(src, tmp_path / "ds", resolution=40, masks=str(masks), mask_colors="a=#0000ff,b=#ff0000")


def test_more_values_than_the_cap_are_refused_saying_how_to_map(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    write_png(src / "a.png", textured(np.random.default_rng(0), 40, 40))
    write_png(masks / "a.png", textured(np.random.default_rng(1), 40, 40))   # a photo, not labels
    with pytest.raises(DatasetError, match=r"a\.png: the mask has \d+ distinct values, more than the 32 classes "
                                           r"a label image may have here.*map them with --mask-colors "
                                           r"'name=LEVEL,...' or 'name=#rrggbb,...'"):
        prep(src, tmp_path / "ds", resolution=40, masks=str(masks))
    # few values but not ids 0..K-1 (binary 0/255 masks): refused with a proposal of grey levels
    write_png(masks / "a.png", (blocks(40, 40, 2, seed=0) * 255).astype(np.uint8))
    with pytest.raises(DatasetError, match=r"values \{0, 255\} are not class ids 0\.\.K-1.*"
                                           r"--mask-colors 'class0=(0|255),class1=(255|0)'"):
        prep(src, tmp_path / "ds", resolution=40, masks=str(masks))
    ds = prep(src, tmp_path / "ds", resolution=40, median=0, databar="none", masks=str(masks),
              mask_colors="ferrite=0,pore=255")
    np.testing.assert_array_equal(ds.masks[0], blocks(40, 40, 2, seed=0))


def test_noisy_colour_masks_get_no_proposal_but_the_how_to(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    write_png(src / "a.png", textured(np.random.default_rng(0), 40, 40))
    rgb = PALETTE[blocks(40, 40, 5, seed=0)].astype(int)
    rgb += np.random.default_rng(0).integers(0, 3, rgb.shape) * (rgb < 250)   # lossy-looking noise
    write_png(masks / "a.png", rgb.astype(np.uint8))
    with pytest.raises(DatasetError, match=r"a\.png: a colour mask \(\d+ colours\) needs --mask-colors.*the folder's 1 mask\(s\) "
                                           r"hold too many colours to propose a map"):
        prep(src, tmp_path / "ds", resolution=40, masks=str(masks))


def test_16bit_label_images_keep_their_ids(tmp_path):
    # label tools write uint16 TIFFs; ids 0..3 must stay 0..3 (a 16-bit stretch would make 0, 85, 170, 255)
    src, masks = tmp_path / "src", tmp_path / "masks"
    write_png(src / "a.png", textured(np.random.default_rng(0), 40, 40))
    masks.mkdir()
    ids = blocks(40, 40, 4, seed=2)
    tifffile.imwrite(masks / "a.tif", ids.astype(np.uint16))
    ds = prep(src, tmp_path / "ds", resolution=40, masks=str(masks))
    np.testing.assert_array_equal(ds.masks[0], ids)
    assert ds.class_names == ["class0", "class1", "class2", "class3"]


def test_mixed_grey_and_rgb_masks_resolve_to_the_same_classes(tmp_path):
    src, masks, truth = five_colour_folder(tmp_path, count=2)
    write_png(masks / "m1.png", truth["m1.png"])               # this one as grey class ids 0..4
    ds = prep(src, tmp_path / "ds", resolution=48, median=0, databar="none", masks=str(masks), mask_colors=FIVE)
    for source, mask in masks_by_source(ds).items():
        np.testing.assert_array_equal(mask, truth[source][:48, 8:56])
    readings = {r["source"]: r["preprocessing"]["mask"]["reading"] for r in ds.manifest["images"]}
    assert readings == {"m0.png": "colour map", "m1.png": "class ids (map order)"}
    # a grey mask the map reads one way as grey levels and another as class ids: refused
    (masks / "m0.png").unlink()
    write_png(masks / "m0.png", (truth["m0.png"] > 0).astype(np.uint8))
    write_png(masks / "m1.png", PALETTE[(truth["m1.png"] > 0).astype(int)])
    with pytest.raises(DatasetError, match=r"m0\.png: this grey mask is ambiguous under --mask-colors: its value 0 "
                                           r"is class 'bg' if values are class ids, but 'fg' if"):
        prep(src, tmp_path / "ds2", resolution=48, masks=str(masks), mask_colors="bg=1,fg=0|#ff0000")


# -- alignment ---------------------------------------------------------------------------------------

def two_phase(height: int, width: int, boundary_row: int, boundary_col: int, seed: int):
    """A micrograph dark above ``boundary_row`` and left of ``boundary_col``, bright elsewhere, and
    its exact mask (0 dark, 1 bright)."""
    ids = np.zeros((height, width), np.uint8)
    ids[boundary_row:, :] = 1
    ids[:, boundary_col:] = 1
    rng = np.random.default_rng(seed)
    image = np.where(ids == 1, 190, 60) + rng.integers(-12, 13, (height, width))
    return image.astype(np.uint8), ids


def test_masks_of_the_image_minus_its_databar_line_up_with_the_image(tmp_path):
    # The issue: "mask shape (703, 1024) differs from its image's (768, 1024)" even with --databar 65;
    # some labels were one row shorter still (702). Here: 100×96 micrographs with a 20-row databar.
    src, masks = tmp_path / "src", tmp_path / "masks"
    cases = {"kept": 80, "short": 79, "whole": 100}      # mask height: image minus bar, one less, all
    for k, (name, rows) in enumerate(cases.items()):
        image, ids = two_phase(80, 96, boundary_row=37 + k, boundary_col=50 + k, seed=k)
        write_png(src / f"{name}.png", add_databar(image, 20))
        mask = np.pad(ids, ((0, 20), (0, 0)), constant_values=1)[:rows]   # labels over the bar: dropped
        write_png(masks / f"{name}.png", mask)
    with pytest.warns(UserWarning, match=r"1 mask\(s\) are 1 row short of the image's kept area: aligned "
                                         r"top-left.*\(short\.png;"):
        ds = prep(src, tmp_path / "ds", resolution=64, median=0, databar="20", masks=str(masks))
    for i, rec in enumerate(ds.manifest["images"]):
        image, mask = ds.images[i].astype(int), ds.masks[i]
        # the first row where the mask turns to class 1 in the left column is the first bright row
        mask_row = int(np.argmax(mask[:, 0] == 1))
        image_row = int(np.argmax(image[:, 0] > 125))
        mask_col = int(np.argmax(mask[0] == 1))
        image_col = int(np.argmax(image[0] > 125))
        assert (mask_row, mask_col) == (image_row, image_col), rec["source"]
        k = list(cases).index(rec["source"].split(".")[0])
        y, x = rec["tile"]
        assert (mask_row + y, mask_col + x) == (37 + k, 50 + k)   # where the boundary was drawn
        assert (mask == (image > 125)).all()
    by_source = {r["source"]: r["preprocessing"]["mask"] for r in ds.manifest["images"]}
    assert by_source["short.png"]["image_rows_dropped"] == 1 and by_source["short.png"]["common_shape"] == [79, 96]
    assert by_source["kept.png"]["covers"] == "kept" and by_source["whole.png"]["covers"] == "image"
    assert by_source["whole.png"]["mask_rows_dropped"] == 20


def test_mask_sizes_that_nothing_explains_are_refused(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    image, ids = two_phase(80, 96, 40, 50, seed=0)
    write_png(src / "a.png", add_databar(image, 20))
    write_png(masks / "a.png", ids)                              # 80 rows: the kept area of a 20-row bar
    with pytest.raises(DatasetError, match=r"a\.png: mask is 80×96 \(rows×columns\) but its image is 100×96 with "
                                           r"no databar cut; .*if its image has a 20-row databar, pass --databar 20"):
        prep(src, tmp_path / "ds", resolution=64, databar="none", masks=str(masks))
    write_png(masks / "a.png", ids[:, :90])                      # 6 columns missing
    with pytest.raises(DatasetError, match=r"mask is 80×90 .* at most 2 rows/columns less, from the top-left"):
        prep(src, tmp_path / "ds", resolution=64, databar="20", masks=str(masks))
    write_png(masks / "a.png", ids[:77])                         # 3 rows short of the kept area
    with pytest.raises(DatasetError, match=r"mask is 77×96 .* with 80 rows kept after the 20-row databar cut"):
        prep(src, tmp_path / "ds", resolution=64, databar="20", masks=str(masks))
    assert not (tmp_path / "ds").exists()


def test_mask_taller_than_the_kept_area_warns_about_labels_in_the_cut_bar(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    image, ids = two_phase(80, 96, 40, 50, seed=0)
    write_png(src / "a.png", add_databar(image, 20))
    write_png(masks / "a.png", np.pad(ids, ((0, 10), (0, 0))))   # labelled 10 rows of the 20-row bar
    with pytest.warns(UserWarning, match=r"1 mask\(s\) reach 10 rows into the cut databar"):
        ds = prep(src, tmp_path / "ds", resolution=64, median=0, databar="20", masks=str(masks))
    y, x = ds.manifest["images"][0]["tile"]
    np.testing.assert_array_equal(ds.masks[0], ids[y:y + 64, x:x + 64])


# -- which file is the mask ----------------------------------------------------------------------------

def test_suffixed_names_and_tiff_masks_are_found(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    masks.mkdir()
    for k, suffix in enumerate(["_mask", "_label", "_labels", "_GT"]):
        write_png(src / "sub" / f"s{k}.png", textured(np.random.default_rng(k), 40, 40))
        (masks / "sub").mkdir(exist_ok=True)
        tifffile.imwrite(masks / "sub" / f"s{k}{suffix}.tif", np.full((40, 40), k, np.uint8))
    ds = prep(src, tmp_path / "ds", resolution=40, masks=str(masks))
    assert {r["source"]: int(ds.masks[i].max()) for i, r in enumerate(ds.manifest["images"])} == {
        "sub/s0.png": 0, "sub/s1.png": 1, "sub/s2.png": 2, "sub/s3.png": 3}
    assert ds.manifest["images"][0]["preprocessing"]["mask"]["file"] == "s0_mask.tif"


def test_two_mask_candidates_are_refused_naming_both(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    write_png(src / "x.png", textured(np.random.default_rng(0), 40, 40))
    write_png(src / "y.png", textured(np.random.default_rng(1), 40, 40))
    write_png(masks / "x.png", np.zeros((40, 40), np.uint8))
    tifffile.imwrite(masks / "x.tif", np.ones((40, 40), np.uint8))
    write_png(masks / "y_mask.png", np.ones((40, 40), np.uint8))
    with pytest.raises(DatasetError, match=r"x\.png: 2 mask files match this image \(x\.png, x\.tif in .*masks/\); "
                                           r"keep one of them"):
        prep(src, tmp_path / "ds", resolution=40, masks=str(masks))
    ds = prep(src, tmp_path / "ds", resolution=40, masks=str(masks), skip_bad=True)
    assert [s["file"] for s in ds.manifest["skipped"]] == ["x.png"] and ds.count == 1


def test_jpeg_mask_is_refused_as_lossy(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    write_png(src / "x.png", textured(np.random.default_rng(0), 40, 40))
    masks.mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(masks / "x_mask.jpg")
    with pytest.raises(DatasetError, match=r"x\.png: its only mask candidate .*x_mask\.jpg is a JPEG"):
        prep(src, tmp_path / "ds", resolution=40, masks=str(masks))


def test_masks_beside_their_images(tmp_path):
    src = tmp_path / "src"
    for k in range(2):
        write_png(src / f"x{k}.png", textured(np.random.default_rng(k), 40, 40))
        write_png(src / f"x{k}_mask.png", np.full((40, 40), k, np.uint8))
    ds = prep(src, tmp_path / "ds", resolution=40, masks=str(src))
    assert [r["source"] for r in ds.manifest["images"]] == ["x0.png", "x1.png"]
    assert [int(m.max()) for m in ds.masks] == [0, 1]
    assert {e["file"]: e["reason"] for e in ds.manifest["ignored"]} == {
        "x0_mask.png": "label file of x0.png", "x1_mask.png": "label file of x1.png"}


def test_stray_files_are_ignored_and_listed_but_a_broken_image_still_fails(tmp_path):
    src, masks = tmp_path / "src", tmp_path / "masks"
    for k in range(2):
        write_png(src / f"x{k}.png", textured(np.random.default_rng(k), 40, 40))
        write_png(masks / f"x{k}.png", np.zeros((40, 40), np.uint8))
    (src / "README.txt").write_text("SEM session 2024-03-02, 15 kV")
    (src / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (src / "._x0.png").write_bytes(b"\x00\x05\x16\x07")     # macOS AppleDouble: hidden, image-named
    (src / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (src / "desktop.ini").write_text("[.ShellClassInfo]")
    (masks / "README.txt").write_text("labels by hand")
    (masks / ".DS_Store").write_bytes(b"\x00")
    result = subprocess.run(microtune_cmd("data", "prepare", str(src), str(tmp_path / "ds"), "--resolution", "40",
                                          "--masks", str(masks), "--quiet"), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "ignored 5 file(s) that are not micrographs (listed in the manifest): .DS_Store, ._x0.png, " \
           "README.txt, Thumbs.db, desktop.ini" in result.stdout
    ds = Dataset.open(tmp_path / "ds")
    assert ds.count == 2 and ds.manifest["skipped"] == []
    assert {e["file"]: e["reason"] for e in ds.manifest["ignored"]} == {
        ".DS_Store": "system file", "._x0.png": "hidden file", "README.txt": "not an image (.txt file)",
        "Thumbs.db": "system file",
        "desktop.ini": "system file"}
    (src / "x2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(DatasetError, match=r"x2\.png: not a readable image|x2\.png: unreadable"):
        prep(src, tmp_path / "ds2", resolution=40, masks=str(masks))


# -- the colour map option -------------------------------------------------------------------------

def test_parse_colour_map_forms():
    cmap = labels.parse_colour_map(" matrix = gray , martensite=#00F|#0000fe, pore=0 ")
    assert cmap.names == ("matrix", "martensite", "pore")
    assert cmap.unpainted == 0 and cmap.colours[1] == ((0, 0, 255), (0, 0, 254)) and cmap.colours[2] == ((0, 0, 0),)
    assert cmap.as_text() == "matrix=gray,martensite=#0000ff|#0000fe,pore=#000000"
    assert labels.parse_colour_map(cmap.as_text()) == cmap


@pytest.mark.parametrize(("value", "phrase"), [
    ("matrix", "neither NAME=COLOUR entries nor an existing JSON/YAML file"),
    ("a=#ff0000,b", "entry 'b' is not NAME=COLOUR"),
    ("a=red", "class 'a' has colour 'red'; expected #rrggbb, a grey level 0-255, or gray"),
    ("a=300", "class 'a' has colour '300'"),
    ("a=#ff0000,b=#FF0000", "colour #ff0000 is given to both 'a' and 'b'"),
    ("a=gray,b=grey", "both 'a' and 'b' claim the unpainted"),
    ("a=#000000,a=#ffffff", "class 'a' is listed twice"),
    ("nope.yaml", "--mask-colors nope.yaml: file does not exist"),
])
def test_bad_colour_maps_name_the_problem(value, phrase):
    with pytest.raises(MicrotuneError, match=re.escape(phrase)):
        labels.parse_colour_map(value)


def test_unquoted_yaml_colour_is_explained(tmp_path):
    (tmp_path / "m.yml").write_text("matrix: #000000\nferrite: '#ff0000'\n")   # '#' starts a YAML comment
    with pytest.raises(MicrotuneError, match=r"class 'matrix' has no colour \(in YAML a # starts a comment"):
        labels.parse_colour_map(str(tmp_path / "m.yml"))


def test_class_names_that_contradict_the_map_are_refused(tmp_path):
    src, masks, _ = five_colour_folder(tmp_path, count=1)
    with pytest.raises(MicrotuneError, match=r"--class-names a,b differs from the classes of --mask-colors"):
        prep(src, tmp_path / "ds", resolution=48, masks=str(masks), mask_colors=FIVE, class_names=("a", "b"))
    ds = prep(src, tmp_path / "ds", resolution=48, masks=str(masks), mask_colors=FIVE,
              class_names=tuple(p.split("=")[0] for p in FIVE.split(",")))
    assert ds.class_names[4] == "bainite"


def test_cli_refusal_is_one_sentence_with_the_value_to_copy(tmp_path):
    src, masks, _ = five_colour_folder(tmp_path, count=2)
    result = subprocess.run(microtune_cmd("data", "prepare", str(src), str(tmp_path / "ds"), "--resolution", "48",
                                          "--masks", str(masks), "--quiet"), capture_output=True, text=True)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("microtune: error: ") and "m0.png" in lines[0]
    assert re.search(r"--mask-colors 'class0=#[0-9a-f]{6}(,class\d=#[0-9a-f]{6}){4}'", lines[0])
    assert not (tmp_path / "ds").exists()


# -- real data -----------------------------------------------------------------------------------------

def test_real_uhcs_colour_labels_match_the_class_id_labels(uhcs, tmp_path):
    # labels_colored/ are the UHCS labels drawn in four colours (RGBA PNGs written by matplotlib).
    # The folder's proposal, copied, must reproduce labels/*.npy exactly (the colours' frequency
    # order happens to be the id order 0..3 there: matrix 74 %, network 13 %, spheroidite 10 %, ...).
    with pytest.raises(DatasetError, match="needs --mask-colors") as info:
        prep(uhcs / "images", tmp_path / "ds", resolution=128, crop="tiles", masks=str(uhcs / "labels_colored"))
    proposal = re.search(r"--mask-colors '([^']+)'", str(info.value)).group(1)
    assert proposal.count("=") == 4
    ds = prep(uhcs / "images", tmp_path / "ds", resolution=128, crop="tiles", masks=str(uhcs / "labels_colored"),
              mask_colors=proposal, databar="none")
    truth = prep(uhcs / "images", tmp_path / "truth", resolution=128, crop="tiles", masks=str(uhcs / "labels"),
                 databar="none")
    np.testing.assert_array_equal(ds.masks[:], truth.masks[:])
