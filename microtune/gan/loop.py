"""The GAN training loop, in kimg (thousands of real images shown to D), for StyleGAN2-ADA and DCGAN.

Public API
----------
``train(options, *, dataset, run_dir, report=None, should_stop=None, evaluate=None,
resume_from=None, log=None) -> TrainResult``

* ``options``: :class:`microtune.gan.config.TrainOptions` (see ``config.make_options``);
  ``options.resolution`` must equal the dataset's (0 = take it from the dataset).
* ``dataset``: a ``microtune.data.dataset.Dataset`` (uses ``.images`` and ``.subset``) or a uint8
  array (N, H, W) / (N, C, H, W).
* ``run_dir``: written here: ``options.json`` (resolved options), ``log.txt``,
  ``samples-nimgXXXXXXXXX.png`` grids and ``network-nimgXXXXXXXXX.pt`` (G_ema) per snapshot,
  ``checkpoint-latest.pt`` (the whole state) at every snapshot, stop and the end. All atomic.
* ``report(nimg, metrics)``: called at every tick (and every evaluation) with ``loss_G``, ``loss_D``,
  ``ada_p``, ``ada_rt`` (once defined), ``sec_per_kimg`` (+ ``loss_r1``/``loss_pl`` when measured,
  + the evaluator's keys). At a snapshot (every ``snapshot_every_kimg`` and at the end),
  ``checkpoint-latest.pt`` is written *before* the report, so a sweep can attach ``run_dir`` as the
  checkpoint of that report. ``should_stop()`` is polled after every report; True saves a checkpoint
  and returns ``TrainResult(stopped=True)``.
* ``evaluate(G_ema, nimg) -> dict``: every ``eval_every_kimg`` and at the end; its RNG use is
  isolated so that it cannot change training.
* ``resume_from``: a full checkpoint or a run directory; training continues exactly (networks, EMA,
  optimisers, ADA p and its accumulators, path-length mean, images shown, tick, RNG). Architecture
  and optimiser options come from the checkpoint; schedule options (kimg, intervals, device) from
  ``options``.

Non-finite losses or weights raise :class:`NonFiniteError` naming the step (checked at ticks with
one host sync; the step index is recorded on the device, so no sync happens inside a step).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from microtune.data.dataset import subset_problem
from microtune.device import select_device
from microtune.errors import MicrotuneError
from microtune.gan import checkpoint as ckpt
from microtune.gan.ada import AdaController
from microtune.gan.augment import AugmentPipe
from microtune.gan.config import TrainOptions, validate_options
from microtune.gan.generate import save_sample_grid
from microtune.gan.loss import GanLoss
from microtune.io import atomic_output, atomic_write_json
from microtune.tracking import schema

SCHEDULE_FIELDS = (
    "kimg", "tick_kimg", "eval_every_kimg", "snapshot_every_kimg", "device", "compile", "num_threads", "precision",
)


class NonFiniteError(MicrotuneError):
    """A loss or weight became NaN/inf; the message names the step."""


@dataclass
class TrainResult:
    """Outcome of :func:`train`. ``nimg``: images shown to D; ``stopped``: should_stop() ended it."""

    nimg: int
    run_dir: Path
    checkpoint: Path
    metrics: dict[str, float] = field(default_factory=dict)
    stopped: bool = False


@dataclass
class TrainState:
    """Everything that changes while training (all of it goes into the checkpoint)."""

    G: torch.nn.Module
    D: torch.nn.Module
    G_ema: torch.nn.Module
    opt_G: torch.optim.Optimizer
    opt_D: torch.optim.Optimizer
    augment: AugmentPipe
    ada: AdaController
    loss: GanLoss
    nimg: int = 0
    batch_idx: int = 0
    tick: int = 0
    tick_start_nimg: int = 0
    bad_step: torch.Tensor | None = None      # first step with a non-finite loss (-1: none), on device
    sums: dict = field(default_factory=dict)  # per-tick sums of loss tensors (on device)
    counts: dict = field(default_factory=dict)


def prepare_images(dataset, options: TrainOptions, device: torch.device) -> torch.Tensor:
    """The training images as a uint8 (N, C, H, W) tensor resident on ``device`` (subset applied)."""
    array = dataset.images if hasattr(dataset, "images") else dataset
    count = len(array)
    if options.subset is not None:
        if problem := subset_problem(options.subset, count):
            raise MicrotuneError(f"--subset: {problem}.")
        index = dataset.subset(options.subset, options.seed) if hasattr(dataset, "subset") else np.arange(options.subset)
        array = array[np.asarray(index)]
    images = torch.from_numpy(np.array(array, copy=True))  # writable, contiguous, in memory
    if images.ndim == 3:
        images = images[:, None]
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
        raise MicrotuneError(f"the dataset must hold uint8 images (N, H, W) or (N, C, H, W), got {tuple(images.shape)} {images.dtype}.")
    if images.shape[1:] != (options.img_channels, options.resolution, options.resolution):
        raise MicrotuneError(
            f"the dataset's images are {tuple(images.shape[1:])} but the options expect "
            f"{(options.img_channels, options.resolution, options.resolution)} (channels, height, width)."
        )
    return images.to(device)


def build_state(options: TrainOptions, device: torch.device) -> TrainState:
    """Fresh networks, optimisers (Adam, [SG2] App. B), augmentation pipe, ADA controller, loss."""
    G, D = (net.to(device) for net in ckpt.build_networks(options))
    if device.type == "cuda":
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    opt_G = torch.optim.Adam(G.parameters(), lr=options.lr_g, betas=(options.beta1, options.beta2), eps=1e-8)
    opt_D = torch.optim.Adam(D.parameters(), lr=options.lr_d, betas=(options.beta1, options.beta2), eps=1e-8)
    augment = AugmentPipe(options.augpipe, num_channels=options.img_channels, lumaflip=options.lumaflip)
    ada = AdaController(
        target=options.ada_target if augment.enabled else None, p=options.p if augment.enabled else 0.0,
        ada_kimg=options.ada_kimg, interval=options.ada_interval, device=device,
    )
    loss = GanLoss(
        G, D, augment, r1_gamma=options.gamma, r1_interval=options.r1_interval, pl_weight=options.pl_weight,
        pl_interval=options.pl_interval, style_mixing=options.style_mixing, bf16=options.precision == "bf16",
        device=device,
    )
    if options.compile:
        loss.compile_main_passes()
    state = TrainState(G, D, G_ema, opt_G, opt_D, augment, ada, loss)
    state.bad_step = torch.full([], -1, dtype=torch.int64, device=device)
    return state


def training_step(state: TrainState, images: torch.Tensor, options: TrainOptions) -> None:
    """One minibatch: G step (+ lazy path length), D step (+ lazy R1), ADA, EMA. No host syncs."""
    device, n = images.device, options.batch
    idx = torch.randint(images.shape[0], [n], device=device)
    real = images[idx].to(torch.float32) / 127.5 - 1
    p = state.ada.probability()
    state.G.train(), state.D.train()

    state.opt_G.zero_grad(set_to_none=True)
    z = torch.randn(n, options.z_dim, device=device)
    loss_g, stats_g = state.loss.generator_loss(z, p, regularize=state.batch_idx % options.pl_interval == 0)
    loss_g.backward()
    state.opt_G.step()

    state.opt_D.zero_grad(set_to_none=True)
    z = torch.randn(n, options.z_dim, device=device)
    loss_d, stats_d, real_logits = state.loss.discriminator_loss(
        real, z, p, regularize=state.batch_idx % options.r1_interval == 0
    )
    loss_d.backward()
    state.opt_D.step()

    state.ada.observe(real_logits)
    update_ema(state, options)
    finite = torch.isfinite(loss_g.detach()) & torch.isfinite(loss_d.detach())
    state.bad_step = torch.where((state.bad_step < 0) & ~finite, state.batch_idx, state.bad_step)
    for key, value in {**stats_g, **stats_d}.items():
        state.sums[key] = state.sums.get(key, 0.0) + value
        state.counts[key] = state.counts.get(key, 0) + 1
    state.nimg += n
    state.batch_idx += 1


@torch.no_grad()
def update_ema(state: TrainState, options: TrainOptions) -> None:
    """G_ema <- beta G_ema + (1 - beta) G, beta = 0.5^(batch / half-life); the half-life in images is
    ``ema_kimg * 1000``, at most ``ema_rampup * nimg`` during ramp-up (ADA App. D)."""
    if options.ema_kimg <= 0:
        beta = 0.0
    else:
        ema_nimg = options.ema_kimg * 1000
        if options.ema_rampup is not None:
            ema_nimg = min(ema_nimg, (state.nimg + options.batch) * options.ema_rampup)
        beta = 0.5 ** (options.batch / max(ema_nimg, 1e-8))
    for p_ema, p in zip(state.G_ema.parameters(), state.G.parameters()):
        p_ema.copy_(p.detach().lerp(p_ema, beta))
    for b_ema, b in zip(state.G_ema.buffers(), state.G.buffers()):
        b_ema.copy_(b)


def check_finite(state: TrainState, options: TrainOptions) -> None:
    """Raise NonFiniteError naming the first bad step, or the networks with non-finite weights."""
    bad = int(state.bad_step)
    if bad >= 0:
        raise NonFiniteError(
            f"training diverged: a loss became non-finite at step {bad} (kimg {(bad + 1) * options.batch / 1000:.3f}); "
            "the last good state is the previous checkpoint-latest.pt."
        )
    for name, net in (("G", state.G), ("D", state.D)):
        if not all(torch.isfinite(p).all() for p in net.parameters()):
            raise NonFiniteError(f"training diverged: {name} has non-finite weights at step {state.batch_idx - 1}.")


def tick_metrics(state: TrainState, seconds: float) -> dict[str, float]:
    """Means of the tick's losses, p, r_t and speed; resets the tick accumulators (one host sync)."""
    metrics = {key: float(state.sums[key] / state.counts[key]) for key in state.sums}
    done = state.nimg - state.tick_start_nimg
    metrics[schema.ADA_P] = float(state.ada.p)
    rt = float(state.ada.rt)
    if rt == rt:  # NaN until the first ADA interval has completed
        metrics[schema.ADA_RT] = rt
    metrics[schema.SEC_PER_KIMG] = seconds / max(done / 1000, 1e-9)
    state.sums, state.counts = {}, {}
    return metrics


def checkpoint_dict(state: TrainState, options: TrainOptions) -> dict:
    """The whole training state as a weights_only-loadable dict."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "format": ckpt.FORMAT, "kind": "full", "options": options.to_dict(),
        "G": state.G.state_dict(), "D": state.D.state_dict(), "G_ema": state.G_ema.state_dict(),
        "opt_G": state.opt_G.state_dict(), "opt_D": state.opt_D.state_dict(),
        "ada": state.ada.state_dict(), "loss": state.loss.state_dict(),
        "progress": {"nimg": state.nimg, "batch_idx": state.batch_idx, "tick": state.tick, "tick_start_nimg": state.tick_start_nimg},
        "rng": rng,
    }


def restore_state(state: TrainState, saved: dict) -> None:
    """Load :func:`checkpoint_dict` output into ``state`` (networks, optimisers, ADA, RNG, progress)."""
    if saved.get("kind") != "full":
        raise MicrotuneError("--resume needs a full checkpoint (checkpoint-latest.pt), not a network snapshot.")
    for name in ("G", "D", "G_ema", "opt_G", "opt_D", "ada", "loss"):
        getattr(state, name).load_state_dict(saved[name])
    for key, value in saved["progress"].items():
        setattr(state, key, int(value))
    torch.set_rng_state(saved["rng"]["torch"])
    if "cuda" in saved["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])


def save_snapshot(state: TrainState, options: TrainOptions, run_dir: Path, *, network: bool) -> Path:
    """checkpoint-latest.pt (+ G_ema network file and sample grid when ``network``); RNG untouched."""
    path = run_dir / "checkpoint-latest.pt"
    with atomic_output(path) as tmp:
        torch.save(checkpoint_dict(state, options), tmp)
    if network:
        tag = f"nimg{state.nimg:09d}"
        light = {"format": ckpt.FORMAT, "kind": "network", "options": options.to_dict(), "G_ema": state.G_ema.state_dict(), "nimg": state.nimg}
        with atomic_output(run_dir / f"network-{tag}.pt") as tmp:
            torch.save(light, tmp)
        with torch.random.fork_rng(devices=[]):
            save_sample_grid(state.G_ema, run_dir / f"samples-{tag}.png", device=state.ada.device)
    return path


def merge_resume_options(saved: dict, requested: TrainOptions, log: Callable[[str], None]) -> TrainOptions:
    """The checkpoint's options with the schedule fields of ``requested`` (see module docstring)."""
    base = TrainOptions.from_dict(saved["options"])
    changes = {name: getattr(requested, name) for name in SCHEDULE_FIELDS}
    ignored = [f.name for f in dataclasses.fields(TrainOptions) if f.name not in SCHEDULE_FIELDS + ("resolution", "img_channels") and getattr(base, f.name) != getattr(requested, f.name)]
    if ignored:
        log(f"resume: keeping the checkpoint's {', '.join(ignored)}")
    merged = dataclasses.replace(base, **changes)
    validate_options(merged)
    return merged


def _crossed(before: int, after: int, every_kimg: float) -> bool:
    every = max(int(round(every_kimg * 1000)), 1)
    return after // every > before // every


def _millions(net: torch.nn.Module) -> str:
    return f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


class _Pace:
    """Says once, early, how fast training goes and when the first tick report and the end will come,
    so that a slow device (a CPU: about two minutes to the first tick of ``tiny``) is not silent.
    The speed is measured over the steps after the first (which carries one-off start-up costs)."""

    MEASURE_SECONDS = 5.0   # measure at least this long, ...
    MEASURE_STEPS = 3       # ... and over at least this many steps

    def __init__(self, nimg: int, total: int, options: TrainOptions) -> None:
        self.start_nimg, self.total = nimg, total
        every = max(int(round(options.tick_kimg * 1000)), 1)
        self.first_tick = min((nimg // every + 1) * every, total)
        self.t0: float | None = None
        self.n0 = nimg
        self.steps = 0
        self.done = False

    def step(self, nimg: int, say: Callable[[str], None]) -> None:
        if self.done:
            return
        now = time.perf_counter()
        if self.t0 is None:  # after the first step: start measuring
            self.t0, self.n0 = now, nimg
            return
        self.steps += 1
        elapsed = now - self.t0
        if self.steps < self.MEASURE_STEPS or elapsed < self.MEASURE_SECONDS:
            return
        self.done = True
        per_image = elapsed / max(nimg - self.n0, 1)
        to_tick = (self.first_tick - nimg) * per_image
        if to_tick <= 2 * self.MEASURE_SECONDS:
            return  # the tick report comes soon enough on its own
        say(f"speed {per_image * 1000:.3g} s/kimg over the first {nimg - self.start_nimg} images: "
            f"first report at kimg {self.first_tick / 1000:.3f} in about {_duration(to_tick)}, "
            f"the end (kimg {self.total / 1000:.3f}) in about {_duration((self.total - nimg) * per_image)}")


class _RunLog:
    def __init__(self, path: Path, echo: Callable[[str], None] | None) -> None:
        self.path, self.echo = path, echo

    def __call__(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
        if self.echo is not None:
            self.echo(line)


def _setup(options, dataset, run_dir, resume_from, log):
    """Device, threads, images, state (fresh or restored) and the resolved options."""
    saved = ckpt.load_checkpoint(ckpt.resolve_checkpoint(resume_from)) if resume_from is not None else None
    if saved is not None:
        options = merge_resume_options(saved, options, log)
    if options.resolution == 0:
        array = dataset.images if hasattr(dataset, "images") else dataset
        shape = np.shape(array)
        options = dataclasses.replace(options, resolution=int(shape[-1]), img_channels=1 if len(shape) == 3 else int(shape[1]))
    validate_options(options)
    device = select_device(options.device)
    if options.num_threads > 0:
        torch.set_num_threads(options.num_threads)
    images = prepare_images(dataset, options, device)
    torch.manual_seed(options.seed)
    state = build_state(options, device)
    if saved is not None:
        restore_state(state, saved)
    atomic_write_json(run_dir / "options.json", options.to_dict(), indent=2, sort_keys=True)
    return options, images, state


def train(
    options: TrainOptions,
    *,
    dataset,
    run_dir,
    report: Callable[[int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    evaluate: Callable[[torch.nn.Module, int], dict] | None = None,
    resume_from=None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train until ``options.kimg`` thousand images have been shown to D (see module docstring)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    say = _RunLog(run_dir / "log.txt", log)
    setup_time = time.perf_counter()
    options, images, state = _setup(options, dataset, run_dir, resume_from, say)
    total = int(round(options.kimg * 1000))
    say(f"training {options.model} cfg={options.cfg} {options.resolution}x{options.resolution}x{options.img_channels} "
        f"on {images.shape[0]} images, device {images.device}, from kimg {state.nimg / 1000:.3f} to {total / 1000:.3f} "
        f"(G {_millions(state.G)}M, D {_millions(state.D)}M parameters; set up in "
        f"{time.perf_counter() - setup_time:.1f} s)")
    metrics: dict[str, float] = {}
    tick_time = time.perf_counter()
    pace = _Pace(state.nimg, total, options)
    while state.nimg < total:
        before = state.nimg
        training_step(state, images, options)
        pace.step(state.nimg, say)
        done = state.nimg >= total
        eval_due = evaluate is not None and (done or _crossed(before, state.nimg, options.eval_every_kimg))
        snap_due = done or _crossed(before, state.nimg, options.snapshot_every_kimg)
        if not (done or eval_due or snap_due or _crossed(before, state.nimg, options.tick_kimg)):
            continue
        check_finite(state, options)
        metrics = tick_metrics(state, time.perf_counter() - tick_time)
        if eval_due:
            with torch.random.fork_rng(devices=[images.device] if images.device.type == "cuda" else []):
                metrics.update({k: float(v) for k, v in evaluate(state.G_ema, state.nimg).items()})
        say(f"tick {state.tick} kimg {state.nimg / 1000:.3f} " + " ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))
        state.tick += 1
        state.tick_start_nimg = state.nimg
        if snap_due:  # before the report, so a sweep can attach the checkpoint to it
            save_snapshot(state, options, run_dir, network=True)
        if report is not None:
            report(state.nimg, dict(metrics))
        stop = should_stop is not None and should_stop()
        if stop and not snap_due:
            save_snapshot(state, options, run_dir, network=False)
        tick_time = time.perf_counter()
        if stop:
            say(f"stopped on request at kimg {state.nimg / 1000:.3f}")
            return TrainResult(state.nimg, run_dir, run_dir / "checkpoint-latest.pt", metrics, stopped=True)
    if not (run_dir / "checkpoint-latest.pt").exists():
        save_snapshot(state, options, run_dir, network=True)
    say(f"done at kimg {state.nimg / 1000:.3f}")
    return TrainResult(state.nimg, run_dir, run_dir / "checkpoint-latest.pt", metrics)
