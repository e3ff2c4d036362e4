"""``microtune segment``: one segmentation configuration (HPTL or a baseline), without Ray.

``register(subparsers)`` adds the command (cli.py: add ``"microtune.seg.commands"`` to
COMMAND_MODULES). torch is imported lazily; options are validated before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from pathlib import Path

from microtune.errors import MicrotuneError, check_output, writing
from microtune.io import atomic_write_text

HELP = """\
Train and evaluate one segmentation method on a dataset with masks, without Ray. HPTL (Hierarchical
Parameter Transfer Learning) trains VGG-19 on a source task, then FCN-32s, FCN-16s and FCN-8s on the
target data, each starting from the first t1, t2, t3 units of the previous network (units:
conv1..conv5, fc6, fc7, score_fr, upscore2, score_pool4; paper depths 2,8,9). Baselines: otsu,
svm, fcnNs-scratch, deeplab (DeepLabV3+ on a torchvision ResNet-50/ResNet-18/MobileNetV3 backbone,
random init unless --deeplab-weights; --width scales its head). Per epoch it prints and writes to
OUT/metrics.jsonl: train loss, test loss, their gap, pixel accuracy beside the test set's
majority-class rate (seg_majority: the accuracy of predicting the most frequent class everywhere;
seg_near_majority = 1 flags an accuracy not a point above it), per-class IoU, mean IoU, inference
ms per image; OUT/options.json holds the resolved options and OUT/final.json the last metrics.
Everything (dataset, masks, split, device, OUT) is checked before OUT is created. CPU runs: use --width 0.0625 (channels /16) and small --crop/--samples-per-epoch
(DeepLabV3+: --deeplab-backbone resnet18)."""


# How ``microtune segment`` shows some options (the flag is ``--`` + the field name with dashes;
# the help text, range, choices and default come from the field: microtune.seg.options.SegOptions).
METAVARS = {"data": "DS", "depths": "T1,T2,T3", "source_weights": "PTH", "cache_dir": "DIR",
            "deeplab_weights": "PTH|imagenet", "split": "SPLIT", "device": "DEVICE"}
CLI_ONLY = ("--out", "--force", "--threads", "--dry-run")   # flags that are not options of the run


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment`` to a ``microtune`` subparsers object."""
    p = subparsers.add_parser("segment", help="train/evaluate one segmentation method (HPTL or a baseline)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_option_flags(p)
    p.add_argument("--out", metavar="DIR", required=True,
                   help="output directory (created at the first result; an earlier run's results there need --force)")
    p.add_argument("--force", action="store_true", help="replace the results of an earlier run in --out")
    p.add_argument("--threads", type=_threads, default=0, metavar="N",
                   help="torch CPU threads; >= 0 (default 0: torch's choice)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options as JSON and exit")
    p.set_defaults(handler=run_segment)


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~microtune.seg.options.SegOptions` field, generated from the field: its
    help text, range rule and default; each value is checked by the model as it is parsed, so a bad
    one is a usage error (one sentence, exit status 2)."""
    from microtune.seg.options import FIELDS, SegOptions, option_choices, option_label, option_type, range_text

    defaults = SegOptions(data="")
    for name in FIELDS:
        info = SegOptions.__pydantic_fields__[name]
        flag, help_text = option_label(name), info.description
        if info.is_required():
            parser.add_argument(flag, dest=name, metavar=METAVARS.get(name), required=True, type=_check(name, str),
                                help=help_text)
            continue
        default = getattr(defaults, name)
        kind = option_type(name)
        if kind is bool:
            action = "store_true" if default is False else argparse.BooleanOptionalAction
            parser.add_argument(flag, dest=name, action=action, default=default, help=help_text)
            continue
        choices = option_choices(name)
        rule = range_text(name)
        shown = "none" if default == "" else f"{default:g}" if isinstance(default, float) else default
        parser.add_argument(flag, dest=name, type=_check(name, kind), default=default, choices=choices or None,
                            metavar=METAVARS.get(name) or (None if choices else "N" if kind is int else "X"),
                            help=f"{help_text}; {rule} (default {shown})" if rule else f"{help_text} (default {shown})")


def _check(name: str, kind: type):
    """An argparse type: the text as ``kind``, then the model's rule for option ``name``."""
    from microtune.seg.options import check_value
    from microtune.typed import flag_type

    return flag_type(kind, lambda value: check_value(name, value))


def _threads(text: str) -> int:
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}")
    return int(text)


RESULT_FILES = ("options.json", "metrics.jsonl", "final.json")


def run_segment(args: argparse.Namespace) -> int:
    from microtune.device import select_device
    from microtune.seg.options import FIELDS, SegOptionsError, make_seg_options
    from microtune.seg.run import check_sources, load_split, run_segmentation

    try:  # the rules between options and the files they name (each value was checked as it was parsed)
        options = make_seg_options({name: getattr(args, name) for name in FIELDS})
    except SegOptionsError as exc:  # a usage error, as when argparse refuses a value
        print(f"microtune: error: {exc}", file=sys.stderr)
        return 2
    if not Path(options.data).is_dir():
        raise MicrotuneError(f"--data {options.data}: not a dataset directory.")
    resolved = dataclasses.asdict(options)
    if args.dry_run:
        print(json.dumps(resolved, indent=2))
        return 0
    # everything is checked before OUT is created: device, sources, dataset and split, OUT itself
    select_device(options.device)
    check_sources(options)
    split = load_split(options)
    out = check_output(args.out, option="--out", reuse=True, inputs={"--data": options.data}, inside_inputs=True)
    earlier = [name for name in RESULT_FILES if (out / name).exists()]
    if earlier and not args.force:
        raise MicrotuneError(f"--out {out} holds the results of an earlier run ({', '.join(earlier)}); "
                             "pass --force to replace them, or choose another --out.")
    if options.cache_dir:
        check_output(options.cache_dir, option="--cache-dir", reuse=True)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    (train_x, _), (test_x, test_y), names = split
    majority = _majority(test_y, names)
    print(f"segment: {options.label} on {len(train_x)} training and {len(test_x)} test images of {options.data} "
          f"(classes {', '.join(names)}; the test set's majority class {majority[0]} covers "
          f"{majority[1]:.3f} of its pixels); writing {out}", flush=True)
    results = _Results(out, resolved, earlier)
    try:
        with writing(out, option="--out"):
            final = run_segmentation(options, report=results.report, split=split,
                                     log=lambda m: print(m, file=sys.stderr, flush=True))
            results.finish({"method": options.label, **final})
    finally:
        results.close()
    line, warning = summary_line(options.label, final, names, majority[0])
    print(line)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {out}")
    return 0


def _majority(masks, names) -> tuple[str, float]:
    """(name, pixel share) of the most frequent class in ``masks``."""
    import numpy as np

    counts = np.bincount(np.asarray(masks).reshape(-1), minlength=len(names))
    k = int(counts.argmax())
    return (names[k] if k < len(names) else str(k)), float(counts[k] / max(counts.sum(), 1))


def summary_line(label: str, metrics: dict, names, majority_name: str | None = None) -> tuple[str, str | None]:
    """Accuracy beside the majority-class rate, mean and per-class IoU; and a warning (else None)
    when the near-majority flag is set."""
    from microtune.tracking import schema

    acc, majority = metrics[schema.SEG_ACC], metrics.get(schema.SEG_MAJORITY, math.nan)
    ious = " ".join(f"{n} {metrics.get(schema.SEG_IOU_PREFIX + n, math.nan):.3f}" for n in names)
    line = (f"{label}: pixel accuracy {acc:.4f} (majority class {majority:.4f}), mean IoU "
            f"{metrics[schema.SEG_MIOU]:.4f}, IoU {ious}")
    if metrics.get(schema.SEG_NEAR_MAJORITY) != 1.0:
        return line, None
    constant = f"predicting {majority_name} everywhere" if majority_name else "predicting one class everywhere"
    return line, (f"the pixel accuracy {acc:.4f} is not a point above the test set's majority-class rate "
                  f"{majority:.4f}: the model does no better than {constant}; judge it by its per-class IoU.")


class _Results:
    """OUT's files, created at the first report (so a run that fails before it leaves nothing):
    options.json (atomic), metrics.jsonl (a line per report), final.json (atomic, at the end)."""

    def __init__(self, out: Path, resolved: dict, earlier: list[str]) -> None:
        self.out, self.resolved, self.earlier = out, resolved, earlier
        self.log_file = None

    def _open(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        for name in self.earlier:  # --force: an earlier run's results go
            (self.out / name).unlink(missing_ok=True)
        atomic_write_text(self.out / "options.json", json.dumps(self.resolved, indent=2))
        self.log_file = (self.out / "metrics.jsonl").open("w")

    def report(self, step: int, metrics: dict) -> None:
        if self.log_file is None:
            self._open()
        self.log_file.write(json.dumps({"step": step, **metrics}) + "\n")
        self.log_file.flush()
        print(report_line(step, metrics), flush=True)

    def finish(self, final: dict) -> None:
        if self.log_file is None:
            self._open()
        atomic_write_text(self.out / "final.json", json.dumps(final, indent=2))

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()


def report_line(step: int, metrics: dict) -> str:
    """One progress line; values a method does not have (Otsu: no losses, no epochs) are left out."""
    from microtune.tracking import schema

    if schema.SEG_EPOCH in metrics:
        stage = f" stage {int(metrics[schema.SEG_STAGE])}" if schema.SEG_STAGE in metrics else ""  # HPTL's networks
        parts = [f"step {step:7d}{stage} epoch {int(metrics[schema.SEG_EPOCH])}:"]
    else:  # a method without epochs (Otsu, SVM) reports once
        parts = [f"fitted on {step} training images; test set:"]
    for key, label in ((schema.SEG_TRAIN_LOSS, "train loss"), (schema.SEG_TEST_LOSS, "test loss")):
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            parts.append(f"{label} {value:.4f}")
    parts.append(f"acc {metrics[schema.SEG_ACC]:.4f} (majority {metrics.get(schema.SEG_MAJORITY, math.nan):.4f}"
                 + (", no better" if metrics.get(schema.SEG_NEAR_MAJORITY) == 1.0 else "") + ")")
    parts.append(f"mIoU {metrics[schema.SEG_MIOU]:.4f}")
    ious = {k[len(schema.SEG_IOU_PREFIX):]: v for k, v in metrics.items() if k.startswith(schema.SEG_IOU_PREFIX)}
    if ious:
        parts.append("IoU " + " ".join(f"{n} {v:.3f}" for n, v in ious.items()))
    parts.append(f"{metrics[schema.SEG_INFER_MS]:.1f} ms/img")
    return " ".join(parts)


