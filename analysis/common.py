"""What every analysis script shares: the command line, figure style, saving figures and tables.

Every script is ``python analysis/NAME.py --tracking-uri URI --experiment NAME --out DIR
[--detector TAG]``; bad input ends it with one sentence on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from microtune.errors import MicrotuneError  # noqa: E402
from microtune.tracking import schema  # noqa: E402

# Print-readable defaults: 9-10 pt text at the saved size, no top/right spines.
STYLE = {
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "legend.fontsize": 8,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "axes.spines.top": False, "axes.spines.right": False,
    "savefig.dpi": 200, "figure.dpi": 100, "lines.linewidth": 1.6,
}
# The study's colours in order (blue, orange, green, red, violet, brown, pink, ...): tab10.
COLORS = [plt.get_cmap("tab10")(i) for i in range(10)]
KIMG_LABEL = "real images shown to D (kimg)"
METRIC_LABELS = {
    schema.FID: "FID (lower is better)", schema.RECALL: "recall (higher is better)",
    schema.PRECISION: "precision (higher is better)", schema.KID: "KID (lower is better)",
}


def parser(description: str) -> argparse.ArgumentParser:
    """The common command line of analysis scripts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--tracking-uri", required=True,
                   help="MLflow tracking URI: http://127.0.0.1:PORT or sqlite:////abs/path/mlflow.db")
    p.add_argument("--experiment", required=True, help="MLflow experiment = the study's name")
    p.add_argument("--out", required=True, type=Path, help="directory for figures (PNG+PDF) and tables")
    p.add_argument("--detector", default=None,
                   help="analyse only trials scored with this detector tag (when a study mixes detectors)")
    p.add_argument("--launch", default="latest",
                   help="which launch of the study: latest (default), all, or a study (parent) run id")
    return p


def run(body: Callable[[argparse.Namespace], list[Path]], description: str, argv: Sequence[str] | None,
        extra: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse ``argv``, call ``body(args)``, print the files written; MicrotuneError → exit 1."""
    p = parser(description)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = _show_warning
            written = body(args)
    except MicrotuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


def run_study(make: Callable[[Any, Path], list[Path]], description: str, argv: Sequence[str] | None) -> int:
    """:func:`run` for scripts whose work is ``make(study, out)`` on the study named by the CLI."""
    from analysis.loader import load_study

    def body(args: argparse.Namespace) -> list[Path]:
        study = load_study(args.tracking_uri, args.experiment, detector=args.detector, launch=args.launch)
        return make(study, args.out)

    return run(body, description, argv)


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def style() -> None:
    """Apply :data:`STYLE` (call before creating figures)."""
    plt.rcParams.update(STYLE)


def save_figure(fig, out: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` into ``out``; close the figure."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path in paths:
        fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return paths


def fmt(value, digits: int = 4) -> str:
    """Numbers for tables: ``digits`` significant digits; NaN as an en dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (no extra dependency)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(fmt(v, digits) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(frame: pd.DataFrame, out: Path, stem: str, *, title: str = "", note: str = "") -> list[Path]:
    """Write ``stem.csv`` (full precision) and ``stem.md`` (title, table, note) into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / f"{stem}.csv", out / f"{stem}.md"
    frame.to_csv(csv, index=False)
    text = (f"## {title}\n\n" if title else "") + markdown_table(frame) + (f"\n{note}\n" if note else "")
    md.write_text(text)
    return [csv, md]


def use_log_scale(values) -> bool:
    """Log y when positive values span more than a factor 20 (FID falls from hundreds to ~10)."""
    positive = pd.Series(values).dropna()
    positive = positive[positive > 0]
    return len(positive) > 1 and positive.max() / positive.min() > 20


def log_axis(ax) -> None:
    """Log y with plain numbers at 1, 2, 5 × 10^k (a reader should not decode 10^1)."""
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(NullFormatter())


def band_plot(ax, bands: pd.DataFrame, order: list, labels: list[str], *, ylabel: str,
              allow_log: bool = True) -> None:
    """Median curve per group with its min–max band over seeds (the study's Figs. 1a, 2a, 3a, 3c).

    Curves are labelled ``label (n=trials)``; place the legend with :func:`legend_below`.
    """
    from analysis.loader import _key_of

    for i, (value, label) in enumerate(zip(order, labels)):
        rows = bands[bands["group"].map(_key_of) == _key_of(value)].sort_values("step")
        if rows.empty:
            continue
        color = COLORS[i % len(COLORS)]
        n = int(rows["n"].max())
        ax.plot(rows["kimg"], rows["median"], color=color, label=f"{label} (n={n})")
        ax.fill_between(rows["kimg"], rows["min"], rows["max"], color=color, alpha=0.2, linewidth=0)
    if allow_log and use_log_scale(bands["max"]):
        log_axis(ax)
    ax.set_xlabel(KIMG_LABEL)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def legend_below(fig, ax, title: str = "line: median over seeds; band: min to max") -> None:
    """One legend for the figure, under the panels, from the curves of ``ax``."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), frameon=False,
                   ncol=min(len(labels), 4 if max(map(len, labels)) > 18 else 7), title=title, title_fontsize=9)


def caps_plot(ax, summary: pd.DataFrame, *, ylabel: str, xlabel: str) -> None:
    """Median (black dot) with min (lower cap) and max (upper cap) per group (Figs. 1b, 2b, 3b, 3d)."""
    x = list(range(len(summary)))
    lower = summary["median"] - summary["min"]
    upper = summary["max"] - summary["median"]
    ax.errorbar(x, summary["median"], yerr=[lower, upper], fmt="o", color="black", ecolor="black",
                capsize=5, markersize=5)
    for xi, median in zip(x, summary["median"]):
        ax.annotate(fmt(float(median), 3), (xi, median), textcoords="offset points", xytext=(7, -3), fontsize=8)
    ticks = summary["tick"] if "tick" in summary else summary["label"]
    long = max(map(len, map(str, ticks))) * len(x) > 48
    ax.set_xticks(x, ticks, rotation=30 if long else 0, ha="right" if long else "center")
    for i, label in enumerate(ax.get_xticklabels()):  # the colour of the group's curve in panel (a)
        label.set_color(COLORS[i % len(COLORS)])
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
