"""Do FID, KID, precision and recall see graded disturbances of real micrographs, per detector?

The standard check of a feature-space metric (Heusel et al. 2017, "GANs trained by a two time-scale
update rule...", NeurIPS, appendix: FID against increasing noise, blur, swirl, salt-and-pepper,
rectangles and mixing with another dataset): take real images, disturb them by a graded amount and
ask whether the metric grows monotonically with the amount.  Here, for micrographs and for the
detectors usable offline (no downloads on this machine):

* real sets: synthetic dual-phase micrographs (:mod:`microtune.data.synth`) and, where
  ``--uhcs`` exists, the UHCS micrographs cut into tiles by ``microtune data prepare --crop tiles``
  (in a temporary folder);
* each real pool is split into two disjoint halves: the reference ``A`` (the "clean set", the
  training set of a GAN) and the test half ``B``.  Level 0 of every disturbance is ``B`` itself, so
  its value is the real-vs-real floor; levels 1..5 disturb ``B``:

  ``noise``        additive Gaussian noise, sigma in grey levels;
  ``blur``         Gaussian blur, sigma in pixels;
  ``contrast``     contrast scaled by (1 - 0.1 l) about mid-grey and brightness +8 l grey levels;
  ``phase``        (synthetic only) the same specimens and fields of view re-rendered with the
                   martensite fraction shifted down by d (range 37-100 % becomes 37-d to 100-d %);
  ``collapse``     mode collapse: k distinct images of ``B`` repeated to fill the set;
  ``memorise``     memorisation: a fraction p of ``B`` replaced by exact copies of images of ``A``;
  ``warp``         smooth random elastic displacement (Simard et al. 2003), RMS amplitude in px,
                   resampled through the same 4x up/down path at every level (level 0 included),
                   so the interpolation blur is common to all levels (a plain bilinear warp adds
                   blur that the detectors see before any geometry);

* for each detector: FID (:func:`microtune.metrics.fid.frechet_distance`), KID
  (:func:`microtune.metrics.kid.kernel_inception_distance`) and improved precision/recall, k = 3
  (:func:`microtune.metrics.precision_recall.precision_recall`) of every set against ``A``, the
  reference statistics coming from :func:`microtune.metrics.evaluator.compute_real_statistics`;
  the Spearman rank correlation of each metric with the level; and FID's and KID's bias against
  the number of generated images (``A`` against random subsets of ``B`` of growing size: FID of
  two samples of one distribution is biased upwards by about c/n, Chong & Forsyth 2020, "Effectively
  unbiased FID and Inception Score and where to find them", CVPR; KID's estimator is unbiased,
  Bińkowski et al. 2018).

Detectors (every number is labelled with the detector's tag):

* ``random-seed:N``: microtune's offline random conv net (:func:`build_random`);
* ``inception-v3-tf-random-weights-seed:N`` / ``vgg16-fc2-random-weights-seed:N``: the standard
  architectures (input resize and normalisation included) with seeded random, UNTRAINED weights
  (:func:`microtune.metrics.detectors.build_random_weights`).  They are not the published FID/P&R
  detectors and their values are not comparable with published numbers;
* ``texture-vgg19-seed:N``: a detector TRAINED HERE, offline
  (:func:`microtune.metrics.detectors.build_texture_vgg`): the segmentation source VGG-19 of
  :mod:`microtune.seg.source` trained on procedural micrograph-like textures, spatial mean/std of
  its conv units; its tag carries the sha256 of its weights.

``collapse`` and ``memorise`` reuse the features of ``B`` and ``A`` (their images are copies), so
they cost no detector time.  A GAN that memorises its training set is expected to LOWER FID and
KID against that set (the copies are real images): a distribution metric cannot see memorisation,
which needs a nearest-neighbour test against the training images; its row is reported, not judged.

Usage::

    python benchmarks/metric_sensitivity.py --smoke          # 20-30 s: 32 px, 24+24 images, random-seed:0
    # the headline table: random-seed:0..2 and texture-vgg19-seed:0 on both data sets, 200+200 images
    # (12 min on 2 shared cores at load 2-6)
    python benchmarks/metric_sensitivity.py --quick --json benchmarks/results/metric_sensitivity.json
    # the Inception/VGG random-weight architectures (1-2 images/s here), 32+32 synthetic images
    python benchmarks/metric_sensitivity.py --quick --datasets synth --bias-repeats 2 \
        --detectors inception-v3-tf-random-weights-seed:0,vgg16-fc2-random-weights-seed:0,\
    inception-v3-tf-random-weights-seed:1,vgg16-fc2-random-weights-seed:1 \
        --json benchmarks/results/metric_sensitivity_arch.json
    # full: all detectors in one process (the two runs above, with 100 KID subsets)
    python benchmarks/metric_sensitivity.py --json benchmarks/results/metric_sensitivity_full.json
    # merged Markdown tables and figures of finished runs
    python benchmarks/metric_sensitivity.py --table benchmarks/results/metric_sensitivity.json \
        benchmarks/results/metric_sensitivity_arch.json --png benchmarks/results/metric_sensitivity.png

The JSON is rewritten (atomically) after every (dataset, detector), so a long run leaves its
finished parts.  ``uptime`` (machine load) is recorded beside every timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# One BLAS thread for numpy's eigh (FID) unless the caller says otherwise: on this shared 2-core
# machine OpenBLAS at 2 threads ran a 2048x2048 eigh 4x SLOWER than at 1 (10.0 s vs 2.7 s, load ~6).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from microtune.data.synth import _stream, draw_specimen, render_micrograph  # noqa: E402
from microtune.io import atomic_write_json  # noqa: E402
from microtune.metrics.detectors import Detector, build_random, build_random_weights, build_texture_vgg  # noqa: E402
from microtune.metrics.evaluator import compute_real_statistics  # noqa: E402
from microtune.metrics.fid import feature_statistics, frechet_distance  # noqa: E402
from microtune.metrics.kid import kernel_inception_distance  # noqa: E402
from microtune.metrics.precision_recall import precision_recall  # noqa: E402

UHCS_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "uhcs" / "images"
RANDOM_CONV = ("random-seed:0", "random-seed:1", "random-seed:2")
TRAINED = ("texture-vgg19-seed:0",)
RANDOM_ARCH = ("inception-v3-tf-random-weights-seed:0", "inception-v3-tf-random-weights-seed:1",
               "vgg16-fc2-random-weights-seed:0", "vgg16-fc2-random-weights-seed:1")

#: Levels of each disturbance; index 0 is the undisturbed test half (the real-vs-real floor).
LEVELS = {
    "noise": [0, 2, 4, 8, 16, 32],                # Gaussian sigma, grey levels
    "blur": [0, 0.5, 1.0, 1.5, 2.0, 3.0],         # Gaussian sigma, pixels (at the set's resolution)
    "contrast": [0, 1, 2, 3, 4, 5],               # l: contrast x(1 - 0.1 l), brightness +8 l
    "phase": [0, 0.05, 0.10, 0.15, 0.25, 0.35],   # martensite fraction shifted down by d
    "collapse": [0, 1, 2, 3, 4, 5],               # index into k = (n, 64, 16, 4, 2, 1)
    "memorise": [0, 0.2, 0.4, 0.6, 0.8, 1.0],     # fraction of exact copies of reference images
    "warp": [0, 0.5, 1.0, 2.0, 3.0, 4.0],         # RMS elastic displacement, pixels (level 0 resampled too)
}
COLLAPSE_K = (None, 64, 16, 4, 2, 1)  # None: all images distinct
LEVEL_UNITS = {"noise": "sigma grey levels", "blur": "sigma px", "contrast": "l", "phase": "fraction shift",
               "collapse": "index into k = n, 64, 16, 4, 2, 1", "memorise": "copied fraction", "warp": "RMS px"}
METRICS = ("fid", "kid", "precision", "recall")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# ---------------------------------------------------------------- data
@dataclasses.dataclass
class RealSet:
    name: str
    ref: np.ndarray                      # (n_ref, H, W) uint8, the clean reference A
    test: np.ndarray                     # (n_test, H, W) uint8, the disjoint test half B
    phase: dict[float, np.ndarray] | None  # synthetic only: B re-rendered at shifted fractions
    source: str


def synth_set(n_ref: int, n_test: int, resolution: int, specimens: int, seed: int,
              phase_levels: list[float]) -> RealSet:
    """Pool of n_ref + n_test synthetic micrographs (image i from specimen i % specimens), as
    :func:`microtune.data.synth.synthesize` makes them, plus B re-rendered with the martensite
    fraction shifted down by each level (same specimen parameters and per-image random streams)."""
    params = [draw_specimen(_stream(seed, 0, s), resolution=resolution, inclusions=False) for s in range(specimens)]

    def render(i: int, shift: float) -> np.ndarray:
        p = params[i % specimens]
        if shift:
            p = dataclasses.replace(p, martensite_fraction=p.martensite_fraction - shift)
        return render_micrograph(p, _stream(seed, 1, i), resolution=resolution)[0]

    ref = np.stack([render(i, 0.0) for i in range(n_ref)])
    idx = range(n_ref, n_ref + n_test)
    test = np.stack([render(i, 0.0) for i in idx])
    phase = {d: (test if d == 0 else np.stack([render(i, d) for i in idx])) for d in phase_levels}
    return RealSet("synth", ref, test, phase,
                   f"microtune.data.synth: {n_ref + n_test} images {resolution}px, {specimens} specimens, seed {seed}")


def uhcs_set(src: Path, n_ref: int, n_test: int, resolution: int, seed: int, workdir: Path) -> RealSet:
    """UHCS tiles from ``microtune data prepare SRC --resolution R --crop tiles --reference auto``,
    shuffled (seeded) and split into disjoint halves."""
    from microtune.data.dataset import Dataset

    out = workdir / f"uhcs{resolution}"
    cmd = [sys.executable, "-m", "microtune", "data", "prepare", str(src), str(out), "--resolution", str(resolution),
           "--crop", "tiles", "--reference", "auto", "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"microtune data prepare failed on {src}: {done.stderr.strip() or done.stdout.strip()}")
    images = np.asarray(Dataset.open(out).images)
    if images.ndim == 4:
        images = images[:, 0]
    if images.shape[0] < n_ref + n_test:
        n_ref = n_test = images.shape[0] // 2
        print(f"uhcs: only {images.shape[0]} tiles; using halves of {n_ref}", flush=True)
    order = np.random.default_rng(seed).permutation(images.shape[0])
    return RealSet("uhcs", images[order[:n_ref]], images[order[n_ref:n_ref + n_test]], None,
                   f"{src}: {images.shape[0]} tiles {resolution}px (data prepare --crop tiles --reference auto)")


# ---------------------------------------------------------------- disturbances
def add_noise(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(np.rint(x + rng.normal(0.0, sigma, x.shape)), 0, 255).astype(np.uint8)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return x
    out = ndi.gaussian_filter(x.astype(np.float32), sigma=(0, sigma, sigma), mode="reflect")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def contrast(x: np.ndarray, level: float) -> np.ndarray:
    out = 128.0 + (x.astype(np.float32) - 128.0) * (1.0 - 0.1 * level) + 8.0 * level
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def elastic(x: np.ndarray, rms_px: float, rng: np.random.Generator, up: int = 4) -> np.ndarray:
    """Smooth random displacement (Simard et al. 2003): white noise filtered with sigma = side/16,
    scaled so the RMS displacement is ``rms_px`` (pixels of ``x``).

    Resampling a grid blurs it, so a bilinear warp at the image's own resolution would add blur
    (which the detectors see at once) to the geometry.  Every level, level 0 included, therefore
    goes through the same path: cubic upsampling by ``up``, bilinear warp there, ``up × up`` block
    mean back down; only the displacement differs between levels.
    """
    n, h, w = x.shape
    H, W = h * up, w * up
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = np.empty_like(x)
    for i in range(n):
        big = ndi.zoom(x[i].astype(np.float32), up, order=3, mode="reflect", grid_mode=True)
        if rms_px:
            dy, dx = (ndi.gaussian_filter(rng.standard_normal((h, w)), h / 16.0, mode="wrap") for _ in range(2))
            scale = up * rms_px / max(np.sqrt(np.mean(dy**2 + dx**2)), 1e-12)
            dy, dx = (ndi.zoom(d, up, order=1, mode="grid-wrap", grid_mode=True) for d in (dy, dx))
            big = ndi.map_coordinates(big, np.stack([yy + scale * dy, xx + scale * dx]), order=1, mode="reflect")
        small = big.reshape(h, up, w, up).mean(axis=(1, 3))
        out[i] = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return out


def disturbed_images(real: RealSet, name: str, level, seed: int) -> np.ndarray | None:
    """Images of one disturbance level (``None`` for collapse/memorise, which reuse features)."""
    rng = np.random.default_rng([seed, list(LEVELS).index(name), LEVELS[name].index(level)])
    if name == "noise":
        return add_noise(real.test, level, rng) if level else real.test
    if name == "blur":
        return blur(real.test, level)
    if name == "contrast":
        return contrast(real.test, level) if level else real.test
    if name == "phase":
        return real.phase[level]
    if name == "warp":
        return elastic(real.test, level, rng)
    return None


def reused_features(name: str, level, ref_feats: np.ndarray, test_feats: np.ndarray) -> np.ndarray:
    n = test_feats.shape[0]
    if name == "collapse":
        k = COLLAPSE_K[level] or n
        return np.resize(test_feats[: min(k, n)], test_feats.shape)  # k distinct images, cycled to n
    # memorise: the first round(p n) images are exact copies of distinct reference images
    m = min(int(round(level * n)), ref_feats.shape[0])
    return np.concatenate([ref_feats[:m], test_feats[m:]])


# ---------------------------------------------------------------- metrics
_TRAINED: dict[str, Detector] = {}


def make_detector(tag: str) -> Detector:
    if tag.startswith("random-seed:"):
        return build_random(int(tag.split(":")[1]))
    if tag.startswith("texture-vgg19-seed:"):  # trained once per process (about a minute)
        if tag not in _TRAINED:
            _TRAINED[tag] = build_texture_vgg(tag, log=lambda msg: print("  " + msg, flush=True))
        _TRAINED[tag].images_seen = 0
        return _TRAINED[tag]
    return build_random_weights(tag)


def features(det: Detector, images: np.ndarray, batch_size: int) -> np.ndarray:
    out = [det.features(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size]))[:, None]).cpu().numpy()
           for i in range(0, images.shape[0], batch_size)]
    return np.concatenate(out).astype(np.float32)


def pr_only(tag: str) -> bool:
    """VGG-16 fc2 serves precision/recall only (its role in the study, :data:`ROLE_DETECTOR`); its
    4096-d FID would cost two 4096x4096 eigendecompositions per value, minutes each on this CPU."""
    return tag.startswith("vgg16-fc2")


def metrics(ref_stats, ref_feats: np.ndarray, gen: np.ndarray, kid_subsets: int, seed: int,
            with_fid: bool = True) -> dict[str, float | None]:
    fid = kid = None
    if with_fid:
        mu, cov = feature_statistics(gen)
        fid = frechet_distance(ref_stats.mean, ref_stats.cov, mu, cov)
        kid = kernel_inception_distance(ref_feats, gen, num_subsets=kid_subsets, max_subset_size=1000, seed=seed)[0]
    prec, rec = precision_recall(ref_feats, gen, k=3)
    return {"fid": fid, "kid": kid, "precision": prec, "recall": rec}


def spearman(levels, values) -> float | None:
    if any(v is None for v in values):
        return None
    if np.ptp(values) == 0:
        return 0.0
    return float(spearmanr(np.arange(len(levels)), values)[0])  # ranks of the levels = their order


def bias_curve(ref_stats, ref_feats: np.ndarray, test_feats: np.ndarray, sizes: list[int], repeats: int,
               kid_subsets: int, seed: int) -> dict:
    """FID and KID of the reference against random subsets of the clean test half, by subset size;
    FID fitted as a + c/n (least squares)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in sizes:
        fids, kids = [], []
        for _ in range(repeats):
            sub = test_feats[rng.choice(test_feats.shape[0], n, replace=False)]
            mu, cov = feature_statistics(sub)
            fids.append(frechet_distance(ref_stats.mean, ref_stats.cov, mu, cov))
            kids.append(kernel_inception_distance(ref_feats, sub, num_subsets=kid_subsets, max_subset_size=1000,
                                                  seed=seed)[0])
        rows.append({"n": n, "fid_mean": float(np.mean(fids)), "fid_std": float(np.std(fids)),
                     "kid_mean": float(np.mean(kids)), "kid_std": float(np.std(kids))})
    inv = np.array([1.0 / r["n"] for r in rows])
    fid = np.array([r["fid_mean"] for r in rows])
    c, a = np.polyfit(inv, fid, 1)
    kid = np.array([r["kid_mean"] for r in rows])
    return {"rows": rows, "fid_fit_a_plus_c_over_n": {"a_fid_infinity": float(a), "c": float(c)},
            "fid_ratio_smallest_to_largest_n": float(fid[0] / fid[-1]) if fid[-1] > 0 else None,
            "kid_spearman_with_n": spearman(sizes, kid), "fid_spearman_with_n": spearman(sizes, fid)}


def run_detector(real: RealSet, tag: str, args, disturbed: dict) -> dict:
    started, load_before = time.monotonic(), uptime()
    det = make_detector(tag)
    with_fid = not pr_only(tag)
    ref_stats = compute_real_statistics(real.ref, det, with_moments=with_fid, feature_cap=real.ref.shape[0],
                                        batch_size=args.batch_size, seed=args.seed)
    ref_feats = ref_stats.features
    test_feats = features(det, real.test, args.batch_size)
    result = {"tag": det.tag, "weights_sha256": det.weights_sha256, "feature_dim": det.feature_dim, "disturbances": {}}
    for name, levels in LEVELS.items():
        if name == "phase" and real.phase is None:
            continue
        values = {m: [] for m in METRICS}
        for level in levels:
            imgs = disturbed[(name, level)]
            if imgs is None:
                gen = reused_features(name, level, ref_feats, test_feats)
            elif imgs is real.test:
                gen = test_feats
            else:
                gen = features(det, imgs, args.batch_size)
            for m, v in metrics(ref_stats, ref_feats, gen, args.kid_subsets, args.seed, with_fid).items():
                values[m].append(None if v is None else float(v))
        result["disturbances"][name] = {"levels": [float(x) for x in levels], **values,
                                        "spearman": {m: spearman(levels, values[m]) for m in METRICS}}
        print(f"  {real.name} {tag} {name}: " + " ".join(
            f"{m} rho={result['disturbances'][name]['spearman'][m]}" for m in METRICS), flush=True)
    floor = result["disturbances"]["noise"]
    result["floor"] = {m: floor[m][0] for m in METRICS}
    n_test = real.test.shape[0]
    sizes = [n for n in args.bias_sizes if n <= n_test]
    if len(sizes) < 2:
        sizes = sorted({max(2, n_test // 4), max(3, n_test // 2), n_test})
    result["bias"] = None if not with_fid else bias_curve(ref_stats, ref_feats, test_feats, sizes, args.bias_repeats,
                                                          args.kid_subsets,
                                args.seed)
    result["images_through_detector"] = det.images_seen
    result["seconds"] = round(time.monotonic() - started, 1)
    result["uptime_before"], result["uptime_after"] = load_before, uptime()
    return result


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, payload, indent=1)  # 0666 minus the umask: results are for everyone


# ---------------------------------------------------------------- figure
def figure(payload: dict, path: Path, ds_name: str | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds_name = ds_name or ("synth" if "synth" in payload["datasets"] else next(iter(payload["datasets"])))
    dets = payload["datasets"][ds_name]["detectors"]
    names = list(LEVELS)
    fig, axes = plt.subplots(3, len(names), figsize=(2.0 * len(names), 5.6), squeeze=False)
    for j, name in enumerate(names):
        for tag, res in dets.items():
            d = res["disturbances"].get(name)
            if d is None:
                continue
            x = np.arange(len(d["levels"]))
            fid = np.array([np.nan if v is None else v for v in d["fid"]], dtype=float)
            top = np.nanmax(fid) if np.isfinite(fid).any() else 1.0
            axes[0, j].plot(x, fid / max(top, 1e-12), marker=".", lw=1, label=res.get("tag", tag)[:40])
            axes[1, j].plot(x, d["precision"], marker=".", lw=1)
            axes[2, j].plot(x, d["recall"], marker=".", lw=1)
        axes[0, j].set_title(name, fontsize=9)
        axes[2, j].set_xlabel("level", fontsize=8)
    for i, lab in enumerate(("FID / max", "precision", "recall")):
        axes[i, 0].set_ylabel(lab, fontsize=9)
    for ax in axes.ravel():
        ax.tick_params(labelsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7, frameon=False)
    fig.suptitle(f"metric vs disturbance level ({ds_name}; level 0 = disjoint real half)", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def markdown_table(payload: dict) -> str:
    """Spearman rho of FID / KID / precision / recall with the level, per dataset, detector and
    disturbance; then the real-vs-real floor and FID's and KID's dependence on n."""
    names = list(LEVELS)
    lines = ["| data | detector | n | " + " | ".join(names) + " |", "|---" * (len(names) + 3) + "|"]
    floor = ["| data | detector | FID floor (n) | KID floor | P / R floor | FID fit a + c/n: a, c "
             "| FID(n_min)/FID(n_max) | KID mean over n |", "|---" * 8 + "|"]
    for ds, entry in payload["datasets"].items():
        for tag, res in entry.get("detectors", {}).items():
            cells = []
            for name in names:
                d = res["disturbances"].get(name)
                cells.append("n/a" if d is None else
                             " / ".join("–" if d["spearman"][m] is None else f"{d['spearman'][m]:+.2f}"
                                        for m in METRICS))
            tag = res.get("tag", tag)
            lines.append(f"| {ds} | {tag} | {res['n_test']} | " + " | ".join(cells) + " |")
            b, f = res["bias"], res["floor"]
            if b is None:  # precision/recall-only detector
                floor.append(f"| {ds} | {res.get('tag', tag)} | – | – | {f['precision']:.2f} / {f['recall']:.2f} "
                             f"| – | – | – |")
                continue
            rows, fit = b["rows"], b["fid_fit_a_plus_c_over_n"]
            ratio = b["fid_ratio_smallest_to_largest_n"] or float("nan")
            kid = ", ".join(f"{r['kid_mean']:+.1e}" for r in rows)
            floor.append(f"| {ds} | {res.get('tag', tag)} | {f['fid']:.3g} ({res['n_test']}) | {f['kid']:+.1e} | "
                         f"{f['precision']:.2f} / {f['recall']:.2f} | {fit['a_fid_infinity']:.3g}, {fit['c']:.3g} | "
                         f"{ratio:.2f} (n {rows[0]['n']}→{rows[-1]['n']}) | "
                         f"{kid} |")
    onset = ["| data | detector | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for ds, entry in payload["datasets"].items():
        for tag, res in entry.get("detectors", {}).items():
            cells = []
            for name in names:
                d = res["disturbances"].get(name)
                if d is None or d["fid"][0] is None:
                    cells.append("n/a" if d is None else "–")
                    continue
                above = [lv for lv, v in zip(d["levels"], d["fid"]) if v > 2 * d["fid"][0]]
                cells.append(f"{above[0]:g}" if above else "never")
            onset.append(f"| {ds} | {res.get('tag', tag)} | " + " | ".join(cells) + " |")
    return ("Spearman rho with the level, FID / KID / precision / recall:\n\n" + "\n".join(lines)
            + "\n\nSmallest level at which FID exceeds twice the real-vs-real floor (units: "
            + "; ".join(f"{k} {v}" for k, v in LEVEL_UNITS.items()) + "):\n\n" + "\n".join(onset)
            + "\n\nReal-vs-real floor (disjoint halves) and sample-size bias:\n\n" + "\n".join(floor) + "\n")


# ---------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--smoke", action="store_true", help="seconds: 32px, 24+24 synthetic images, random-seed:0")
    p.add_argument("--quick", action="store_true",
                   help="random-seed:0..2 and texture-vgg19-seed:0 on 200+200 images per dataset, 50 KID subsets "
                        "(the headline table; no Inception/VGG random-weight detectors)")
    p.add_argument("--datasets", default="synth,uhcs", help="comma list of synth, uhcs (default both)")
    p.add_argument("--uhcs", type=Path, default=None,
                   help=f"UHCS micrographs folder (default {UHCS_DEFAULT}, skipped when absent; a folder given here "
                        f"must exist)")
    p.add_argument("--resolution", type=int, default=64, help="image side in pixels (a power of two; default 64)")
    p.add_argument("--n-ref", type=int, default=None, help="reference (clean) images; default 200")
    p.add_argument("--n-test", type=int, default=None, help="images per disturbed set; default 200")
    p.add_argument("--n-arch", type=int, default=32,
                   help="reference and test images for the Inception/VGG random-weight detectors (slow on CPU)")
    p.add_argument("--arch-datasets", default="synth",
                   help="datasets the Inception/VGG random-weight detectors run on (default synth)")
    p.add_argument("--detectors", default=None,
                   help="comma list of tags; default random-seed:0..2, texture-vgg19-seed:0 and the Inception/VGG "
                        "random-weight detectors at seeds 0,1 (quick: no Inception/VGG)")
    p.add_argument("--specimens", type=int, default=20, help="synthetic specimens (default 20)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100; quick 50)")
    p.add_argument("--bias-sizes", default="25,50,100,200,400", help="subset sizes for the FID bias curve")
    p.add_argument("--bias-repeats", type=int, default=5, help="random subsets per size in the bias curve")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None, help="write results here (atomically, after each detector)")
    p.add_argument("--png", type=Path, default=None, help="figure (default: the --json path with .png)")
    p.add_argument("--table", type=Path, nargs="+", default=None, metavar="JSON",
                   help="print the Markdown tables of finished result files (merged; with --png also redraw the "
                        "figures) and exit")
    args = p.parse_args(argv)
    if args.smoke:
        args.resolution, args.datasets, args.specimens = 32, "synth", 6
        args.n_ref = args.n_ref or 24
        args.n_test = args.n_test or 24
        args.detectors = args.detectors or "random-seed:0"
        args.kid_subsets, args.bias_sizes, args.bias_repeats = 5, "8,16,24", 2
    elif args.quick:
        args.n_ref, args.n_test = args.n_ref or 200, args.n_test or 200
        args.detectors = args.detectors or ",".join(RANDOM_CONV + TRAINED)
        args.kid_subsets = min(args.kid_subsets, 50)
        args.bias_sizes = "25,50,100,200"
    args.n_ref, args.n_test = args.n_ref or 200, args.n_test or 200
    args.detectors = [d.strip() for d in (args.detectors or ",".join(RANDOM_CONV + TRAINED + RANDOM_ARCH)).split(",")
                      if d.strip()]
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    args.arch_datasets = [d.strip() for d in args.arch_datasets.split(",") if d.strip()]
    args.bias_sizes = [int(s) for s in args.bias_sizes.split(",")]
    if args.uhcs is not None and "uhcs" in args.datasets and not args.uhcs.is_dir():
        p.error(f"--uhcs {args.uhcs} is not a folder")
    args.uhcs_explicit, args.uhcs = args.uhcs is not None, args.uhcs or UHCS_DEFAULT
    bad = [d for d in args.datasets if d not in ("synth", "uhcs")]
    if bad:
        p.error(f"--datasets: unknown {bad}; use synth and/or uhcs")
    for tag in args.detectors:
        if not re.fullmatch(r"(random|texture-vgg19)-seed:\d+|(inception-v3-tf|vgg16-fc2)-random-weights-seed:\d+",
                            tag):
            p.error(f"--detectors: {tag!r} is not random-seed:N, texture-vgg19-seed:N, "
                    f"inception-v3-tf-random-weights-seed:N or vgg16-fc2-random-weights-seed:N")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table:
        merged = {"datasets": {}}
        for path in args.table:
            try:
                datasets = json.loads(path.read_text())["datasets"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                print(f"error: {path} is not a metric_sensitivity result file ({exc.__class__.__name__}).",
                      file=sys.stderr)
                return 1
            for ds, entry in datasets.items():
                merged["datasets"].setdefault(ds, {"detectors": {}})["detectors"].update(entry.get("detectors", {}))
        print(markdown_table(merged))
        if args.png:
            for ds in merged["datasets"]:
                figure(merged, args.png if ds == "synth" else args.png.with_name(f"{args.png.stem}_{ds}.png"), ds)
        return 0
    torch.set_num_threads(args.threads)
    payload = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "levels": LEVELS, "collapse_k": ["n" if k is None else k for k in COLLAPSE_K],
               "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": args.threads,
                           "torch": torch.__version__, "uptime_start": uptime()},
               "note": "level 0 of every disturbance is the disjoint clean test half (real-vs-real floor; for warp "
                       "resampled through the same up/down path as the other levels); "
                       "random-weight detectors are untrained and not comparable with published FIDs",
               "datasets": {}}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="metric-sensitivity-") as work:
        for ds in args.datasets:
            t0 = time.monotonic()
            if ds == "synth":
                real = synth_set(args.n_ref, args.n_test, args.resolution, args.specimens, args.seed,
                                 LEVELS["phase"])
            else:
                if not args.uhcs.is_dir():
                    print(f"uhcs: {args.uhcs} not found; skipped", flush=True)
                    payload["datasets"]["uhcs"] = {"skipped": f"{args.uhcs} not found"}
                    continue
                real = uhcs_set(args.uhcs, args.n_ref, args.n_test, args.resolution, args.seed, Path(work))
            disturbed = {(name, lv): disturbed_images(real, name, lv, args.seed)
                         for name, levels in LEVELS.items() for lv in levels
                         if not (name == "phase" and real.phase is None)}
            entry = {"source": real.source, "n_ref": int(real.ref.shape[0]), "n_test": int(real.test.shape[0]),
                     "data_seconds": round(time.monotonic() - t0, 1), "detectors": {}}
            payload["datasets"][ds] = entry
            arch_real = None
            for tag in args.detectors:
                sub, sub_disturbed = real, disturbed
                if "-random-weights-" in tag:
                    if ds not in args.arch_datasets:
                        continue
                    if arch_real is None:  # the first n_arch of each half (same disturbance draws, truncated)
                        n = min(args.n_arch, real.ref.shape[0], real.test.shape[0])
                        arch_real = dataclasses.replace(
                            real, ref=real.ref[:n], test=real.test[:n],
                            phase=None if real.phase is None else {k: v[:n] for k, v in real.phase.items()})
                        arch_disturbed = {k: (arch_real.test if v is real.test else None if v is None else v[:n])
                                          for k, v in disturbed.items()}
                    sub, sub_disturbed = arch_real, arch_disturbed
                print(f"{ds}: {tag} on {sub.ref.shape[0]}+{sub.test.shape[0]} images ({uptime()})", flush=True)
                res = run_detector(sub, tag, args, sub_disturbed)
                res["n_ref"], res["n_test"] = int(sub.ref.shape[0]), int(sub.test.shape[0])
                entry["detectors"][tag] = res
                payload["machine"]["uptime_last"] = uptime()
                payload["total_seconds"] = round(time.monotonic() - started, 1)
                if args.json:
                    write_json(args.json, payload)
                print(f"  done in {res['seconds']}s; floor {res['floor']}",
                      flush=True)
    payload["machine"]["uptime_end"] = uptime()
    payload["total_seconds"] = round(time.monotonic() - started, 1)
    if args.json:
        write_json(args.json, payload)
        png = args.png or args.json.with_suffix(".png")
        for ds, entry in payload["datasets"].items():
            if entry.get("detectors"):
                figure(payload, png if ds == "synth" else png.with_name(f"{png.stem}_{ds}.png"), ds)
        print(f"wrote {args.json} and {png}")
    print(markdown_table(payload))
    print(f"total {payload['total_seconds']}s ({payload['machine']['uptime_end']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
