"""Databar detection on SEM images as instruments and users write them, and what ``data prepare``
and ``data inspect`` report about it.

Every test image is built here: a micrograph (``microtune.data.synth``, or the shared UHCS
micrographs where present) with a drawn information band below it -- a background level, two
lines of instrument text, a scale bar with end ticks and its label, optionally a coloured logo, a
frame line below and a separator line above -- saved the way users get them (RGB JPEG).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from microtune.data import preprocess
from microtune.data.dataset import Dataset
from microtune.data.ingest import read_image
from microtune.data.prepare import PrepareOptions, prepare_dataset
from microtune.data.synth import synthesize
from tests.conftest import microtune_cmd

TEXT = ("HV 20.00 kV   WD 10.2 mm   mag 5 000 x   det ETD   HFW 41.4 um",
        "spot 3.0   curr 0.40 nA   tilt 0   2019-03-04 12:31")


@pytest.fixture(scope="module")
def micrographs() -> list[np.ndarray]:
    """Four 512×512 synthetic dual-phase micrographs (no databar)."""
    return [image for image, _, _ in synthesize(count=4, resolution=512, specimens=4, seed=7)]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def micrograph(source: np.ndarray, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``source`` resized to height×width, with shot noise (σ = 4 grey levels) as an SEM adds."""
    resized = np.asarray(Image.fromarray(source).resize((width, height), Image.BICUBIC), np.float64)
    noise = np.random.default_rng(seed).normal(0, 4, resized.shape)
    return np.clip(np.rint(resized + noise), 0, 255).astype(np.uint8)


def sem_image(image: np.ndarray, bar_rows: int, *, background: int, ink: int, frame_rows: int = 0,
              frame: str = "flat", frame_level: int = 40, separator_rows: int = 0,
              separator_level: int | None = None, logo: bool = False) -> np.ndarray:
    """``image`` with an SEM databar of ``bar_rows`` rows appended below, as RGB.

    The bar's last ``frame_rows`` rows are a frame line: ``frame="flat"`` at ``frame_level``, or
    ``"noisy"``: dark but not flat (levels 10-90 varying along the row, a border drawn over the
    last scan line). Its first ``separator_rows`` rows are a separator line at ``separator_level``
    (default: the ink). ``logo`` adds a red logo inside the bar.
    """
    width = image.shape[1]
    bar = Image.new("RGB", (width, bar_rows), (background,) * 3)
    draw = ImageDraw.Draw(bar)
    size = max(8, bar_rows // 3)
    font = _font(size)
    top = separator_rows
    colour = (ink,) * 3
    draw.text((8, top + 2), TEXT[0], fill=colour, font=font)
    draw.text((8, top + 4 + size), TEXT[1], fill=colour, font=font)
    x0, length, y = int(width * 0.72), int(width * 0.15), top + bar_rows // 2 + 2
    draw.rectangle((x0, y, x0 + length, y + max(2, bar_rows // 12)), fill=colour)  # the scale bar
    draw.rectangle((x0, y - 4, x0 + 1, y + 4), fill=colour)
    draw.rectangle((x0 + length - 1, y - 4, x0 + length, y + 4), fill=colour)
    draw.text((x0 + length // 3, top + 2), "20 um", fill=colour, font=font)
    if logo:
        draw.rectangle((width - 40, top + 3, width - 12, bar_rows - frame_rows - 4), fill=(200, 30, 30))
    pixels = np.array(bar)
    if separator_rows:
        pixels[:separator_rows] = ink if separator_level is None else separator_level
    if frame_rows:
        if frame == "flat":
            pixels[bar_rows - frame_rows:] = frame_level
        else:
            levels = np.random.default_rng(3).integers(10, 91, (frame_rows, width))
            pixels[bar_rows - frame_rows:] = levels[..., None]
    return np.concatenate([np.repeat(image[..., None], 3, axis=2), pixels], axis=0)


def save_jpeg(path: Path, rgb: np.ndarray, quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, format="JPEG", quality=quality)
    return path


# -- the detector ------------------------------------------------------------------------------

def test_issue_geometry_bright_bar_ending_in_a_dark_unflat_border_row(micrographs, tmp_path):
    # The issue: 1024×768 RGB JPEGs, white databar (text, scale bar) in rows 718-766, row 767 a thin
    # dark border that is not flat. The bottom-up search stopped at row 767 and cut nothing.
    image = micrograph(micrographs[0], 718, 1024)
    path = save_jpeg(tmp_path / "steel.jpg", sem_image(image, 50, background=255, ink=0, frame_rows=1,
                                                       frame="noisy", logo=True))
    pixels = read_image(path).pixels
    assert pixels.shape == (768, 1024)
    found = preprocess.find_databar(pixels)
    assert (found.rows, found.frame_rows) == (50, 1)  # rows 718..767: the bar and its border
    assert found.level >= 250


@pytest.mark.parametrize("quality", [95, 75])
@pytest.mark.parametrize("frame_rows", [0, 1, 3])
def test_bright_bar_with_border_rows_same_geometry_half_size(micrographs, tmp_path, quality, frame_rows):
    image = micrograph(micrographs[1], 359, 512)
    rgb = sem_image(image, 25, background=255, ink=0, frame_rows=frame_rows, frame="noisy", logo=True)
    pixels = read_image(save_jpeg(tmp_path / "a.jpg", rgb, quality)).pixels
    found = preprocess.find_databar(pixels)
    assert (found.rows, found.frame_rows) == (25, frame_rows)


@pytest.mark.parametrize("background, ink, frame_level, separator_level", [
    (15, 255, 255, 255),    # black band, white text, white frame and separator lines
    (45, 230, 200, 200),    # dark grey band (not saturated), light text
    (200, 0, 0, 0),         # light grey band, black text, black lines
    (128, 255, 0, 255),     # mid-grey band: its level is inside the micrograph's range
])
@pytest.mark.parametrize("frame_rows, separator_rows", [(0, 0), (2, 1), (1, 2)])
def test_bright_dark_and_grey_bars_with_frame_and_separator_lines(
        micrographs, tmp_path, background, ink, frame_level, separator_level, frame_rows, separator_rows):
    image = micrograph(micrographs[2], 359, 512, seed=1)
    rgb = sem_image(image, 25, background=background, ink=ink, frame_rows=frame_rows, frame_level=frame_level,
                    separator_rows=separator_rows, separator_level=separator_level)
    pixels = read_image(save_jpeg(tmp_path / "a.jpg", rgb, 85)).pixels
    found = preprocess.find_databar(pixels)
    assert (found.rows, found.frame_rows, found.separator_rows) == (25, frame_rows, separator_rows)
    assert abs(found.level - background) <= 6


def test_bar_in_a_lossless_grey_png(micrographs):
    image = micrograph(micrographs[3], 300, 400)
    pixels = sem_image(image, 40, background=0, ink=255, frame_rows=2, frame_level=255)[..., 0]
    assert preprocess.detect_databar(pixels) == 40


def test_no_rows_cut_from_synthetic_micrographs(micrographs):
    for k, image in enumerate(micrographs):
        assert preprocess.detect_databar(image) == 0, k
        assert preprocess.detect_databar(micrograph(image, 288, 384)) == 0, k


def test_no_rows_cut_from_micrographs_that_only_look_dark_or_bright_at_the_bottom(micrographs, tmp_path):
    # Each of these made the previous detector (flat or saturated rows, 85 % of a bottom run) cut
    # rows of micrograph: a black pore over half the width at the bottom, an over-exposed image
    # (half its pixels at 255), a shadowed bottom fading to dark with noise, a thin black frame
    # all round, and a heavily compressed JPEG (quality 30 smooths the noise away).
    rng = np.random.default_rng(0)
    image = micrographs[0]
    pore = image.copy()
    pore[-100:, :256] = 0
    overexposed = np.clip(image.astype(int) * 2 + 40, 0, 255).astype(np.uint8)
    shadow = image.astype(np.float64)
    ramp = np.linspace(1, 0.15, 170)[:, None]
    shadow[-170:] = shadow[-170:] * ramp + rng.normal(0, 3, (170, 512))
    shadow = np.clip(shadow, 0, 255).astype(np.uint8)
    framed = image.copy()
    framed[:2], framed[-2:], framed[:, :2], framed[:, -2:] = 0, 0, 0, 0
    compressed = read_image(save_jpeg(tmp_path / "q30.jpg", np.repeat(image[..., None], 3, 2), 30)).pixels
    for name, pixels in [("pore", pore), ("overexposed", overexposed), ("shadow", shadow),
                         ("framed", framed), ("jpeg q30", compressed)]:
        assert preprocess.detect_databar(pixels) == 0, name


def test_no_rows_cut_from_the_real_uhcs_micrographs(uhcs):
    # The shared UHCS micrographs (645×484) were distributed with their databars removed: looked at
    # as a contact sheet, every one is micrograph to its last row. None may lose a row.
    for path in sorted((uhcs / "images").glob("*.tif")):
        assert preprocess.detect_databar(read_image(path).pixels) == 0, path.name


def test_a_thin_frame_without_a_bar_is_not_cut(micrographs):
    image = micrographs[1].copy()
    image[-2:] = 0  # a frame line under a micrograph that has no databar
    assert preprocess.detect_databar(image) == 0


# -- data prepare: per-image cut, summary, disagreement ---------------------------------------

def _bar_folder(root: Path, micrographs, *, without: tuple[str, ...] = (), taller: tuple[str, ...] = ()) -> Path:
    """512×384 RGB JPEGs a.jpg, b.jpg, ...: a 25-row bright bar with a dark unflat border row,
    except ``without`` (a 384-row micrograph, no bar) and ``taller`` (a 40-row bar)."""
    src = root / "src"
    for k, name in enumerate("abcd"):
        if name in without:
            rgb = np.repeat(micrograph(micrographs[k], 384, 512, seed=k)[..., None], 3, 2)
        else:
            rows = 40 if name in taller else 25
            rgb = sem_image(micrograph(micrographs[k], 384 - rows, 512, seed=k), rows, background=255, ink=0,
                            frame_rows=1, frame="noisy", logo=True)
        save_jpeg(src / f"{name}.jpg", rgb)
    return src


def test_prepare_cuts_each_bar_and_records_it(micrographs, tmp_path):
    src = _bar_folder(tmp_path, micrographs)
    out = prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, crop="tiles", median=0),
                          show_progress=False, warn=lambda note: None)
    ds = Dataset.open(out)
    per_source = {r["source"]: r["preprocessing"]["databar_rows"] for r in ds.manifest["images"]}
    assert per_source == {"a.jpg": 25, "b.jpg": 25, "c.jpg": 25, "d.jpg": 25}
    assert ds.manifest["databar"] == {"mode": "auto", "sizes": [
        {"width": 512, "height": 384, "images": 4, "rows": {"25": 4}}]}
    # the colour was only in the bars' logos: no colour warning, and the records say why
    assert ds.manifest["warnings"] == []
    assert all("colour only in the databar" in r["preprocessing"]["conversions"] for r in ds.manifest["images"])
    # 359 rows are kept: two rows of 128-px tiles from y = (359 - 256) // 2 = 51, none reaching the bar
    assert {tuple(r["tile"])[0] for r in ds.manifest["images"]} == {51, 179}


def test_sizes_that_disagree_are_warned_about_naming_the_files(micrographs, tmp_path):
    src = _bar_folder(tmp_path, micrographs, without=("c",), taller=("d",))
    notes: list[str] = []
    out = prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, median=0),
                          show_progress=False, warn=notes.append)
    ds = Dataset.open(out)
    assert ds.manifest["databar"]["sizes"][0]["rows"] == {"0": 1, "25": 2, "40": 1}
    disagreement = [n for n in notes if n.startswith("databar:")]
    assert disagreement == [n for n in ds.manifest["warnings"] if n.startswith("databar:")]
    assert len(disagreement) == 1
    text = disagreement[0]
    assert "the 4 images of 512×384 pixels disagree: 2 have a 25-row bar" in text
    assert "1 has none (c.jpg)" in text and "1 has a 40-row bar (d.jpg)" in text
    assert "--databar ROWS" in text


def test_a_fixed_databar_is_not_second_guessed(micrographs, tmp_path):
    src = _bar_folder(tmp_path, micrographs, without=("c",))
    notes: list[str] = []
    prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, median=0, databar="25"),
                    show_progress=False, warn=notes.append)
    assert not [n for n in notes if n.startswith("databar:")]


def test_cli_prints_the_summary_and_each_warning_once(micrographs, tmp_path):
    src = _bar_folder(tmp_path, micrographs, without=("c",))
    # a colour micrograph (colour in what is kept): warned about, once
    colour = np.dstack([micrographs[3][:300, :400], micrographs[3][:300, :400] // 2, micrographs[3][:300, :400]])
    Image.fromarray(colour).save(src / "colour.png")
    proc = subprocess.run(microtune_cmd("data", "prepare", str(src), str(tmp_path / "ds"), "--resolution", "128",
                                        "--median", "0", "--quiet"), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "databar      512×384 (auto): bar cut in 3 of 4 image(s) (25 rows ×3), no bar in 1" in proc.stdout
    assert "databar      400×300 (auto): no bar cut in 1 image(s)" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if line]
    assert len([w for w in warnings if "colour.png: colour image converted to luminance" in w]) == 1
    assert len([w for w in warnings if "disagree" in w and "(c.jpg)" in w]) == 1
    assert all(w.startswith("microtune: warning: ") for w in warnings)
    # the logos in a.jpg, b.jpg and d.jpg are in their bars: not warned about
    assert not [w for w in warnings if "a.jpg" in w or "b.jpg" in w or "d.jpg" in w]


def test_colour_in_the_bar_is_warned_about_when_the_bar_is_kept(micrographs, tmp_path):
    src = _bar_folder(tmp_path, micrographs)
    notes: list[str] = []
    prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, median=0, databar="none"),
                    show_progress=False, warn=notes.append)
    assert sorted(n.split(": ")[0].rsplit("/", 1)[-1] for n in notes if "colour image" in n) == \
        ["a.jpg", "b.jpg", "c.jpg", "d.jpg"]


# -- data inspect: the sheet marks the cut ------------------------------------------------------

def test_contact_sheet_marks_the_cut_of_each_source(micrographs, tmp_path):
    from microtune.data.inspect import contact_sheet, format_summary, source_panels, summarize

    src = _bar_folder(tmp_path, micrographs, without=("c",))
    out = prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, crop="tiles", median=0),
                          show_progress=False, warn=lambda note: None)
    ds = Dataset.open(out)
    panels = source_panels(ds, width=256)
    assert len(panels) == 4
    # the rarest cut first: c.jpg, the one without a bar; its thumbnail has no red rows
    scale = 256 / 512
    no_bar = np.asarray(panels[0]).astype(int)
    thumb_rows = round(384 * scale)
    reddish = (no_bar[:thumb_rows, :, 0] - no_bar[:thumb_rows, :, 1]) > 60
    assert reddish.mean() < 0.01
    # a.jpg: rows from 359 (the cut) down are tinted red across the width, rows above are not
    bar = np.asarray(panels[1]).astype(int)
    cut = round(359 * scale)
    below = bar[cut + 1: thumb_rows, 40:-40]
    above = bar[cut - 30: cut - 2, 40:-40]
    assert ((below[..., 0] - below[..., 1]) > 60).mean() > 0.95
    assert ((above[..., 0] - above[..., 1]) > 60).mean() < 0.02
    sheet = contact_sheet(ds, tmp_path / "sheet.png")
    assert Image.open(sheet).height > 128 * 2 + 2 * 300  # the grid, then the source panels
    lines = format_summary(summarize(ds))
    assert "databar      512×384 (auto): bar cut in 3 of 4 image(s) (25 rows ×3), no bar in 1" in lines


def test_source_panels_say_when_a_source_is_gone(micrographs, tmp_path):
    from microtune.data.inspect import source_panels

    src = _bar_folder(tmp_path, micrographs)
    out = prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, median=0),
                          show_progress=False, warn=lambda note: None)
    (src / "a.jpg").unlink()
    panels = source_panels(Dataset.open(out))
    assert len(panels) == 4  # a.jpg's panel says it is not readable instead of failing the sheet


# -- friction: modes and the package import ---------------------------------------------------

def test_dataset_and_sheet_modes_follow_the_umask(micrographs, tmp_path):
    from microtune.data.inspect import contact_sheet

    src = _bar_folder(tmp_path, micrographs)
    old = os.umask(0o002)  # a group-shared project folder
    try:
        out = prepare_dataset(src, tmp_path / "ds", PrepareOptions(resolution=128, median=0),
                              show_progress=False, warn=lambda note: None)
        sheet = contact_sheet(Dataset.open(out), out / "contact_sheet.png")
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o775  # tempfile.mkdtemp would leave 0700
    for path in (out / "manifest.json", out / "images.npy", sheet):
        assert path.stat().st_mode & 0o777 == 0o664, path.name


def test_dataset_is_importable_from_the_package():
    # the README's `from microtune.data import Dataset`, in a fresh interpreter
    proc = subprocess.run([sys.executable, "-c", "from microtune.data import Dataset, PrepareOptions, "
                           "prepare_dataset; print(Dataset.open.__name__, prepare_dataset.__name__)"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["open", "prepare_dataset"]
