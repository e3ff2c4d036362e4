"""``microtune sweep launch|resume|status|sync``."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` command group."""
    sweep = subparsers.add_parser("sweep", help="run hyperparameter studies on Ray Tune, tracked in MLflow",
                                  description="Run a study described by a YAML spec (see sweeps/) on a local "
                                              "Ray or a Ray cluster; every trial is an MLflow child run.")
    sweep.set_defaults(handler=lambda args: (sweep.print_help(), 2)[1])
    sub = sweep.add_subparsers(dest="sweep_command", metavar="SUBCOMMAND")

    p = sub.add_parser("launch", help="validate a spec and run its study",
                       description="Validate SPEC (nothing starts on a bad one) and run the study to the end.")
    p.add_argument("spec", metavar="SPEC", help="study spec, e.g. sweeps/quickstart.yaml")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--tracking-uri", default=None,
                   help="MLflow tracking URI, e.g. http://10.0.0.5:5000 (default: the spec's tracking.uri, "
                        "else the project's local server on 127.0.0.1, started when needed)")
    p.add_argument("--storage", default=None, metavar="PATH|s3://...",
                   help="where Tune keeps trial state and checkpoints (default ./runs/sweeps; shared "
                        "storage such as s3:// or NFS on a multi-node cluster)")
    p.add_argument("--dataset", default=None, metavar="DIR", help="run the spec on this dataset instead of its own")
    p.add_argument("--max-concurrent", type=int, default=None, metavar="N", help="trials at once (overrides the spec)")
    p.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="real-image statistics cache shared by trials (default ./runs/metrics-cache)")
    p.add_argument("--detector-weights", action="append", default=[], metavar="PATH",
                   help="detector weight file or folder (repeatable)")
    p.add_argument("--force", action="store_true", help="start afresh if the study was launched before")
    p.add_argument("--optuna-storage", default=None, metavar="URL",
                   help="Optuna studies: the storage to keep the study in, for optuna-dashboard, e.g. "
                        "postgresql://user@host/db (default sqlite:///./optuna.db beside the local MLflow store)")
    p.add_argument("--no-report", action="store_true",
                   help="do not run analysis/report.py at the end (the parent run then holds no figures)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved trials (or search space) and exit")
    p.set_defaults(handler=_launch)

    p = sub.add_parser("resume", help="finish a study whose driver stopped",
                       description="Continue a study: finished trials are kept, unfinished and failed ones "
                                   "continue from their last checkpoint.")
    p.add_argument("study", metavar="NAME|PATH", help="study name (under --storage) or directory")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--storage", default=None, metavar="PATH", help="where studies live (default ./runs/sweeps)")
    p.add_argument("--no-report", action="store_true", help="do not run analysis/report.py at the end")
    p.set_defaults(handler=_resume)

    p = sub.add_parser("status", help="a table of a study's trials",
                       description="Trial, state, kimg, latest and best FID/recall, failures.")
    p.add_argument("study", metavar="NAME|PATH", help="study name (under --storage) or directory")
    p.add_argument("--storage", default=None, metavar="PATH", help="where studies live (default ./runs/sweeps)")
    p.set_defaults(handler=_status)

    p = sub.add_parser("sync", help="deliver metrics that could not reach the tracking server",
                       description="Send every spooled, undelivered MLflow record of a study to its server.")
    p.add_argument("study", metavar="NAME|PATH", help="study name (under --storage) or directory")
    p.add_argument("--storage", default=None, metavar="PATH", help="where studies live (default ./runs/sweeps)")
    p.add_argument("--tracking-uri", default=None, help="deliver to this server instead of the study's")
    p.set_defaults(handler=_sync)


def _launch(args: argparse.Namespace) -> int:
    from microtune.sweep import runner, space

    spec = runner.load_and_check(args.spec, args.dataset)
    if args.dry_run:
        print("\n".join(space.describe(spec)))
        return 0
    project = Path.cwd()
    cache_dir = args.cache_dir or str(project / "runs" / "metrics-cache")
    return runner.launch(spec, project_dir=project, address=args.address, tracking_uri=args.tracking_uri,
                         storage=_absolute(args.storage), max_concurrent=args.max_concurrent,
                         cache_dir=str(Path(cache_dir).absolute()),
                         detector_weights=tuple(str(Path(p).absolute()) for p in args.detector_weights),
                         force=args.force, optuna_storage_url=args.optuna_storage, report=not args.no_report)


def _resume(args: argparse.Namespace) -> int:
    from microtune.sweep import runner

    return runner.resume(args.study, project_dir=Path.cwd(), address=args.address, storage=_absolute(args.storage),
                         report=not args.no_report)


def _status(args: argparse.Namespace) -> int:
    from microtune.errors import MicrotuneError
    from microtune.sweep import runner
    from microtune.sweep.spec import parse_spec

    rows = runner.status_rows(args.study, project_dir=Path.cwd(), storage=_absolute(args.storage))
    print(format_status(rows))
    study_dir = runner.resolve_study(args.study, Path.cwd(), _absolute(args.storage))
    record = runner.StudyRecord.load(study_dir)
    try:
        total = parse_spec(record.spec, source=str(study_dir), check_dataset=False).trial_count()
    except MicrotuneError:  # a family registered only in the launching process, say
        total = None
    print(status_summary(rows, total))
    print("\n".join(runner.addresses(record, str(record.spec.get("name", args.study)))))
    return 0


def _sync(args: argparse.Namespace) -> int:
    from microtune.sweep import runner
    from microtune.tracking.mlflow_io import sync_spools

    study_dir = runner.resolve_study(args.study, Path.cwd(), _absolute(args.storage))
    record = runner.StudyRecord.load(study_dir)
    result = sync_spools([study_dir], args.tracking_uri or record.tracking_uri)
    print(f"delivered {result['delivered']} record(s) from {result['spools']} spool(s); "
          f"{result['pending']} still pending")
    return 0 if result["pending"] == 0 else 1


def _absolute(path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return str(Path(path).absolute())


def status_summary(rows: list[dict], total: int | None) -> str:
    """One line under the table: how many of the study's trials exist, and their states (Ray creates a
    trial only when it is about to start, so trials not started yet have no row)."""
    states = Counter(row["state"] for row in rows)
    counts = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    if total is None:
        return f"{len(rows)} trial(s) started: {counts or 'none'}"
    waiting = f"; {total - len(rows)} not started" if total > len(rows) else ""
    return f"{len(rows)} of {total} trial(s) started: {counts or 'none'}{waiting}"


def format_status(rows: list[dict]) -> str:
    """A fixed-width table of :func:`microtune.sweep.runner.status_rows` (its keys are the columns)."""
    columns = list(rows[0]) if rows else ["trial", "state", "failures", "config"]

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    table = [columns] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)
