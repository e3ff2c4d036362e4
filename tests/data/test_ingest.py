"""Reading micrograph files: formats, bit depths, colour, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from microtune.data.ingest import read_image
from microtune.errors import DatasetError
from tests.conftest import textured, write_png


def test_png_uint8_is_taken_as_is(tmp_path, rng):
    array = textured(rng, 40, 50)
    got = read_image(write_png(tmp_path / "a.png", array))
    np.testing.assert_array_equal(got.pixels, array)
    assert got.source_dtype == "uint8" and got.conversions == [] and got.warnings == []


def test_tiff_8bit(tmp_path, rng):
    array = textured(rng, 30, 20)
    tifffile.imwrite(tmp_path / "a.tif", array)
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif").pixels, array)


def test_tiff_16bit_is_stretched_linearly_to_8bit(tmp_path):
    # 12-bit detector data in a 16-bit file: values 100..4000. The documented rule maps the image's
    # own [min, max] linearly onto [0, 255]: 100 -> 0, 4000 -> 255, 2050 -> round(127.5) = 128.
    array = np.array([[100, 2050, 4000], [100, 100, 4000]], dtype=np.uint16)
    tifffile.imwrite(tmp_path / "deep.tif", array)
    got = read_image(tmp_path / "deep.tif")
    expected = np.rint((array.astype(float) - 100) * 255 / 3900).astype(np.uint8)
    np.testing.assert_array_equal(got.pixels, expected)
    assert got.pixels[0, 1] == 128 and got.source_dtype == "uint16"
    assert got.conversions == ["uint16 stretch 100..4000->0..255"]


def test_png_16bit(tmp_path):
    array = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(array).save(tmp_path / "deep.png")
    got = read_image(tmp_path / "deep.png")
    assert got.pixels.dtype == np.uint8 and got.pixels.min() == 0 and got.pixels.max() == 255


def test_grayscale_stored_as_rgb_converts_silently(tmp_path, rng):
    gray = textured(rng, 20, 20)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    got = read_image(write_png(tmp_path / "rgb.png", rgb))
    np.testing.assert_array_equal(got.pixels, gray)
    assert got.warnings == []


def test_real_colour_becomes_bt601_luma_with_a_warning(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # pure-ish red: Y = 0.299*200 + 0.587*50 + 0.114*10 = 90.29
    rgb[..., 1] = 50
    rgb[..., 2] = 10
    got = read_image(write_png(tmp_path / "red.png", rgb))
    assert np.all(got.pixels == 90)
    assert got.conversions == ["rgb->luma"] and "colour" in got.warnings[0]


def test_jpeg_and_bmp(tmp_path, rng):
    array = textured(rng, 32, 32)
    Image.fromarray(array).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(array).save(tmp_path / "a.bmp")
    jpg = read_image(tmp_path / "a.jpg").pixels
    assert jpg.shape == (32, 32) and np.abs(jpg.astype(int) - array).mean() < 6  # lossy, but close
    np.testing.assert_array_equal(read_image(tmp_path / "a.bmp").pixels, array)


def test_rgba_drops_alpha(tmp_path, rng):
    gray = textured(rng, 10, 10)
    rgba = np.dstack([gray, gray, gray, np.full_like(gray, 128)])
    np.testing.assert_array_equal(read_image(write_png(tmp_path / "a.png", rgba)).pixels, gray)


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("notes.txt", b"hello", "not an image file"),
        ("fake.png", b"this is not a png at all", "not a readable image"),
        ("fake.tif", b"II*\x00garbage", "unreadable or truncated TIFF"),
    ],
)
def test_bad_files_name_the_file(tmp_path, name, content, phrase):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=phrase) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_png_is_an_error(tmp_path, rng):
    path = write_png(tmp_path / "t.png", textured(rng, 64, 64))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DatasetError, match="truncated") as info:
        read_image(path)
    assert "t.png" in str(info.value)


def test_truncated_jpeg_is_an_error(tmp_path, rng):
    Image.fromarray(textured(rng, 64, 64)).save(tmp_path / "t.jpg")
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="t.jpg"):
        read_image(tmp_path / "t.jpg")


def test_truncated_tiff_is_an_error(tmp_path, rng):
    tifffile.imwrite(tmp_path / "t.tif", textured(rng, 128, 128))
    data = (tmp_path / "t.tif").read_bytes()
    (tmp_path / "t.tif").write_bytes(data[: len(data) // 3])
    with pytest.raises(DatasetError, match="t.tif"):
        read_image(tmp_path / "t.tif")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("README.txt", "not an image (.txt file)"),
        ("Thumbs.db", "system file"),
        ("desktop.ini", "system file"),
        (".DS_Store", "system file"),
        ("._a.png", "hidden file"),
        ("a.tif.hdr", "not an image (.hdr file)"),   # instrument side-car beside a TIFF
        ("a.png", None),
        ("a.dm3", None),      # an image format we do not read: read it, and fail naming the file
        ("noext", None),
    ],
)
def test_which_files_are_not_micrographs(name, reason):
    from microtune.data.ingest import ignored_reason

    assert ignored_reason(name) == reason
