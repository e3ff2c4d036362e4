"""The preprocessing steps: databar detection, filters, histogram matching, crops."""

from __future__ import annotations

import numpy as np
import pytest

from microtune.data import preprocess
from microtune.data.commands import add_databar
from tests.conftest import textured


@pytest.mark.parametrize("rows", [6, 24, 60])
def test_databar_with_text_is_detected_exactly(rng, rows):
    image = add_databar(textured(rng, 200, 300), rows)
    assert preprocess.detect_databar(image) == rows


def test_grey_databar_with_dark_text_is_detected(rng):
    micrograph = textured(rng, 150, 200)
    bar = np.full((30, 200), 180, np.uint8)
    bar[8:20, 10:120:3] = 20  # "text" strokes
    assert preprocess.detect_databar(np.concatenate([micrograph, bar])) == 30


def test_no_databar_on_textured_images(rng):
    assert preprocess.detect_databar(textured(rng, 200, 300)) == 0


def test_no_databar_on_real_micrographs(uhcs):
    # The shared UHCS micrographs were distributed with their databars already removed.
    from microtune.data.ingest import read_image

    for path in sorted((uhcs / "images").glob("*.tif"))[:8]:
        assert preprocess.detect_databar(read_image(path).pixels) == 0, path.name


def test_median_filter_removes_salt_noise():
    image = np.full((21, 21), 100, np.uint8)
    image[10, 10] = 255
    out = preprocess.median_filter(image, 3)
    assert out[10, 10] == 100 and out.dtype == np.uint8
    assert preprocess.median_filter(image, 0) is image


def test_histogram_matching_reproduces_the_reference_histogram(rng):
    # The reference uses the 128 even grey levels; the source is a permutation of its pixels passed
    # through the injective, increasing map v -> v // 2. Histogram matching (a monotone map of grey
    # levels onto the reference's quantiles) must then give back the reference's histogram exactly.
    reference = (rng.integers(0, 128, (64, 64)) * 2).astype(np.uint8)
    source = (rng.permutation(reference.ravel()).reshape(64, 64) // 2).astype(np.uint8)
    matched = preprocess.match_histogram(source, reference)
    assert matched.dtype == np.uint8
    np.testing.assert_array_equal(matched, source * 2)
    np.testing.assert_array_equal(preprocess.histogram(matched), preprocess.histogram(reference))


def test_closest_to_median_histogram():
    hists = np.array([[0.5, 0.5, 0.0], [0.4, 0.5, 0.1], [0.0, 0.1, 0.9]])
    # bin-wise median = [0.4, 0.5, 0.1] = the second histogram
    assert preprocess.closest_to_median_histogram(hists) == 1


def test_center_crop_and_tiles_positions():
    assert preprocess.crop_positions(100, 140, 64, "center") == [(18, 38)]
    tiles = preprocess.crop_positions(130, 200, 64, "tiles")
    # 2 rows × 3 columns, the leftover margins split evenly: (130-128)//2 = 1, (200-192)//2 = 4
    assert tiles == [(1, 4), (1, 68), (1, 132), (65, 4), (65, 68), (65, 132)]


def test_cut_tiles_cuts_masks_identically(rng):
    image = rng.integers(0, 256, (70, 70), dtype=np.uint8)
    mask = (image > 128).astype(np.uint8)
    for tile in preprocess.cut_tiles(image, mask, resolution=32, mode="tiles"):
        np.testing.assert_array_equal(tile.mask, (tile.pixels > 128).astype(np.uint8))
        np.testing.assert_array_equal(tile.pixels, image[tile.y:tile.y + 32, tile.x:tile.x + 32])
