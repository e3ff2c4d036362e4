"""StyleGAN2 generator (mapping + skip synthesis) and residual discriminator, in pure PyTorch.

References
----------
[SG]   Karras et al. 2019, "A Style-Based Generator Architecture for GANs" (mapping net, noise, w_avg).
[SG2]  Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN" (weight
       demodulation Sec. 2.2, skip G / residual D Sec. 4.1 and Fig. 7, App. B details).
[PG]   Karras et al. 2018, "Progressive Growing of GANs" (minibatch standard deviation, Sec. 3).

Images are (N, C, R, R) float tensors in [-1, 1], C = 1 or 3, R a power of two in [16, 1024]
(4 and 8 also work). Feature maps at resolution r have ``min(channel_base // r, channel_max)``
channels ([SG2] App. B, "config F" uses channel_base 32768 and channel_max 512).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from microtune.gan.ops import (
    Conv2dLayer,
    FullyConnected,
    bias_act,
    fir_filter,
    modulated_conv2d,
    normalize_2nd_moment,
    upsample2d,
)


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    """Feature maps at ``resolution``: min(channel_base / resolution, channel_max) ([SG2] App. B)."""
    return min(channel_base // resolution, channel_max)


def check_resolution(resolution: int) -> int:
    """Return log2(resolution), asserting a power of two >= 4."""
    log2 = int(round(math.log2(resolution)))
    assert resolution >= 4 and 2**log2 == resolution, f"resolution must be a power of two, got {resolution}"
    return log2


class MappingNetwork(nn.Module):
    """z -> w: pixel-normalised z through lrelu FC layers with lr multiplier 0.01 ([SG] Sec. 2)."""

    def __init__(
        self,
        z_dim: int,                   # latent z width
        w_dim: int,                   # intermediate latent w width (also the hidden width)
        num_ws: int,                  # copies of w fed to the synthesis network
        *,
        num_layers: int = 8,          # FC layers (8 in [SG], 2 in the ADA "auto"/tiny configs)
        lr_multiplier: float = 0.01,  # reduced learning rate of the mapping net ([SG] App. C)
        w_avg_beta: float = 0.995,    # decay of the tracked w average used by truncation ([SG] App. B)
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        widths = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnected(a, b, lr_multiplier=lr_multiplier, activation="lrelu") for a, b in zip(widths[:-1], widths[1:])
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self, z: torch.Tensor, *, truncation_psi: float = 1.0, update_w_avg: bool = False
    ) -> torch.Tensor:
        """Map z (N, z_dim) to ws (N, num_ws, w_dim); truncation w_avg + psi (w - w_avg) ([SG] Sec. 3)."""
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        x = normalize_2nd_moment(z)
        for layer in self.layers:
            x = layer(x)
        if update_w_avg:
            self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1.0:
            x = self.w_avg.to(x.dtype).lerp(x, truncation_psi)
        return x.unsqueeze(1).expand(-1, self.num_ws, -1)


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + per-pixel noise + bias + lrelu ([SG2] Fig. 2c)."""

    def __init__(
        self,
        in_channels: int,     # input feature maps
        out_channels: int,    # output feature maps
        w_dim: int,           # width of w
        resolution: int,      # output resolution
        *,
        up: bool = False,     # double the resolution first (transposed conv + FIR)
        fused: bool = False,  # grouped-conv modulation instead of input/output scaling (same map)
    ) -> None:
        super().__init__()
        self.up, self.fused, self.resolution = up, fused, resolution
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)  # styles start at 1 ([SG2] App. B)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.noise_strength = nn.Parameter(torch.zeros([]))  # learned per-layer noise scale ([SG] Sec. 2)
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.register_buffer("kernel", fir_filter(), persistent=False)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(
            x, self.weight * self.weight_gain, styles, up=self.up, kernel=self.kernel, fused=self.fused
        )
        assert x.shape[2:] == (self.resolution, self.resolution), x.shape
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype) * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        return bias_act(x, self.bias, "lrelu")


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation to the image channels ([SG2] Sec. 4.1, Fig. 7a)."""

    def __init__(
        self,
        in_channels: int,      # feature maps coming in
        img_channels: int,     # image channels out (1 or 3)
        w_dim: int,            # width of w
        *,
        fused: bool = False,   # grouped-conv modulation
    ) -> None:
        super().__init__()
        self.fused = fused
        self.affine = FullyConnected(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(img_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(img_channels))
        self.weight_gain = 1.0 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=self.fused)
        return bias_act(x, self.bias, "linear")


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const | up-conv) -> conv -> toRGB, image skip-summed."""

    def __init__(
        self,
        in_channels: int,     # feature maps coming in (0 for the 4x4 block, which starts from a constant)
        out_channels: int,    # feature maps at this resolution
        w_dim: int,           # width of w
        resolution: int,      # this block's resolution
        img_channels: int,    # image channels (1 or 3)
        *,
        fused: bool = False,  # grouped-conv modulation
    ) -> None:
        super().__init__()
        self.resolution, self.in_channels = resolution, in_channels
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, 4, 4))  # learned constant input ([SG] Sec. 2)
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True, fused=fused)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, fused=fused)
        self.torgb = ToRGB(out_channels, img_channels, w_dim, fused=fused)
        self.num_conv = 1 if in_channels == 0 else 2
        self.register_buffer("kernel", fir_filter(), persistent=False)

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "random"):
        """``ws`` (N, num_conv + 1, w_dim): one w per conv, the last one for toRGB."""
        assert ws.shape[1] == self.num_conv + 1, ws.shape
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        y = self.torgb(x, ws[:, -1])
        img = y if img is None else upsample2d(img, self.kernel) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws -> image through blocks 4x4 .. R x R with skip connections to the output ([SG2] Fig. 7)."""

    def __init__(
        self,
        w_dim: int,                 # width of w
        resolution: int,            # output resolution (power of two)
        img_channels: int,          # 1 (grayscale SEM) or 3
        *,
        channel_base: int = 32768,  # feature maps = channel_base / resolution ...
        channel_max: int = 512,     # ... capped here
        fused: bool = False,        # grouped-conv modulation
    ) -> None:
        super().__init__()
        log2 = check_resolution(resolution)
        self.resolution, self.img_channels = resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        self.blocks = nn.ModuleList()
        in_ch = 0
        for res in self.block_resolutions:
            out_ch = channels_at(res, channel_base, channel_max)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels, fused=fused))
            in_ch = out_ch
        # Each conv takes one w; each toRGB takes the w after its block's last conv.
        self.num_ws = sum(block.num_conv for block in self.blocks) + 1

    def forward(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        assert ws.ndim == 3 and ws.shape[1] == self.num_ws, ws.shape
        x = img = None
        w_idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, w_idx : w_idx + block.num_conv + 1], noise_mode)
            w_idx += block.num_conv
        assert img.shape == (ws.shape[0], self.img_channels, self.resolution, self.resolution), img.shape
        return img


class Generator(nn.Module):
    """StyleGAN2 generator: mapping network + skip synthesis network."""

    def __init__(
        self,
        *,
        z_dim: int = 512,               # latent z width
        w_dim: int = 512,               # latent w width
        resolution: int = 256,          # output resolution
        img_channels: int = 1,          # output channels
        channel_base: int = 32768,      # feature maps = channel_base / resolution ...
        channel_max: int = 512,         # ... capped here
        mapping_layers: int = 8,        # FC layers in the mapping net
        mapping_lr_mult: float = 0.01,  # mapping lr multiplier ([SG] App. C)
        fused_modconv: bool = False,    # grouped-conv modulation (same result, different speed)
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.resolution, self.img_channels = z_dim, w_dim, resolution, img_channels
        self.synthesis = SynthesisNetwork(
            w_dim, resolution, img_channels, channel_base=channel_base, channel_max=channel_max, fused=fused_modconv
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim, w_dim, self.num_ws, num_layers=mapping_layers, lr_multiplier=mapping_lr_mult
        )

    def forward(self, z: torch.Tensor, *, truncation_psi: float = 1.0, noise_mode: str = "random") -> torch.Tensor:
        """z (N, z_dim) -> images (N, C, R, R) in about [-1, 1]."""
        return self.synthesis(self.mapping(z, truncation_psi=truncation_psi), noise_mode=noise_mode)


def minibatch_stddev(x: torch.Tensor, group_size: int, num_channels: int = 1) -> torch.Tensor:
    """Append the per-group feature standard deviation as extra channels ([PG] Sec. 3, [SG2] App. B).

    Groups of ``min(group_size, N)`` samples; std over the group, averaged over features and pixels
    in each of ``num_channels`` channel slices; sqrt(var + 1e-8) for numerical safety.
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    assert n % g == 0, f"batch {n} must be divisible by the minibatch-stddev group {g}"
    assert c % num_channels == 0, (c, num_channels)
    y = x.reshape(g, n // g, num_channels, c // num_channels, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0)
    y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (n/g, F)
    y = y.reshape(n // g, num_channels, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: two 3x3 convs (the second down-samples) + 1x1 down-sampled skip ([SG2] Fig. 7b)."""

    def __init__(
        self,
        in_channels: int,    # feature maps coming in (at resolution r)
        tmp_channels: int,   # feature maps after the first conv (at r)
        out_channels: int,   # feature maps out (at r / 2)
    ) -> None:
        super().__init__()
        half = math.sqrt(0.5)  # residual sum keeps unit variance ([SG2] App. B)
        self.conv0 = Conv2dLayer(in_channels, tmp_channels, 3)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, down=True, gain=half)
        self.skip = Conv2dLayer(in_channels, out_channels, 1, bias=False, activation="linear", down=True, gain=half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.conv1(self.conv0(x))


class Discriminator(nn.Module):
    """StyleGAN2 residual discriminator: fromRGB, residual blocks R..8, minibatch-stddev epilogue."""

    def __init__(
        self,
        *,
        resolution: int = 256,      # input resolution
        img_channels: int = 1,      # input channels
        channel_base: int = 32768,  # feature maps = channel_base / resolution ...
        channel_max: int = 512,     # ... capped here
        mbstd_group_size: int = 4,  # minibatch-stddev group ([PG] Sec. 3; 4 in [SG2])
    ) -> None:
        super().__init__()
        log2 = check_resolution(resolution)
        self.resolution, self.img_channels, self.mbstd_group_size = resolution, img_channels, mbstd_group_size
        ch = lambda res: channels_at(res, channel_base, channel_max)  # noqa: E731
        self.fromrgb = Conv2dLayer(img_channels, ch(resolution), 1)
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(ch(2**i), ch(2**i), ch(2 ** (i - 1))) for i in range(log2, 2, -1)
        )
        c4 = ch(4)
        self.epilogue_conv = Conv2dLayer(c4 + 1, c4, 3)
        self.epilogue_fc = FullyConnected(c4 * 16, c4, activation="lrelu")
        self.out = FullyConnected(c4, 1)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """Images (N, C, R, R) -> logits (N, 1)."""
        assert img.shape[1:] == (self.img_channels, self.resolution, self.resolution), img.shape
        x = self.fromrgb(img)
        for block in self.blocks:
            x = block(x)
        assert x.shape[2:] == (4, 4), x.shape
        x = minibatch_stddev(x, self.mbstd_group_size)
        x = self.epilogue_conv(x)
        x = self.epilogue_fc(x.flatten(1))
        return self.out(x)
