"""Sampling from a trained generator: seeds, truncation, grids, slerp interpolation, video.

* A seed s gives z = randn(z_dim) from ``torch.Generator().manual_seed(s)`` (same z on any device).
* Truncation: w = w_avg + psi (w - w_avg) (StyleGAN, Karras et al. 2019, Sec. 3).
* Spherical linear interpolation (Shoemake 1985), as in the SEM study's Fig. 5:
  slerp(a, b; t) = sin((1-t) Ω)/sin Ω · a + sin(t Ω)/sin Ω · b with cos Ω = <a, b>/(|a||b|);
  linear interpolation where a and b are nearly parallel (sin Ω < 1e-6). It returns a at t = 0 and b
  at t = 1 and keeps the norm when |a| = |b|.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from microtune.errors import MicrotuneError
from microtune.io import atomic_output

PARALLEL_EPS = 1e-6  # sin(Ω) below this: fall back to linear interpolation
#: Name of the grid ``write_images(grid=True)`` puts beside the samples; ``microtune metrics --images``
#: skips it by this name (microtune.metrics.commands.GENERATE_GRID).
GRID_FILE = "grid.png"


def latents_for_seeds(seeds, z_dim: int, device="cpu") -> torch.Tensor:
    """(len(seeds), z_dim) standard-normal latents, one reproducible vector per seed."""
    zs = [torch.randn(z_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
    return torch.stack(zs).to(device)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8 (values clipped)."""
    x = (images.detach().float().cpu() * 127.5 + 128).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).numpy()


def to_pil(image: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 -> PIL image (L for one channel, RGB for three)."""
    return Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image, "L" if image.shape[2] == 1 else "RGB")


def _save_png(image: Image.Image, path) -> None:
    """Save ``image`` as PNG at ``path`` atomically."""
    with atomic_output(path) as tmp:
        image.save(tmp, format="PNG")


def make_grid(images: np.ndarray, columns: int | None = None) -> np.ndarray:
    """Tile (N, H, W, C) uint8 images row-major into one (rows·H, cols·W, C) image."""
    n, h, w, c = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.zeros((rows * h, columns * w, c), dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, columns)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = images[k]
    return grid


@torch.no_grad()
def synthesize(G, z: torch.Tensor, *, truncation_psi: float = 1.0, batch: int = 16) -> torch.Tensor:
    """Images of G for latents z, in batches; deterministic noise (``noise_mode='const'``)."""
    outs = []
    for chunk in z.split(batch):
        if hasattr(G, "mapping"):
            outs.append(G(chunk, truncation_psi=truncation_psi, noise_mode="const"))
        else:
            outs.append(G(chunk))
    return torch.cat(outs)


def save_sample_grid(G, path, *, seeds=range(16), truncation_psi: float = 1.0, device="cpu") -> None:
    """A square grid of G's images for ``seeds`` written atomically as PNG."""
    z = latents_for_seeds(seeds, G.z_dim, device)
    grid = make_grid(to_uint8(synthesize(G, z, truncation_psi=truncation_psi)))
    _save_png(to_pil(grid), path)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation along the last dim (see module docstring)."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    if t.ndim:
        t = t.reshape(-1, *([1] * a.ndim))
    an, bn = a / a.norm(dim=-1, keepdim=True), b / b.norm(dim=-1, keepdim=True)
    omega = torch.acos((an * bn).sum(-1, keepdim=True).clamp(-1.0, 1.0))
    sin = torch.sin(omega)
    spherical = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / sin.clamp(min=PARALLEL_EPS)
    linear = (1 - t) * a + t * b
    return torch.where(sin < PARALLEL_EPS, linear, spherical)


def parse_seeds(text: str) -> list[int]:
    """'0-3,7' -> [0, 1, 2, 3, 7]; MicrotuneError naming --seeds on bad input."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            seeds.extend(range(int(lo), int(hi) + 1) if hi else [int(lo)])
    except ValueError:
        raise MicrotuneError(f"--seeds must look like '0-15' or '1,5,9', got {text!r}.") from None
    if not seeds or min(seeds) < 0:
        raise MicrotuneError(f"--seeds must be non-negative integers, got {text!r}.")
    return seeds


def write_images(G, seeds, out_dir, *, truncation_psi: float = 1.0, grid: bool = False, device="cpu") -> list[Path]:
    """One PNG per seed (``seed0007.png``) and optionally :data:`GRID_FILE`; returns written paths.

    The folder can be passed as is to ``microtune metrics --images``, which skips the grid.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = to_uint8(synthesize(G, latents_for_seeds(seeds, G.z_dim, device), truncation_psi=truncation_psi))
    paths = []
    for seed, image in zip(seeds, images):
        paths.append(out_dir / f"seed{seed:04d}.png")
        _save_png(to_pil(image), paths[-1])
    if grid:
        paths.append(out_dir / GRID_FILE)
        _save_png(to_pil(make_grid(images)), paths[-1])
    return paths


def interpolation_frames(G, seed_a: int, seed_b: int, frames: int, *, space: str = "z", truncation_psi: float = 1.0, device="cpu") -> np.ndarray:
    """(frames, H, W, C) uint8 images along slerp(z_a, z_b) or slerp(w_a, w_b) (``space``)."""
    if frames < 2:
        raise MicrotuneError(f"--frames must be at least 2, got {frames}.")
    z = latents_for_seeds([seed_a, seed_b], G.z_dim, device)
    t = torch.linspace(0, 1, frames, device=device)
    if space == "z":
        return to_uint8(synthesize(G, slerp(z[0], z[1], t), truncation_psi=truncation_psi))
    if space != "w" or not hasattr(G, "mapping"):
        raise MicrotuneError(f"--space must be 'z' (or 'w' for StyleGAN2 checkpoints), got {space!r}.")
    with torch.no_grad():
        w = G.mapping(z, truncation_psi=truncation_psi)[:, 0]
        ws = slerp(w[0], w[1], t)
        outs = [G.synthesis(chunk[:, None].expand(-1, G.num_ws, -1), noise_mode="const") for chunk in ws.split(16)]
    return to_uint8(torch.cat(outs))


def write_interpolation(frames: np.ndarray, video_path, *, fps: float = 30.0) -> dict[str, Path]:
    """Write the MP4 (imageio-ffmpeg), every frame as PNG in ``<stem>_frames/`` and a figure of
    start, four evenly spaced intermediate frames and end (``<stem>_figure.png``, cf. study Fig. 5)."""
    import imageio.v2 as imageio

    video_path = Path(video_path)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    frame_dir = video_path.with_name(video_path.stem + "_frames")
    frame_dir.mkdir(exist_ok=True)
    for k, frame in enumerate(frames):
        _save_png(to_pil(frame), frame_dir / f"frame{k:05d}.png")
    picks = np.linspace(0, len(frames) - 1, 6).round().astype(int)
    figure_path = video_path.with_name(video_path.stem + "_figure.png")
    _save_png(to_pil(make_grid(frames[picks], columns=6)), figure_path)
    rgb = frames if frames.shape[3] == 3 else np.repeat(frames, 3, axis=3)
    h, w = rgb.shape[1:3]
    block = 16 if h % 16 == 0 and w % 16 == 0 else 1  # avoid ffmpeg resizing non-multiple-of-16 frames
    with atomic_output(video_path) as tmp, imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", quality=8, macro_block_size=block) as writer:
        for frame in rgb:
            writer.append_data(frame)
    return {"video": video_path, "frames": frame_dir, "figure": figure_path}
