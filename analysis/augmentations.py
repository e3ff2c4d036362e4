"""Fig. 1 of the SEM study: FID against kimg per augmentation type, and the best FID per type.

``python analysis/augmentations.py --tracking-uri URI --experiment NAME --out DIR``

Reads trial runs with param ``augpipe`` and metric ``fid`` (step = images shown to D). Writes
``augmentations.png/.pdf`` and ``augmentations_best_fid.csv/.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from analysis import common
from analysis.figures import axis_study
from analysis.loader import StudyData
from microtune.tracking import schema

DESCRIPTION = "FID against kimg per augmentation type, and the best FID per type (the study's Fig. 1)."


def make(study: StudyData, out: Path) -> list[Path]:
    """Write the figure and table for a loaded study; returns the files."""
    return axis_study(study, out, axis=schema.AXIS_AUGPIPE, axis_name="augmentation type (augpipe)",
                      stem="augmentations", what="FID by augmentation type")


def main(argv=None) -> int:
    return common.run_study(make, DESCRIPTION, argv)


if __name__ == "__main__":
    sys.exit(main())
