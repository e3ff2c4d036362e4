"""Accuracy of ``--databar auto`` (``microtune.data.preprocess.find_databar``) on rendered SEM bars.

Bar cases: micrographs (UHCS where ``../shared/data/uhcs`` exists, else none; synthetic dual-phase
ones always) resized to 4 geometries (1024×768 with a 50-row bar, 512×384/25, 1280×960/64,
645×484/30), each with 6 bar styles (background, ink, frame and separator levels: white, black,
light/dark/mid grey), 0–3 frame rows below the bar, 0–2 separator rows above it, text lines, a
scale bar, on every other image a red logo, saved as PNG (lossless) or JPEG quality 95/75/50 and
read back through microtune's own RGB→grey conversion. A case passes when exactly the drawn rows
(bar + frame + separator) are cut.

No-bar cases: every source micrograph as it is, as JPEG 50 and 30, in a thin black frame, with a
black region over half its bottom fifth, shadowed towards the bottom, over-exposed, and faded to
zero at the bottom (the last is expected to be cut: a band of exact zeros looks like a black bar).

Usage: python benchmarks/databar_detection.py [--json benchmarks/results/databar_detection.json]
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from microtune.data import preprocess
from microtune.data.ingest import read_image, to_gray8
from microtune.data.synth import synthesize

UHCS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "uhcs" / "images"
GEOMETRIES = [(768, 1024, 50), (384, 512, 25), (960, 1280, 64), (484, 645, 30)]  # height, width, bar rows
STYLES = {  # name: (background, ink, frame level, separator level)
    "white": (255, 0, 40, 0), "black": (0, 255, 255, 255), "light-grey": (200, 0, 0, 0),
    "dark-grey": (40, 255, 255, 200), "mid-grey": (128, 255, 0, 255), "near-white": (235, 30, 90, 90),
}
QUALITIES = (None, 95, 75, 50)  # None = PNG


def bar_image(micrograph: np.ndarray, bar_rows: int, *, bg: int, ink: int, border: int, border_level: int,
              sep: int, sep_level: int, logo: bool, font_size: int) -> np.ndarray:
    """An RGB SEM image: the micrograph above a drawn information band of ``bar_rows`` rows."""
    h0, w = micrograph.shape
    grey = np.concatenate([micrograph, np.full((bar_rows, w), bg, np.uint8)])
    im = Image.fromarray(np.repeat(grey[..., None], 3, 2))
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=font_size)
    top = h0 + sep
    draw.text((10, top + 2), "HV 20.00 kV  WD 10.2 mm  mag 5 000 x  det ETD  HFW 41.4 um", fill=(ink,) * 3, font=font)
    draw.text((10, top + 4 + font_size), "spot 3.0  curr 0.40 nA  tilt 0  2019-03-04 12:31", fill=(ink,) * 3, font=font)
    sx, sw = int(w * 0.72), int(w * 0.15)
    draw.rectangle((sx, top + bar_rows // 2, sx + sw, top + bar_rows // 2 + max(2, bar_rows // 10)), fill=(ink,) * 3)
    draw.text((sx + sw // 3, top + 2), "20 um", fill=(ink,) * 3, font=font)
    if logo:
        draw.rectangle((w - 60, top + 4, w - 20, top + bar_rows - 8), fill=(200, 30, 30))
    if sep:
        draw.rectangle((0, h0, w, h0 + sep - 1), fill=(sep_level,) * 3)
    if border:
        draw.rectangle((0, h0 + bar_rows - border, w, h0 + bar_rows - 1), fill=(border_level,) * 3)
    return np.asarray(im)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"))


def grey(rgb: np.ndarray) -> np.ndarray:
    return to_gray8(rgb).pixels


def resized(a: np.ndarray, h: int, w: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((w, h), Image.BICUBIC))


def sources() -> tuple[list[np.ndarray], list[np.ndarray]]:
    uhcs = [read_image(p).pixels for p in sorted(UHCS.glob("*.tif"))] if UHCS.is_dir() else []
    synthetic = [im for im, _, _ in synthesize(count=6, resolution=512, specimens=3, seed=0)]
    return uhcs, synthetic


def bar_cases(uhcs: list[np.ndarray], synthetic: list[np.ndarray]) -> dict:
    fails, n, t_detect = [], 0, 0.0
    for h, w, rows in GEOMETRIES:
        for style, (bg, ink, frame_level, sep_level) in STYLES.items():
            for border in (0, 1, 2, 3):
                for sep in (0, 1, 2):
                    for quality in QUALITIES:
                        pool = uhcs if (uhcs and n % 3) else synthetic
                        micro = resized(pool[n % len(pool)], h - rows, w)
                        rgb = bar_image(micro, rows, bg=bg, ink=ink, border=border, border_level=frame_level,
                                        sep=sep, sep_level=sep_level, logo=bool(n % 2),
                                        font_size=max(8, rows // 3 - n % 3))
                        g = grey(jpeg(rgb, quality) if quality else rgb)
                        t0 = time.perf_counter()
                        found = preprocess.find_databar(g).rows
                        t_detect += time.perf_counter() - t0
                        n += 1
                        if found != rows:
                            fails.append({"geometry": f"{w}x{h}", "bar_rows": rows, "style": style, "frame_rows": border,
                                          "separator_rows": sep, "jpeg_quality": quality, "rows_cut": found})
    return {"cases": n, "wrong": len(fails), "ms_per_image": 1000 * t_detect / n,
            "wrong_by_quality": dict(Counter(str(f["jpeg_quality"]) for f in fails)),
            "wrong_by_style": dict(Counter(f["style"] for f in fails)), "failures": fails}


def no_bar_cases(images: list[np.ndarray]) -> dict:
    rng = np.random.default_rng(0)
    cut: list[dict] = []
    n = 0
    for k, a in enumerate(images):
        for variant in ("raw", "jpeg50", "jpeg30", "frame", "darkbottom", "shadow", "overexposed", "zeropad"):
            b = a.copy()
            if variant in ("jpeg50", "jpeg30"):
                b = grey(jpeg(np.repeat(a[..., None], 3, 2), int(variant[4:])))
            elif variant == "frame":
                b[:2] = 0; b[-2:] = 0; b[:, :2] = 0; b[:, -2:] = 0
            elif variant == "darkbottom":
                b[-b.shape[0] // 5:, : b.shape[1] // 2] = 0
            elif variant == "shadow":
                ramp = np.linspace(1, 0.15, b.shape[0] // 3)[:, None]
                noise = rng.normal(0, 3, (len(ramp), b.shape[1]))
                b[-len(ramp):] = np.clip(b[-len(ramp):] * ramp + noise, 0, 255).astype(np.uint8)
            elif variant == "overexposed":
                b = np.clip(b.astype(int) * 2, 0, 255).astype(np.uint8)
            elif variant == "zeropad":
                ramp = np.linspace(1, 0, b.shape[0] // 3)[:, None]
                b[-len(ramp):] = (b[-len(ramp):] * ramp).astype(np.uint8)
            rows = preprocess.find_databar(b).rows
            n += 1
            if rows:
                cut.append({"image": k, "variant": variant, "rows_cut": rows})
    return {"cases": n, "cut": len(cut), "cut_by_variant": dict(Counter(c["variant"] for c in cut)), "cuts": cut}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    uhcs, synthetic = sources()
    t0 = time.perf_counter()
    result = {"benchmark": "databar_detection", "uhcs_images": len(uhcs), "synthetic_images": len(synthetic),
              "bars": bar_cases(uhcs, synthetic), "no_bar": no_bar_cases(uhcs + synthetic),
              "seconds": time.perf_counter() - t0, "machine": platform.platform()}
    bars, none = result["bars"], result["no_bar"]
    print(f"bars: {bars['wrong']} of {bars['cases']} cut wrongly ({bars['ms_per_image']:.1f} ms/image); "
          f"by JPEG quality {bars['wrong_by_quality']}, by style {bars['wrong_by_style']}")
    print(f"no bar: {none['cut']} of {none['cases']} cut; by variant {none['cut_by_variant']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
