"""DCGAN baseline of Mishra & Pathak 2021 (Al-Si micrographs), after Radford et al. 2016.

Generator: z (N, z_dim) -> 4x4 transposed conv -> [stride-2 transposed conv 4x4, batch norm, ReLU]
-> stride-2 transposed conv to the image channels, tanh. Discriminator: stride-2 conv 4x4 with
LeakyReLU 0.2 (no batch norm on the first), batch norm on the others, a final 4x4 conv to one logit
(the paper's sigmoid is folded into the logistic loss, softplus, for numerical stability). Weights
~ N(0, 0.02), batch-norm scales ~ N(1, 0.02) (Radford et al. Sec. 4). For 64x64 the widths are the
paper's (G: 512-256-128-64, D: 64-128-256-512); other powers of two from 32 add/remove stages,
widths capped at 512.
"""

from __future__ import annotations

import math

import torch
from torch import nn

WIDTH_CAP = 512  # widest layer (the paper's 64x64 net peaks at 512)


def _init_weights(module: nn.Module) -> None:
    """N(0, 0.02) conv weights; batch-norm scale N(1, 0.02), shift 0 (Radford et al. 2016, Sec. 4)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(nn.Module):
    """z -> image in [-1, 1]; z_dim, resolution (power of two >= 32), img_channels, base width ngf."""

    def __init__(
        self,
        *,
        z_dim: int = 100,        # latent width (the study's summary shows 1000)
        resolution: int = 64,    # output side, a power of two >= 32
        img_channels: int = 1,   # output channels
        ngf: int = 64,           # width of the last hidden layer; doubles towards 4x4 (cap 512)
    ) -> None:
        super().__init__()
        stages = int(math.log2(resolution)) - 2  # 4 -> resolution by doubling
        assert resolution >= 32 and 2 ** (stages + 2) == resolution, resolution
        self.z_dim, self.resolution, self.img_channels = z_dim, resolution, img_channels
        widths = [min(ngf * 2 ** (stages - 1 - i), WIDTH_CAP) for i in range(stages)]  # e.g. 512..64
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)
        ]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(widths[-1], img_channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor, **_ignored) -> torch.Tensor:
        assert z.ndim == 2 and z.shape[1] == self.z_dim, z.shape
        img = self.main(z[:, :, None, None])
        assert img.shape[1:] == (self.img_channels, self.resolution, self.resolution), img.shape
        return img


class DCGANDiscriminator(nn.Module):
    """image -> logit (N, 1); resolution (power of two >= 32), img_channels, base width ndf."""

    def __init__(
        self,
        *,
        resolution: int = 64,    # input side, a power of two >= 32
        img_channels: int = 1,   # input channels
        ndf: int = 64,           # width of the first layer; doubles per stage (cap 512)
    ) -> None:
        super().__init__()
        stages = int(math.log2(resolution)) - 2
        assert resolution >= 32 and 2 ** (stages + 2) == resolution, resolution
        self.resolution, self.img_channels = resolution, img_channels
        widths = [min(ndf * 2**i, WIDTH_CAP) for i in range(stages)]  # e.g. 64..512
        layers: list[nn.Module] = [nn.Conv2d(img_channels, widths[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, True)]
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        assert img.shape[1:] == (self.img_channels, self.resolution, self.resolution), img.shape
        return self.main(img).reshape(img.shape[0], 1)
