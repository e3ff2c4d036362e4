"""DeepLabV3+, the HPTL study's DeepLab baseline (our implementation on torchvision backbones).

Architecture after L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff and H. Adam, "Encoder-Decoder
with Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018 (DeepLabV3+):

* **Encoder**: a backbone with output stride 16 (the last downsampling replaced by atrous
  convolution: torchvision's ``replace_stride_with_dilation`` for ResNet-50, ``dilated=True`` for
  MobileNetV3-Large; for ResNet-18, whose ``BasicBlock`` refuses dilation in torchvision, the
  stride of ``layer4`` is set to 1 and its later 3x3 convolutions get dilation 2 here), followed by
  ASPP: a 1x1 convolution, three 3x3 atrous convolutions with rates 6, 12, 18, and image pooling
  (global average, 1x1 convolution, upsampled), concatenated and projected by a 1x1 convolution to
  256 channels (batch norm, ReLU, dropout 0.1).
* **Decoder**: the stride-4 low-level backbone features projected by a 1x1 convolution to 48
  channels, concatenated with the ASPP output upsampled bilinearly (4x, to the low-level size),
  two 3x3 convolutions with 256 channels, a 1x1 classifier, and bilinear upsampling to the input
  size. Any H x W works: every upsampling goes to the exact size of its target, not by a factor.
* As in the paper's final model, the 3x3 convolutions of ASPP and the decoder are *atrous
  separable*: a depthwise 3x3 (atrous) convolution and a pointwise 1x1 convolution, each followed
  by batch norm and ReLU (``separable=False``: plain 3x3 convolutions).

Deviations, all small: the image-pooling branch has no batch norm (1x1 conv with bias and ReLU), so
that a training batch of one crop works; ``width`` scales the head's 256 and 48 channels (minimum 8)
for CPU-sized runs (``width=1`` is the paper's head). The paper's backbones are ResNet-101 and a
modified Xception; torchvision has no Xception, so ResNet-50 (default), ResNet-18 (the small CPU
configuration) and MobileNetV3-Large stand in. MobileNetV3's batch-norm momentum is set to PyTorch's
0.1 instead of torchvision's 0.01: with the few hundred steps of a CPU run the running statistics
otherwise stay near their initial values and the eval-mode network predicts one class (measured on
the synthetic test data: accuracy 0.36 = the prior with 0.01, 0.60-0.71 with 0.1).

Input: (N, 1 or 3, H, W). With 1 channel the backbone's first convolution takes one channel; with
ImageNet weights its RGB filters are summed (a grey image is R = G = B).

Encoder weights (:func:`load_backbone_weights`): ``weights=None`` is random initialisation (the
default; nothing is downloaded); a path loads a torchvision ImageNet state dict of the backbone
(e.g. ``resnet50-11ad3fa6.pth``; its classifier is ignored); ``"imagenet"`` takes torchvision's
file from the torch hub cache (``torch.hub.get_dir()/checkpoints``) or downloads it through
torchvision's weights API, failing with one :class:`MicrotuneError` when offline.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from microtune.errors import MicrotuneError
from microtune.seg.options import DEEPLAB_BACKBONES

ASPP_RATES = (6, 12, 18)        # at output stride 16 (paper sec. 3.1)
HEAD_CHANNELS = 256             # ASPP and decoder channels
LOW_LEVEL_CHANNELS = 48         # decoder's projection of the stride-4 features
IMAGENET = "imagenet"
_WEIGHTS_ENUM = {"resnet50": "ResNet50_Weights", "resnet18": "ResNet18_Weights",
                 "mobilenet_v3_large": "MobileNet_V3_Large_Weights"}


def _conv_bn_relu(cin: int, cout: int, kernel: int = 1, *, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    pad = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def conv3x3(cin: int, cout: int, *, dilation: int = 1, separable: bool = True) -> nn.Sequential:
    """A 3x3 (atrous) convolution + BN + ReLU, or its atrous separable form (depthwise + pointwise)."""
    if not separable:
        return _conv_bn_relu(cin, cout, 3, dilation=dilation)
    return nn.Sequential(_conv_bn_relu(cin, cin, 3, dilation=dilation, groups=cin), _conv_bn_relu(cin, cout, 1))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: 1x1, three atrous 3x3 (rates), image pooling; 1x1 projection."""

    def __init__(self, cin: int, cout: int, rates=ASPP_RATES, *, separable: bool = True, dropout: float = 0.1):
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, 1)] +
                                      [conv3x3(cin, cout, dilation=r, separable=separable) for r in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(_conv_bn_relu(cout * (len(rates) + 2), cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.interpolate(self.pool(x), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], 1))


class Backbone(nn.Module):
    """A torchvision classification network as an output-stride-16 encoder: (stride-4, stride-16) features.

    ``self.net`` is the torchvision model without its classifier, so its state-dict keys are
    torchvision's (what :func:`load_backbone_weights` relies on).
    """

    def __init__(self, name: str, in_channels: int = 1):
        super().__init__()
        import torchvision.models as tvm

        if name not in DEEPLAB_BACKBONES:
            raise MicrotuneError(f"--deeplab-backbone must be one of {', '.join(DEEPLAB_BACKBONES)}, got {name!r}.")
        if in_channels not in (1, 3):
            raise MicrotuneError(f"--channels must be 1 or 3, got {in_channels}.")
        self.name, self.in_channels = name, in_channels
        if name == "mobilenet_v3_large":
            net = tvm.mobilenet_v3_large(weights=None, dilated=True)
            del net.avgpool, net.classifier
            downsampling = [i for i, block in enumerate(net.features) if getattr(block, "_is_cn", False)]
            self.split = downsampling[1]           # blocks before it run at stride 4
            self.low_channels = net.features[self.split - 1].out_channels
            self.high_channels = net.features[-1].out_channels
            self.first_conv = "features.0.0"
            for m in net.modules():        # torchvision's 0.01: see the module docstring
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.1
        else:
            if name == "resnet50":
                net = tvm.resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
            else:
                net = tvm.resnet18(weights=None)
                _dilate_basic_layer4(net)
            del net.avgpool, net.fc
            self.low_channels, self.high_channels = (64, 512) if name == "resnet18" else (256, 2048)
            self.first_conv = "conv1"
        self.net = net
        if in_channels == 1:
            old = self.net.get_submodule(self.first_conv)
            new = nn.Conv2d(1, old.out_channels, old.kernel_size, old.stride, old.padding, bias=old.bias is not None)
            nn.init.kaiming_normal_(new.weight, mode="fan_out", nonlinearity="relu")
            parent, attr = self.first_conv.rsplit(".", 1) if "." in self.first_conv else ("", self.first_conv)
            setattr(self.net.get_submodule(parent) if parent else self.net, attr, new)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.net
        if self.name == "mobilenet_v3_large":
            low = net.features[:self.split](x)
            return low, net.features[self.split:](low)
        low = net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))
        return low, net.layer4(net.layer3(net.layer2(low)))


def _dilate_basic_layer4(net: nn.Module) -> None:
    """ResNet-18's layer4 at stride 1 with dilation 2 after its first convolution (output stride 16)."""
    first = net.layer4[0]
    first.conv1.stride = (1, 1)
    first.downsample[0].stride = (1, 1)
    convs = [first.conv2] + [c for block in net.layer4[1:] for c in (block.conv1, block.conv2)]
    for conv in convs:
        conv.dilation, conv.padding = (2, 2), (2, 2)


class DeepLabV3Plus(nn.Module):
    """DeepLabV3+ returning (N, num_classes, H, W) logits at the input size (see the module docstring).

    Parameters
    ----------
    num_classes : int
        Output classes.
    in_channels : int
        1 (grey) or 3.
    backbone : str
        One of :data:`microtune.seg.options.DEEPLAB_BACKBONES`.
    width : float
        Multiplier of the head's channels (256 ASPP/decoder, 48 low-level; minimum 8). 1 is the paper's.
    separable : bool
        Atrous separable 3x3 convolutions in ASPP and the decoder (the paper's final model).
    weights : str or path, optional
        Encoder weights: None (random), a torchvision state-dict file, or ``"imagenet"``.
    """

    def __init__(self, num_classes: int, *, in_channels: int = 1, backbone: str = "resnet50", width: float = 1.0,
                 separable: bool = True, weights: str | os.PathLike | None = None, dropout: float = 0.1):
        super().__init__()
        if not 0 < width <= 1:
            raise MicrotuneError(f"--width must be in (0, 1], got {width}.")
        self.backbone = Backbone(backbone, in_channels)
        head = max(8, round(HEAD_CHANNELS * width))
        low = max(8, round(LOW_LEVEL_CHANNELS * width))
        self.aspp = ASPP(self.backbone.high_channels, head, separable=separable, dropout=dropout)
        self.low_project = _conv_bn_relu(self.backbone.low_channels, low, 1)
        self.decoder = nn.Sequential(conv3x3(head + low, head, separable=separable),
                                     conv3x3(head, head, separable=separable))
        self.classifier = nn.Conv2d(head, num_classes, 1)
        for module in (self.aspp, self.low_project, self.decoder, self.classifier):
            for m in module.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    if m.bias is not None:
                        nn.init.zeros_(m.bias)
        self.weights_origin = "random"
        if weights:
            self.weights_origin = load_backbone_weights(self.backbone, weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        low, high = self.backbone(x)
        y = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=False)
        y = self.classifier(self.decoder(torch.cat([y, self.low_project(low)], 1)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


# -- encoder weights --------------------------------------------------------------------------------
def _weights_enum(name: str):
    import torchvision.models as tvm

    return getattr(tvm, _WEIGHTS_ENUM[name])


def cached_imagenet_file(name: str) -> Path | None:
    """torchvision's ImageNet file of backbone ``name`` in the torch hub cache (default weights first)."""
    enum = _weights_enum(name)
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for w in [enum.DEFAULT] + [w for w in enum if w is not enum.DEFAULT]:
        candidate = checkpoints / os.path.basename(w.url)
        if candidate.is_file():
            return candidate
    return None


def imagenet_state_dict(name: str) -> tuple[dict[str, torch.Tensor], str]:
    """The ImageNet state dict of backbone ``name``: from the hub cache, else downloaded by torchvision."""
    cached = cached_imagenet_file(name)
    if cached is not None:
        return _read_state_dict(cached), f"imagenet:{cached.name}"
    weights = _weights_enum(name).DEFAULT
    try:
        state = weights.get_state_dict(progress=False, check_hash=False)
    except Exception as exc:  # URLError, timeouts, proxies: one clear sentence
        raise MicrotuneError(
            f"--deeplab-weights imagenet: cannot download {weights.url} and it is not in the torch hub cache "
            f"{Path(torch.hub.get_dir()) / 'checkpoints'} ({type(exc).__name__}: {exc}); copy the file there or "
            f"pass --deeplab-weights FILE.") from None
    return state, f"imagenet:{os.path.basename(weights.url)}"


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise MicrotuneError(f"--deeplab-weights {path}: no such file.") from None
    except Exception as exc:  # OSError, UnpicklingError, RuntimeError (zip), EOFError...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MicrotuneError(f"--deeplab-weights {path}: cannot read a torch state dict ({reason}).") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise MicrotuneError(f"--deeplab-weights {path}: not a state dict of tensors.")
    return state


def load_backbone_weights(backbone: Backbone, weights: str | os.PathLike) -> str:
    """Load torchvision ImageNet weights (a file, or ``"imagenet"``) into ``backbone``; returns their origin.

    The file is a state dict of the torchvision classification model (``fc.*`` / ``classifier.*``
    are ignored). For a 1-channel backbone the first convolution's RGB filters are summed.
    """
    if str(weights) == IMAGENET:
        state, origin = imagenet_state_dict(backbone.name)
        label = f"--deeplab-weights imagenet ({origin})"
    else:
        path = Path(weights)
        state, origin = _read_state_dict(path), f"file:{path.name}"
        label = f"--deeplab-weights {path}"
    target = backbone.net.state_dict()
    first = f"{backbone.first_conv}.weight"
    if backbone.in_channels == 1 and first in state and state[first].ndim == 4 and state[first].shape[1] == 3:
        state = {**state, first: state[first].sum(1, keepdim=True)}
    missing = [k for k in target if k not in state]
    if missing:
        raise MicrotuneError(f"{label}: not a torchvision {backbone.name} state dict "
                             f"(missing {len(missing)} of {len(target)} keys, e.g. {missing[0]}).")
    wrong = [k for k in target if tuple(state[k].shape) != tuple(target[k].shape)]
    if wrong:
        k = wrong[0]
        raise MicrotuneError(f"{label}: not a torchvision {backbone.name} state dict ({len(wrong)} tensors of the "
                             f"wrong shape, e.g. {k}: {tuple(state[k].shape)} instead of {tuple(target[k].shape)}).")
    backbone.net.load_state_dict({k: state[k] for k in target})
    return origin
