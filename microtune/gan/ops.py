"""Pure-PyTorch building blocks of StyleGAN2: FIR resampling, equalised-lr layers, modulated conv.

References
----------
[SG2]  Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (StyleGAN2).
[PG]   Karras et al. 2018, "Progressive Growing of GANs" (equalised learning rate, Sec. 4.1).

Everything here is written from the papers' formulas; no custom CUDA kernels, so the same code runs
on CPU (tests) and CUDA (real work).

Resampling uses the separable binomial FIR filter [1, 3, 3, 1] ([SG2] Sec. 2 / App. B, "bilinear
filtering when up/downsampling", inherited from StyleGAN). Padding arithmetic, derived once:

* ``upsample2d``: zero-insertion by 2 then the 4-tap filter (gain 2 per axis) is a stride-2
  transposed convolution with the filter, cropped by one sample on each side.
* ``downsample2d``: the filter with one sample of padding per side, then every second sample; output
  pixel n is centred on input pixels (2n, 2n+1).
* up-convolution: stride-2 transposed 3x3 convolution (size 2H+1) then the filter with one sample of
  padding per side gives 2H samples aligned with ``upsample2d`` followed by a 3x3 convolution.
* down-convolution: the filter with two samples of padding per side (H+1 samples) then a stride-2
  3x3 convolution without padding gives H/2 samples aligned with ``downsample2d``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2  # leaky-ReLU slope of StyleGAN/StyleGAN2 ([SG2] App. B).
LRELU_GAIN = math.sqrt(2.0)  # He gain for (leaky) ReLU so activations keep unit variance ([PG] 4.1).
DEMOD_EPS = 1e-8  # epsilon inside the demodulation rsqrt ([SG2] Eq. 3).


def fir_filter(device: torch.device | str | None = None) -> torch.Tensor:
    """Return the normalised 4x4 binomial filter outer([1,3,3,1], [1,3,3,1]) / 64 ([SG2] Sec. 2)."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0], device=device)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum()


def _depthwise(x: torch.Tensor, kernel: torch.Tensor, *, stride: int, pad: int) -> torch.Tensor:
    """Filter every channel of ``x`` with the same symmetric 2D ``kernel`` (zero padding ``pad``)."""
    channels = x.shape[1]
    weight = kernel.to(x.dtype)[None, None].expand(channels, 1, *kernel.shape)
    if pad:
        x = F.pad(x, [pad, pad, pad, pad])
    return F.conv2d(x, weight, stride=stride, groups=channels)


def blur2d(x: torch.Tensor, kernel: torch.Tensor, *, pad: int, gain: float = 1.0) -> torch.Tensor:
    """Filter ``x`` (N, C, H, W) with ``kernel * gain``, zero-padding ``pad`` pixels per side."""
    return _depthwise(x, kernel * gain, stride=1, pad=pad)


def upsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Upsample (N, C, H, W) to (N, C, 2H, 2W) with the FIR filter (zero-insertion + filter, gain 4)."""
    n, c, h, w = x.shape
    weight = (kernel * 4.0).to(x.dtype)[None, None].expand(c, 1, *kernel.shape)
    y = F.conv_transpose2d(x, weight, stride=2, groups=c)[:, :, 1:-1, 1:-1]
    assert y.shape == (n, c, 2 * h, 2 * w), y.shape
    return y


def downsample2d(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Downsample (N, C, H, W) to (N, C, H/2, W/2): FIR filter, then keep every second sample."""
    n, c, h, w = x.shape
    y = _depthwise(x, kernel, stride=2, pad=1)
    assert y.shape == (n, c, h // 2, w // 2), y.shape
    return y


class _BiasLeakyReLU(torch.autograd.Function):
    """y = lrelu(x + b) · gain, saving only y: x > 0 exactly where y > 0 (gain > 0), so the backward
    needs no pre-activation copy (one full-size tensor less per layer; y is kept anyway as the next
    layer's input). The backward is built from differentiable ops, so double backward (R1, path
    length) works; the second derivative of a leaky ReLU is zero almost everywhere."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, bias: torch.Tensor, gain: float) -> torch.Tensor:
        y = F.leaky_relu(x + bias.reshape([1, -1] + [1] * (x.ndim - 2)), LRELU_SLOPE).mul_(gain)
        ctx.save_for_backward(y)
        ctx.gain = gain
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        (y,) = ctx.saved_tensors
        # aten's fused kernel with self_is_result=True reads the sign from y; its own derivative
        # is defined, and it keeps only y (already saved) for double backward.
        grad_x = torch.ops.aten.leaky_relu_backward(grad_y * ctx.gain, y, LRELU_SLOPE, True)
        dims = [0] + list(range(2, grad_x.ndim))
        return grad_x, grad_x.sum(dim=dims), None


def bias_act(x: torch.Tensor, bias: torch.Tensor | None, activation: str, gain: float = 1.0) -> torch.Tensor:
    """Add a per-channel bias (dim 1) and apply ``linear`` or ``lrelu`` (slope 0.2, gain sqrt 2)."""
    if activation == "lrelu" and bias is not None and gain > 0:
        return _BiasLeakyReLU.apply(x, bias.to(x.dtype), gain * LRELU_GAIN)
    if bias is not None:
        x = x + bias.reshape([1, -1] + [1] * (x.ndim - 2))
    if activation == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
        gain = gain * LRELU_GAIN
    elif activation != "linear":
        raise ValueError(f"unknown activation {activation!r}")
    return x * gain if gain != 1.0 else x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each latent to unit mean square (the pixel norm of z in StyleGAN's mapping network)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnected(nn.Module):
    """Equalised-lr dense layer ([PG] 4.1): weights ~ N(0, 1/lr_mult²), scaled at run time."""

    def __init__(
        self,
        in_features: int,            # input width
        out_features: int,           # output width
        *,
        bias: bool = True,           # learn a bias
        bias_init: float = 0.0,      # effective initial bias (1 for style affines, [SG2] App. B)
        lr_multiplier: float = 1.0,  # learning-rate multiplier (0.01 in the mapping net, StyleGAN Sec. 2)
        activation: str = "linear",  # "linear" or "lrelu"
    ) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 2 and x.shape[1] == self.weight.shape[1], x.shape
        weight = self.weight * self.weight_gain
        bias = self.bias * self.bias_gain if self.bias is not None else None
        if self.activation == "linear":
            return F.linear(x, weight, bias)
        return bias_act(F.linear(x, weight), bias, self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-lr convolution with optional FIR down-sampling by 2 (used by the discriminator)."""

    def __init__(
        self,
        in_channels: int,            # input channels
        out_channels: int,           # output channels
        kernel_size: int,            # odd square kernel (1 or 3)
        *,
        bias: bool = True,           # learn a bias
        activation: str = "lrelu",   # "linear" or "lrelu"
        down: bool = False,          # FIR down-sample by 2 ([SG2] Fig. 7 residual D)
        gain: float = 1.0,           # extra output gain (sqrt(0.5) on residual branches, [SG2] App. B)
    ) -> None:
        super().__init__()
        self.activation, self.down, self.gain = activation, down, gain
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.register_buffer("kernel", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == self.weight.shape[1], x.shape
        weight = self.weight * self.weight_gain
        if not self.down:
            x = F.conv2d(x, weight, padding=self.padding)
        elif self.weight.shape[-1] == 1:
            x = F.conv2d(downsample2d(x, self.kernel), weight)
        else:
            x = F.conv2d(blur2d(x, self.kernel, pad=self.padding + 1), weight, stride=2)
        return bias_act(x, self.bias, self.activation, self.gain)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    demodulate: bool = True,
    up: bool = False,
    kernel: torch.Tensor | None = None,
    fused: bool = False,
) -> torch.Tensor:
    """Modulated (and demodulated) convolution of [SG2] Sec. 2.2, Eqs. 1-3.

    ``x`` (N, I, H, W); ``weight`` (O, I, k, k), already multiplied by its equalised-lr gain;
    ``styles`` (N, I). w'_ijk = s_i w_ijk (Eq. 1); w''_ijk = w'_ijk / sqrt(sum_ik w'_ijk² + eps)
    (Eq. 3). ``fused`` runs one grouped convolution with per-sample weights; otherwise the styles
    scale the input and the demodulation coefficients scale the output, which is the same linear map
    and is usually faster (one shared-weight convolution). ``up`` doubles the resolution (transposed
    convolution + FIR filter, see the module docstring).
    """
    n, i, h, w = x.shape
    o, i2, kh, kw = weight.shape
    assert i == i2 and styles.shape == (n, i), (x.shape, weight.shape, styles.shape)
    dcoefs = None
    if demodulate:  # [SG2] Eq. 3: sigma_j = sqrt(sum_{i,k} (s_i w_ijk)^2)
        dcoefs = (styles.square() @ weight.square().sum(dim=[2, 3]).t() + DEMOD_EPS).rsqrt()  # (N, O)
    if fused:
        wts = weight[None] * styles[:, None, :, None, None]
        if dcoefs is not None:
            wts = wts * dcoefs[:, :, None, None, None]
        x = x.reshape(1, n * i, h, w)
        if up:
            x = F.conv_transpose2d(x, wts.transpose(1, 2).reshape(n * i, o, kh, kw), stride=2, groups=n)
        else:
            x = F.conv2d(x, wts.reshape(n * o, i, kh, kw), padding=kh // 2, groups=n)
        x = x.reshape(n, o, *x.shape[2:])
    else:
        x = x * styles[:, :, None, None]
        if up:
            x = F.conv_transpose2d(x, weight.transpose(0, 1), stride=2)
        else:
            x = F.conv2d(x, weight, padding=kh // 2)
        if dcoefs is not None:
            x = x * dcoefs[:, :, None, None]
    if up:
        assert kernel is not None
        x = blur2d(x, kernel, pad=1, gain=4.0)
    assert x.shape == (n, o, h * (2 if up else 1), w * (2 if up else 1)), x.shape
    return x
