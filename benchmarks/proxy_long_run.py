"""Trainer sanity you can look at (issue 14, part 4): one long proxy run, its FID curve, its sample
grids over time, and where the per-pixel speckle of early samples comes from.

What it does
1. ``microtune train`` (the real CLI, no Ray) on a 64×64 synthetic dual-phase set (1000 images,
   100 specimens) with ``--cfg tiny`` (the configuration of the side-by-side comparison with the
   official code), bg at r_t 0.6, FID/KID/PR on 1000 generated images with the offline
   ``random-seed:0`` detector every ``--every`` kimg, a G_ema snapshot at each evaluation. The run
   is stopped after ``--minutes`` (the last snapshot counts).
2. For every snapshot, without training: the learned noise strength of every synthesis layer
   (mean |value| of the last layer is the number compared with the official code: ours 0.081 vs
   0.038 at 2 kimg), and a speckle statistic: the mean absolute 3×3 Laplacian of 64 generated
   images (fixed latents) divided by that of 64 real images, with the noise inputs as in training
   (``random``), with one fixed noise image (``const``, the sample grids) and with the noise inputs
   off (``none``). If speckle comes from the noise inputs, ``random``/``const`` sit well above
   ``none``; if the ratio falls towards 1 with training, the generator is learning the texture.
3. A figure (FID against kimg; noise strength per layer against kimg; speckle ratios against kimg),
   a strip of sample grids over time, and JSON, under ``benchmarks/results/``.

Usage (repository root)::

    python benchmarks/proxy_long_run.py [--minutes 35] [--every 2]     # --quick: 4 minutes, every 0.5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from proxy_study import make_data  # the same proxy set (benchmarks/ is on sys.path when run as a file)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def train(data: Path, run: Path, args) -> dict:
    cmd = [sys.executable, "-m", "microtune", "train", "--data", str(data), "--out", str(run), "--cfg", args.cfg,
           "--kimg", "100000", "--augpipe", "bg", "--target", "0.6", "--threads", str(args.threads),
           "--metrics", "fid,kid,pr", "--metrics-num-gen", "1000", "--detector", "random-seed:0",
           "--eval-every-kimg", str(args.every), "--snapshot-every-kimg", str(args.every),
           "--tick-kimg", str(args.every), "--seed", "0", "--device", "cpu", "--cache-dir", str(run.parent / "cache")]
    loads, start = [], time.time()
    with open(run.parent / "train.out", "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        while proc.poll() is None and time.time() - start < args.minutes * 60:
            loads.append(os.getloadavg()[0])
            time.sleep(10)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
    wall = time.time() - start
    return {"wall_s": round(wall, 1), "load1_mean": round(float(np.mean(loads)), 2) if loads else None,
            "load1_max": round(float(np.max(loads)), 2) if loads else None, "command": " ".join(cmd[1:])}


def parse_log(log: Path) -> list[dict]:
    """The evaluation lines of the run's log: kimg and the metrics."""
    rows = []
    for line in log.read_text().splitlines():
        if " fid " not in f" {line} ":
            continue
        values = dict(re.findall(r"(\w+) (-?[\d.]+(?:e-?\d+)?)", line))
        rows.append({k: float(v) for k, v in values.items() if k in ("kimg", "fid", "kid", "precision", "recall",
                                                                      "ada_p", "sec_per_kimg")})
    return rows


def laplacian_energy(images) -> float:
    """Mean |3×3 Laplacian| of images in [-1, 1], shape (N, 1, H, W): per-pixel high-frequency content."""
    import torch

    k = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    return float(torch.nn.functional.conv2d(images.float(), k).abs().mean())


def inspect_snapshots(run: Path, data: Path, count: int = 64) -> list[dict]:
    import torch

    from microtune.gan.checkpoint import load_generator
    from microtune.gan.generate import latents_for_seeds

    real = np.load(data / "images.npy")[:count].astype(np.float32)
    real = torch.from_numpy(real / 127.5 - 1.0)[:, None]
    real_energy = laplacian_energy(real)
    rows = []
    for snap in sorted(run.glob("network-nimg*.pt")):
        nimg = int(re.search(r"nimg(\d+)", snap.name).group(1))
        G, _ = load_generator(snap)
        layers = [(name, m) for name, m in G.named_modules() if hasattr(m, "noise_strength")]
        strengths = {name: round(float(m.noise_strength.abs()), 5) for name, m in layers}
        z = latents_for_seeds(range(count), G.z_dim)
        ratios = {}
        with torch.no_grad():
            for mode in ("random", "const", "none"):
                torch.manual_seed(0)
                ratios[mode] = round(laplacian_energy(G(z, noise_mode=mode).clamp(-1, 1)) / real_energy, 4)
        rows.append({"kimg": nimg / 1000, "noise_strength": strengths,
                     "noise_strength_last": strengths[layers[-1][0]] if layers else None,
                     "speckle_ratio": ratios})
    return rows


def figures(evals: list[dict], snaps: list[dict], run: Path, stem: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    if evals:
        axes[0].plot([e["kimg"] for e in evals], [e["fid"] for e in evals], "o-")
    axes[0].set(xlabel="kimg", ylabel="FID (random-seed:0, 1k gen vs all 1000 real)", title="FID")
    if snaps:
        names = list(snaps[0]["noise_strength"])
        for name in names:
            axes[1].plot([s["kimg"] for s in snaps], [s["noise_strength"][name] for s in snaps], label=name)
        axes[1].legend(fontsize=6)
        for mode in ("random", "const", "none"):
            axes[2].plot([s["kimg"] for s in snaps], [s["speckle_ratio"][mode] for s in snaps], "o-", label=f"noise {mode}")
        axes[2].axhline(1.0, color="k", lw=0.8)
        axes[2].legend()
    axes[1].set(xlabel="kimg", ylabel="|noise strength|", title="learned noise strength per layer")
    axes[2].set(xlabel="kimg", ylabel="mean |Laplacian| gen / real", title="speckle (high-frequency energy)")
    fig.tight_layout()
    out = [f"{stem}.png"]
    fig.savefig(RESULTS / out[0], dpi=110)
    plt.close(fig)
    grids = sorted(run.glob("samples-nimg*.png"))
    if grids:
        picks = [grids[i] for i in sorted({round(j) for j in np.linspace(0, len(grids) - 1, min(6, len(grids)))})]
        images = [Image.open(p).convert("L") for p in picks]
        h = max(im.height for im in images)
        strip = Image.new("L", (sum(im.width for im in images) + 8 * (len(images) - 1), h), 255)
        x = 0
        for im in images:
            strip.paste(im, (x, 0))
            x += im.width + 8
        strip.save(RESULTS / f"{stem}_samples.png")
        out.append(f"{stem}_samples.png")
        out.append("grids: " + ", ".join(p.name for p in picks))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=35.0, help="training time budget (default 35)")
    p.add_argument("--every", type=float, default=2.0, help="evaluation + snapshot interval in kimg (default 2)")
    p.add_argument("--cfg", default="tiny", help="microtune train --cfg (default tiny)")
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="4 minutes, evaluations every 0.5 kimg")
    p.add_argument("--root", type=Path, default=ROOT / "runs" / "proxy" / "long_run")
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.every = 4.0, 0.5
    stem = "proxy_long_run" + ("_quick" if args.quick else "")
    root = args.root.resolve()
    run = root / stem
    if run.exists():
        import shutil

        shutil.rmtree(run)
    root.mkdir(parents=True, exist_ok=True)
    data = make_data(root.parent, args.resolution)
    result = {"benchmark": stem, "cfg": args.cfg, "resolution": args.resolution, "threads": args.threads,
              "minutes": args.minutes, "every_kimg": args.every, "cpu_count": os.cpu_count(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    result.update(train(data, run, args))
    result["evaluations"] = parse_log(run / "log.txt")
    result["snapshots"] = inspect_snapshots(run, data)
    result["figures"] = figures(result["evaluations"], result["snapshots"], run, stem)
    from microtune.io import atomic_write_json

    atomic_write_json(RESULTS / f"{stem}.json", result, indent=1)
    print(json.dumps({k: result[k] for k in ("wall_s", "load1_mean")}), f"wrote {RESULTS / (stem + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
