"""``microtune segment``: one segmentation configuration (HPTL or a baseline), without Ray.

``register(subparsers)`` adds the command (cli.py: add ``"microtune.seg.commands"`` to
COMMAND_MODULES). torch is imported lazily; options are validated before any work starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path

from microtune.errors import MicrotuneError, check_output, writing

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


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment`` to a ``microtune`` subparsers object."""
    from microtune.seg.options import DEEPLAB_BACKBONES
    from microtune.seg.run import METHODS, SegOptions

    d = SegOptions(data="")
    p = subparsers.add_parser("segment", help="train/evaluate one segmentation method (HPTL or a baseline)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="DS", required=True, help="dataset directory with masks")
    p.add_argument("--out", metavar="DIR", required=True,
                   help="output directory (created at the first result; an earlier run's results there need --force)")
    p.add_argument("--force", action="store_true", help="replace the results of an earlier run in --out")
    p.add_argument("--method", choices=list(METHODS), default=d.method, help=f"method (default {d.method})")
    p.add_argument("--depths", default=d.depths, metavar="T1,T2,T3",
                   help="transfer depths in units, numbers or unit names (default 2,8,9 = conv2,score_fr,upscore2)")
    p.add_argument("--freeze", action="store_true", help="freeze transferred units (default: retrain them)")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"epochs per trained network (default {d.epochs})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"crops per step (default {d.batch})")
    p.add_argument("--crop", type=int, default=d.crop, help=f"training crop side in pixels (default {d.crop})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate (default {d.lr:g}, the paper's)")
    p.add_argument("--samples-per-epoch", type=int, default=0, help="training crops per epoch (default 8 x images)")
    p.add_argument("--l2", type=float, default=d.l2, help="L2 penalty λ (default 0; hptl-r: 0.5, the paper's)")
    p.add_argument("--l2-mode", choices=("decay", "transfer"), default=d.l2_mode,
                   help="decay: Σw² as in the paper; transfer: toward the transferred weights")
    p.add_argument("--width", type=float, default=d.width, help="channel multiplier (default 1; CPU: 0.0625)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=d.channels, help="network input channels")
    p.add_argument("--batch-norm", action="store_true", help="VGG-19-BN convs (not in the paper)")
    p.add_argument("--dropout", type=float, default=d.dropout, help=f"dropout after fc6/fc7 (default {d.dropout})")
    p.add_argument("--split", default=d.split, help="specimens (every 4th specimen is test) or lists:TRAIN.txt,TEST.txt")
    p.add_argument("--subset", type=int, default=0, help="use N training images (default all)")
    p.add_argument("--source", choices=("auto", "imagenet", "textures"), default=d.source,
                   help="stage-1 VGG-19: ImageNet weights (file/cache) or trained on textures here")
    p.add_argument("--source-weights", default="", metavar="PTH", help="torchvision vgg19 ImageNet state dict")
    p.add_argument("--source-steps", type=int, default=d.source_steps, help="texture-task steps of the source VGG")
    p.add_argument("--source-optimizer", choices=("adam", "sgd"), default=d.source_optimizer,
                   help="texture-source optimiser (sgd: the paper's, slow from scratch)")
    p.add_argument("--cache-dir", default="", metavar="DIR", help="cache of trained source networks")
    p.add_argument("--deeplab-backbone", choices=DEEPLAB_BACKBONES, default=d.deeplab_backbone,
                   help=f"DeepLabV3+ encoder (default {d.deeplab_backbone}; resnet18 for CPU runs)")
    p.add_argument("--deeplab-weights", default=d.deeplab_weights, metavar="PTH|imagenet",
                   help="DeepLabV3+ encoder weights: a torchvision ImageNet state dict of the backbone, or "
                        "'imagenet' (torch hub cache, else download); default random init")
    p.add_argument("--svm-samples", type=int, default=d.svm_samples, help="training pixels of the SVM")
    p.add_argument("--device", default=d.device, help="auto (cuda when available), cpu, cuda or cuda:N (default auto)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved options as JSON and exit")
    p.set_defaults(handler=run_segment)


RESULT_FILES = ("options.json", "metrics.jsonl", "final.json")


def run_segment(args: argparse.Namespace) -> int:
    from microtune.device import select_device
    from microtune.seg.run import check_sources, load_split, options_from_dict, run_segmentation, validate

    values = {k.replace("-", "_"): v for k, v in vars(args).items()}
    options = validate(options_from_dict(values))
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
    ious = " ".join(f"{n} {metrics.get(f'seg_iou_{n}', math.nan):.3f}" for n in names)
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
        _atomic_write(self.out / "options.json", json.dumps(self.resolved, indent=2))
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
        _atomic_write(self.out / "final.json", json.dumps(final, indent=2))

    def close(self) -> None:
        if self.log_file is not None:
            self.log_file.close()


def report_line(step: int, metrics: dict) -> str:
    """One progress line; values a method does not have (Otsu: no losses, no epochs) are left out."""
    from microtune.tracking import schema

    if "seg_epoch" in metrics:
        stage = f" stage {int(metrics['seg_stage'])}" if "seg_stage" in metrics else ""  # HPTL's networks
        parts = [f"step {step:7d}{stage} epoch {int(metrics['seg_epoch'])}:"]
    else:  # a method without epochs (Otsu, SVM) reports once
        parts = [f"fitted on {step} training images; test set:"]
    for key, label in ((schema.SEG_TRAIN_LOSS, "train loss"), (schema.SEG_TEST_LOSS, "test loss")):
        value = metrics.get(key)
        if value is not None and math.isfinite(value):
            parts.append(f"{label} {value:.4f}")
    parts.append(f"acc {metrics[schema.SEG_ACC]:.4f} (majority {metrics.get(schema.SEG_MAJORITY, math.nan):.4f}"
                 + (", no better" if metrics.get(schema.SEG_NEAR_MAJORITY) == 1.0 else "") + ")")
    parts.append(f"mIoU {metrics[schema.SEG_MIOU]:.4f}")
    ious = {k[len("seg_iou_"):]: v for k, v in metrics.items() if k.startswith("seg_iou_")}
    if ious:
        parts.append("IoU " + " ".join(f"{n} {v:.3f}" for n, v in ious.items()))
    parts.append(f"{metrics[schema.SEG_INFER_MS]:.1f} ms/img")
    return " ".join(parts)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
