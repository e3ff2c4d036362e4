"""VGG-19 classifier and FCN-32s/16s/8s on VGG-19 features (HPTL study, sec. 3.3.2).

Architecture (Simonyan & Zisserman 2015; Long, Shelhamer & Darrell 2015; the HPTL paper's
sec. 3.3.2: "sixteen convolutional, five pooling, and three fully connected layers" for VGG-19 and
"sixteen convolutional, five pooling, three fully convolutional, and 3/2/1 deconvolutional layers"
for FCN-8s/16s/32s). Every network is built from named *units*, the granularity in which transfer
depths are counted (:data:`UNITS`):

========== ============================================ ==========================================
unit       VGG-19                                       FCN
========== ============================================ ==========================================
conv1      2 conv 3x3 (64) + ReLU, max-pool              same
conv2      2 conv 3x3 (128) + ReLU, max-pool             same
conv3      4 conv 3x3 (256) + ReLU, max-pool  (pool3)    same
conv4      4 conv 3x3 (512) + ReLU, max-pool  (pool4)    same
conv5      4 conv 3x3 (512) + ReLU, max-pool  (pool5)    same
fc6        Linear 512·7·7 → 4096, ReLU, dropout          conv 7x7 → 4096, ReLU, dropout
fc7        Linear 4096 → 4096, ReLU, dropout             conv 1x1 → 4096, ReLU, dropout
fc8        Linear 4096 → source classes                  (score_fr: conv 1x1 → classes)
upscore2   —                                             deconv x2 of the stride-32 scores (16s, 8s)
score_pool4 —                                            conv 1x1 on pool4 (16s, 8s)
========== ============================================ ==========================================

then FCN-32s: ``upscore32`` (deconv x32); FCN-16s: ``upscore16`` (deconv x16); FCN-8s:
``upscore_pool4`` (deconv x2), ``score_pool3`` (conv 1x1 on pool3), ``upscore8`` (deconv x8).
Deconvolutions are learned ``ConvTranspose2d`` initialised to bilinear up-sampling. Every class
scoring layer (``score_fr``, ``score_pool4``, ``score_pool3``) starts at zero, as in FCN (Long et
al. 2015 zero-initialise the class scoring layer and the new skip scorers; random initialisation
gave them neither better results nor faster convergence), so an untrained FCN predicts uniform
class probabilities and an FCN-16s starts out as its FCN-32s. The other layers get the random
(Kaiming) initialisation of the HPTL paper (sec. 3.3.4). A random ``score_fr`` on the wide fc7
starts from large random logits; measured at width 1/16 on synthetic data, the FCN-32s of HPTL
stage 2 then ended its 96 CPU steps at 0.36-0.51 pixel accuracy (0.36: the training prior)
instead of 0.68-0.71.

``width`` scales every channel count (conv and fc) for CPU-sized runs: ``width=1`` is the paper's
network (and the only one ImageNet weights fit); ``width=1/16`` gives 4-8-16-32-32 conv channels and
256-wide fc layers. Input: 1 (grayscale) or 3 channels, any size; FCNs pad the input to a multiple
of 32 (edge replication) and crop the scores back, so the output always has the input's H×W.

Resolution and crop size at CPU scale: the scores of an FCN-8s live on a stride-8 grid, so phase
regions only a few pixels wide cannot be resolved (on 64×64 synthetic micrographs with 4-10 px
regions, even the true masks averaged over 8×8 blocks and bilinearly up-sampled reach only 74 %
pixel accuracy). And fc6 is a 7×7 convolution on pool5, sized for 224-pixel crops (pool5 7×7):
a c-pixel training crop gives a (c/32)-wide pool5, so the taps of fc6 farther than c/32 − 1 from
the centre never see a feature in training and keep their random initial values; evaluating on
whole images larger than the crop then mixes them in (measured: FCN-8s trained on 64-pixel crops
of 256×256 images, 0.76-0.81 pixel accuracy on whole images against 0.83-0.84 tile by tile).
Train on crops of at least 224 pixels or the whole image where the budget allows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from microtune.seg.options import UNITS  # noqa: F401  transferable units in order (depth d = the first d)

CONV_CONFIG = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))  # VGG-19 (configuration "E")
FC_CHANNELS = 4096
FC_POOL = 7                      # VGG's adaptive pool size; fc6 = 7x7 conv in the FCN
VARIANTS = ("32s", "16s", "8s")


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels`` scaled by ``width`` (at least 2)."""
    return max(2, int(round(channels * width)))


def _conv_block(in_ch: int, out_ch: int, convs: int, batch_norm: bool = False) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers.append(nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
    return nn.Sequential(*layers)


def _add_conv_blocks(model: nn.Module, in_channels: int, width: float, batch_norm: bool = False) -> list[int]:
    """Add the five convolutional units conv1..conv5 to ``model``; returns their channel counts."""
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    channels = [scaled(c, width) for c, _ in CONV_CONFIG]
    prev = in_channels
    for b, ((_, convs), ch) in enumerate(zip(CONV_CONFIG, channels), start=1):
        model.add_module(f"conv{b}", _conv_block(prev, ch, convs, batch_norm))
        prev = ch
    return channels


def _pools(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of pool1..pool5."""
    outs = []
    for b in range(1, 6):
        x = getattr(model, f"conv{b}")(x)
        outs.append(x)
    return outs


class VGG19(nn.Module):
    """VGG-19 classifier (stage 1 of HPTL); units conv1..conv5, fc6, fc7, fc8.

    Parameters
    ----------
    num_classes : int
        Classes of the source task (1000 for ImageNet).
    in_channels : int
        1 (grayscale) or 3.
    width : float
        Channel multiplier (1 = the paper's VGG-19).
    dropout : float
        Dropout after fc6 and fc7 (paper sec. 3.3.4: dropout in VGG-19 and the FCNs).
    batch_norm : bool
        Batch normalisation after every conv (VGG-19-BN). Not in the paper; it lets the tiny
        CPU-sized networks leave the predict-the-prior plateau in tens of steps instead of hundreds.
    """

    def __init__(self, num_classes: int, *, in_channels: int = 1, width: float = 1.0, dropout: float = 0.5,
                 batch_norm: bool = False):
        super().__init__()
        self.in_channels, self.width, self.num_classes = in_channels, width, num_classes
        self.batch_norm = batch_norm
        self.channels = _add_conv_blocks(self, in_channels, width, batch_norm)
        fc = scaled(FC_CHANNELS, width)
        c5 = self.channels[-1]
        self.pool = nn.AdaptiveAvgPool2d(FC_POOL)
        self.fc6 = nn.Sequential(nn.Linear(c5 * FC_POOL * FC_POOL, fc), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc7 = nn.Sequential(nn.Linear(fc, fc), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.fc8 = nn.Linear(fc, num_classes)
        _init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == self.in_channels, x.shape
        x = self.pool(_pools(self, x)[-1]).flatten(1)
        return self.fc8(self.fc7(self.fc6(x)))


class FCN(nn.Module):
    """FCN-32s, FCN-16s or FCN-8s on VGG-19 features; output (N, classes, H, W) logits.

    Parameters
    ----------
    num_classes : int
        Segmentation classes (any number >= 2).
    variant : {"32s", "16s", "8s"}
        Which skip architecture.
    in_channels : int
        1 (grayscale) or 3.
    width : float
        Channel multiplier (1 = the paper's network).
    dropout : float
        Dropout2d after fc6 and fc7.
    batch_norm : bool
        Batch normalisation after every conv of conv1..conv5 (see :class:`VGG19`).
    """

    def __init__(self, num_classes: int, variant: str = "8s", *, in_channels: int = 1, width: float = 1.0,
                 dropout: float = 0.5, batch_norm: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.variant, self.num_classes, self.in_channels, self.width = variant, num_classes, in_channels, width
        self.batch_norm = batch_norm
        self.channels = _add_conv_blocks(self, in_channels, width, batch_norm)
        c3, c4, c5 = self.channels[2:]
        fc = scaled(FC_CHANNELS, width)
        self.fc6 = nn.Sequential(nn.Conv2d(c5, fc, FC_POOL, padding=FC_POOL // 2), nn.ReLU(inplace=True),
                                 nn.Dropout2d(dropout))
        self.fc7 = nn.Sequential(nn.Conv2d(fc, fc, 1), nn.ReLU(inplace=True), nn.Dropout2d(dropout))
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        n = num_classes
        if variant == "32s":
            self.upscore32 = _deconv(n, 32)
        else:
            self.upscore2 = _deconv(n, 2)
            self.score_pool4 = nn.Conv2d(c4, n, 1)
            if variant == "16s":
                self.upscore16 = _deconv(n, 16)
            else:
                self.upscore_pool4 = _deconv(n, 2)
                self.score_pool3 = nn.Conv2d(c3, n, 1)
                self.upscore8 = _deconv(n, 8)
        _init_weights(self)
        for name in ("score_fr", "score_pool4", "score_pool3"):
            if hasattr(self, name):
                nn.init.zeros_(getattr(self, name).weight)
                nn.init.zeros_(getattr(self, name).bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == self.in_channels, x.shape
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        pools = _pools(self, x)
        score = self.score_fr(self.fc7(self.fc6(pools[4])))
        if self.variant == "32s":
            out = self.upscore32(score)
        else:
            score = self.upscore2(score) + self.score_pool4(pools[3])
            if self.variant == "16s":
                out = self.upscore16(score)
            else:
                score = self.upscore_pool4(score) + self.score_pool3(pools[2])
                out = self.upscore8(score)
        assert out.shape[-2:] == x.shape[-2:], (out.shape, x.shape)
        return out[..., :h, :w]


def _deconv(channels: int, factor: int) -> nn.ConvTranspose2d:
    """Learned up-sampling by ``factor`` (kernel 2f, stride f, padding f/2: output = f × input)."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor, padding=factor // 2, bias=False)
    layer.weight.data.copy_(bilinear_kernel(channels, 2 * factor))
    layer.is_upsampler = True
    return layer


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """(C, C, k, k) transposed-conv weight doing per-channel bilinear interpolation."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float32)
    filt = 1 - (og - center).abs() / factor
    kernel = filt[:, None] * filt[None, :]
    weight = torch.zeros(channels, channels, size, size)
    weight[range(channels), range(channels)] = kernel
    return weight


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def unit_parameters(model: nn.Module, unit: str) -> dict[str, nn.Parameter]:
    """The parameters of ``unit`` in ``model`` by full name (empty when the unit is absent)."""
    return {name: p for name, p in model.named_parameters() if name.split(".", 1)[0] == unit}


def unit_buffers(model: nn.Module, unit: str) -> dict[str, torch.Tensor]:
    """The buffers (batch-norm statistics) of ``unit`` in ``model`` by full name."""
    return {name: b for name, b in model.named_buffers() if name.split(".", 1)[0] == unit}


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (shared aliases counted once)."""
    return sum(p.numel() for p in model.parameters())
