"""Throughput of ``microtune data prepare`` on 1280×960 micrographs, at 1 and 2 workers.

Writes ``count`` synthetic 1280×960 8-bit PNG micrographs (textured, with a 64-row SEM databar),
then times the whole ``prepare_dataset`` call (read, databar detection, 3×3 median, histogram
matching, 512×512 centre crop, hashing, writing) for each configuration, best of ``repeat`` runs.

Usage: python benchmarks/prepare_speed.py [--count 48] [--repeat 2] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from microtune.data.commands import add_databar
from microtune.data.prepare import PrepareOptions, prepare_dataset


def make_sources(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:896, 0:1280]
    for k in range(count):
        base = 110 + 45 * np.sin(x / (6 + k % 5) + k) * np.cos(y / 13.0) + rng.normal(0, 14, (896, 1280))
        image = add_databar(np.clip(base, 0, 255).astype(np.uint8), 64)  # 1280×960 in all
        Image.fromarray(image).save(folder / f"m{k:04d}.png")


def time_prepare(src: Path, work: Path, options: PrepareOptions, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        out = work / "ds"
        start = time.perf_counter()
        prepare_dataset(src, out, options, show_progress=False)
        best = min(best, time.perf_counter() - start)
        shutil.rmtree(out)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        make_sources(src, args.count)
        for reference in (None, "auto"):
            for workers in (1, 2):
                options = PrepareOptions(resolution=512, median=3, reference=reference, crop="center",
                                         workers=workers)
                seconds = time_prepare(src, Path(tmp), options, args.repeat)
                rows.append({"workers": workers, "reference": reference or "none", "images": args.count,
                             "seconds": round(seconds, 3), "images_per_second": round(args.count / seconds, 2)})
                print(f"workers={workers} reference={reference or 'none':4s} "
                      f"{args.count} images in {seconds:.2f} s = {args.count / seconds:.1f} images/s")
    result = {"benchmark": "prepare_speed", "input": "1280x960 PNG, 8-bit, 64-row databar",
              "pipeline": "databar auto, median 3, centre crop 512", "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "rows": rows}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
