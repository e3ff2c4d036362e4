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
