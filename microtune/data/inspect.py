"""Summaries and contact sheets of datasets (``microtune data inspect``)."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from microtune.data.dataset import Dataset

# Colours for mask classes on contact sheets (class id = index), chosen to stay apart in print.
CLASS_COLOURS = np.array([
    [68, 1, 84], [253, 231, 37], [33, 145, 140], [230, 85, 13],
    [59, 82, 139], [94, 201, 98], [204, 0, 102], [160, 160, 160],
], dtype=np.uint8)


def summarize(dataset: Dataset, *, sample: int = 512) -> dict[str, Any]:
    """Counts, specimens and intensity statistics of a dataset.

    Intensity statistics are computed on up to ``sample`` images spread evenly over the dataset.
    """
    specimens = Counter(dataset.specimens.tolist())
    picks = np.unique(np.linspace(0, dataset.count - 1, min(sample, dataset.count)).astype(int))
    pixels = np.asarray(dataset.images[picks], dtype=np.float64)
    per_image_mean = pixels.mean(axis=(1, 2))
    summary: dict[str, Any] = {
        "path": str(dataset.path),
        "count": dataset.count,
        "resolution": dataset.resolution,
        "channels": dataset.channels,
        "content_sha256": dataset.content_hash,
        "specimens": len(specimens),
        "images_per_specimen": {"min": min(specimens.values()), "max": max(specimens.values())},
        "intensity": {
            "mean": round(float(pixels.mean()), 3),
            "std": round(float(pixels.std()), 3),
            "min": int(pixels.min()),
            "max": int(pixels.max()),
            "per_image_mean_std": round(float(per_image_mean.std()), 3),
            "images_sampled": int(len(picks)),
        },
        "skipped": len(dataset.manifest.get("skipped", [])),
    }
    if dataset.masks is not None:
        counts = np.bincount(np.asarray(dataset.masks[picks]).ravel(), minlength=len(dataset.class_names))
        share = counts / counts.sum()
        summary["classes"] = {name: round(float(s), 4) for name, s in zip(dataset.class_names, share)}
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines for :func:`summarize`'s result."""
    ints = summary["intensity"]
    lines = [
        f"dataset      {summary['path']}",
        f"images       {summary['count']} × {summary['resolution']}×{summary['resolution']}, "
        f"{summary['channels']} channel(s)",
        f"specimens    {summary['specimens']} ({summary['images_per_specimen']['min']}–"
        f"{summary['images_per_specimen']['max']} images each)",
        f"intensity    mean {ints['mean']:.1f}, std {ints['std']:.1f}, range {ints['min']}–{ints['max']}, "
        f"std of image means {ints['per_image_mean_std']:.1f} (over {ints['images_sampled']} images)",
        f"sha256       {summary['content_sha256']}",
        f"skipped      {summary['skipped']} source file(s)",
    ]
    if "classes" in summary:
        shares = ", ".join(f"{k} {v:.1%}" for k, v in summary["classes"].items())
        lines.append(f"classes      {shares}")
    return "\n".join(lines)


def contact_sheet(dataset: Dataset, out: str | os.PathLike[str], *, max_images: int = 64,
                  tile: int = 128) -> Path:
    """Write a PNG grid of up to ``max_images`` images spread over the dataset, labelled with
    their specimen; with masks, each image is followed by its colour-coded mask."""
    picks = np.unique(np.linspace(0, dataset.count - 1, min(max_images, dataset.count)).astype(int))
    panels = []
    specimens = dataset.specimens
    for i in picks:
        image = Image.fromarray(np.asarray(dataset.images[i])).convert("RGB").resize((tile, tile), Image.LANCZOS)
        _label(image, f"{i} {specimens[i]}")
        panels.append(image)
        if dataset.masks is not None:
            colours = CLASS_COLOURS[np.asarray(dataset.masks[i]) % len(CLASS_COLOURS)]
            panels.append(Image.fromarray(colours).resize((tile, tile), Image.NEAREST))
    per_row = 8  # with masks: four image–mask pairs per row
    rows = -(-len(panels) // per_row)
    gap = 2
    sheet = Image.new("RGB", (per_row * (tile + gap) - gap, rows * (tile + gap) - gap), (255, 255, 255))
    for k, panel in enumerate(panels):
        sheet.paste(panel, ((k % per_row) * (tile + gap), (k // per_row) * (tile + gap)))
    if dataset.masks is not None:
        sheet = _with_legend(sheet, dataset.class_names)
    return save_png(sheet, out)


def _label(image: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(image)
    box = draw.textbbox((2, 2), text)
    draw.rectangle((box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2), fill=(0, 0, 0))
    draw.text((2, 2), text, fill=(255, 255, 0))


def _with_legend(sheet: Image.Image, class_names: list[str]) -> Image.Image:
    legend = Image.new("RGB", (sheet.width, 20), (255, 255, 255))
    draw = ImageDraw.Draw(legend)
    x = 4
    for k, name in enumerate(class_names):
        draw.rectangle((x, 4, x + 12, 16), fill=tuple(int(c) for c in CLASS_COLOURS[k % len(CLASS_COLOURS)]))
        draw.text((x + 16, 4), f"{k}: {name}", fill=(0, 0, 0))
        x += 24 + int(draw.textlength(f"{k}: {name}"))
    full = Image.new("RGB", (sheet.width, sheet.height + legend.height), (255, 255, 255))
    full.paste(legend, (0, 0))
    full.paste(sheet, (0, legend.height))
    return full


def save_png(image: Image.Image, out: str | os.PathLike[str]) -> Path:
    """Save a PIL image as PNG atomically (temp file + rename)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            image.save(fh, format="PNG")
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
