"""Fig. 2 of the SEM study: FID against kimg per ADA target r_t, and the best FID per r_t.

``python analysis/target_rt.py --tracking-uri URI --experiment NAME --out DIR``

Reads trial runs with param ``ada_target`` (None: fixed p) and metric ``fid`` (step = images shown to D). Writes
``target_rt.png/.pdf`` and ``target_rt_best_fid.csv/.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from analysis import common
from analysis.figures import axis_study
from analysis.loader import StudyData
from microtune.tracking import schema

DESCRIPTION = "FID against kimg per ADA target r_t, and the best FID per r_t (the study's Fig. 2)."


def make(study: StudyData, out: Path) -> list[Path]:
    """Write the figure and table for a loaded study; returns the files."""
    return axis_study(study, out, axis=schema.AXIS_TARGET, axis_name="ADA target r_t",
                      stem="target_rt", what="FID by ADA target heuristic r_t")


def main(argv=None) -> int:
    return common.run_study(make, DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
