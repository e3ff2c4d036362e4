"""The dataset format: round trip, content-hash rule, nested stratified subsets, atomic writes."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from microtune.data.dataset import Dataset, DatasetWriter, content_hash, stratified_subset
from microtune.errors import DatasetError


def write(path, images, masks=None, specimens=None, force=False):
    specimens = specimens or [f"S{i % 3}" for i in range(len(images))]
    with DatasetWriter(path, resolution=images.shape[1], with_masks=masks is not None, force=force) as w:
        for i, image in enumerate(images):
            w.add(image, {"source": f"f{i}", "specimen": specimens[i], "tile": [0, 0]},
                  None if masks is None else masks[i])
        return w.commit(class_names=["a", "b"] if masks is not None else None)


@pytest.fixture
def images(rng):
    return rng.integers(0, 256, (12, 16, 16), dtype=np.uint8)


def test_round_trip(tmp_path, images):
    masks = (images > 100).astype(np.uint8)
    ds = Dataset.open(write(tmp_path / "ds", images, masks))
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.masks, masks)
    assert (ds.count, ds.resolution, ds.channels, ds.class_names) == (12, 16, 1, ["a", "b"])
    assert isinstance(ds.images, np.memmap)
    assert ds.content_hash == content_hash(images, masks)
    ds.verify()


def test_hash_changes_iff_content_or_order_changes(tmp_path, images):
    masks = (images > 100).astype(np.uint8)
    base = content_hash(images, masks)
    assert content_hash(images.copy(), masks.copy()) == base
    # metadata (specimens, sources) does not enter the hash
    a = Dataset.open(write(tmp_path / "a", images, masks, specimens=["x"] * 12))
    assert a.content_hash == base
    changed = images.copy()
    changed[3, 4, 5] ^= 1
    assert content_hash(changed, masks) != base                      # one pixel
    assert content_hash(images[::-1].copy(), masks[::-1].copy()) != base  # order
    other_masks = masks.copy()
    other_masks[0, 0, 0] ^= 1
    assert content_hash(images, other_masks) != base                 # masks
    assert content_hash(images) != base                              # masks dropped
    assert content_hash(images[:11]) != content_hash(images)          # an image dropped


def test_verify_catches_tampering(tmp_path, images):
    path = write(tmp_path / "ds", images)
    arr = np.load(path / "images.npy", mmap_mode="r+")
    arr[0, 0, 0] ^= 255
    arr.flush()
    with pytest.raises(DatasetError, match="does not match"):
        Dataset.open(path).verify()


def test_subsets_are_nested_for_a_seed(rng):
    specimens = np.array([f"S{k}" for k in rng.integers(0, 7, 300)], dtype=object)
    sizes = [10, 50, 100, 200, 300]
    for seed in (0, 1, 2):
        subsets = [set(stratified_subset(specimens, n, seed).tolist()) for n in sizes]
        for small, large, n in zip(subsets, subsets[1:], sizes):
            assert len(small) == n and small < large
    assert set(stratified_subset(specimens, 10, 0)) != set(stratified_subset(specimens, 10, 1))


def test_subsets_are_stratified_across_specimens():
    # 4 specimens with 40, 30, 20, 10 images: a subset of 20 takes 5 from each; of 70, the
    # smallest specimen is exhausted (10) and the other three share the rest evenly (20 each).
    specimens = np.array(["A"] * 40 + ["B"] * 30 + ["C"] * 20 + ["D"] * 10, dtype=object)
    counts = Counter(specimens[stratified_subset(specimens, 20, seed=3)])
    assert counts == {"A": 5, "B": 5, "C": 5, "D": 5}
    counts = Counter(specimens[stratified_subset(specimens, 70, seed=3)])
    assert counts == {"A": 20, "B": 20, "C": 20, "D": 10}
    counts = Counter(specimens[stratified_subset(specimens, 6, seed=3)])
    assert sorted(counts.values()) == [1, 1, 2, 2]


def test_subset_larger_than_dataset_names_both_numbers(tmp_path, images):
    ds = Dataset.open(write(tmp_path / "ds", images))
    with pytest.raises(DatasetError, match=r"subset size 13 is larger than the dataset's 12 images"):
        ds.subset(13, seed=0)
    with pytest.raises(DatasetError, match="positive integer"):
        ds.subset(0)
    assert len(ds.subset(12)) == 12


def test_existing_output_needs_force(tmp_path, images):
    path = write(tmp_path / "ds", images)
    with pytest.raises(DatasetError, match="already exists; pass --force"):
        write(path, images)
    write(path, images[:5], force=True)
    assert Dataset.open(path).count == 5
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp or old directories left


def test_failure_while_writing_leaves_nothing(tmp_path, images):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds", resolution=16) as w:
            w.add(images[0], {"specimen": "a"})
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_open_rejects_broken_datasets(tmp_path, images):
    with pytest.raises(DatasetError, match="not a dataset directory"):
        Dataset.open(tmp_path / "missing")
    path = write(tmp_path / "ds", images)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["count"] = 13
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="'count' is 13"):
        Dataset.open(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable manifest"):
        Dataset.open(path)
