"""The dataset format: round trip, content-hash rule, nested stratified subsets, atomic writes."""

from __future__ import annotations

import json
import os
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
    with pytest.raises(DatasetError, match=r"A subset of 13 images is larger than the dataset's 12 images\."):
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


# -- the verified hash and its fingerprint ------------------------------------------------------------

FINGERPRINT = ".microtune-fingerprint.json"


def _age(path, seconds=3600):
    """Set the arrays' mtime an hour back, as for any dataset not written just now (a fingerprint
    is only trusted for files older than the racy window, see microtune.data.dataset.RACY_NS)."""
    for name in ("images.npy", "masks.npy"):
        if (path / name).exists():
            st = (path / name).stat()
            os.utime(path / name, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 10**9))


def test_verified_hash_sees_an_in_place_edit_even_with_the_mtime_put_back(tmp_path, images):
    masks = (images > 100).astype(np.uint8)
    path = write(tmp_path / "ds", images, masks)
    _age(path)
    ds = Dataset.open(path)
    assert ds.verified_hash() == ds.content_hash == content_hash(images, masks)
    assert (path / FINGERPRINT).is_file()  # remembered for the next open
    mtime = (path / "images.npy").stat().st_mtime_ns
    arr = np.load(path / "images.npy", mmap_mode="r+")
    arr[:5] = 255 - arr[:5]  # the edit the issue reports: images changed in place
    arr.flush()
    del arr
    os.utime(path / "images.npy", ns=(mtime, mtime))  # worst case: the mtime is put back (ctime still moves)
    edited = images.copy()
    edited[:5] = 255 - edited[:5]
    again = Dataset.open(path)
    assert again.verified_hash() == content_hash(edited, masks) != again.content_hash
    assert ds.verified_hash() == content_hash(edited, masks)  # an instance opened before the edit too


def test_a_mask_edit_changes_the_verified_hash(tmp_path, images):
    masks = (images > 100).astype(np.uint8)
    path = write(tmp_path / "ds", images, masks)
    _age(path)
    assert Dataset.open(path).verified_hash() == content_hash(images, masks)
    arr = np.load(path / "masks.npy", mmap_mode="r+")
    arr[0, 0, 0] ^= 1
    arr.flush()
    del arr
    masks[0, 0, 0] ^= 1
    assert Dataset.open(path).verified_hash() == content_hash(images, masks)


def _poison(place):
    record = json.loads(place.read_text())
    record["verified_sha256"] = "0" * 64
    place.write_text(json.dumps(record))


def test_a_trusted_fingerprint_is_used_without_rehashing(tmp_path, images):
    # A fingerprint whose stats match is believed (that is what makes it cheap): a poisoned one shows it.
    path = write(tmp_path / "ds", images)
    _age(path)
    Dataset.open(path).verified_hash()
    _poison(path / FINGERPRINT)
    assert Dataset.open(path).verified_hash() == "0" * 64
    st = (path / "images.npy").stat()
    os.utime(path / "images.npy", ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # any stat change: re-hash
    assert Dataset.open(path).verified_hash() == content_hash(images)


def test_a_racily_clean_fingerprint_is_not_trusted(tmp_path, images):
    # The fingerprint was written within the racy window after the array's last change: the array
    # may have changed again within its timestamp tick, so the arrays are re-hashed.
    path = write(tmp_path / "ds", images)
    _age(path)
    Dataset.open(path).verified_hash()
    _poison(path / FINGERPRINT)
    mtime = (path / "images.npy").stat().st_mtime_ns
    os.utime(path / FINGERPRINT, ns=(mtime, mtime + 10**9))  # 1 s after the array: inside RACY_NS
    assert Dataset.open(path).verified_hash() == content_hash(images)


def test_fingerprint_goes_to_the_fallback_folder_when_the_dataset_refuses_it(tmp_path, images):
    path = write(tmp_path / "ds", images)
    _age(path)
    (path / FINGERPRINT).mkdir()  # the dataset's own place cannot take the file (as a read-only folder)
    fallback = tmp_path / "cache" / "fingerprints"
    assert Dataset.open(path).verified_hash(fallback) == content_hash(images)
    (stored,) = fallback.glob("*.json")
    _poison(stored)
    assert Dataset.open(path).verified_hash(fallback) == "0" * 64
    assert Dataset.open(path).verified_hash() == content_hash(images)  # without it: re-hashed, no error


def test_arrays_replaced_after_open_are_refused(tmp_path, images):
    path = write(tmp_path / "ds", images)
    ds = Dataset.open(path)
    write(tmp_path / "ds", images[::-1].copy(), force=True)  # `data prepare --force` over it
    with pytest.raises(DatasetError, match="images.npy: was replaced after the dataset was opened"):
        ds.verified_hash()
    assert Dataset.open(path).verified_hash() == content_hash(images[::-1].copy())


def test_without_any_fingerprint_file_a_process_hashes_once(tmp_path, images, monkeypatch):
    import microtune.data.dataset as dataset_module

    calls = []
    real_hash = dataset_module.content_hash
    monkeypatch.setattr(dataset_module, "content_hash", lambda *a: calls.append(1) or real_hash(*a))  # a counting spy
    path = write(tmp_path / "ds", images)
    _age(path)
    (path / FINGERPRINT).mkdir()  # nowhere to write a fingerprint, and no fallback folder given
    ds = Dataset.open(path)
    assert ds.verified_hash() == ds.verified_hash() == content_hash(images) and len(calls) == 1
    arr = np.load(path / "images.npy", mmap_mode="r+")
    arr[0] ^= 1
    arr.flush()
    del arr
    assert ds.verified_hash() != content_hash(images) and len(calls) == 2
