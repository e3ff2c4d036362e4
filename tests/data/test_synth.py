"""Synthetic dual-phase micrographs: determinism, masks, phase statistics, argument checks.

Reference numbers: the martensite fraction range 0.37..1.0 is the study's 30 DP steel sheets
(stylegan2-ada-sem-study, Introduction and Methods); everything else is a property of the
construction in ``microtune/data/synth.py``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest

from microtune.data.synth import (
    CLASS_NAMES,
    MARTENSITE_FRACTION_RANGE,
    SpecimenParams,
    draw_specimen,
    render_micrograph,
    synthesize,
)
from microtune.errors import MicrotuneError

FERRITE, MARTENSITE, INCLUSION = 0, 1, 2


def collect(**kwargs) -> list[tuple[np.ndarray, np.ndarray, str]]:
    return list(synthesize(**kwargs))


def specimen(
    seed: int, *, resolution: int = 64, inclusions: bool = False, **overrides
) -> SpecimenParams:
    rng = np.random.default_rng(seed)
    params = draw_specimen(rng, resolution=resolution, inclusions=inclusions)
    return dataclasses.replace(params, **overrides)


def martensite_share(mask: np.ndarray) -> float:
    """Martensite share among non-inclusion pixels (the quantity the fraction controls)."""
    matrix = mask != INCLUSION
    return float((mask[matrix] == MARTENSITE).mean())


# -- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes():
    kwargs = dict(count=6, resolution=32, specimens=3, seed=11, inclusions=True)
    first, second = collect(**kwargs), collect(**kwargs)
    for (im1, m1, s1), (im2, m2, s2) in zip(first, second, strict=True):
        assert im1.tobytes() == im2.tobytes()
        assert m1.tobytes() == m2.tobytes()
        assert s1 == s2


def test_different_seeds_differ():
    a = collect(count=4, resolution=32, specimens=2, seed=0)
    b = collect(count=4, resolution=32, specimens=2, seed=1)
    for (im1, m1, _), (im2, m2, _) in zip(a, b):
        assert not np.array_equal(im1, im2)
        assert not np.array_equal(m1, m2)


def test_images_of_one_dataset_differ():
    items = collect(count=4, resolution=32, specimens=1, seed=5)
    images = [im.tobytes() for im, _, _ in items]
    assert len(set(images)) == len(images)


def test_first_images_do_not_depend_on_count():
    short = collect(count=4, resolution=32, specimens=2, seed=3)
    long = collect(count=8, resolution=32, specimens=2, seed=3)
    for (im1, m1, s1), (im2, m2, s2) in zip(short, long[:4], strict=True):
        assert np.array_equal(im1, im2) and np.array_equal(m1, m2) and s1 == s2


def test_render_is_deterministic_for_a_generator_state():
    params = specimen(7, inclusions=True)
    im1, m1 = render_micrograph(params, np.random.default_rng(9), resolution=64)
    im2, m2 = render_micrograph(params, np.random.default_rng(9), resolution=64)
    assert np.array_equal(im1, im2) and np.array_equal(m1, m2)


# -- shapes, dtypes, ids ----------------------------------------------------------------------


@pytest.mark.parametrize("resolution", [16, 64, 128])
def test_shapes_and_dtypes(resolution):
    for image, mask, specimen_id in collect(count=2, resolution=resolution, specimens=2, seed=0):
        assert image.shape == mask.shape == (resolution, resolution)
        assert image.dtype == mask.dtype == np.uint8
        assert isinstance(specimen_id, str)


def test_class_names():
    assert CLASS_NAMES == ("ferrite", "martensite", "inclusion")


def test_specimen_ids_are_spread_evenly():
    ids = [s for _, _, s in collect(count=10, resolution=16, specimens=3, seed=0)]
    assert ids[:3] == ["S00", "S01", "S02"]
    assert sorted(Counter(ids).values()) == [3, 3, 4]


def test_specimen_ids_widen_with_many_specimens():
    ids = [s for _, _, s in collect(count=101, resolution=16, specimens=101, seed=0)]
    assert ids[0] == "S000" and ids[-1] == "S100" and len(set(ids)) == 101


# -- phase statistics -------------------------------------------------------------------------


def test_martensite_share_matches_fraction_exactly_without_inclusions():
    # The phase field is thresholded at the fraction's quantile: exact up to one pixel.
    for seed in range(20):
        params = specimen(seed)
        _, mask = render_micrograph(params, np.random.default_rng(seed), resolution=64)
        assert abs(martensite_share(mask) - params.martensite_fraction) <= 1.0 / mask.size


def test_martensite_share_matches_fraction_with_inclusions():
    # Inclusions replace at most ~5 % of pixels of either phase, so the share among the other
    # pixels moves by at most 0.05 * (1 - f) / 0.95 < 0.03.
    for seed in range(20):
        params = specimen(seed, inclusions=True)
        _, mask = render_micrograph(params, np.random.default_rng(seed), resolution=64)
        assert abs(martensite_share(mask) - params.martensite_fraction) <= 0.03


def test_fraction_range_is_respected_and_covered():
    rng = np.random.default_rng(0)
    draws = [draw_specimen(rng, resolution=64, inclusions=False) for _ in range(2000)]
    fractions = np.array([params.martensite_fraction for params in draws])
    low, high = MARTENSITE_FRACTION_RANGE
    assert (low, high) == (0.37, 1.0)
    assert fractions.min() >= low and fractions.max() <= high
    assert fractions.min() < low + 0.02 and fractions.max() > high - 0.02  # uniform over the range


def test_fully_martensitic_specimen_has_no_ferrite():
    params = specimen(0, martensite_fraction=1.0)
    _, mask = render_micrograph(params, np.random.default_rng(0), resolution=16)
    assert np.all(mask == MARTENSITE)


def test_only_two_classes_without_inclusions():
    items = collect(count=8, resolution=64, specimens=4, seed=2)
    present = set(np.unique(np.stack([m for _, m, _ in items])))
    assert present == {FERRITE, MARTENSITE}


def test_inclusions_are_a_small_third_class():
    items = collect(count=8, resolution=64, specimens=4, seed=2, inclusions=True)
    shares = [float((m == INCLUSION).mean()) for _, m, _ in items]
    assert all(set(np.unique(m)) <= {FERRITE, MARTENSITE, INCLUSION} for _, m, _ in items)
    assert all(share > 0 for share in shares)
    assert 0.005 <= np.mean(shares) <= 0.05
    assert max(shares) <= 0.08


def test_inclusions_flag_changes_nothing_else_in_the_specimen():
    with_inclusions = specimen(4, inclusions=True)
    without = specimen(4, inclusions=False)
    assert with_inclusions.inclusion_fraction > 0 and without.inclusion_fraction == 0
    assert dataclasses.replace(with_inclusions, inclusion_fraction=0.0) == without


def test_martensite_is_brighter_than_ferrite():
    checked = 0
    for image, mask, _ in collect(count=12, resolution=64, specimens=6, seed=8):
        share = martensite_share(mask)
        if 0.05 < share < 0.95:
            checked += 1
            assert image[mask == MARTENSITE].mean() > image[mask == FERRITE].mean() + 20
    assert checked >= 6


def test_grains_and_islands_are_elongated_along_x():
    # Mean run length of the phase mask along rows (x) vs columns (y): the rolling direction is x.
    def mean_run(mask: np.ndarray) -> float:
        changes = np.count_nonzero(mask[:, 1:] != mask[:, :-1])
        return mask.size / (changes + mask.shape[0])

    ratios = []
    for seed in range(4):
        params = specimen(seed, resolution=128, elongation=3.0, martensite_fraction=0.5)
        _, mask = render_micrograph(params, np.random.default_rng(seed), resolution=128)
        ratios.append(mean_run(mask) / mean_run(mask.T))
    assert np.mean(ratios) > 1.4


def test_specimens_differ_and_images_of_a_specimen_agree():
    items = collect(count=16, resolution=64, specimens=4, seed=21)
    by_specimen: dict[str, list[float]] = {}
    for _, mask, specimen_id in items:
        by_specimen.setdefault(specimen_id, []).append(martensite_share(mask))
    within = max(np.ptp(shares) for shares in by_specimen.values())
    between = np.ptp([np.mean(shares) for shares in by_specimen.values()])
    assert within < 0.01  # the fraction is a specimen property
    assert between > 0.1
    means = [np.mean([im.mean() for im, _, s in items if s == sid]) for sid in by_specimen]
    assert np.ptp(means) > 5  # and the specimens look different


def test_specimen_lengths_scale_with_resolution():
    small = specimen(3, resolution=128)
    large = specimen(3, resolution=1024)
    assert large.grain_size_px == pytest.approx(8 * small.grain_size_px)
    assert large.elongation == small.elongation >= 1.0


# -- argument checks --------------------------------------------------------------------------

GOOD = dict(count=4, resolution=32, specimens=2, seed=0)


@pytest.mark.parametrize(
    ("change", "option"),
    [
        (dict(count=0), "--count"),
        (dict(count=2.5), "--count"),
        (dict(specimens=0), "--specimens"),
        (dict(specimens=5), "--specimens"),
        (dict(resolution=8), "--resolution"),
        (dict(resolution=100), "--resolution"),
        (dict(resolution=8192), "--resolution"),
        (dict(seed=-1), "--seed"),
    ],
)
def test_bad_arguments_raise_before_any_work(change, option):
    with pytest.raises(MicrotuneError) as info:
        synthesize(**{**GOOD, **change})  # raises on the call, not on the first next()
    message = str(info.value)
    assert message.startswith(option)
    assert message.endswith(".") and message.count(". ") == 0


def test_draw_and_render_check_resolution():
    with pytest.raises(MicrotuneError, match="--resolution"):
        draw_specimen(np.random.default_rng(0), resolution=48, inclusions=False)
    with pytest.raises(MicrotuneError, match="--resolution"):
        render_micrograph(specimen(0), np.random.default_rng(0), resolution=0)
