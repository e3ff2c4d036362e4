"""Differentiable ADA augmentation pipe (Karras et al. 2020, "Training GANs with limited data").

Every transformation of the ADA paper's Sec. 2.3 / App. B is applied to each image independently
with probability ``p`` (the two rotations with 1 - sqrt(1 - p) each, so that a rotation happens with
probability p overall). All geometric transformations are folded into one 3x3 matrix per image and
applied in a single bilinear ``grid_sample`` with reflection padding (the official code uses a
higher-order wavelet resampler; bilinear keeps this pure PyTorch and still exact for the pixel
blits), colour transformations into one (C+1)x(C+1) matrix. Random draws are taken for every image
whatever ``p`` is, so the RNG stream does not depend on p.

Default strengths (ADA App. B): integer translation 0.125 of the image, isotropic and anisotropic
scale lognormal with sigma 0.2·ln 2, rotation uniform in [-pi, pi], fractional translation
N(0, 0.125²), brightness N(0, 0.2²), contrast lognormal 0.5·ln 2, hue uniform in [-pi, pi],
saturation lognormal 1·ln 2, filter band gains lognormal 1·ln 2, noise sigma |N(0, 0.1²)|, cutout
square of half the image size.

Grayscale: hue is a rotation about the luma axis and saturation a scale orthogonal to it, so both
are the identity on one channel; luma flip (x -> -x on one channel) inverts SEM contrast and is off
by default on 1-channel data (the SEM study switched it off).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

AUGPIPE_PRESETS: dict[str, tuple[str, ...]] = {
    "none": (),
    "blit": ("xflip", "rotate90", "xint"),
    "geom": ("scale", "rotate", "aniso", "xfrac"),
    "color": ("brightness", "contrast", "lumaflip", "hue", "saturation"),
    "filter": ("imgfilter",),
    "noise": ("noise",),
    "cutout": ("cutout",),
}
AUGPIPE_PRESETS["bg"] = AUGPIPE_PRESETS["blit"] + AUGPIPE_PRESETS["geom"]
AUGPIPE_PRESETS["bgc"] = AUGPIPE_PRESETS["bg"] + AUGPIPE_PRESETS["color"]
AUGPIPE_PRESETS["bgcf"] = AUGPIPE_PRESETS["bgc"] + AUGPIPE_PRESETS["filter"]
AUGPIPE_PRESETS["bgcfn"] = AUGPIPE_PRESETS["bgcf"] + AUGPIPE_PRESETS["noise"]
AUGPIPE_PRESETS["bgcfnc"] = AUGPIPE_PRESETS["bgcfn"] + AUGPIPE_PRESETS["cutout"]

XINT_MAX = 0.125        # integer translation, fraction of the image size (ADA App. B)
SCALE_STD = 0.2         # isotropic scale: log2 s ~ N(0, 0.2²)
ROTATE_MAX = 1.0        # arbitrary rotation: theta ~ U(-pi, pi)
ANISO_STD = 0.2         # anisotropic scale: log2 s ~ N(0, 0.2²)
XFRAC_STD = 0.125       # fractional translation ~ N(0, 0.125²) of the image size
BRIGHTNESS_STD = 0.2    # additive brightness ~ N(0, 0.2²)
CONTRAST_STD = 0.5      # contrast: log2 c ~ N(0, 0.5²)
HUE_MAX = 1.0           # hue rotation ~ U(-pi, pi)
SATURATION_STD = 1.0    # saturation: log2 s ~ N(0, 1)
IMGFILTER_STD = 1.0     # band gain: log2 g ~ N(0, 1)
IMGFILTER_BANDS = (0.0, 0.125, 0.25, 0.5, 1.0)  # band edges in units of the Nyquist frequency
NOISE_STD = 0.1         # additive noise sigma ~ |N(0, 0.1²)|
CUTOUT_SIZE = 0.5       # cutout square side, fraction of the image size


def _eye(n: int, size: int, device) -> torch.Tensor:
    return torch.eye(size, device=device).unsqueeze(0).repeat(n, 1, 1)


def _mat2d(rows) -> torch.Tensor:
    """Stack per-image entries (tensors (N,) or floats) into (N, 3, 3) matrices."""
    ref = next(e for row in rows for e in row if torch.is_tensor(e))
    return torch.stack([torch.stack([torch.as_tensor(e, dtype=ref.dtype, device=ref.device).expand_as(ref) for e in row], -1) for row in rows], -2)


def _translate(tx, ty):
    return _mat2d([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def _scale(sx, sy):
    return _mat2d([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def _rotate(theta):
    c, s = torch.cos(theta), torch.sin(theta)
    return _mat2d([[c, -s, 0], [s, c, 0], [0, 0, 1]])


class AugmentPipe(nn.Module):
    """ADA augmentation: ``pipe(images, p)`` with images (N, C, H, W) in [-1, 1], p in [0, 1]."""

    def __init__(
        self,
        preset: str = "bgc",          # one of AUGPIPE_PRESETS
        *,
        num_channels: int = 1,        # image channels (1 or 3)
        lumaflip: bool | None = None,  # None: on for RGB, off for grayscale (SEM study)
    ) -> None:
        super().__init__()
        if preset not in AUGPIPE_PRESETS:
            raise ValueError(f"unknown augpipe {preset!r}; choose from {sorted(AUGPIPE_PRESETS)}")
        self.preset, self.num_channels = preset, num_channels
        enabled = set(AUGPIPE_PRESETS[preset])
        if lumaflip is None:
            lumaflip = num_channels > 1
        if not lumaflip:
            enabled.discard("lumaflip")
        if num_channels == 1:  # identity on one channel: skip the work
            enabled -= {"hue", "saturation"}
        self.enabled = frozenset(enabled)
        self.geometric = bool(self.enabled & set(AUGPIPE_PRESETS["bg"]))
        self.color = bool(self.enabled & set(AUGPIPE_PRESETS["color"]))

    def forward(self, images: torch.Tensor, p: float | torch.Tensor) -> torch.Tensor:
        assert images.ndim == 4 and images.shape[1] == self.num_channels, images.shape
        if not self.enabled or (isinstance(p, float) and p <= 0.0):
            return images
        n, c, h, w = images.shape
        p = torch.as_tensor(p, dtype=torch.float32, device=images.device).clamp(0, 1)
        x = images if images.dtype in (torch.float32, torch.float64) else images.float()  # bf16: sample in fp32
        if self.geometric:
            x = self._apply_geometric(x, self._geometric_matrix(n, p, h, x.device))
        if self.color:
            x = self._apply_color(x, self._color_matrix(n, c, p, x.device))
        if "imgfilter" in self.enabled:
            x = self._filter(x, p)
        if "noise" in self.enabled:
            sigma = torch.where(torch.rand(n, device=x.device) < p, torch.randn(n, device=x.device).abs() * NOISE_STD, 0)
            x = x + torch.randn_like(x) * sigma.to(x.dtype)[:, None, None, None]
        if "cutout" in self.enabled:
            x = self._cutout(x, p)
        x = x.to(images.dtype)
        assert x.shape == images.shape
        return x

    def _draw(self, n, p, device, sample, identity):
        """Per-image parameter: ``sample`` where U < p, else ``identity``."""
        return torch.where(torch.rand(n, device=device) < p, sample, torch.as_tensor(identity, device=device, dtype=sample.dtype))

    def _geometric_matrix(self, n: int, p: torch.Tensor, size: int, device) -> torch.Tensor:
        """(N, 3, 3) map from output to input coordinates in [-1, 1] (ADA App. B, pixel blit + geom)."""
        mat = _eye(n, 3, device)
        on = self.enabled
        if "xflip" in on:
            i = self._draw(n, p, device, torch.randint(0, 2, [n], device=device).float(), 0)
            mat = mat @ _scale(1 - 2 * i, torch.ones_like(i))
        if "rotate90" in on:
            i = self._draw(n, p, device, torch.randint(0, 4, [n], device=device).float(), 0)
            mat = mat @ _rotate(i * (math.pi / 2))
        if "xint" in on:
            t = (torch.rand(n, 2, device=device) * 2 - 1) * XINT_MAX
            t = torch.round(t * size) * (2.0 / size)  # whole pixels, in [-1, 1] units
            t = torch.where((torch.rand(n, device=device) < p)[:, None], t, 0)
            mat = mat @ _translate(t[:, 0], t[:, 1])
        p_rot = 1 - torch.sqrt(1 - p)  # two rotations: P(any) = p (ADA App. B)
        if "scale" in on:
            s = self._draw(n, p, device, torch.exp2(torch.randn(n, device=device) * SCALE_STD), 1)
            mat = mat @ _scale(s, s)
        if "rotate" in on:
            theta = self._draw(n, p_rot, device, (torch.rand(n, device=device) * 2 - 1) * math.pi * ROTATE_MAX, 0)
            mat = mat @ _rotate(theta)
        if "aniso" in on:
            s = self._draw(n, p, device, torch.exp2(torch.randn(n, device=device) * ANISO_STD), 1)
            mat = mat @ _scale(s, 1 / s)
        if "rotate" in on:
            theta = self._draw(n, p_rot, device, (torch.rand(n, device=device) * 2 - 1) * math.pi * ROTATE_MAX, 0)
            mat = mat @ _rotate(theta)
        if "xfrac" in on:
            t = torch.randn(n, 2, device=device) * XFRAC_STD * 2  # fraction of size -> [-1, 1] units
            t = torch.where((torch.rand(n, device=device) < p)[:, None], t, 0)
            mat = mat @ _translate(t[:, 0], t[:, 1])
        return mat

    @staticmethod
    def _apply_geometric(x: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(mat[:, :2, :].to(x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)

    def _color_matrix(self, n: int, c: int, p: torch.Tensor, device) -> torch.Tensor:
        """(N, C+1, C+1) homogeneous colour transform (ADA App. B: brightness, contrast, luma flip,
        hue rotation about the luma axis v = 1/sqrt(C), saturation orthogonal to v)."""
        mat = _eye(n, c + 1, device)
        v = torch.full([c], 1 / math.sqrt(c), device=device)
        vv = torch.outer(v, v)
        eye = torch.eye(c, device=device)
        on = self.enabled

        def lin(m):  # embed (N, C, C) in the homogeneous matrix
            out = _eye(n, c + 1, device)
            out[:, :c, :c] = m
            return out

        if "brightness" in on:
            b = self._draw(n, p, device, torch.randn(n, device=device) * BRIGHTNESS_STD, 0)
            step = _eye(n, c + 1, device)
            step[:, :c, c] = b[:, None]
            mat = step @ mat
        if "contrast" in on:
            s = self._draw(n, p, device, torch.exp2(torch.randn(n, device=device) * CONTRAST_STD), 1)
            mat = lin(eye * s[:, None, None]) @ mat
        if "lumaflip" in on:
            i = self._draw(n, p, device, torch.randint(0, 2, [n], device=device).float(), 0)
            mat = lin(eye - 2 * vv * i[:, None, None]) @ mat  # Householder reflection of luma
        if "hue" in on and c == 3:
            theta = self._draw(n, p, device, (torch.rand(n, device=device) * 2 - 1) * math.pi * HUE_MAX, 0)
            a = 1 / math.sqrt(3)  # cross-product matrix of v = (a, a, a), built without host syncs
            k = torch.tensor([[0.0, -a, a], [a, 0.0, -a], [-a, a, 0.0]], device=device)
            cos, sin = torch.cos(theta)[:, None, None], torch.sin(theta)[:, None, None]
            mat = lin(cos * eye + sin * k + (1 - cos) * vv) @ mat  # Rodrigues rotation about v
        if "saturation" in on and c > 1:
            s = self._draw(n, p, device, torch.exp2(torch.randn(n, device=device) * SATURATION_STD), 1)
            mat = lin(vv + (eye - vv) * s[:, None, None]) @ mat
        return mat

    @staticmethod
    def _apply_color(x: torch.Tensor, mat: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        mat = mat.to(x.dtype)
        y = mat[:, :c, :c] @ x.reshape(n, c, h * w) + mat[:, :c, c:]
        return y.reshape(n, c, h, w)

    def _filter(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Amplify/attenuate 4 frequency bands by lognormal gains, renormalised so that white noise
        keeps its expected power (ADA App. B, "image-space filtering"); applied with FFTs. Bands are
        annuli of the radial frequency (edges 0, 1/8, 1/4, 1/2, 1 of Nyquist, corners in the last)."""
        n, c, h, w = x.shape
        fy = torch.fft.fftfreq(h, device=x.device) * 2  # 1 = Nyquist
        fx = torch.fft.rfftfreq(w, device=x.device) * 2
        radius = torch.sqrt(fy[:, None].square() + fx[None, :].square()).clamp(max=1.0)
        band_of = torch.bucketize(radius, torch.tensor(IMGFILTER_BANDS[1:-1], device=x.device), right=True)
        num_bands = len(IMGFILTER_BANDS) - 1
        widths = torch.bincount(band_of.flatten(), minlength=num_bands).float() / band_of.numel()  # white-noise power per band
        gains = torch.ones(n, num_bands, device=x.device)
        for band in range(num_bands):
            t = torch.ones_like(gains)
            t[:, band] = self._draw(n, p, x.device, torch.exp2(torch.randn(n, device=x.device) * IMGFILTER_STD), 1)
            t = t / (t.square() * widths).sum(dim=1, keepdim=True).sqrt()
            gains = gains * t
        gain_map = gains[:, band_of].to(x.dtype)  # (N, h, w//2+1)
        spectrum = torch.fft.rfft2(x) * gain_map[:, None]
        return torch.fft.irfft2(spectrum, s=(h, w))

    def _cutout(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        """Zero a square of side 0.5 (mid-grey in [-1, 1]) at a uniform centre (DeVries & Taylor 2017)."""
        n, c, h, w = x.shape
        applied = torch.rand(n, device=x.device) < p
        centre = torch.rand(n, 2, 1, 1, device=x.device)
        gy = ((torch.arange(h, device=x.device) + 0.5) / h)[None, :, None]
        gx = ((torch.arange(w, device=x.device) + 0.5) / w)[None, None, :]
        keep = ((gx - centre[:, 0]).abs() >= CUTOUT_SIZE / 2) | ((gy - centre[:, 1]).abs() >= CUTOUT_SIZE / 2)
        keep = keep | ~applied[:, None, None]
        return x * keep[:, None].to(x.dtype)
