"""Run every analysis that applies to a study and write an index (Markdown and HTML).

``python analysis/report.py --tracking-uri URI --experiment NAME --out DIR``

The study is read once. What applies: ``augmentations`` when augpipe varies, ``target_rt`` when
r_t varies, ``dataset_size`` when the training-set size varies (with FID; ``augmentations`` is
the fallback figure when no axis varies), ``pareto`` when FID and recall were logged,
``importance`` (fANOVA) when at least three trials vary an axis or a seed, ``samples`` when
trials logged sample grids, ``hptl_tables`` for segmentation studies, and
``compute`` always. ``interpolation.py`` is not run (it needs torch and a checkpoint: run it
alone). Writes the scripts' files plus ``index.md`` and ``index.html`` beside them.
"""

from __future__ import annotations

import html
import sys
import warnings
from pathlib import Path

import pandas as pd

from analysis import (augmentations, common, compute, dataset_size, hptl_tables, importance, pareto,
                      samples, target_rt)
from analysis.loader import StudyData, load_study
from microtune.errors import MicrotuneError
from microtune.tracking import mlflow_io, schema

DESCRIPTION = "Every analysis that applies to a study, with an index in Markdown and HTML."


def plan(study: StudyData | None) -> list[tuple[str, object]]:
    """(section title, callable(out) -> files) for every analysis that applies."""
    steps = []
    if study is not None and not study.metric(schema.FID).empty:
        varying = study.varying_axes()
        if schema.AXIS_AUGPIPE in varying or not {schema.AXIS_AUGPIPE, schema.AXIS_TARGET, schema.AXIS_SUBSET} & set(varying):
            steps.append(("FID by augmentation type (Fig. 1)", lambda out: augmentations.make(study, out)))
        if schema.AXIS_TARGET in varying:
            steps.append(("FID by ADA target r_t (Fig. 2)", lambda out: target_rt.make(study, out)))
        if study.trials["size"].nunique(dropna=False) > 1:
            steps.append(("FID and recall by training-set size (Fig. 3, Supp. Fig. 2)",
                          lambda out: dataset_size.make(study, out)))
        if not study.metric(schema.RECALL).empty and len(study.trials) > 1:
            steps.append(("FID against recall: Pareto front", lambda out: pareto.make(study, out)))
        if importance.axes_of(study) and len(study.trials) >= 3:
            steps.append(("Hyperparameter importance (fANOVA)", lambda out: importance.make(study, out)))
        steps.append(("Generated samples (Fig. 4)", lambda out: samples.make(study, out)))
    return steps


def _section_md(title: str, files: list[Path], out: Path) -> str:
    parts = [f"## {title}\n"]
    for path in files:
        if path.suffix == ".png":
            parts.append(f"![{path.stem}]({path.name})\n\n[PDF]({path.with_suffix('.pdf').name})\n")
        elif path.suffix == ".md":
            text = path.read_text()
            parts.append("#" + text if text.startswith("## ") else text)  # a sub-heading under the section
            parts.append(f"[CSV]({path.with_suffix('.csv').name})\n")
    return "\n".join(parts)


def _section_html(title: str, files: list[Path]) -> str:
    parts = [f"<h2>{html.escape(title)}</h2>"]
    for path in files:
        if path.suffix == ".png":
            pdf = path.with_suffix(".pdf").name
            parts.append(f'<p><img src="{html.escape(path.name)}" alt="{html.escape(path.stem)}" style="max-width:100%">'
                         f'<br><a href="{html.escape(pdf)}">PDF</a></p>')
        elif path.suffix == ".csv":
            frame = pd.read_csv(path)
            parts.append(f"<h3>{html.escape(path.stem)}</h3>" + frame.to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                                                              na_rep="–", border=0)
                         + f'<p><a href="{html.escape(path.name)}">CSV</a></p>')
    return "\n".join(parts)


def make_from_uri(tracking_uri: str, experiment: str, out: Path, detector: str | None = None,
                  launch: str = "latest") -> list[Path]:
    """Run what applies; write index.md and index.html; return every file written."""
    runs = mlflow_io.load_runs(tracking_uri, experiment, launch=launch)
    if runs.empty:
        raise MicrotuneError(f"MLflow experiment {experiment!r} has no trial runs at {tracking_uri}.")
    try:
        study = load_study(tracking_uri, experiment, detector=detector, launch=launch)
    except MicrotuneError as exc:
        if "every trial" not in str(exc):
            raise
        warnings.warn(f"{exc} Only the compute table is written.", UserWarning, stacklevel=2)
        study = None
    steps = plan(study)
    steps.append(("Segmentation methods (HPTL Tables 2 and 3)", lambda o: hptl_tables.make_from_uri(tracking_uri, experiment, o, launch)))
    steps.append(("Compute", lambda o: compute.make_from_uri(tracking_uri, experiment, o, launch)))
    md = [f"# Analysis of `{experiment}`\n", f"Tracking URI: `{tracking_uri}`\n"]
    if study is not None and study.offline_detector:
        md.append(f"**Scored with a {study.offline_detector} ({study.detector}): the numbers are not comparable with published FID/recall.**\n")
    body, written = [], []
    for title, step in steps:
        try:
            files = step(out)
        except MicrotuneError as exc:
            if title.startswith("Segmentation") and "not a segmentation" in str(exc):
                continue
            md.append(f"## {title}\n\nSkipped: {exc}\n")
            body.append(f"<h2>{html.escape(title)}</h2><p>Skipped: {html.escape(str(exc))}</p>")
            continue
        written += files
        md.append(_section_md(title, files, out))
        body.append(_section_html(title, files))
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.md").write_text("\n".join(md))
    head = f"<h1>Analysis of {html.escape(experiment)}</h1><p>Tracking URI: <code>{html.escape(tracking_uri)}</code></p>"
    if study is not None and study.offline_detector:
        head += (f"<p><strong>Scored with a {study.offline_detector} ({html.escape(study.detector)}): not comparable "
                 "with published values.</strong></p>")
    page = (f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(experiment)}</title>"
            "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
            "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd}</style></head><body>"
            + head + "\n".join(body) + "</body></html>\n")
    (out / "index.html").write_text(page)
    return written + [out / "index.md", out / "index.html"]


def main(argv=None) -> int:
    return common.run(lambda a: make_from_uri(a.tracking_uri, a.experiment, a.out, a.detector, a.launch), DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
