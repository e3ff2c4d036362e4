"""``microtune train``, ``microtune generate`` and ``microtune interpolate``.

``register(subparsers)`` adds the three commands; every handler imports torch lazily (so that
``microtune --help`` stays fast), validates before any work starts, raises MicrotuneError with one
sentence on bad input, and returns an exit code. A bad ``train`` option value (``--gamma -1``,
``--batch 6`` with a minibatch-stddev group of 4) is a usage error: one sentence naming the flag,
exit status 2, as when argparse refuses a value.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from microtune.errors import MicrotuneError, check_output, writing
from microtune.gan.config import AUGPIPE_NAMES, CFG_NAMES, MODEL_NAMES

TRAIN_HELP = """\
Train one StyleGAN2-ADA (or DCGAN) run on a prepared dataset, without Ray. Writes into RUN the
resolved options (options.json), a log, sample grids and G_ema snapshots every
--snapshot-every-kimg, and the full training state (checkpoint-latest.pt) from which --resume
continues exactly (networks, optimisers, ADA p, images shown, RNG). Lengths are in kimg: thousands
of real images shown to the discriminator."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``generate`` and ``interpolate`` to a ``microtune`` subparsers object."""
    _add_train(subparsers)
    _add_generate(subparsers)
    _add_interpolate(subparsers)


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train one GAN run (StyleGAN2-ADA or DCGAN)", description=TRAIN_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="DS", help="dataset directory (from `microtune data prepare|synth`)")
    p.add_argument("--out", metavar="RUN", required=True, help="run directory to write (created if missing)")
    p.add_argument("--cfg", choices=CFG_NAMES, default="auto",
                   help="preset: paper256/paper512/stylegan2 (ADA paper), auto (ADA formulas from the "
                        "resolution), tiny (CPU-sized), demo (smaller still); default auto")
    p.add_argument("--model", choices=MODEL_NAMES, default="stylegan2", help="network family (default stylegan2)")
    p.add_argument("--augpipe", choices=AUGPIPE_NAMES, help="ADA augmentation preset (default bg; none for dcgan)")
    ada = p.add_mutually_exclusive_group()  # --p fixes p, --target adapts it
    ada.add_argument("--target", type=float, metavar="RT", help="ADA target r_t for adaptive p (default 0.6)")
    ada.add_argument("--p", type=float, metavar="P", help="fixed augmentation probability (disables adaptive p)")
    p.add_argument("--lumaflip", choices=("on", "off"), help="ADA luma flip (default off on 1-channel data)")
    p.add_argument("--kimg", type=float, help="training length in kimg (default from --cfg: 25000)")
    p.add_argument("--tick-kimg", type=float, help="progress report interval in kimg")
    p.add_argument("--eval-every-kimg", type=float, help="metric evaluation interval in kimg")
    p.add_argument("--snapshot-every-kimg", type=float, help="sample grid + checkpoint interval in kimg")
    p.add_argument("--batch", type=int, help="minibatch size (overrides --cfg)")
    p.add_argument("--gamma", type=float, help="R1 weight (overrides --cfg)")
    p.add_argument("--subset", type=int, metavar="N", help="train on a nested subset of N images (by specimen)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", nargs="?", const="", metavar="CKPT",
                   help="continue from CKPT, or from RUN/checkpoint-latest.pt when no path is given")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (default auto)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="torch.compile the main (unregularised) passes")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16 autocasts the unregularised passes (regularisers stay fp32); default fp32")
    p.add_argument("--metrics", default="", help="comma-separated metrics per evaluation: fid,kid,pr (default none)")
    p.add_argument("--metrics-num-gen", type=int, help="generated images per metric (default 50000)")
    p.add_argument("--detector", default="standard", help="feature network: standard, random-seed:N or texture-vgg19-seed:N (both offline)")
    p.add_argument("--detector-weights", action="append", default=[], metavar="PATH", help="detector weight file(s)")
    p.add_argument("--cache-dir", metavar="DIR", help="cache for detector weights and real statistics")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options as JSON and exit")
    _add_generated_flags(p.add_argument_group(
        "further training options", "every other option of the run (default: the value --cfg and --model give; "
        "`--dry-run` prints them all)"))
    p.set_defaults(handler=run_train)


def _add_generated_flags(group) -> None:
    """One flag per training option without a hand-written one (``--lr-g``, ``--ada-kimg``, ...),
    generated from the field: help text and range rule; the value is checked as it is parsed."""
    from microtune.gan.config import GENERATED_FLAGS, option_help, option_kind

    for name, flag in GENERATED_FLAGS.items():
        kind = option_kind(name)
        if kind is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                               help=option_help(name))
            continue  # SUPPRESS: an option not given is absent from args, so `--ema-rampup none` is a value
        group.add_argument(flag, dest=name, type=_checked(name, kind), default=argparse.SUPPRESS,
                           metavar="N" if kind is int else "X", help=option_help(name))


def _checked(name: str, kind: type):
    """An argparse type for option ``name``: its rule checked as the flag is parsed."""
    from microtune.gan.config import OptionsError, check_value
    from microtune.typed import flag_type

    try:
        check_value(name, None)
        optional = True
    except OptionsError:
        optional = False
    return flag_type(kind, lambda value: check_value(name, value), optional=optional)


def _add_generate(sub) -> None:
    p = sub.add_parser("generate", help="write images from a trained generator",
                       description="Write one PNG per seed (seedNNNN.png) from a checkpoint's EMA generator, "
                                   "optionally with a grid of all of them.")
    p.add_argument("--ckpt", required=True, metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument("--seeds", default="0-15", help="seeds like 0-15 or 1,5,9 (default 0-15)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--trunc", type=float, default=1.0, metavar="PSI", help="truncation psi (default 1: none)")
    p.add_argument("--grid", action="store_true", help="also write grid.png")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (default auto)")
    p.set_defaults(handler=run_generate)


def _add_interpolate(sub) -> None:
    p = sub.add_parser("interpolate", help="slerp video between two seeds",
                       description="Spherical linear interpolation between the latents of two seeds (as in the "
                                   "SEM study's Fig. 5): writes FILE.mp4, every frame as PNG in FILE_frames/, and "
                                   "FILE_figure.png with the start, four intermediate frames and the end.")
    p.add_argument("--ckpt", required=True, metavar="CKPT", help="checkpoint file or run directory")
    p.add_argument("--seeds", required=True, metavar="A,B", help="the two seeds, e.g. 0,1")
    p.add_argument("--frames", type=int, default=120, help="number of frames including both ends (default 120)")
    p.add_argument("--fps", type=float, default=30.0, help="frames per second (default 30)")
    p.add_argument("--out", required=True, metavar="FILE.mp4", help="video file to write")
    p.add_argument("--space", choices=("z", "w"), default="z", help="interpolate in z or in w (StyleGAN2 only)")
    p.add_argument("--trunc", type=float, default=1.0, metavar="PSI", help="truncation psi (default 1: none)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="device (default auto)")
    p.set_defaults(handler=run_interpolate)


def _overrides(args) -> dict:
    """Only the options the user set (None keeps the preset's value)."""
    values = {
        "augpipe": args.augpipe, "kimg": args.kimg, "tick_kimg": args.tick_kimg, "batch": args.batch,
        "gamma": args.gamma, "eval_every_kimg": args.eval_every_kimg, "snapshot_every_kimg": args.snapshot_every_kimg,
        "subset": args.subset,
    }
    out = {k: v for k, v in values.items() if v is not None}
    if args.target is not None:
        out["ada_target"] = args.target
    if args.p is not None:
        out.update(ada_target=None, p=args.p)
    if args.lumaflip is not None:
        out["lumaflip"] = args.lumaflip == "on"
    out.update(seed=args.seed, device=args.device, compile=args.compile, num_threads=args.threads,
               precision=args.precision)
    from microtune.gan.config import GENERATED_FLAGS

    out.update({name: getattr(args, name) for name in GENERATED_FLAGS if hasattr(args, name)})
    return out


def _open_dataset(path):
    from microtune.data.dataset import Dataset

    return Dataset.open(path)


def resolve_train_options(args):
    """(options, dataset, resume path) from parsed ``train`` arguments; validates everything. A bad
    option value raises :class:`~microtune.gan.config.OptionsError` naming its flag (each value on its
    own first, before the dataset is read; then the rules that involve two options)."""
    from microtune.data.dataset import subset_problem
    from microtune.gan.config import check_value, make_options

    overrides = _overrides(args)
    for key, value in overrides.items():
        check_value(key, value)
    run = Path(args.out)
    resume = None
    if args.resume is not None:
        resume = Path(args.resume) if args.resume else run / "checkpoint-latest.pt"
        if not resume.exists():
            raise MicrotuneError(f"--resume: checkpoint {resume} does not exist.")
    if args.data is None:
        raise MicrotuneError("--data is required: give the dataset directory to train on.")
    dataset = _open_dataset(args.data)
    if dataset.channels not in (1, 3):
        raise MicrotuneError(f"--data {args.data} has {dataset.channels} channels; 1 or 3 are supported.")
    options = make_options(cfg=args.cfg, model=args.model, resolution=dataset.resolution,
                           img_channels=dataset.channels, **overrides)
    if options.subset is not None and (problem := subset_problem(options.subset, dataset.count, f"the {{}} images of {args.data}")):
        raise MicrotuneError(f"--subset: {problem}.")
    check_output(run, option="--out", reuse=True, inputs={"--data": args.data}, inside_inputs=True)
    if resume is None and (run / "checkpoint-latest.pt").exists():
        raise MicrotuneError(f"--out {run} already holds a training run (checkpoint-latest.pt); pass --resume "
                             "to continue it, or choose another --out.")
    if args.cache_dir:
        check_output(args.cache_dir, option="--cache-dir", reuse=True)
    return options, dataset, resume


def _evaluator(args, dataset):
    names = [m.strip() for m in args.metrics.split(",") if m.strip()]
    if not names:
        return None
    from microtune.metrics.evaluator import make_evaluator

    return make_evaluator(dataset, names, num_gen=args.metrics_num_gen, detector=args.detector,
                          detector_weights=args.detector_weights, cache_dir=args.cache_dir, device=args.device)


def run_train(args) -> int:
    from microtune.gan.config import OptionsError

    try:
        options, dataset, resume = resolve_train_options(args)
    except OptionsError as exc:  # a usage error (exit status 2), as when argparse refuses a value
        print(f"microtune: error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(json.dumps(options.to_dict(), indent=2, sort_keys=True))
        return 0
    images = options.subset or dataset.count
    print(f"train: {options.model} cfg {options.cfg}, {options.resolution}x{options.resolution}x{options.img_channels}, "
          f"batch {options.batch}, {options.kimg:g} kimg (reports every {options.tick_kimg:g} kimg, snapshots "
          f"every {options.snapshot_every_kimg:g} kimg); {images} images of {args.data}; device {options.device}; "
          f"writing {args.out}" + (f"; resuming from {resume}" if resume else ""), flush=True)
    print("train: loading torch, the images and the networks ...", flush=True)
    _device(options.device)  # a missing GPU is refused before RUN is created
    from microtune.gan.loop import train

    run = Path(args.out)
    created = not run.exists()
    evaluate = _evaluator(args, dataset)
    try:
        with writing(run, option="--out"):
            result = train(options, dataset=dataset, run_dir=run, evaluate=evaluate,
                           resume_from=resume, log=lambda line: print(line, flush=True))
    except BaseException:
        _remove_if_untrained(run, created)
        raise
    print(f"checkpoint: {result.checkpoint}")
    return 0


def _remove_if_untrained(run: Path, created: bool) -> None:
    """Remove a run folder this command created when training failed before its first report."""
    if not created or not run.is_dir() or (run / "checkpoint-latest.pt").exists():
        return
    log = run / "log.txt"
    if log.is_file() and any(line.startswith("tick ") for line in log.read_text(errors="replace").splitlines()):
        return  # a record of real training: keep it
    shutil.rmtree(run, ignore_errors=True)


def _device(name: str):
    from microtune.device import select_device

    return select_device(name)


def run_generate(args) -> int:
    from microtune.gan.checkpoint import load_generator, resolve_checkpoint
    from microtune.gan.generate import parse_seeds, write_images

    seeds = parse_seeds(args.seeds)
    checkpoint = resolve_checkpoint(args.ckpt)
    check_output(args.out, option="--out", reuse=True)
    device = _device(args.device)
    G, _ = load_generator(checkpoint, device=device)
    with writing(args.out, option="--out"):
        paths = write_images(G, seeds, args.out, truncation_psi=args.trunc, grid=args.grid, device=device)
    print(f"wrote {len(paths)} images to {args.out}")
    return 0


def run_interpolate(args) -> int:
    from microtune.gan.checkpoint import load_generator, resolve_checkpoint
    from microtune.gan.generate import interpolation_frames, parse_seeds, write_interpolation

    seeds = parse_seeds(args.seeds)
    if len(seeds) != 2:
        raise MicrotuneError(f"--seeds must name exactly two seeds like 0,1, got {args.seeds!r}.")
    if not str(args.out).lower().endswith(".mp4"):
        raise MicrotuneError(f"--out must be an .mp4 file, got {args.out!r}.")
    if args.fps <= 0:
        raise MicrotuneError(f"--fps must be positive, got {args.fps}.")
    if args.frames < 2:
        raise MicrotuneError(f"--frames must be at least 2, got {args.frames}.")
    checkpoint = resolve_checkpoint(args.ckpt)
    video = check_output(args.out, option="--out", kind="file")
    check_output(video.with_name(video.stem + "_frames"), option="--out (its frame folder)", reuse=True)
    check_output(video.with_name(video.stem + "_figure.png"), option="--out (its figure)", kind="file")
    device = _device(args.device)
    G, _ = load_generator(checkpoint, device=device)
    frames = interpolation_frames(G, seeds[0], seeds[1], args.frames, space=args.space,
                                  truncation_psi=args.trunc, device=device)
    with writing(video, option="--out"):
        written = write_interpolation(frames, video, fps=args.fps)
    print(f"wrote {written['video']}, {len(frames)} frames in {written['frames']}, figure {written['figure']}", file=sys.stdout)
    return 0
