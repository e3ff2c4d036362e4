"""Synthetic ferrite-martensite dual-phase (DP) steel SEM micrographs with exact phase masks.

The images stand in for the study's private dataset (30 DP steel sheets, martensite fraction 37 % to
100 %, sectioned parallel to the rolling direction, nital-etched, imaged with secondary electrons)
wherever a demo or a test must run without data. Each *specimen* (steel sheet) draws its own
parameters (:func:`draw_specimen`); each *image* of a specimen is a new random field of view with
those parameters (:func:`render_micrograph`).

Construction, one step per helper below:

1. Ferrite grains: a Voronoi tessellation of a jittered hexagonal lattice of seeds, computed in
   coordinates stretched along x so that grains are elongated along the rolling direction (x).
2. Phase map: a Gaussian random field (GRF) made by spectral filtering of white noise with a
   Matérn-type anisotropic spectrum (the GRF method of Khristenko et al., Multiscale Model. Simul.
   18, 2020, used for DP steel phase maps by Shiraiwa et al. 2022, both cited in the study's
   Discussion), plus a term that favours ferrite grain boundaries (martensite forms from austenite
   nucleated there, giving the chain-like networks of Park et al. 2014). The field is thresholded
   at the quantile that makes the martensite share equal to the specimen's fraction.
3. Shading as seen in secondary-electron images of etched DP steel: dark, smooth ferrite with a
   faint grain-to-grain contrast and thin dark grain-boundary grooves; bright martensite with a
   lamellar (lath) substructure whose orientation changes from packet to packet; a bright rim on
   raised phases (the SEM edge effect); probe blur; shot noise and scan-line noise.
4. Optional inclusions: small, roughly round particles (dark, or sometimes bright) with a bright
   rim, the third, minor class of the mask.

All lengths are in pixels. A specimen's lengths are drawn relative to the resolution it is drawn
for, so a 64 px image shows the same field of view as a 512 px one, only coarser; rendering a
specimen at another resolution keeps the pixel size and changes the field of view.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import scipy.fft as sfft
from scipy import ndimage as ndi

from microtune.errors import MicrotuneError

CLASS_NAMES = ("ferrite", "martensite", "inclusion")
FERRITE, MARTENSITE, INCLUSION = 0, 1, 2
MARTENSITE_FRACTION_RANGE = (0.37, 1.0)  # the study's 30 sheets: 37 % to 100 % martensite
MIN_RESOLUTION, MAX_RESOLUTION = 16, 4096


@dataclass(frozen=True)
class SpecimenParams:
    """Parameters of one synthetic steel sheet; all drawn per specimen by :func:`draw_specimen`.

    Lengths are in pixels, gray levels and amplitudes in units of full scale (0 = black,
    1 = white) before noise.

    Attributes
    ----------
    martensite_fraction : float
        Share of martensite among non-inclusion pixels, in [0.37, 1.0].
    grain_size_px : float
        Equivalent diameter of a ferrite grain (pixels).
    elongation : float
        Aspect ratio (>= 1) of grains and islands along the rolling direction, the x axis.
    island_size_px : float
        Correlation length of the phase-map random field, about the martensite island size (pixels).
    network_weight : float
        How strongly martensite follows ferrite grain boundaries (0 = pure random field).
    lamella_period_px : float
        Spacing of the lamellar (lath) substructure inside martensite (pixels).
    lamella_contrast : float
        Amplitude of the lamellae (full scale).
    ferrite_level : float
        Mean gray level of ferrite (full scale).
    martensite_level : float
        Mean gray level of martensite (full scale); above ``ferrite_level``.
    boundary_contrast : float
        Darkening of ferrite grain-boundary grooves (full scale).
    edge_brightness : float
        Amplitude of the bright rim on phase boundaries (SEM edge effect, full scale).
    edge_width_px : float
        Width of that rim (pixels).
    noise_sigma : float
        Standard deviation of shot noise at full-scale signal (full scale).
    blur_sigma : float
        Standard deviation of the Gaussian probe blur (pixels).
    inclusion_fraction : float
        Target share of inclusion pixels; 0 when the specimen has no inclusions.
    inclusion_radius_px : float
        Median inclusion radius (pixels).
    inclusion_level : float
        Gray level of inclusion cores (full scale): dark (pits, oxides) or, rarely, bright.
    """

    martensite_fraction: float
    grain_size_px: float
    elongation: float
    island_size_px: float
    network_weight: float
    lamella_period_px: float
    lamella_contrast: float
    ferrite_level: float
    martensite_level: float
    boundary_contrast: float
    edge_brightness: float
    edge_width_px: float
    noise_sigma: float
    blur_sigma: float
    inclusion_fraction: float
    inclusion_radius_px: float
    inclusion_level: float


def draw_specimen(rng: np.random.Generator, *, resolution: int, inclusions: bool) -> SpecimenParams:
    """Draw the parameters of one synthetic DP steel sheet.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same specimen.
    resolution : int
        Side of the images the specimen is drawn for (pixels); lengths scale with it.
    inclusions : bool
        Whether the specimen contains inclusions. The other parameters do not depend on it.

    Returns
    -------
    SpecimenParams
        Martensite fraction uniform in [0.37, 1.0]; grain size log-uniform in 6 % to 16 % of the
        resolution; elongation uniform in [1, 3.5]; the rest as in the body.
    """
    _check_resolution(resolution)
    r = float(resolution)
    fraction = rng.uniform(*MARTENSITE_FRACTION_RANGE)
    grain = max(4.0, r * math.exp(rng.uniform(math.log(0.06), math.log(0.16))))
    elongation = rng.uniform(1.0, 3.5)
    island = grain * rng.uniform(0.4, 0.9)
    network = rng.uniform(0.0, 0.7)
    period = max(2.5, r * rng.uniform(0.008, 0.016))
    lamella_contrast = rng.uniform(0.05, 0.14)
    ferrite_level = rng.uniform(0.15, 0.33)
    martensite_level = ferrite_level + rng.uniform(0.22, 0.38)
    boundary_contrast = rng.uniform(0.05, 0.14)
    edge_brightness = rng.uniform(0.18, 0.35)
    edge_width = max(0.8, r * rng.uniform(0.003, 0.006))
    noise = rng.uniform(0.02, 0.06)
    blur = rng.uniform(0.5, 1.1)
    # Inclusion parameters are drawn always, so `inclusions` changes nothing else.
    inclusion_fraction = rng.uniform(0.01, 0.04)
    inclusion_radius = max(1.2, r * rng.uniform(0.004, 0.010))
    dark = rng.random() < 0.8
    inclusion_level = rng.uniform(0.03, 0.12) if dark else rng.uniform(0.85, 0.95)
    return SpecimenParams(
        martensite_fraction=float(fraction), grain_size_px=float(grain),
        elongation=float(elongation), island_size_px=float(island), network_weight=float(network),
        lamella_period_px=float(period), lamella_contrast=float(lamella_contrast),
        ferrite_level=float(ferrite_level), martensite_level=float(martensite_level),
        boundary_contrast=float(boundary_contrast), edge_brightness=float(edge_brightness),
        edge_width_px=float(edge_width), noise_sigma=float(noise), blur_sigma=float(blur),
        inclusion_fraction=float(inclusion_fraction) if inclusions else 0.0,
        inclusion_radius_px=float(inclusion_radius), inclusion_level=float(inclusion_level),
    )


def render_micrograph(
    params: SpecimenParams, rng: np.random.Generator, *, resolution: int
) -> tuple[np.ndarray, np.ndarray]:
    """Render one field of view of a specimen.

    Parameters
    ----------
    params : SpecimenParams
        The specimen, from :func:`draw_specimen`.
    rng : numpy.random.Generator
        Source of randomness for this field of view.
    resolution : int
        Side of the square image (pixels).

    Returns
    -------
    image : numpy.ndarray
        ``resolution × resolution`` uint8 grayscale micrograph.
    mask : numpy.ndarray
        ``resolution × resolution`` uint8 class ids into :data:`CLASS_NAMES`: 0 ferrite,
        1 martensite, 2 inclusion (only when ``params.inclusion_fraction > 0``). Among
        non-inclusion pixels the martensite share equals ``params.martensite_fraction`` up to
        rounding before inclusions are placed, and within about a percent after.
    """
    _check_resolution(resolution)
    n = resolution
    labels = _ferrite_grains(rng, n, params.grain_size_px, params.elongation)
    boundaries = _grain_boundaries(labels)
    field = _gaussian_random_field(rng, n, params.island_size_px, params.elongation, pad=True)
    # Martensite prefers ferrite grain boundaries and triple junctions (a chain-like network).
    near_boundary = ndi.gaussian_filter(boundaries, 0.12 * params.grain_size_px, mode="nearest")
    field += params.network_weight * _standardize(near_boundary)
    martensite = _threshold_share(field, params.martensite_fraction)
    inclusion = np.zeros((n, n), dtype=bool)
    if params.inclusion_fraction > 0:
        inclusion = _inclusions(rng, n, params.inclusion_fraction, params.inclusion_radius_px)
    mask = martensite.astype(np.uint8)  # FERRITE = 0, MARTENSITE = 1
    mask[inclusion] = INCLUSION
    signal = _shade(params, rng, labels, boundaries, martensite, inclusion)
    image = _acquire(params, rng, signal)
    return image, mask


def synthesize(
    *, count: int, resolution: int, specimens: int, seed: int, inclusions: bool = False
) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    """Generate a synthetic dataset of DP steel micrographs with phase masks.

    Arguments are checked when the function is called, before the first image is made. Image
    ``i`` belongs to specimen ``i % specimens``; each image has its own random stream, so the
    first ``k`` images do not depend on ``count``.

    Parameters
    ----------
    count : int
        Number of images (>= 1).
    resolution : int
        Side of the square images (pixels): a power of two from 16 to 4096.
    specimens : int
        Number of specimens (steel sheets), from 1 to ``count``.
    seed : int
        Non-negative seed; the same arguments give byte-identical output.
    inclusions : bool, optional
        Add a third, minor phase (about 1 % to 4 % of pixels), class id 2.

    Yields
    ------
    image : numpy.ndarray
        ``resolution × resolution`` uint8 micrograph.
    mask : numpy.ndarray
        ``resolution × resolution`` uint8 class ids into :data:`CLASS_NAMES`.
    specimen_id : str
        ``"S00"``, ``"S01"``, ... (zero-padded to the width of the largest id, at least 2 digits).

    Raises
    ------
    MicrotuneError
        When an argument is out of range; the message names the CLI option.
    """
    _check_int("--count", count)
    _check_int("--specimens", specimens)
    _check_int("--seed", seed)
    _check_resolution(resolution)
    if count < 1:
        raise MicrotuneError(f"--count must be at least 1, got {count}.")
    if not 1 <= specimens <= count:
        raise MicrotuneError(
            f"--specimens must be between 1 and --count ({count}), got {specimens}."
        )
    if seed < 0:
        raise MicrotuneError(f"--seed must be a non-negative integer, got {seed}.")
    return _generate(int(count), int(resolution), int(specimens), int(seed), bool(inclusions))


def _generate(
    count: int, resolution: int, specimens: int, seed: int, inclusions: bool
) -> Iterator[tuple[np.ndarray, np.ndarray, str]]:
    # Independent streams per specimen and per image (NumPy SeedSequence spawn keys).
    params = [
        draw_specimen(_stream(seed, 0, s), resolution=resolution, inclusions=inclusions)
        for s in range(specimens)
    ]
    width = max(2, len(str(specimens - 1)))
    for i in range(count):
        s = i % specimens
        image, mask = render_micrograph(params[s], _stream(seed, 1, i), resolution=resolution)
        yield image, mask, f"S{s:0{width}d}"


def _stream(seed: int, kind: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(kind, index)))


def _check_int(option: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise MicrotuneError(f"{option} must be an integer, got {value!r}.")


def _check_resolution(resolution: object) -> None:
    _check_int("--resolution", resolution)
    r = int(resolution)  # type: ignore[call-overload]
    if not (MIN_RESOLUTION <= r <= MAX_RESOLUTION and r & (r - 1) == 0):
        raise MicrotuneError(
            f"--resolution must be a power of two between {MIN_RESOLUTION} and {MAX_RESOLUTION}, "
            f"got {r}."
        )


# --------------------------------------------------------------------------------------------
# Geometry


def _ferrite_grains(
    rng: np.random.Generator, n: int, grain_px: float, elongation: float
) -> np.ndarray:
    """Voronoi ferrite grains elongated along x: the grain label of every pixel (int32, n×n).

    Seeds form a jittered hexagonal lattice in stretched coordinates ``u = x / s, v = y * s``
    (``s = sqrt(elongation)``), where grains are equiaxed. Every pixel takes the label of its
    nearest seed in that metric, found with an anisotropic Euclidean distance transform
    (``scipy.ndimage.distance_transform_edt`` with ``sampling``) on a grid padded by one grain, so
    grains at the image border are cut, not shrunk.
    """
    stretch = math.sqrt(elongation)
    spacing = grain_px / 1.05  # hexagonal lattice: equivalent diameter = 1.05 × spacing
    margin = int(math.ceil(grain_px * stretch))
    size = n + 2 * margin
    row_step = spacing * math.sqrt(3) / 2
    rows = np.arange(0.0, size * stretch + row_step, row_step)
    cols = np.arange(-spacing, size / stretch + spacing, spacing)
    u = cols[None, :] + (np.arange(rows.size)[:, None] % 2) * spacing / 2
    v = np.broadcast_to(rows[:, None], u.shape)
    u = u.ravel() + rng.uniform(-0.35, 0.35, u.size) * spacing  # jitter: irregular grains
    v = v.ravel() + rng.uniform(-0.35, 0.35, v.size) * spacing
    x = np.round(u * stretch).astype(np.int64)
    y = np.round(v / stretch).astype(np.int64)
    keep = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    seeds = np.full((size, size), -1, dtype=np.int32)
    seeds[y[keep], x[keep]] = np.arange(int(keep.sum()), dtype=np.int32)
    iy, ix = ndi.distance_transform_edt(
        seeds < 0, sampling=(stretch, 1.0 / stretch), return_distances=False, return_indices=True
    )
    labels = seeds[iy, ix][margin : margin + n, margin : margin + n]
    return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Consecutive labels 0..k-1 (so per-grain lookup tables stay small)."""
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(labels.shape).astype(np.int32)


def _gaussian_random_field(
    rng: np.random.Generator,
    n: int,
    correlation_px: float,
    elongation: float = 1.0,
    *,
    smoothness: float = 1.0,
    pad: bool = False,
) -> np.ndarray:
    """Zero-mean, unit-variance GRF on an n×n grid by spectral filtering of white noise.

    The amplitude filter is the square root of a 2-D Matérn spectral density,
    ``(1 + (2π ℓ k)²)^-(ν+1)/2``, with ``ℓ`` stretched by ``sqrt(elongation)`` along x and shrunk
    by it along y. ``pad`` computes on a larger periodic grid and crops, so the field does not
    wrap around the image edges.
    """
    size = sfft.next_fast_len(n + 2 * int(correlation_px * elongation)) if pad else n
    ky = sfft.fftfreq(size).astype(np.float32)[:, None]
    kx = sfft.rfftfreq(size).astype(np.float32)[None, :]
    lx = correlation_px * math.sqrt(elongation)
    ly = correlation_px / math.sqrt(elongation)
    k2 = (2 * np.pi) ** 2 * ((kx * lx) ** 2 + (ky * ly) ** 2)
    amplitude = (1.0 + k2) ** (-(smoothness + 1.0) / 2.0)
    amplitude[0, 0] = 0.0  # no DC: zero mean
    shape = (size, size // 2 + 1)
    noise = rng.standard_normal(shape, dtype=np.float32) + 1j * rng.standard_normal(
        shape, dtype=np.float32
    )
    field = sfft.irfft2(noise * amplitude, s=(size, size))[:n, :n]
    return _standardize(field)


def _standardize(field: np.ndarray) -> np.ndarray:
    field = field.astype(np.float32, copy=False)
    std = float(field.std())
    return (field - field.mean()) / (std if std > 0 else 1.0)


def _threshold_share(field: np.ndarray, share: float) -> np.ndarray:
    """Boolean map of the ``share`` highest values of ``field`` (exact up to one pixel)."""
    flat = field.ravel()
    low = int(round((1.0 - share) * flat.size))  # number of pixels below the threshold
    if low <= 0:
        return np.ones(field.shape, dtype=bool)
    if low >= flat.size:
        return np.zeros(field.shape, dtype=bool)
    order = np.argpartition(flat, low - 1)
    above = np.ones(flat.size, dtype=bool)
    above[order[:low]] = False
    return above.reshape(field.shape)


def _inclusions(rng: np.random.Generator, n: int, fraction: float, radius_px: float) -> np.ndarray:
    """Roughly round, slightly elliptical particles covering about ``fraction`` of the image."""
    mean_area = math.pi * radius_px**2 * math.exp(2 * 0.3**2)  # E[r²] of a log-normal radius
    count = max(1, int(rng.poisson(fraction * n * n / mean_area)))
    centres = rng.uniform(0, n, (count, 2))
    radii = radius_px * rng.lognormal(0.0, 0.3, count)
    aspects = rng.uniform(0.75, 1.33, count)
    out = np.zeros((n, n), dtype=bool)
    for (cy, cx), r, a in zip(centres, radii, aspects):
        ry, rx = r / math.sqrt(a), r * math.sqrt(a)
        y0, y1 = max(0, int(cy - ry)), min(n, int(cy + ry) + 2)
        x0, x1 = max(0, int(cx - rx)), min(n, int(cx + rx) + 2)
        yy, xx = np.ogrid[y0:y1, x0:x1]
        out[y0:y1, x0:x1] |= ((yy + 0.5 - cy) / ry) ** 2 + ((xx + 0.5 - cx) / rx) ** 2 <= 1.0
    return out


# --------------------------------------------------------------------------------------------
# Appearance


def _shade(
    params: SpecimenParams,
    rng: np.random.Generator,
    labels: np.ndarray,
    boundaries: np.ndarray,
    martensite: np.ndarray,
    inclusion: np.ndarray,
) -> np.ndarray:
    """Noise-free gray levels (float32, full scale) of the phases, boundaries and rims."""
    n = labels.shape[0]
    grains = int(labels.max()) + 1
    # Ferrite: flat, with a faint per-grain (orientation) contrast and dark boundary grooves.
    ferrite = params.ferrite_level + rng.normal(0.0, 0.025, grains).astype(np.float32)[labels]
    ferrite -= params.boundary_contrast * boundaries
    # Martensite: bright, lamellar, rough.
    lamellae = _lamellae(params, rng, labels)
    roughness = rng.normal(0.0, 0.04, (n, n)).astype(np.float32)
    islands = rng.normal(0.0, 0.03, grains).astype(np.float32)[labels]  # carbon-content scatter
    bright = params.martensite_level + islands + params.lamella_contrast * lamellae + roughness
    signal = np.where(martensite, bright, ferrite)
    # SEM edge effect: raised martensite gets a bright rim inside its boundary, ferrite a faint
    # shadow outside it (secondary-electron yield rises where the surface tilts).
    signal += _rim(martensite, params.edge_width_px, params.edge_brightness)
    if inclusion.any():
        signal[inclusion] = params.inclusion_level
        signal += _rim(inclusion, 0.6 * params.edge_width_px, 0.6 * params.edge_brightness)
    return signal


def _grain_boundaries(labels: np.ndarray) -> np.ndarray:
    """1 where a pixel's right or lower neighbour belongs to another grain, else 0 (float32)."""
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge.astype(np.float32)


def _lamellae(params: SpecimenParams, rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """Zero-mean lath pattern: short, thin bright ridges, one orientation per grain (packet).

    Oriented sinusoids, their phase slightly warped by a GRF so laths bend, sharpened into thin
    ridges, broken into segments by a fine GRF, and faded in and out by a coarse GRF so some
    regions look granular rather than lamellar.
    """
    n = labels.shape[0]
    period = params.lamella_period_px
    angles = rng.uniform(0.0, np.pi, int(labels.max()) + 1).astype(np.float32)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    across = x * np.cos(angles)[labels] + y * np.sin(angles)[labels]
    warp = _gaussian_random_field(rng, n, 3.0 * period)
    wave = 0.5 + 0.5 * np.sin(across * np.float32(2 * np.pi / period) + 0.7 * warp)
    ridges = wave**4 - np.float32(35 / 128)  # E[(0.5 + 0.5 sin)^4] = 35/128
    breaks = np.clip(0.5 + 0.6 * _gaussian_random_field(rng, n, 1.2 * period), 0, 1)
    coarse = _gaussian_random_field(rng, n, 0.3 * params.grain_size_px)
    visibility = np.clip(0.6 + 0.5 * coarse, 0, 1)
    return 2.5 * ridges * breaks * visibility


def _rim(region: np.ndarray, width_px: float, amplitude: float) -> np.ndarray:
    """Bright band just inside ``region`` and a weaker dark band just outside it."""
    inside = region.astype(np.float32)
    smooth = ndi.gaussian_filter(inside, width_px, mode="nearest")
    return amplitude * (2.0 * inside * (1.0 - smooth) - 0.6 * (1.0 - inside) * smooth)


def _acquire(params: SpecimenParams, rng: np.random.Generator, signal: np.ndarray) -> np.ndarray:
    """Probe blur, shot and scan-line noise, a slight brightness tilt, then 8-bit quantisation."""
    n = signal.shape[0]
    signal = np.clip(ndi.gaussian_filter(signal, params.blur_sigma, mode="nearest"), 0.0, 1.0)
    shot = rng.standard_normal((n, n), dtype=np.float32)
    noisy = signal + params.noise_sigma * np.sqrt(signal + 0.02) * shot
    noisy += rng.normal(0.0, 0.15 * params.noise_sigma, (n, 1)).astype(np.float32)  # per scan line
    tilt_y, tilt_x = rng.normal(0.0, 0.015, 2)
    ramp = np.linspace(-1.0, 1.0, n, dtype=np.float32)
    noisy += np.float32(tilt_y) * ramp[:, None] + np.float32(tilt_x) * ramp[None, :]
    return np.round(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.uint8)
