"""Speed of the metric detectors and of an FID evaluation end to end, cached and uncached.

Usage::

    python benchmarks/metrics_speed.py                       # CPU (and CUDA when available)
    python benchmarks/metrics_speed.py --device cuda --num-real 3000 --num-gen 10000   # full fid10k_full
    python benchmarks/metrics_speed.py --json results.json

Detectors are built with untrained weights: their speed does not depend on the weight values, and
no weight file is needed.  Inputs are grayscale uint8 images at ``--resolution`` (the study: 512),
repeated to 3 channels and resized inside each detector, as in real use.

The end-to-end part times ``Evaluator(fid{num_gen}_full)`` on a synthetic real set of
``--num-real`` images with a sampler that returns stored uint8 images (so generator time is not
included): "uncached" includes running the detector on every real image and writing the cache,
"cached" reads the real statistics from disk.  When ``--num-gen`` is below 10 000 (the CPU
default, since Inception runs at ~10 img/s there), the fid10k_full time is EXTRAPOLATED as the
measured fixed cost + 10 000 (cached) or 13 000 (uncached, 3000 reals) images at the measured
Inception throughput, and printed as such.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from microtune.metrics.cache import StatisticsCache, parse_protocol
from microtune.metrics.detectors import build_inception, build_random, build_vgg16_fc2
from microtune.metrics.evaluator import Evaluator

BUILDERS = {
    "inception-v3-tf": lambda: build_inception(None, "0" * 64),
    "vgg16-fc2": lambda: build_vgg16_fc2(None, "0" * 64),
    "random-conv": lambda: build_random(0),
}


def images_per_second(detector, images: torch.Tensor, batch_size: int, repeats: int) -> float:
    """Detector throughput on uint8 ``images`` (one warm-up batch excluded)."""
    detector.features(images[:batch_size])
    sync(detector.device)
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(0, images.shape[0], batch_size):
            detector.features(images[i : i + batch_size])
    sync(detector.device)
    return repeats * images.shape[0] / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def end_to_end(device: torch.device, num_real: int, num_gen: int, resolution: int, batch_size: int,
               inception_ips: float) -> dict:
    """Seconds of an fid{num_gen}_full evaluation, uncached then cached.

    The fid10k_full extrapolation is fixed cost (measured cached time minus the detector time of
    ``num_gen`` images at ``inception_ips``: Fréchet distance, cache I/O) + 10 000 (cached) or
    13 000 (uncached, 3000 reals as in the study) images at ``inception_ips``.
    """
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, (num_real, resolution, resolution), dtype=np.uint8)
    gen = torch.from_numpy(rng.integers(0, 256, (num_gen, 1, resolution, resolution), dtype=np.uint8))
    detector = BUILDERS["inception-v3-tf"]().to(device)
    protocol = parse_protocol(f"fid{num_gen}_full")
    out = {"num_real": num_real, "num_gen": num_gen, "protocol": protocol.name}
    with tempfile.TemporaryDirectory() as cache_dir:
        for label in ("uncached", "cached"):
            ev = Evaluator(images=real, content_hash="b" * 64, protocols=[protocol], detectors={"fid": detector},
                           cache=StatisticsCache(cache_dir), batch_size=batch_size, feature_cap=50_000,
                           kid_subsets=100, kid_subset_size=1000, seed=0)
            start = time.perf_counter()
            ev(lambda n, off: gen[off : off + n])
            sync(device)
            out[f"{label}_s"] = time.perf_counter() - start
    fixed = max(out["cached_s"] - num_gen / inception_ips, 0.0)
    out["fixed_s"] = fixed
    out["extrapolated"] = num_gen < 10_000
    out["fid10k_full_cached_s"] = out["cached_s"] if num_gen == 10_000 else fixed + 10_000 / inception_ips
    out["fid10k_full_uncached_s(real=3000)"] = (out["uncached_s"] if (num_gen, num_real) == (10_000, 3000)
                                                else fixed + 13_000 / inception_ips)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="all", help="cpu, cuda or all (cpu + cuda when available)")
    p.add_argument("--resolution", type=int, default=512, help="input image side (default: 512)")
    p.add_argument("--images", type=int, default=0, help="images per throughput run (default: 16 CPU, 512 CUDA)")
    p.add_argument("--batch-size", type=int, default=0, help="detector batch (default: 8 CPU, 64 CUDA)")
    p.add_argument("--num-real", type=int, default=0, help="real images end to end (default: 32 CPU, 3000 CUDA)")
    p.add_argument("--num-gen", type=int, default=0, help="generated images end to end (default: 32 CPU, 10000 CUDA)")
    p.add_argument("--detectors", default=",".join(BUILDERS), help="comma-separated subset of " + ", ".join(BUILDERS))
    p.add_argument("--skip-end-to-end", action="store_true")
    p.add_argument("--json", help="write results here")
    args = p.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d != "cuda" or torch.cuda.is_available()]
    results = {"torch": torch.__version__, "threads": torch.get_num_threads(), "resolution": args.resolution,
               "runs": []}
    for name in devices:
        device = torch.device(name)
        gpu = device.type == "cuda"
        bs = args.batch_size or (64 if gpu else 8)
        n_img = args.images or (512 if gpu else 16)
        label = torch.cuda.get_device_name(device) if gpu else f"cpu x{torch.get_num_threads()} threads"
        images = torch.randint(0, 256, (n_img, 1, args.resolution, args.resolution), dtype=torch.uint8)
        speeds = {}
        for det_name in args.detectors.split(","):
            det = BUILDERS[det_name]().to(device)
            ips = speeds[det_name] = images_per_second(det, images.to(device), bs, repeats=1)
            results["runs"].append({"device": label, "detector": det_name, "batch": bs, "images_per_s": round(ips, 2)})
            print(f"{label:>28}  {det_name:>16}  batch {bs:>3}: {ips:9.1f} img/s", flush=True)
        if not args.skip_end_to_end:
            inception_ips = speeds.get("inception-v3-tf") or images_per_second(
                BUILDERS["inception-v3-tf"]().to(device), images.to(device), bs, repeats=1)
            e2e = end_to_end(device, args.num_real or (3000 if gpu else 32), args.num_gen or (10_000 if gpu else 32),
                             args.resolution, bs, inception_ips)
            e2e["device"] = label
            results["runs"].append(e2e)
            tag = "EXTRAPOLATED from " + e2e["protocol"] if e2e["extrapolated"] else "measured"
            print(f"{label:>28}  {e2e['protocol']} end to end: uncached {e2e['uncached_s']:.1f}s "
                  f"(real={e2e['num_real']}), cached {e2e['cached_s']:.1f}s; fid10k_full ({tag}): cached "
                  f"{e2e['fid10k_full_cached_s']:.0f}s, uncached with 3000 reals "
                  f"{e2e['fid10k_full_uncached_s(real=3000)']:.0f}s", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
