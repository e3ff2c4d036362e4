"""The evaluation interface end to end with the seeded random detector (fast, offline)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from microtune.errors import MicrotuneError
from microtune.metrics import generator_sampler, make_evaluator
from microtune.metrics.evaluator import to_uint8

N = 48


@pytest.fixture
def real():
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:32, 0:32]
    imgs = [np.clip(120 + 60 * np.sin(x / rng.uniform(2, 6) + rng.uniform(0, 6)) + rng.normal(0, 10, (32, 32)), 0, 255)
            for _ in range(N)]
    return SimpleNamespace(images=np.stack(imgs).astype(np.uint8), content_hash="f" * 64)


def copies_of(images):
    return lambda n, off: torch.from_numpy(images[off : off + n])[:, None]


def noise(n, off):
    # image j depends only on j (the Sampler contract), whatever the batch split
    return torch.stack([torch.rand((1, 32, 32), generator=torch.Generator().manual_seed(off + i)) * 2 - 1
                        for i in range(n)])


def _ev(real, tmp_path, **kw):
    opts = dict(metrics=("fid", "kid", "pr"), num_gen=N, detector="random-seed:0", cache_dir=tmp_path,
                kid_subsets=5, kid_subset_size=20)
    opts.update(kw)
    return make_evaluator(real, **opts)


def test_real_images_against_themselves(real, tmp_path):
    ev = _ev(real, tmp_path)
    out = ev(copies_of(real.images), step_nimg=0)
    assert set(out) == {"fid", "kid", "precision", "recall"}
    assert out["fid"] == pytest.approx(0.0, abs=1e-3)
    assert abs(out["kid"]) < 1e-2
    assert out["precision"] == 1.0 and out["recall"] == 1.0
    assert ev.detector == "random-seed:0"


def test_noise_is_far_from_the_real_set(real, tmp_path):
    same = _ev(real, tmp_path)(copies_of(real.images))
    out = _ev(real, tmp_path)(noise)
    assert out["fid"] > 100 * max(same["fid"], 1e-3)
    assert out["kid"] > 10 * abs(same["kid"])
    assert out["precision"] < 0.5


def test_cache_hit_runs_no_detector_on_real_images(real, tmp_path):
    first = _ev(real, tmp_path)
    v1 = first(noise)
    det = first.detectors["fid"]
    assert det.images_seen == N + N and first.cache.misses == 1  # reals once (shared by roles) + gens once
    second = _ev(real, tmp_path)
    v2 = second(noise)
    assert second.detectors["fid"].images_seen == N and second.cache.hits == 1 and second.cache.misses == 0
    assert v1 == pytest.approx(v2, rel=1e-9)


def test_same_values_in_one_batch_or_many(real, tmp_path):
    one = _ev(real, tmp_path / "a", batch_size=N)(noise)
    many = _ev(real, tmp_path / "b", batch_size=7)(noise)
    assert one["fid"] == pytest.approx(many["fid"], rel=1e-4)
    assert one["kid"] == pytest.approx(many["kid"], rel=1e-3, abs=1e-6)
    assert (one["precision"], one["recall"]) == pytest.approx((many["precision"], many["recall"]), abs=1 / N)


def test_protocol_names_and_num_gen(real, tmp_path):
    ev = _ev(real, None, metrics=("fid500_full", "pr50k3_full"), num_gen=None)
    assert [p.name for p in ev.protocols] == ["fid500_full", "pr50k3_full"] and ev.num_gen == 50_000
    ev = _ev(real, None, metrics=("fid500_full", "kid"), num_gen=20)
    assert [(p.name, p.num_gen) for p in ev.protocols] == [("fid20_full", 20), ("kid20_full", 20)]
    assert set(ev(noise)) == {"fid", "kid"}
    with pytest.raises(MicrotuneError, match="twice"):
        _ev(real, None, metrics=("fid", "fid10k_full"))


def test_standard_detector_without_weights_is_an_error_not_a_substitute(real, tmp_path):
    with pytest.raises(MicrotuneError, match="--detector-weights"):
        make_evaluator(real, ("fid",), num_gen=10, detector="standard", cache_dir=tmp_path, allow_download=False)


def test_bad_sampler_output_is_refused(real):
    ev = _ev(real, None, metrics=("fid",), num_gen=10)
    with pytest.raises(ValueError, match="sample"):
        ev(lambda n, off: torch.zeros(n, 32, 32))


def test_generator_sampler_is_independent_of_batching():
    class G(torch.nn.Module):
        z_dim = 8

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 16)

        def forward(self, z):
            return torch.tanh(self.fc(z)).view(-1, 1, 4, 4)

    sample = generator_sampler(G(), seed=5)
    whole = sample(6, 0)
    parts = torch.cat([sample(4, 0), sample(2, 4)])
    torch.testing.assert_close(whole, parts)


def test_to_uint8_matches_nvlabs_quantisation():
    x = torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0])
    assert to_uint8(x).tolist() == [0, 64, 128, 255, 255]


def test_a_generator_module_can_be_passed_directly(real):
    # The GAN loop calls evaluate(G_ema, nimg): a module is wrapped with generator_sampler(seed).
    class G(torch.nn.Module):
        z_dim = 4

        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 32 * 32)

        def forward(self, z):
            return torch.tanh(self.fc(z)).view(-1, 1, 32, 32)

    ev = _ev(real, None, metrics=("fid",), num_gen=12)
    g = G()
    assert ev(g, 1000) == ev(generator_sampler(g, seed=0), 1000)


# -- the cache key: dataset content as it is now, and the subset seed ---------------------------------

def _dataset_on_disk(real, path):
    import os

    from microtune.data.dataset import Dataset, DatasetWriter

    with DatasetWriter(path, resolution=32) as w:
        for i, image in enumerate(real.images):
            w.add(image, {"source": f"f{i}", "specimen": f"S{i % 3}", "tile": [0, 0]})
        w.commit()
    st = (path / "images.npy").stat()  # an hour old, as a dataset in use is (see data.dataset.RACY_NS)
    os.utime(path / "images.npy", ns=(st.st_atime_ns, st.st_mtime_ns - 3600 * 10**9))
    return Dataset.open(path)


def test_statistics_of_a_dataset_edited_in_place_are_not_reused(real, tmp_path):
    # The report: after images of images.npy were changed in place, metrics reused the
    # statistics cached under the manifest's (now wrong) hash.  Reference value: the same
    # evaluation with an empty cache.
    import os

    ds = _dataset_on_disk(real, tmp_path / "ds")
    cache = tmp_path / "cache"
    before = _ev(ds, cache, metrics=("fid",), num_gen=16)(noise)["fid"]
    mtime = (ds.path / "images.npy").stat().st_mtime_ns
    arr = np.load(ds.path / "images.npy", mmap_mode="r+")
    arr[: N // 2] = 255 - arr[: N // 2]
    arr.flush()
    del arr
    os.utime(ds.path / "images.npy", ns=(mtime, mtime))  # even with its mtime put back
    from microtune.data.dataset import Dataset

    edited = Dataset.open(ds.path)
    ev = _ev(edited, cache, metrics=("fid",), num_gen=16)
    after = ev(noise)["fid"]
    fresh = _ev(edited, tmp_path / "empty-cache", metrics=("fid",), num_gen=16)(noise)["fid"]
    assert after == pytest.approx(fresh, rel=1e-9) and abs(after - before) > 1e-3 * before
    assert ev.cache.misses == 1 and ev.cache.hits == 0
    assert ev.content_hash != edited.content_hash
    assert len(ev.warnings) == 1 and "arrays changed after the dataset was written" in ev.warnings[0]
    # unchanged from here on: the next evaluator is a hit, found by the fingerprint
    again = _ev(Dataset.open(ds.path), cache, metrics=("fid",), num_gen=16)
    assert again(noise)["fid"] == pytest.approx(after, rel=1e-9) and again.cache.hits == 1


def test_the_real_feature_subset_seed_is_part_of_the_key(real, tmp_path):
    # With more real images than feature_cap, the kept real features are a seeded subset: seed 1
    # must not get seed 0's subset from the cache.  Reference: seed 1 with an empty cache.
    opts = dict(metrics=("kid",), feature_cap=20)
    seed0 = _ev(real, tmp_path, seed=0, **opts)
    seed1 = _ev(real, tmp_path, seed=1, **opts)
    fresh1 = _ev(real, tmp_path / "empty", seed=1, **opts)
    features = {name: ev.real_statistics("fid").features for name, ev in
                (("0", seed0), ("1", seed1), ("fresh1", fresh1))}
    assert seed1.cache.misses == 1 and seed1.cache.hits == 0
    np.testing.assert_array_equal(features["1"], features["fresh1"])
    assert not np.array_equal(features["0"], features["1"])
    assert seed1(noise)["kid"] == fresh1(noise)["kid"]
    # all real features kept (count <= cap): the seed picks nothing, and the entry is shared
    full0 = _ev(real, tmp_path / "full", seed=0, metrics=("kid",))
    full0.real_statistics("fid")
    full1 = _ev(real, tmp_path / "full", seed=1, metrics=("kid",))
    full1.real_statistics("fid")
    assert full1.cache.hits == 1


def test_generated_images_of_another_resolution_are_refused(real):
    # The detectors resize any input, so 16×16 fakes against 32×32 reals would give a number silently.
    ev = _ev(real, None, metrics=("fid",), num_gen=4)
    with pytest.raises(MicrotuneError, match="generated images are 16x16 but the real images are 32x32"):
        ev(lambda n, off: torch.zeros(n, 1, 16, 16))
