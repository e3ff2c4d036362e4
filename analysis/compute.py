"""What a study cost: CPU- or GPU-hours per trial and per study, and energy where it was recorded.

``python analysis/compute.py --tracking-uri URI --experiment NAME --out DIR``

Every trial counts, failed ones too (they used the machine). A trial's time is its last
``trial_seconds`` metric (seconds it trained, resumptions included) or, when it logged none, its
run's wall-clock duration (end − start; now − start for a running trial). The tag ``device``
(``cpu``, ``cuda:…``) decides GPU- or CPU-hours; ``energy_kwh`` (last value) is summed where
present. Writes ``compute_trials.csv/.md`` and ``compute_study.csv/.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from analysis import common
from microtune.errors import MicrotuneError
from microtune.tracking import mlflow_io, schema

DESCRIPTION = "CPU/GPU-hours per trial and per study, and energy where it was recorded."


def trial_costs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: name, status, device kind, hours, where the hours came from, energy."""
    now = pd.Timestamp.now(tz="UTC")
    seconds_col, energy_col = f"metrics.{schema.TRIAL_SECONDS}", f"metrics.{schema.ENERGY_KWH}"
    measured = runs[seconds_col] if seconds_col in runs else pd.Series(float("nan"), index=runs.index)
    wall = (runs["end_time"].fillna(now) - runs["start_time"]).dt.total_seconds()
    device = runs.get(f"tags.{schema.DEVICE}", pd.Series("unknown", index=runs.index)).fillna("unknown")
    kind = device.map(lambda d: "GPU" if str(d).lower().startswith(("cuda", "gpu")) else
                      ("CPU" if str(d).lower().startswith("cpu") else "unknown"))
    return pd.DataFrame({
        "trial": runs["run_name"].fillna(runs["run_id"]),
        "status": runs["status"],
        "device": device,
        "kind": kind,
        "hours": measured.fillna(wall) / 3600.0,
        "hours_from": measured.notna().map({True: schema.TRIAL_SECONDS, False: "run wall clock"}),
        schema.ENERGY_KWH: runs[energy_col] if energy_col in runs else float("nan"),
    })


def study_costs(trials: pd.DataFrame, experiment: str) -> pd.DataFrame:
    """One row: trials, failed trials, GPU-, CPU- and unknown-device hours, energy (and coverage)."""
    hours = trials.groupby("kind")["hours"].sum()
    energy = trials[schema.ENERGY_KWH].dropna()
    return pd.DataFrame([{
        "study": experiment,
        "trials": len(trials),
        "failed": int(trials["status"].isin(("FAILED", "KILLED")).sum()),
        "GPU_hours": float(hours.get("GPU", 0.0)),
        "CPU_hours": float(hours.get("CPU", 0.0)),
        "unknown_device_hours": float(hours.get("unknown", 0.0)),
        schema.ENERGY_KWH: float(energy.sum()) if len(energy) else float("nan"),
        "trials_with_energy": int(len(energy)),
    }])


def make_from_uri(tracking_uri: str, experiment: str, out: Path, launch: str = "latest") -> list[Path]:
    """Read every trial run (failed ones included) and write both tables."""
    runs = mlflow_io.load_runs(tracking_uri, experiment, launch=launch)
    if runs.empty:
        raise MicrotuneError(f"MLflow experiment {experiment!r} has no trial runs at {tracking_uri}.")
    trials = trial_costs(runs)
    study = study_costs(trials, experiment)
    note = ("Hours: the trial's `trial_seconds` metric, or its run's wall clock where it logged none. "
            "Failed trials count: they used the machine.")
    return (common.write_table(trials, out, "compute_trials", title=f"Compute per trial ({experiment})", note=note)
            + common.write_table(study, out, "compute_study", title=f"Compute of the study ({experiment})", note=note))


def main(argv=None) -> int:
    return common.run(lambda args: make_from_uri(args.tracking_uri, args.experiment, args.out, args.launch), DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
