"""Tables 2 and 3 of the HPTL study: segmentation methods compared on losses, speed and accuracy.

``python analysis/hptl_tables.py --tracking-uri URI --experiment NAME --out DIR``

One row per method: the method label is param ``method`` (e.g. ``HPTL``, ``HPTL-2H``, ``HPTL-R``,
``FCN-8s``, ``OTSU``), else tag or param ``model``, else the run name; in a depth sweep the HPTL
rows are split by transfer depths and freezing (``HPTL t=2,8,9``, ``HPTL t=2,8,9 frozen``). Each trial contributes its
last logged ``seg_train_loss`` (l1), ``seg_test_loss`` (l2), ``seg_infer_ms`` (ms per image),
``seg_acc`` (pixel accuracy, a fraction in [0, 1]) and ``seg_miou``; the table gives the median
over a method's trials (seeds), the gap l_d = l2 − l1, and the number of trials. Failed trials are
left out. Writes ``hptl_methods.csv/.md`` (Table 2) and, when HPTL variants are present,
``hptl_variants.csv/.md`` (Table 3: the rows whose method starts with "HPTL").
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pandas as pd

from analysis import common
from analysis.loader import FAILED_STATUSES
from microtune.errors import MicrotuneError
from microtune.tracking import mlflow_io, schema

DESCRIPTION = "Segmentation methods: train/test loss, gap, inference ms per image, pixel accuracy, mean IoU."
COLUMNS = {  # metric key -> table column
    schema.SEG_TRAIN_LOSS: "train loss l1", schema.SEG_TEST_LOSS: "test loss l2",
    schema.SEG_INFER_MS: "inference ms/image", schema.SEG_ACC: "pixel accuracy (%)", schema.SEG_MIOU: "mean IoU",
}


def method_labels(runs: pd.DataFrame) -> pd.Series:
    """Param ``method``, else tag/param ``model``, else the run name; HPTL rows whose transfer
    depths or freezing differ within one label (a depth sweep) get them appended, e.g.
    ``HPTL t=2,8,9`` and ``HPTL t=0,8,9 frozen``."""
    label = pd.Series(None, index=runs.index, dtype=object)
    for column in (f"params.{schema.PARAM_METHOD}", f"tags.{schema.MODEL}", f"params.{schema.AXIS_MODEL}", "run_name"):
        if column in runs:
            label = label.fillna(runs[column])
    label = label.fillna(runs["run_id"]).astype(str)
    hptl = label.str.upper().str.startswith("HPTL")
    suffix = pd.Series("", index=runs.index, dtype=object)
    for param, fmt in (("depths", " t={}"), ("freeze", "{}")):
        column = f"params.{param}"
        if column not in runs:
            continue
        values = runs[column].astype(str)
        varies = hptl & values.groupby(label).transform("nunique").gt(1)
        text = values.map(lambda v: (" frozen" if v == "True" else "") if param == "freeze" else fmt.format(v))
        suffix[varies] = suffix[varies] + text[varies]
    return label + suffix


def method_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Median per method of each trial's final segmentation metrics (see the module docstring)."""
    present = [k for k in COLUMNS if f"metrics.{k}" in runs]
    if schema.SEG_ACC not in present:
        raise MicrotuneError(f"no trial logged {schema.SEG_ACC!r}: this is not a segmentation (HPTL) study.")
    values = pd.DataFrame({"method": method_labels(runs)})
    for key in COLUMNS:
        values[COLUMNS[key]] = runs[f"metrics.{key}"] if key in present else float("nan")
    values[COLUMNS[schema.SEG_ACC]] = 100.0 * values[COLUMNS[schema.SEG_ACC]]
    grouped = values.groupby("method", sort=False)
    table = grouped.median(numeric_only=True)
    table.insert(2, "gap l_d = l2 - l1", table["test loss l2"] - table["train loss l1"])
    table["trials"] = grouped.size()
    return table.reset_index().sort_values(COLUMNS[schema.SEG_ACC], ascending=True).reset_index(drop=True)


def make_from_uri(tracking_uri: str, experiment: str, out: Path, launch: str = "latest") -> list[Path]:
    """Read the trial runs and write Table 2 (and Table 3 when HPTL variants exist)."""
    runs = mlflow_io.load_runs(tracking_uri, experiment, launch=launch)
    if runs.empty:
        raise MicrotuneError(f"MLflow experiment {experiment!r} has no trial runs at {tracking_uri}.")
    failed = runs["status"].isin(FAILED_STATUSES)
    if failed.any():
        warnings.warn(f"ignoring {int(failed.sum())} failed trial(s).", UserWarning, stacklevel=2)
    table = method_table(runs[~failed])
    note = "Median over each method's trials of the last logged values; l1, l2: losses; l_d: their gap."
    paths = common.write_table(table, out, "hptl_methods", title=f"Segmentation methods ({experiment})", note=note)
    variants = table[table["method"].str.upper().str.startswith("HPTL")]
    if len(variants) > 1:
        paths += common.write_table(variants.reset_index(drop=True), out, "hptl_variants",
                                    title=f"HPTL variants ({experiment})", note=note)
    return paths


def main(argv=None) -> int:
    return common.run(lambda args: make_from_uri(args.tracking_uri, args.experiment, args.out, args.launch), DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
