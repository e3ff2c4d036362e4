"""``microtune metrics``: FID / KID / precision-recall of a generator checkpoint or an image folder.

Registered by :mod:`microtune.cli` through :func:`register`.  Nothing heavy is imported until the
handler runs.

Generated images must have the dataset's resolution (as NVlabs' metrics require: their dataset
loader refuses images of another size than the generator's): a checkpoint or an image folder of
another size is refused before any detector runs.  ``--images`` skips hidden files and the
``grid.png`` that ``microtune generate --grid`` writes beside the samples, and says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from microtune.errors import MicrotuneError

log = logging.getLogger(__name__)

#: The grid ``microtune generate --grid`` writes into its --out folder (microtune.gan.generate.GRID_FILE).
GENERATE_GRID = "grid.png"

DEFAULT_CACHE = Path(os.environ.get("MICROTUNE_CACHE", Path.home() / ".cache" / "microtune"))

_EPILOG = """\
examples:
  microtune metrics --data data/sem --images generated/ --metrics fid,kid,pr --num-gen 500 \\
      --detector-weights weights-inception-2015-12-05-6726825d.pth --detector-weights vgg16-397923af.pth
  microtune metrics --data data/sem --ckpt runs/t0/checkpoint.pt --metrics fid50k_full,pr50k3_full --device cuda
  microtune metrics --data data/sem --images generated/ --metrics fid --num-gen 200 --detector random-seed:0

Standard weights (sha256 prefix checked): FID Inception-v3
  https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth
and VGG-16 https://download.pytorch.org/models/vgg16-397923af.pth; they are looked up among
--detector-weights, then in CACHE_DIR/detectors/, then downloaded there when the machine is online.
--detector random-seed:N needs no files; its values are tagged random-seed:N and are not
comparable with published numbers.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``metrics`` sub-command to the ``microtune`` parser."""
    p = subparsers.add_parser(
        "metrics", help="FID, KID and precision/recall of generated images against a dataset",
        description="Compute FID (Inception-v3 pool features), KID and improved precision/recall (k-NN, "
                    "VGG-16 fc2) between generated images and ALL images of a dataset. Real statistics "
                    "are cached per (dataset, detector) and reused.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DS", help="dataset directory (microtune data prepare)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt", metavar="CKPT",
                        help="GAN checkpoint file or run directory (checkpoint-latest.pt); its EMA generator "
                             "is sampled, image j from seed --seed + j")
    source.add_argument("--images", metavar="DIR",
                        help="folder of generated images of the dataset's resolution (png/tif/jpg/bmp, read as "
                             "8-bit grayscale, sorted by name; hidden files and the grid.png of 'microtune "
                             "generate --grid' are skipped)")
    p.add_argument("--metrics", default="fid,kid,pr", metavar="LIST",
                   help="comma-separated: fid, kid, pr or protocol names like fid50k_full, kid10k_full, "
                        "pr50k3_full (default: %(default)s)")
    p.add_argument("--num-gen", type=int, metavar="N",
                   help="generated images per metric; overrides protocol sizes (default: from the protocol "
                        "names, 50000 for bare fid/kid/pr; with --images: all images in DIR)")
    p.add_argument("--detector", default="standard", metavar="standard|random-seed:N|texture-vgg19-seed:N",
                   help="'standard' (Inception-v3 + VGG-16 weights required), 'random-seed:N' (offline, "
                        "labelled random-weight detector) or 'texture-vgg19-seed:N' (offline: a VGG-19 trained "
                        "here on procedural micrograph textures on first use, ~2 min, cached; its weights' "
                        "sha256 is in the tag) (default: %(default)s)")
    p.add_argument("--detector-weights", action="append", default=[], metavar="PATH",
                   help="weights file or folder; repeat for Inception-v3 and VGG-16")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), metavar="DIR",
                   help="cache of detector weights and real statistics, shared by all runs (default: "
                        "$MICROTUNE_CACHE or %(default)s)")
    p.add_argument("--no-download", action="store_true", help="never try to download detector weights")
    p.add_argument("--device", default="auto", metavar="auto|cpu|cuda", help="where detectors run (default: auto)")
    p.add_argument("--batch-size", type=int, default=64, metavar="B", help="images per detector batch (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="first latent seed (--ckpt) and KID subset seed (default: 0)")
    p.add_argument("--truncation-psi", type=float, default=1.0, metavar="PSI",
                   help="truncation for --ckpt sampling; metrics use 1.0 (default: %(default)s)")
    p.add_argument("--out", metavar="JSON", help="also write the result as JSON to this file (atomically)")
    p.set_defaults(handler=run_metrics)


def _image_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The image files under ``folder`` (sorted) and notes on the files skipped."""
    from microtune.data.ingest import IMAGE_SUFFIXES

    if not folder.is_dir():
        raise MicrotuneError(f"--images {folder} is not a folder.")
    files, notes = [], []
    for f in sorted(folder.rglob("*")):
        rel = f.relative_to(folder)
        if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue  # hidden files and folders (._name.png of macOS, .ipynb_checkpoints, ...)
        if rel.as_posix() == GENERATE_GRID:
            notes.append(f"--images {folder}: skipped {GENERATE_GRID}, the grid 'microtune generate --grid' writes.")
            continue
        files.append(f)
    if len(files) < 2:
        raise MicrotuneError(f"--images {folder} holds {len(files)} image files; at least 2 are needed.")
    return files, notes


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise MicrotuneError(f"{path}: not a readable image ({exc}).") from None


def check_image_sizes(folder: Path, files: list[Path], resolution: int, data: str) -> None:
    """Refuse a folder whose images differ in size or differ from the dataset's resolution."""
    from collections import Counter

    sizes = {f: _image_size(f) for f in files}
    (common, count), *_ = Counter(sizes.values()).most_common(1)
    odd = [f for f, size in sizes.items() if size != common]
    if odd:
        w, h = sizes[odd[0]]
        verb = "is" if len(odd) == 1 else "are"
        raise MicrotuneError(f"--images {folder}: {len(odd)} of {len(files)} images {verb} not {common[0]}x{common[1]} "
                             f"like the other {count}, e.g. {odd[0]} ({w}x{h}); --images must hold images of one "
                             f"size.")
    if common != (resolution, resolution):
        raise MicrotuneError(f"--images {folder} holds {common[0]}x{common[1]} images but --data {data} holds "
                             f"{resolution}x{resolution} images; metrics compare images of one resolution (generate "
                             f"them at {resolution}x{resolution}, or prepare the dataset at their size).")


def check_checkpoint_resolution(ckpt: str, options, resolution: int, data: str) -> None:
    """Refuse a generator whose images are not of the dataset's resolution."""
    r = int(options.resolution)
    if r != resolution:
        raise MicrotuneError(f"--ckpt {ckpt} generates {r}x{r} images but --data {data} holds {resolution}x"
                             f"{resolution} images; metrics compare images of one resolution (use the dataset "
                             f"the checkpoint was trained on, or one prepared with --resolution {r}).")


def folder_sampler(files: list[Path]):
    """A Sampler reading uint8 grayscale images from files, batch by batch."""
    import numpy as np
    import torch

    from microtune.data.ingest import read_image

    shape: list[tuple[int, int]] = []

    def sample(n: int, seed_offset: int) -> torch.Tensor:
        batch = []
        for path in files[seed_offset : seed_offset + n]:
            pixels = read_image(path).pixels
            shape.append(shape[0] if shape else pixels.shape)
            if pixels.shape != shape[0]:
                raise MicrotuneError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} but the first image is "
                                     f"{shape[0][1]}x{shape[0][0]}; --images must hold images of one size.")
            batch.append(pixels)
        return torch.from_numpy(np.stack(batch))[:, None]

    return sample


def _checkpoint_sampler(ckpt: Path, args: argparse.Namespace, device, resolution: int):
    """A sampler of the checkpoint's EMA generator, refused unless it makes ``resolution``-sized images."""
    try:
        from microtune.gan.checkpoint import load_generator, resolve_checkpoint
    except ImportError:
        raise MicrotuneError("--ckpt needs microtune.gan.checkpoint, which this installation lacks; "
                             "export images and use --images DIR.") from None
    from microtune.metrics.evaluator import generator_sampler

    generator, options = load_generator(resolve_checkpoint(ckpt), device=device)
    check_checkpoint_resolution(args.ckpt, options, resolution, args.data)
    return generator_sampler(generator, seed=args.seed, truncation_psi=args.truncation_psi, device=device)


def _write_json(path: Path, payload: dict) -> None:
    from microtune.errors import os_error_sentence
    from microtune.io import atomic_write_json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, payload, indent=2)
    except OSError as exc:
        raise MicrotuneError(os_error_sentence(exc, option="--out", path=path)) from None


def run_metrics(args: argparse.Namespace) -> int:
    """Handler of ``microtune metrics``; returns the exit status."""
    if args.num_gen is not None and args.num_gen < 2:
        raise MicrotuneError(f"--num-gen must be at least 2, got {args.num_gen}.")
    if args.batch_size < 1:
        raise MicrotuneError(f"--batch-size must be positive, got {args.batch_size}.")
    from microtune.data.dataset import Dataset
    from microtune.metrics.detectors import parse_detector_choice
    from microtune.device import select_device
    from microtune.metrics.evaluator import make_evaluator

    parse_detector_choice(args.detector)
    if args.ckpt is not None and not Path(args.ckpt).exists():
        raise MicrotuneError(f"--ckpt {args.ckpt} does not exist.")
    if args.out:
        from microtune.errors import check_output

        check_output(args.out, option="--out", kind="file")  # before minutes of work, not after
    dataset = Dataset.open(args.data)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    device = select_device(args.device)
    num_gen = args.num_gen
    notes: list[str] = []
    if args.images is not None:
        folder = Path(args.images)
        files, notes = _image_files(folder)
        num_gen = len(files) if num_gen is None else num_gen
        if num_gen > len(files):
            raise MicrotuneError(f"--num-gen {num_gen} exceeds the {len(files)} images in --images {args.images}.")
        check_image_sizes(folder, files[:num_gen], dataset.resolution, args.data)
        sample = folder_sampler(files)
    else:
        sample = _checkpoint_sampler(Path(args.ckpt), args, device, dataset.resolution)
    for note in notes:
        log.info("%s", note)
    evaluator = make_evaluator(dataset, metrics, num_gen=num_gen, detector=args.detector,
                               detector_weights=args.detector_weights, cache_dir=args.cache_dir, device=device,
                               batch_size=args.batch_size, allow_download=not args.no_download, seed=args.seed)
    log.info("evaluating %s with %s on %s", ", ".join(p.name for p in evaluator.protocols), evaluator.detector,
             device)
    values = evaluator(sample)
    payload = {"metrics": values, "detector": evaluator.detector,
               "protocols": [p.name for p in evaluator.protocols], "dataset": str(dataset.path),
               "dataset_sha256": evaluator.content_hash, "source": args.ckpt or args.images,
               "device": str(device), "seconds": round(evaluator.last_seconds, 2),
               "warnings": evaluator.warnings, "skipped": notes}
    if evaluator.content_hash != dataset.content_hash:
        payload["manifest_sha256"] = dataset.content_hash
    if args.detector != "standard":
        from microtune.tracking.schema import offline_detector_kind

        kind = offline_detector_kind(args.detector)
        payload["note"] = f"values made with the {kind} {args.detector}; not comparable with published FID/KID/PR"
    print(json.dumps(payload))
    if args.out:
        _write_json(Path(args.out), payload)
    return 0
