"""Summaries and contact sheets of datasets (``microtune data inspect``)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from microtune.data.dataset import Dataset
from microtune.io import atomic_output

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
    databar = databar_record(dataset)
    if databar is not None:
        summary["databar"] = databar
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
    if "databar" in summary:
        from microtune.data.prepare import databar_lines

        lines.extend(databar_lines(summary["databar"]))
    return "\n".join(lines)


def databar_record(dataset: Dataset) -> dict[str, Any] | None:
    """The dataset's databar record (rows cut per source size): the manifest's, or, for datasets
    written before it was recorded, rebuilt from the per-image records; None for datasets not
    prepared from source files (e.g. ``data synth``)."""
    if isinstance(dataset.manifest.get("databar"), dict):
        return dataset.manifest["databar"]
    sources = _sources(dataset)
    if not sources:
        return None
    from microtune.data.prepare import databar_summary

    mode = str((dataset.manifest.get("preprocessing") or {}).get("databar", "?"))
    record, _ = databar_summary([(rel, s["shape"], s["rows"]) for rel, s in sources.items()], mode)
    return record


def _sources(dataset: Dataset) -> dict[str, dict[str, Any]]:
    """Per source file (in dataset order): its shape, databar rows cut and crop positions."""
    sources: dict[str, dict[str, Any]] = {}
    for record in dataset.manifest["images"]:
        pre = record.get("preprocessing") or {}
        if "databar_rows" not in pre or "source_shape" not in pre:
            continue
        entry = sources.setdefault(record["source"], {"shape": tuple(pre["source_shape"]),
                                                      "rows": int(pre["databar_rows"]), "tiles": []})
        entry["tiles"].append(tuple(record.get("tile", (0, 0))))
    return sources


def contact_sheet(dataset: Dataset, out: str | os.PathLike[str], *, max_images: int = 64,
                  tile: int = 128, max_sources: int = 12) -> Path:
    """Write a PNG grid of up to ``max_images`` images spread over the dataset, labelled with
    their specimen; with masks, each image is followed by its colour-coded mask.

    Below the grid, for up to ``max_sources`` source micrographs (every combination of source
    size and databar rows cut is shown, the rarer ones first; see :func:`source_panels`), the
    source with its databar cut and its crops marked."""
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
    cuts = source_panels(dataset, max_sources=max_sources, width=2 * tile)
    if cuts:
        sheet = _with_section(sheet, cuts, "databar cut per source: red = rows cut away, green = crops "
                                           "taken; below each, the rows around the cut at 2x")
    return save_png(sheet, out)


def _pick_sources(sources: dict[str, dict[str, Any]], limit: int) -> list[str]:
    """Up to ``limit`` sources, round-robin over (shape, rows) groups, the smallest groups first,
    so that a source whose cut differs from the others of its size is always among them."""
    groups: dict[tuple, list[str]] = {}
    for rel, entry in sources.items():
        groups.setdefault((entry["shape"], entry["rows"]), []).append(rel)
    ordered = sorted(groups.values(), key=len)
    picked: list[str] = []
    depth = 0
    while len(picked) < limit and any(depth < len(g) for g in ordered):
        picked.extend(g[depth] for g in ordered if depth < len(g))
        depth += 1
    return picked[:limit]


def source_panels(dataset: Dataset, *, max_sources: int = 12, width: int = 256) -> list[Image.Image]:
    """One panel per picked source micrograph (read again from the prepared folder): the whole
    source, ``width`` pixels wide, with the rows cut as the databar tinted red below a red line and
    the crops outlined in green; under it, the 16 rows above and below the cut (the bottom 32
    rows without a cut) of the left columns at twice their size, tinted the same way."""
    sources = _sources(dataset)
    root = dataset.manifest.get("source")
    if not sources or not root or max_sources < 1:
        return []
    from microtune.data.ingest import read_image
    from microtune.errors import DatasetError

    resolution = dataset.resolution
    panels = []
    for rel in _pick_sources(sources, max_sources):
        entry = sources[rel]
        height, width_px = entry["shape"]
        rows = entry["rows"]
        cut = height - rows
        title = f"{rel} {width_px}x{height}: " + (f"{rows} rows cut" if rows else "no rows cut")
        try:
            pixels = read_image(Path(root) / rel).pixels
            if pixels.shape != (height, width_px):
                raise DatasetError("changed since the dataset was prepared")
        except DatasetError as exc:
            panel = Image.new("RGB", (width, width * 3 // 4), (90, 90, 90))
            _label(panel, title)
            ImageDraw.Draw(panel).text((4, 20), f"source not readable now: {str(exc)[-60:]}", fill=(255, 255, 255))
            panels.append(panel)
            continue
        scale = width / width_px
        thumb_h = max(1, round(height * scale))
        rgb = np.repeat(pixels[..., None], 3, axis=2).astype(np.float32)
        rgb[cut:] = _tint(rgb[cut:])
        thumb = Image.fromarray(rgb.astype(np.uint8)).resize((width, thumb_h), Image.BILINEAR)
        draw = ImageDraw.Draw(thumb)
        for y, x in entry["tiles"]:
            draw.rectangle((round(x * scale), round(y * scale), round((x + resolution) * scale) - 1,
                            round((y + resolution) * scale) - 1), outline=(0, 220, 0))
        if rows:
            draw.line((0, round(cut * scale), width, round(cut * scale)), fill=(255, 0, 0))
        _label(thumb, title)
        detail = _cut_detail(pixels, cut, width)
        panel = Image.new("RGB", (width, thumb_h + 2 + detail.height), (255, 255, 255))
        panel.paste(thumb, (0, 0))
        panel.paste(detail, (0, thumb_h + 2))
        panels.append(panel)
    return panels


def _tint(rgb: np.ndarray) -> np.ndarray:
    """Rows cut away, blended 45 % with red (their content stays visible)."""
    return 0.55 * rgb + 0.45 * np.array([255, 0, 0], np.float32)


def _cut_detail(pixels: np.ndarray, cut: int, width: int, around: int = 16) -> Image.Image:
    """Rows ``cut - around`` to ``cut + around`` (clipped) of the leftmost ``width // 2`` columns at
    2x, the rows cut tinted red, with red ticks at both edges on the cut line (at the bottom edge
    when nothing was cut)."""
    height = pixels.shape[0]
    top, bottom = max(0, cut - around), min(height, cut + around)
    if bottom <= top:
        top, bottom = max(0, height - 2 * around), height
    crop = np.repeat(pixels[top:bottom, : width // 2, None], 3, axis=2).astype(np.float32)
    crop[max(0, cut - top):] = _tint(crop[max(0, cut - top):])
    strip = Image.fromarray(crop.astype(np.uint8))
    strip = strip.resize((crop.shape[1] * 2, crop.shape[0] * 2), Image.NEAREST)
    canvas = Image.new("RGB", (width, strip.height), (255, 255, 255))
    canvas.paste(strip, (0, 0))
    y = 2 * (cut - top)
    draw = ImageDraw.Draw(canvas)
    for x0 in (0, width - 10):
        draw.rectangle((x0, y - 1, x0 + 9, y), fill=(255, 0, 0))
    return canvas


def _with_section(sheet: Image.Image, panels: list[Image.Image], title: str, gap: int = 2) -> Image.Image:
    """``sheet`` with a titled grid of ``panels`` (equal widths, rows as tall as their tallest) below."""
    per_row = max(1, (sheet.width + gap) // (panels[0].width + gap))
    rows = [panels[k:k + per_row] for k in range(0, len(panels), per_row)]
    heights = [max(p.height for p in row) for row in rows]
    header = 20
    full = Image.new("RGB", (max(sheet.width, per_row * (panels[0].width + gap) - gap),
                             sheet.height + header + sum(h + gap for h in heights)), (255, 255, 255))
    full.paste(sheet, (0, 0))
    ImageDraw.Draw(full).text((4, sheet.height + 5), title, fill=(0, 0, 0))
    y = sheet.height + header
    for row, h in zip(rows, heights):
        for k, panel in enumerate(row):
            full.paste(panel, (k * (panel.width + gap), y))
        y += h + gap
    return full


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
    with atomic_output(out) as tmp:
        image.save(tmp, format="PNG")
    return out
