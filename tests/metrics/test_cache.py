"""Protocol names and the real-statistics cache (hits, corruption, atomicity, concurrency)."""

import multiprocessing
import os

import numpy as np
import pytest

from microtune.errors import MicrotuneError
from microtune.metrics.cache import Protocol, RealStatistics, StatisticsCache, parse_protocol


@pytest.mark.parametrize("name, expected", [
    ("fid50k_full", Protocol("fid50k_full", "fid", 50_000)),
    ("kid50k_full", Protocol("kid50k_full", "kid", 50_000)),
    ("pr50k3_full", Protocol("pr50k3_full", "pr", 50_000, 3)),
    ("fid10k_full", Protocol("fid10k_full", "fid", 10_000)),
    ("fid500_full", Protocol("fid500_full", "fid", 500)),
    ("pr1k5_full", Protocol("pr1k5_full", "pr", 1000, 5)),
    ("pr500_full", Protocol("pr500_full", "pr", 500, 3)),
])
def test_protocol_names_encode_sizes(name, expected):
    assert parse_protocol(name) == expected


@pytest.mark.parametrize("bad", ["fid50k", "fid10k3_full", "is50k_full", "pr2k2000_full", "fid1_full", "FID50k_full"])
def test_bad_protocol_names_are_refused(bad):
    with pytest.raises(MicrotuneError, match="protocol"):
        parse_protocol(bad)


def _stats(seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((10, 4)).astype(np.float32)
    return RealStatistics(count=10, features=feats, mean=feats.mean(0).astype(np.float64), cov=np.eye(4))


def test_hit_does_not_recompute_and_round_trips(tmp_path):
    key = StatisticsCache.key("a" * 64, "random-seed:0", "b" * 64, 50_000)
    calls = []
    first = StatisticsCache(tmp_path).get_or_compute(key, "random-conv", lambda: calls.append(1) or _stats())
    again = StatisticsCache(tmp_path)  # a fresh object, as in another trial
    second = again.get_or_compute(key, "random-conv", lambda: calls.append(1) or _stats(1))
    assert calls == [1] and again.hits == 1 and again.misses == 0
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.cov, second.cov)
    assert second.count == 10
    files = sorted(p.name for p in (tmp_path / "real-stats").iterdir())
    # one entry and its lock file; no hidden temporary file (.NAME.tmp-*) left behind
    assert len([f for f in files if f.endswith(".npz")]) == 1 and not [f for f in files if f.startswith(".")]


def test_entries_are_readable_like_any_file_the_user_creates(tmp_path):
    """An entry gets 0666 minus the umask (what open() gives), not mkstemp's 0600, so a cache on a
    shared file system serves the whole group (it was written 0600 before microtune.io)."""
    old = os.umask(0o022)
    try:
        key = StatisticsCache.key("a" * 64, "random-seed:0", "b" * 64, 50_000)
        cache = StatisticsCache(tmp_path)
        cache.get_or_compute(key, "random-conv", _stats)
        entry = cache.path_for(key, "random-conv")
        assert entry.stat().st_mode & 0o777 == 0o644
        assert entry.with_suffix(".lock").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_different_detector_or_dataset_is_a_different_entry(tmp_path):
    cache = StatisticsCache(tmp_path)
    for dataset, detector in (("a" * 64, "random-seed:0"), ("a" * 64, "random-seed:1"), ("c" * 64, "random-seed:0")):
        cache.get_or_compute(StatisticsCache.key(dataset, detector, "b" * 64, 10), "x", _stats)
    assert cache.misses == 3 and cache.hits == 0


def test_truncated_entry_is_recomputed(tmp_path):
    key = StatisticsCache.key("a" * 64, "t", "b" * 64, 5)
    cache = StatisticsCache(tmp_path)
    path = cache.path_for(key, "x")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PK\x03\x04 truncated")
    stats = cache.get_or_compute(key, "x", _stats)
    assert cache.misses == 1 and stats.count == 10
    assert StatisticsCache(tmp_path).get_or_compute(key, "x", lambda: pytest.fail("recomputed")).count == 10


def test_no_cache_dir_always_computes():
    cache = StatisticsCache(None)
    cache.get_or_compute({}, "x", _stats)
    cache.get_or_compute({}, "x", _stats)
    assert cache.misses == 2


def _worker(root, log):
    def compute():
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return _stats()
    StatisticsCache(root).get_or_compute(StatisticsCache.key("d" * 64, "t", "e" * 64, 5), "x", compute)


def test_concurrent_processes_compute_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(tmp_path, tmp_path / "log")) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len((tmp_path / "log").read_text().split()) == 1


def test_subset_seed_is_a_different_entry_and_none_is_shared(tmp_path):
    cache = StatisticsCache(tmp_path)
    for seed in (0, 1, None, None):
        cache.get_or_compute(StatisticsCache.key("a" * 64, "t", "b" * 64, 10, subset_seed=seed), "x", _stats)
    assert cache.misses == 3 and cache.hits == 1
    # entries of format 1 were keyed by the manifest's hash and without the seed: never read again
    assert StatisticsCache.key("a" * 64, "t", "b" * 64, 10)["format"] == 2
