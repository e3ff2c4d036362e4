"""Fig. 5 of the SEM study: a slerp sequence between two generated samples, as a figure and a video.

``python analysis/interpolation.py --tracking-uri URI --experiment NAME --out DIR [--run-id ID]
[--seeds A,B] [--frames N] [--fps F] [--space z|w]``

Needs torch and a trial that logged a generator checkpoint as the artifact
``checkpoints/best.pt`` (else ``checkpoints/final.pt``; schema.ARTIFACT_CHECKPOINT_BEST/FINAL; a
``.pt`` file inside a ``checkpoints/best/`` or ``checkpoints/final/`` folder also counts) in
microtune's GAN checkpoint format (``microtune.gan.checkpoint.load_generator``). Default trial:
the one with the lowest best FID. Writes ``interpolation.png/.pdf`` (sample 0, four evenly spaced
intermediate images, sample 1, as the study's Fig. 5), ``interpolation.mp4`` (every frame, via
``microtune.gan.generate.write_interpolation``, which also keeps the frames as PNG files), and
``interpolation.md`` naming the trial, checkpoint and seeds.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import ConnectionPatch
import numpy as np

from analysis import common
from analysis.loader import StudyData, best_per_trial, load_study
from microtune.errors import MicrotuneError
from microtune.tracking import mlflow_io, schema

DESCRIPTION = "Spherical interpolation between two generated samples of a trial's checkpoint (Fig. 5)."


def choose_run(study: StudyData, run_id: str | None) -> tuple[str, float]:
    """The requested trial, or the one with the lowest best FID; returns (run id, its best FID)."""
    fid = study.metric(schema.FID)
    best = best_per_trial(fid, schema.FID) if not fid.empty else None
    if run_id is not None:
        if run_id not in set(study.trials["run_id"]):
            raise MicrotuneError(f"run {run_id} is not a successful trial of {study.experiment!r}.")
        value = best.set_index("run_id")["best"].get(run_id, np.nan) if best is not None else np.nan
        return run_id, float(value)
    if best is None or best.empty:
        raise MicrotuneError(f"experiment {study.experiment!r} has no {schema.FID!r} metric to pick a trial by; give --run-id.")
    row = best.sort_values("best").iloc[0]
    return row["run_id"], float(row["best"])


def checkpoint_artifact(logged: list[str]) -> str | None:
    """The best checkpoint among a run's artifacts under ``checkpoints/``, else the final one.

    Accepts the schema's file names (``checkpoints/best.pt``, ``checkpoints/final.pt``) and files
    logged into folders of those names (``checkpoints/best/network-nimg….pt``; the last by name).
    """
    for exact in (schema.ARTIFACT_CHECKPOINT_BEST, schema.ARTIFACT_CHECKPOINT_FINAL):
        folder = exact[: -len(".pt")] + "/"
        if exact in logged:
            return exact
        inside = sorted(f for f in logged if f.startswith(folder) and f.endswith(".pt"))
        if inside:
            return inside[-1]
    return None


def fetch_checkpoint(study: StudyData, run_id: str, into: Path) -> tuple[Path, str]:
    """Download the trial's best (else final) checkpoint; returns (local path, artifact path)."""
    artifact = checkpoint_artifact(mlflow_io.list_artifacts(study.tracking_uri, run_id, "checkpoints"))
    if artifact is None:
        raise MicrotuneError(f"run {run_id} logged no generator checkpoint under checkpoints/ "
                             f"({schema.ARTIFACT_CHECKPOINT_BEST} or {schema.ARTIFACT_CHECKPOINT_FINAL}).")
    return mlflow_io.download_artifact(study.tracking_uri, run_id, artifact, into), artifact


def figure(frames: np.ndarray, out: Path, title: str) -> list[Path]:
    """Sample 0, four intermediate frames and sample 1 in a row, with the interpolation parameter t."""
    picks = np.linspace(0, len(frames) - 1, 6).round().astype(int)
    common.style()
    fig, axes = plt.subplots(1, 6, figsize=(13, 2.9), layout="constrained")
    fig.get_layout_engine().set(wspace=0.12)  # room for the arrows between images
    for k, (ax, index) in enumerate(zip(axes, picks)):
        image = frames[index]
        ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image, cmap="gray", vmin=0, vmax=255)
        ax.axis("off")
        t = index / (len(frames) - 1)
        name = "sample 0" if k == 0 else ("sample 1" if k == 5 else f"frame {index}")
        ax.set_title(f"{name}\nt = {t:.2f}", fontsize=9)
    for left, right in zip(axes[:-1], axes[1:]):  # figure-level arrows: drawn above the images
        fig.add_artist(ConnectionPatch(xyA=(1.0, 0.5), coordsA=left.transAxes, xyB=(0.0, 0.5), coordsB=right.transAxes,
                                       arrowstyle="-|>", mutation_scale=14, lw=1.5, color="black"))
    fig.suptitle(title)
    return common.save_figure(fig, out, "interpolation")


def make(study: StudyData, out: Path, *, run_id=None, seeds=(0, 1), frames=120, fps=24.0, space="z") -> list[Path]:
    """Generate the sequence from the chosen trial's checkpoint and write figure, video and note."""
    try:
        from microtune.gan.checkpoint import load_generator
        from microtune.gan.generate import interpolation_frames, write_interpolation
    except ImportError as exc:
        raise MicrotuneError(f"interpolation needs torch and microtune.gan ({exc}).") from exc
    run_id, best_fid = choose_run(study, run_id)
    name = dict(zip(study.trials["run_id"], study.trials["run_name"])).get(run_id, run_id)
    with tempfile.TemporaryDirectory() as tmp:
        local, artifact = fetch_checkpoint(study, run_id, Path(tmp))
        G, _options = load_generator(local)
    images = interpolation_frames(G, seeds[0], seeds[1], frames, space=space)
    caption = f" (best FID {common.fmt(best_fid, 3)})" if not np.isnan(best_fid) else ""
    paths = figure(images, out, study.title(f"Slerp in {space} between seeds {seeds[0]} and {seeds[1]}, trial {name}{caption}"))
    try:
        written = write_interpolation(images, out / "interpolation.mp4", fps=fps)
        paths += [written["video"]]
    except Exception as exc:  # noqa: BLE001 - no ffmpeg: the figure still stands
        warnings.warn(f"the video was not written ({type(exc).__name__}: {exc}).", UserWarning, stacklevel=2)
    note = out / "interpolation.md"
    note.write_text(f"## Interpolation ({study.experiment})\n\nTrial `{name}` ({run_id}), checkpoint `{artifact}`, "
                    f"seeds {seeds[0]} → {seeds[1]}, {frames} frames in {space} space at {fps:g} fps.\n")
    return paths + [note]


def main(argv=None) -> int:
    def extra(p):
        p.add_argument("--run-id", default=None, help="trial run id (default: lowest best FID)")
        p.add_argument("--seeds", default="0,1", help="two latent seeds A,B (default 0,1)")
        p.add_argument("--frames", type=int, default=120, help="frames from sample 0 to sample 1 (default 120)")
        p.add_argument("--fps", type=float, default=24.0, help="video frame rate (default 24)")
        p.add_argument("--space", choices=("z", "w"), default="z", help="interpolate latents z or styles w")

    def body(args):
        try:
            seeds = tuple(int(s) for s in args.seeds.split(","))
        except ValueError:
            seeds = ()
        if len(seeds) != 2:
            raise MicrotuneError(f"--seeds must be two integers A,B, got {args.seeds!r}.")
        study = load_study(args.tracking_uri, args.experiment, detector=args.detector, launch=args.launch)
        return make(study, args.out, run_id=args.run_id, seeds=seeds, frames=args.frames, fps=args.fps, space=args.space)

    return common.run(body, DESCRIPTION, argv, extra)


if __name__ == "__main__":
    sys.exit(main())
