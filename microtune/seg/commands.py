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

from microtune.errors import MicrotuneError

HELP = """\
Train and evaluate one segmentation method on a dataset with masks, without Ray. HPTL (Hierarchical
Parameter Transfer Learning) trains VGG-19 on a source task, then FCN-32s, FCN-16s and FCN-8s on the
target data, each starting from the first t1, t2, t3 units of the previous network (units:
conv1..conv5, fc6, fc7, score_fr, upscore2, score_pool4; paper depths 2,8,9). Baselines: otsu,
svm, fcnNs-scratch, deeplab (DeepLabV3+ on a torchvision ResNet-50/ResNet-18/MobileNetV3 backbone,
random init unless --deeplab-weights; --width scales its head). Per epoch it prints and writes to
OUT/metrics.jsonl: train loss, test loss, their gap, pixel accuracy, per-class IoU, mean IoU,
inference ms per image; OUT/options.json holds the resolved options and OUT/final.json the last
metrics. CPU runs: use --width 0.0625 (channels /16) and small --crop/--samples-per-epoch
(DeepLabV3+: --deeplab-backbone resnet18)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment`` to a ``microtune`` subparsers object."""
    from microtune.seg.options import DEEPLAB_BACKBONES
    from microtune.seg.run import METHODS, SegOptions

    d = SegOptions(data="")
    p = subparsers.add_parser("segment", help="train/evaluate one segmentation method (HPTL or a baseline)",
                              description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", metavar="DS", required=True, help="dataset directory with masks")
    p.add_argument("--out", metavar="DIR", required=True, help="output directory (created if missing)")
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


def run_segment(args: argparse.Namespace) -> int:
    from microtune.device import select_device
    from microtune.seg.run import options_from_dict, run_segmentation, validate

    values = {k.replace("-", "_"): v for k, v in vars(args).items()}
    options = validate(options_from_dict(values))
    if not Path(options.data).is_dir():
        raise MicrotuneError(f"--data {options.data}: not a dataset directory.")
    resolved = dataclasses.asdict(options)
    if args.dry_run:
        print(json.dumps(resolved, indent=2))
        return 0
    select_device(options.device)  # a missing GPU is refused before OUT is created
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "options.json").write_text(json.dumps(resolved, indent=2))
    log_file = (out / "metrics.jsonl").open("w")

    def report(step: int, metrics: dict) -> None:
        log_file.write(json.dumps({"step": step, **metrics}) + "\n")
        log_file.flush()
        print(f"step {step:7d} stage {int(metrics.get('seg_stage', 0))} epoch {int(metrics.get('seg_epoch', 0))}: "
              f"train {metrics.get('seg_train_loss', math.nan):.4f} test {metrics.get('seg_test_loss', math.nan):.4f} "
              f"acc {metrics['seg_acc']:.4f} mIoU {metrics['seg_miou']:.4f} {metrics['seg_infer_ms']:.1f} ms/img",
              flush=True)

    try:
        final = run_segmentation(options, report=report, log=lambda m: print(m, file=sys.stderr, flush=True))
    finally:
        log_file.close()
    (out / "final.json").write_text(json.dumps({"method": options.label, **final}, indent=2))
    print(f"{options.label}: pixel accuracy {final['seg_acc']:.4f}, mean IoU {final['seg_miou']:.4f}; wrote {out}")
    return 0
