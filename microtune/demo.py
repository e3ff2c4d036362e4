"""``microtune demo``: the whole study on embedded defaults, in minutes on a laptop CPU.

1. synthesise raw dual-phase micrographs (PNG files with an SEM databar) and their phase masks;
2. prepare them with the study's pipeline into a dataset, and write its contact sheet;
3. run ``sweeps/quickstart.yaml`` on a local Ray, tracked by the project's local MLflow server;
4. run the analysis scripts on the study's MLflow experiment (figures and tables, also logged to
   the study's parent run);
5. print where everything is: the MLflow address that opens the study's trials with FID charted
   against kimg, its parent run (the summary table and figures), the figures on disk.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import microtune

REPO = Path(microtune.__file__).resolve().parents[1]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``demo`` command."""
    p = subparsers.add_parser(
        "demo", help="run the whole quickstart study on embedded defaults (minutes on a CPU)",
        description="Synthesise micrographs, prepare a dataset, run sweeps/quickstart.yaml on a local "
                    "Ray tracked by a local MLflow server, and run the analysis scripts.",
    )
    p.add_argument("--out", default="demo_out", help="folder for the demo's data and figures (default demo_out)")
    p.add_argument("--spec", default=str(REPO / "sweeps" / "quickstart.yaml"), help="study spec to run")
    p.add_argument("--count", type=int, default=48, help="synthetic micrographs (default 48)")
    p.add_argument("--skip-sweep", action="store_true", help="only make the dataset and its contact sheet")
    p.set_defaults(handler=run_demo)


def _step(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def run_demo(args: argparse.Namespace) -> int:
    from microtune.data.commands import write_image_folder
    from microtune.data.dataset import Dataset
    from microtune.data.inspect import contact_sheet, format_summary, summarize
    from microtune.data.prepare import PrepareOptions, prepare_dataset
    from microtune.data.synth import CLASS_NAMES, synthesize

    from microtune.errors import check_output

    out = check_output(args.out, option="--out", reuse=True)  # before any work: one sentence if unwritable
    start = _step(f"1/4 synthesising {args.count} micrographs from 6 specimens")
    stream = synthesize(count=args.count, resolution=128, specimens=6, seed=0, inclusions=True)
    raw = write_image_folder(stream, out / "raw", databar=16, force=True)
    print(f"wrote {raw}/images and {raw}/masks ({time.perf_counter() - start:.1f} s)")

    start = _step("2/4 preparing the dataset (databar, median 3, histogram matching, 64x64 tiles)")
    options = PrepareOptions(resolution=64, crop="tiles", specimens="FOLDERS", masks=str(raw / "masks"),
                             class_names=CLASS_NAMES, reference="auto", workers=2, force=True)
    dataset_dir = prepare_dataset(raw / "images", out / "dataset", options, show_progress=True)
    dataset = Dataset.open(dataset_dir)
    sheet = contact_sheet(dataset, out / "contact_sheet.png")
    print(format_summary(summarize(dataset)))
    print(f"contact sheet {sheet} ({time.perf_counter() - start:.1f} s)")
    if args.skip_sweep:
        return 0

    start = _step(f"3/4 running the study {Path(args.spec).name} on a local Ray, then its analysis")
    from microtune.sweep import runner

    spec = runner.load_and_check(args.spec, str(dataset_dir))
    shutil.rmtree(out / "analysis", ignore_errors=True)  # no figures of an earlier demo pass for these
    # the launch ends with analysis/report.py on the study: figures into OUT/analysis and onto
    # the study's parent run in MLflow
    status = runner.launch(spec, project_dir=Path.cwd(), force=True,
                           cache_dir=str((Path.cwd() / "runs" / "metrics-cache").absolute()),
                           report_dir=out / "analysis")
    print(f"study finished with status {status} ({time.perf_counter() - start:.1f} s)")

    _step("4/4 where to look")
    record = runner.StudyRecord.load(runner.resolve_study(spec.name, Path.cwd()))
    for line in runner.addresses(record, spec.name):
        print(line)
    if (out / "analysis" / "index.html").is_file():
        print(f"figures {out / 'analysis'} (index.html), also on the parent run in MLflow")
    else:
        print("no figures were made; see the messages above")
        status = status or 1
    print(f"dataset {dataset_dir}, contact sheet {sheet}")
    return status
