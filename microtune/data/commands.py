"""``microtune data prepare|synth|inspect``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from microtune.errors import MicrotuneError, check_output, writing
from microtune.io import atomic_directory

SEM_BAR_TEXT = "SE  HV 15.0 kV  WD 10.1 mm  mag 5 000 x  det ETD   |----| 10 um   microtune synthetic"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command group."""
    data = subparsers.add_parser("data", help="prepare, synthesise and inspect datasets",
                                 description="Prepare, synthesise and inspect micrograph datasets.")
    data.set_defaults(handler=lambda args: _group_help(data))
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    _add_prepare(sub)
    _add_synth(sub)
    _add_inspect(sub)


def _group_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return value


# -- prepare ----------------------------------------------------------------------------------------

def _add_prepare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prepare", help="turn a folder of micrographs into a dataset",
        description=(
            "Turn a folder of micrographs (PNG, TIFF 8/16-bit, JPEG, BMP) into a dataset, following "
            "the StyleGAN2-ADA SEM study's pipeline: 8-bit grayscale, databar removal, median filter, "
            "histogram matching to a reference, centre crop (or tiles). The dataset appears complete "
            "or not at all."
        ),
    )
    p.add_argument("src", metavar="SRC", help="folder of micrographs (searched recursively; hidden files, system clutter such as "
                        "Thumbs.db and known non-image files such as README.txt are ignored and listed)")
    p.add_argument("out", metavar="OUT", help="dataset directory to create")
    p.add_argument("--resolution", type=_positive_int, default=512, metavar="R",
                   help="side of the square output images in pixels (default 512, as in the study)")
    p.add_argument("--reference", default=None, metavar="FILE|auto",
                   help="histogram-matching reference image; 'auto' picks the source image whose "
                        "histogram is closest to the median histogram (default: no matching)")
    p.add_argument("--median", type=_positive_int, default=3, metavar="K",
                   help="median filter size in pixels, odd (default 3; 0 = off)")
    p.add_argument("--databar", default="auto", metavar="auto|none|PIXELS",
                   help="remove the SEM information band at the bottom: detect it (auto, default), "
                        "keep everything (none), or cut this many rows")
    p.add_argument("--crop", choices=("center", "tiles"), default="center",
                   help="one centred R×R crop per image (the study) or all non-overlapping R×R tiles")
    p.add_argument("--specimens", default=None, metavar="FOLDERS|CSV",
                   help="specimen of each image: FOLDERS = first sub-folder name, or a CSV with header "
                        "file,specimen (default: each source image is its own specimen)")
    p.add_argument("--masks", default=None, metavar="DIR",
                   help="folder of label images/arrays (.npy, .png, .tif, .bmp) named like the images, "
                        "optionally with _mask, _label, _labels or _gt; a mask covers its image from the "
                        "top-left: the whole image, the part above the databar, or up to 2 rows/columns "
                        "less (the image is then cropped to match); cut exactly like the images")
    p.add_argument("--class-names", default=None, metavar="A,B,...",
                   help="comma-separated mask class names, index = class id (default class0, class1, ...)")
    p.add_argument("--mask-colors", default=None, metavar="MAP|FILE",
                   help="which mask colour is which class, in class-id order: "
                        "'matrix=#000000,austenite=#ff0000,...' or a JSON/YAML file; a colour is "
                        "#rrggbb, a grey level 0-255, or gray (the unpainted grey/transparent pixels of "
                        "an overlay); needed for RGB masks, and names the classes")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable or too-small files (listed in the manifest) instead of failing")
    p.add_argument("--workers", type=_positive_int, default=1, metavar="N", help="processes (default 1)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from microtune.data.dataset import Dataset
    from microtune.data.prepare import PrepareOptions, databar_lines, prepare_dataset

    options = PrepareOptions(
        resolution=args.resolution, reference=args.reference, median=args.median,
        databar=args.databar, crop=args.crop, specimens=args.specimens, masks=args.masks,
        class_names=tuple(n.strip() for n in args.class_names.split(",")) if args.class_names else None,
        mask_colors=args.mask_colors, skip_bad=args.skip_bad, workers=args.workers, force=args.force,
    )
    check_output(args.out, force=args.force, inputs={"SRC": args.src, "--masks": args.masks})
    with writing(args.out):
        out = prepare_dataset(args.src, args.out, options, show_progress=not args.quiet, warn=_warn)
    ds = Dataset.open(out)
    skipped = ds.manifest["skipped"]
    print(f"wrote {out}: {ds.count} images of {ds.resolution}×{ds.resolution} from "
          f"{ds.manifest['specimen_count']} specimens, sha256 {ds.content_hash[:12]}")
    for entry in skipped:
        print(f"skipped {entry['file']}: {entry['reason']}")
    for line in databar_lines(ds.manifest.get("databar") or {}):
        print(line)
    ignored = ds.manifest.get("ignored") or []
    if ignored:
        names = ", ".join(e["file"] for e in ignored[:6]) + (", ..." if len(ignored) > 6 else "")
        print(f"ignored {len(ignored)} file(s) that are not micrographs (listed in the manifest): {names}")
    return 0


def _warn(message: str) -> None:
    """A warning of ``data prepare``: one line on stderr (also kept in the manifest)."""
    import sys

    print(f"microtune: warning: {message}", file=sys.stderr)


# -- synth ------------------------------------------------------------------------------------------

def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth", help="synthesise dual-phase steel micrographs with exact phase masks",
        description=(
            "Synthesise ferrite-martensite dual-phase micrographs with exact phase masks "
            "(Gaussian-random-field construction; each specimen draws its own martensite fraction "
            "in 0.37-1.0, grain size and elongation). Writes a dataset, or with --as-images a "
            "folder of raw PNG micrographs (with an SEM databar) and masks to feed 'data prepare'."
        ),
    )
    p.add_argument("out", metavar="OUT", help="dataset directory (or image folder with --as-images) to create")
    p.add_argument("--count", type=_positive_int, default=64, help="number of images (default 64)")
    p.add_argument("--resolution", type=_positive_int, default=256, help="image side in pixels, a power of two (default 256)")
    p.add_argument("--specimens", type=_positive_int, default=None,
                   help="number of specimens (default: 4, or --count if smaller)")
    p.add_argument("--seed", type=_positive_int, default=0, help="random seed (default 0)")
    p.add_argument("--inclusions", action="store_true", help="add a minor third phase (3 classes, as in HPTL)")
    p.add_argument("--as-images", action="store_true",
                   help="write OUT/images/<specimen>/*.png with a databar and OUT/masks/<specimen>/*.png")
    p.add_argument("--databar", type=_positive_int, default=24, metavar="ROWS",
                   help="with --as-images: height of the SEM information band added below each image (default 24; 0 = none)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(handler=_synth)


def _synth(args: argparse.Namespace) -> int:
    from microtune.data.synth import CLASS_NAMES, synthesize

    if args.specimens is None:
        args.specimens = max(1, min(4, args.count))
    stream = synthesize(count=args.count, resolution=args.resolution, specimens=args.specimens,
                        seed=args.seed, inclusions=args.inclusions)  # checks the options
    check_output(args.out, force=args.force)
    class_names = list(CLASS_NAMES[: 3 if args.inclusions else 2])
    if args.as_images:
        with writing(args.out):
            out = write_image_folder(stream, Path(args.out), databar=args.databar, force=args.force)
        print(f"wrote {args.count} micrographs to {out / 'images'} and masks to {out / 'masks'}")
        return 0
    from microtune.data.dataset import DatasetWriter

    with writing(args.out), DatasetWriter(args.out, resolution=args.resolution, with_masks=True,
                                          force=args.force) as writer:
        for k, (image, mask, specimen) in enumerate(stream):
            writer.add(image, {"source": f"synth:{args.seed}:{k}", "specimen": specimen,
                               "tile": [0, 0], "preprocessing": {}}, mask)
        out = writer.commit(class_names=class_names, source="synthetic",
                            synth={k: getattr(args, k) for k in ("count", "resolution", "specimens", "seed", "inclusions")},
                            specimen_count=min(args.specimens, args.count))
    print(f"wrote {out}: {args.count} synthetic images of {args.resolution}×{args.resolution}, "
          f"{min(args.specimens, args.count)} specimens, classes {', '.join(class_names)}")
    return 0


def add_databar(image: np.ndarray, rows: int, text: str = SEM_BAR_TEXT) -> np.ndarray:
    """Append an SEM-style information band (black, white text) of ``rows`` rows below ``image``."""
    from PIL import Image, ImageDraw

    if rows == 0:
        return image
    bar = Image.new("L", (image.shape[1], rows), 0)
    draw = ImageDraw.Draw(bar)
    draw.text((4, max(0, rows // 2 - 6)), text, fill=255)
    return np.concatenate([image, np.asarray(bar)], axis=0)


def write_image_folder(stream, out: Path, *, databar: int, force: bool) -> Path:
    """Write synthetic micrographs as PNG files in specimen sub-folders, atomically."""
    from PIL import Image

    out = out.absolute()
    if out.exists() and not force:
        raise MicrotuneError(f"{out}: output already exists; pass --force to replace it.")
    with atomic_directory(out, replace=force) as tmp:
        for k, (image, mask, specimen) in enumerate(stream):
            for kind, array in (("images", add_databar(image, databar)), ("masks", mask)):
                folder = tmp / kind / specimen
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(array).save(folder / f"{specimen}_{k:05d}.png")
        # masks carry no databar: pad them so image and mask shapes agree
        for path in (tmp / "masks").rglob("*.png"):
            mask = np.asarray(Image.open(path))
            if databar:
                Image.fromarray(np.pad(mask, ((0, databar), (0, 0)))).save(path)
    return out


# -- inspect ----------------------------------------------------------------------------------------

def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect", help="print a dataset's counts and statistics and write its contact sheet",
        description="Print counts, specimens and intensity statistics of a dataset, verify its "
                    "content hash, and write a contact-sheet PNG.",
    )
    p.add_argument("dataset", metavar="DIR", help="dataset directory")
    p.add_argument("--sheet", default=None, metavar="PNG",
                   help="contact sheet path (default DIR/contact_sheet.png)")
    p.add_argument("--max-images", type=_positive_int, default=64, help="images on the sheet (default 64)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-verify", action="store_true", help="skip re-hashing the arrays")
    p.set_defaults(handler=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    from microtune.data.dataset import Dataset
    from microtune.data.inspect import contact_sheet, format_summary, summarize

    ds = Dataset.open(args.dataset)
    sheet_path = check_output(args.sheet or Path(args.dataset) / "contact_sheet.png", option="--sheet", kind="file")
    if not args.no_verify:
        ds.verify()
    summary = summarize(ds)
    with writing(sheet_path, option="--sheet"):
        sheet = contact_sheet(ds, sheet_path, max_images=max(1, args.max_images))
    summary["contact_sheet"] = str(sheet)
    print(json.dumps(summary, indent=1) if args.json else format_summary(summary) + f"\nsheet        {sheet}")
    return 0
