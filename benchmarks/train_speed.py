"""Training speed of the GAN engine: seconds per kimg and peak memory.

Cases: ``tiny`` at 64x64 and ``paper256`` at 256x256, StyleGAN2 and DCGAN, 1 channel, ADA ``bg``
with target 0.5 and p held at ``--p`` (default 0.3: the augmentation really runs), fp32, no metrics
(the issue's reference: the official StyleGAN2-ADA code took ~112 s/kimg for tiny 64x64 on the
project's 2-core CPU). Each case runs in its own subprocess so that peak RSS is per case.

Lazy regularisation makes steps unequal: R1 runs every 16th D step and path length every 4th G step.
The benchmark times one step of each kind (both regularisers, path length only, none) after a
warm-up, and reports the 16-step-cycle average ``(t_both + 3 t_pl + 12 t_plain) / 16`` per image.
On CPU, ``paper256`` is measured at ``--cpu-paper-batch`` (default 8) images per step instead of 64
(memory and time; s/kimg is linear in the batch on CPU) and the table says so.

Usage::

    python benchmarks/train_speed.py                  # all cases on CPU (and CUDA when available)
    python benchmarks/train_speed.py --cases tiny-stylegan2 --device cpu --json out.json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {  # name -> (cfg, model, resolution)
    "tiny-stylegan2": ("tiny", "stylegan2", 64),
    "tiny-dcgan": ("tiny", "dcgan", 64),
    "demo-stylegan2": ("demo", "stylegan2", 64),
    "paper256-stylegan2": ("paper256", "stylegan2", 256),
    "paper256-dcgan": ("paper256", "dcgan", 256),
}


def _time_step(state, images, options, batch_idx: int, sync) -> float:
    from microtune.gan.loop import training_step

    state.batch_idx = batch_idx
    sync()
    start = time.perf_counter()
    training_step(state, images, options)
    sync()
    return time.perf_counter() - start


def run_case(name: str, device_name: str, p: float, cpu_paper_batch: int, threads: int, precision: str = "fp32",
             repeat: int = 3, compile_: bool = False) -> dict:
    """Measure one case in this process; returns the result row."""
    import torch

    from microtune.gan.config import make_options
    from microtune.device import select_device
    from microtune.gan.loop import build_state

    if threads:
        torch.set_num_threads(threads)
    cfg, model, res = CASES[name]
    device = select_device(device_name)
    overrides = dict(augpipe="bg", ada_target=None, p=p, device=device.type) if model == "stylegan2" else dict(device=device.type)
    if device.type == "cpu" and cfg == "paper256":
        overrides["batch"] = cpu_paper_batch
    overrides["precision"] = precision
    overrides["compile"] = compile_
    options = make_options(cfg=cfg, model=model, resolution=res, **overrides)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (512, 1, res, res), dtype=torch.uint8, device=device)
    state = build_state(options, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    _time_step(state, images, options, 1, sync)  # warm-up (allocations, kernel selection)
    _time_step(state, images, options, 0, sync)
    repeats = 1 if cfg == "paper256" and device.type == "cpu" else repeat
    t_both = t_pl = t_plain = float("inf")  # best of `repeats`: the machine may be shared
    for _ in range(repeats):
        t_both = min(t_both, _time_step(state, images, options, 0, sync))   # R1 + path length
        t_pl = min(t_pl, _time_step(state, images, options, 4, sync))       # path length only
        t_plain = min(t_plain, *(_time_step(state, images, options, 1, sync) for _ in range(2)))
    if model == "dcgan":
        t_both = t_pl = t_plain  # no lazy regularisers
    per_step = (t_both + 3 * t_pl + 12 * t_plain) / 16
    row = {
        "case": name, "device": str(device), "batch": options.batch, "resolution": res, "precision": precision, "compile": compile_,
        "sec_per_kimg": per_step * 1000 / options.batch, "sec_plain_step": t_plain,
        "sec_r1_pl_step": t_both, "sec_pl_step": t_pl, "threads": torch.get_num_threads(),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params_G": sum(q.numel() for q in state.G.parameters()), "params_D": sum(q.numel() for q in state.D.parameters()),
    }
    if device.type == "cuda":
        row["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
        row["gpu"] = torch.cuda.get_device_name()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of " + ", ".join(CASES))
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all", help="all = cpu, plus cuda if present")
    parser.add_argument("--p", type=float, default=0.3, help="fixed ADA probability during the benchmark")
    parser.add_argument("--cpu-paper-batch", type=int, default=8, help="batch for paper256 on CPU")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="autocast of the main passes")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many timings per step kind (paper256 on CPU: 1)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the main passes (warm-up compiles)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: "case:device"
    args = parser.parse_args(argv)
    if args.one:
        name, device = args.one.split(":")
        print(json.dumps(run_case(name, device, args.p, args.cpu_paper_batch, args.threads, args.precision, args.repeat, args.compile)))
        return 0
    import torch

    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]
    rows = []
    print("| case | device | precision | batch | s/kimg | peak RSS MiB | peak CUDA MiB |\n|---|---|---|---|---|---|---|")
    for device in devices:
        for name in args.cases.split(","):
            cmd = [sys.executable, __file__, "--one", f"{name}:{device}", "--p", str(args.p),
                   "--cpu-paper-batch", str(args.cpu_paper_batch), "--threads", str(args.threads),
                   "--precision", args.precision, "--repeat", str(args.repeat)] + (["--compile"] if args.compile else [])
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
            if out.returncode != 0:
                print(f"{name} on {device} failed:\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            r = rows[-1]
            print(f"| {r['case']}{' (compiled)' if r['compile'] else ''} | {r['device']} | {r['precision']} | {r['batch']} | {r['sec_per_kimg']:.1f} | "
                  f"{r['peak_rss_mib']:.0f} | {r.get('peak_cuda_mib', float('nan')):.0f} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
