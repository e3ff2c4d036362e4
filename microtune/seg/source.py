"""HPTL stage 1: the source-domain VGG-19 (paper sec. 3.3, Step 1: "Optimize ω1 by SGD on D_S").

Two sources, in this order of preference:

1. ImageNet weights (the paper's D_S): torchvision's ``vgg19`` state dict (``vgg19-dcbb9e9d.pth``)
   from a file given by the caller, or from torch's hub cache
   (``$TORCH_HOME/hub/checkpoints``). Only a ``width=1`` network can take them; for 1-channel
   input the RGB filters of conv1_1 are summed (grayscale = equal RGB). No download is attempted
   here (the machines of this project reach no hub): a user with internet fills the cache once
   with ``torchvision.models.vgg19(weights="IMAGENET1K_V1")``.
2. Otherwise a VGG-19 trained here on a *texture* classification task built from procedural
   micrograph-like textures (:data:`TEXTURE_CLASSES`: smooth and rough random fields, lamellae at
   two orientations, grains with boundaries, dispersed particles). It has the low-level statistics
   (edges, blobs, grain boundaries) the paper's conv1/conv2 transfer relies on, and needs no hub.
   The paper trains VGG-19 with SGD (γ1 = 0.001, momentum Ψ1 = 0.9, weight decay "τ1 = 0.95",
   κ1 = 120k iterations). A plain (batch-norm-free) 16-layer VGG trained from scratch for the few
   hundred steps a CPU run affords does not leave chance level with SGD (checked here: loss stuck
   at ln 6 after 200 steps at lr 0.01), so ``optimizer="adam"`` (lr 1e-3) is the default and
   ``"sgd"`` (lr γ1 = 0.01 of the paper's pseudocode, momentum 0.9) the paper's choice. The
   weight decay is 5e-4 (the usual VGG value: "0.95" cannot be a per-step decay for SGD). The
   result is cached by (width, channels, steps, seed, optimizer) in ``cache_dir``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from microtune.errors import MicrotuneError
from microtune.io import atomic_output, exclusive
from microtune.seg.networks import VGG19

TEXTURE_CLASSES = ("smooth-field", "rough-field", "lamellae-0", "lamellae-90", "grains", "particles")
IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
_BLOCK_STARTS = (0, 5, 10, 19, 28)      # first index of each block in torchvision's vgg19.features


def texture(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One ``size × size`` float texture of class ``kind`` in [0, 1] (see :data:`TEXTURE_CLASSES`)."""
    noise = rng.normal(size=(size, size))
    if kind in (0, 1):
        field = ndimage.gaussian_filter(noise, rng.uniform(4, 8) if kind == 0 else rng.uniform(0.8, 1.5))
    elif kind in (2, 3):
        y, x = np.mgrid[0:size, 0:size].astype(float)
        angle = rng.uniform(-0.3, 0.3) + (0 if kind == 2 else np.pi / 2)
        period = rng.uniform(3, 8)
        field = np.sin((x * np.cos(angle) + y * np.sin(angle)) * 2 * np.pi / period) + 0.3 * noise
    elif kind == 4:
        seeds = rng.integers(0, size, (int(rng.integers(6, 20)), 2))
        y, x = np.mgrid[0:size, 0:size]
        d = (y[..., None] - seeds[:, 0]) ** 2 + (x[..., None] - seeds[:, 1]) ** 2
        labels = d.argmin(-1)
        edge = (np.diff(labels, axis=0, prepend=labels[:1]) != 0) | (np.diff(labels, axis=1, prepend=labels[:, :1]) != 0)
        shade = rng.uniform(0.3, 0.7, seeds.shape[0])[labels]
        field = shade + 0.6 * edge + 0.05 * noise
    else:
        field = np.zeros((size, size))
        n = int(rng.integers(8, 30))
        field[rng.integers(0, size, n), rng.integers(0, size, n)] = 1.0
        field = ndimage.grey_dilation(field, size=int(rng.integers(2, 5))) + 0.1 * noise
    field = field - field.min()
    return (field / max(field.max(), 1e-6)).astype(np.float32)


def texture_batch(batch: int, size: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of textures (N, 1, size, size) normalised like micrographs, and their class ids."""
    from microtune.seg.loop import GRAY_MEAN, GRAY_STD

    labels = rng.integers(0, len(TEXTURE_CLASSES), batch)
    x = np.stack([texture(int(k), size, rng) for k in labels])[:, None]
    return (torch.from_numpy(x) - GRAY_MEAN) / GRAY_STD, torch.from_numpy(labels).long()


def train_texture_vgg(*, width: float, in_channels: int = 1, steps: int = 300, batch: int = 16, size: int = 32,
                      optimizer: str = "adam", batch_norm: bool = False, seed: int = 0, log=None) -> VGG19:
    """Train a VGG-19 on the texture task (Adam lr 1e-3, or SGD lr 0.01 momentum 0.9; decay 5e-4)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = VGG19(len(TEXTURE_CLASSES), in_channels=in_channels, width=width, batch_norm=batch_norm)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    else:
        raise MicrotuneError(f"--source-optimizer must be adam or sgd, got {optimizer!r}.")
    model.train()
    correct = 0
    for step in range(1, steps + 1):
        x, y = texture_batch(batch, size, rng)
        if in_channels == 3:
            x = x.expand(-1, 3, -1, -1)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        correct += int((logits.argmax(1) == y).sum())
        if log and step % 50 == 0:
            log(f"source VGG-19 step {step}/{steps}: loss {float(loss.detach()):.3f}, accuracy {correct / (50 * batch):.2f}")
            correct = 0
    model.eval()
    return model


def load_imagenet_vgg(path: str | os.PathLike, *, in_channels: int = 1) -> VGG19:
    """VGG-19 with torchvision's ImageNet weights from ``path`` (1000 classes, width 1)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise MicrotuneError(f"--source-weights {path}: cannot read VGG-19 weights ({exc}).") from None
    model = VGG19(1000, in_channels=in_channels, width=1.0)
    mapped = {}
    for b, start in enumerate(_BLOCK_STARTS, start=1):
        for j in range(0, 16, 2):
            key = f"features.{start + j}.weight"
            if key in state and f"conv{b}.{j}.weight" in model.state_dict():
                mapped[f"conv{b}.{j}.weight"] = state[key]
                mapped[f"conv{b}.{j}.bias"] = state[f"features.{start + j}.bias"]
    for src, dst in (("classifier.0", "fc6.0"), ("classifier.3", "fc7.0"), ("classifier.6", "fc8")):
        mapped[f"{dst}.weight"], mapped[f"{dst}.bias"] = state[f"{src}.weight"], state[f"{src}.bias"]
    if in_channels == 1:
        mapped["conv1.0.weight"] = mapped["conv1.0.weight"].sum(1, keepdim=True)
    missing = set(model.state_dict()) - set(mapped)
    if missing:
        raise MicrotuneError(f"--source-weights {path}: not a torchvision VGG-19 state dict (missing {sorted(missing)[:3]}).")
    model.load_state_dict(mapped)
    return model.eval()


def find_imagenet_weights() -> Path | None:
    """torchvision's cached VGG-19 ImageNet file, if present."""
    home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    candidate = home / "hub" / "checkpoints" / IMAGENET_FILE
    return candidate if candidate.is_file() else None


def source_vgg(*, width: float, in_channels: int = 1, weights: str | os.PathLike | None = None,
               source: str = "auto", steps: int = 300, seed: int = 0, optimizer: str = "adam", batch_norm: bool = False, cache_dir: str | os.PathLike | None = None,
               log=None) -> tuple[VGG19, str]:
    """The stage-1 VGG-19 and a label of where it came from.

    ``source``: ``"imagenet"`` (weights file or cache required, width 1), ``"textures"`` (train
    here), or ``"auto"`` (ImageNet when width is 1 and weights are found, else textures).
    """
    if source not in ("auto", "imagenet", "textures"):
        raise MicrotuneError(f"--source must be auto, imagenet or textures, got {source!r}.")
    path = Path(weights) if weights else find_imagenet_weights()
    if source == "imagenet" or (source == "auto" and path is not None and width == 1.0 and not batch_norm):
        if path is None or not path.is_file():
            raise MicrotuneError(f"--source-weights: no VGG-19 ImageNet file found ({weights or 'torch hub cache'}).")
        if width != 1.0 or batch_norm:
            raise MicrotuneError("--width must be 1 and --batch-norm off to use ImageNet VGG-19 weights (--source imagenet).")
        return load_imagenet_vgg(path, in_channels=in_channels), f"imagenet:{path.name}"
    label = f"textures:w{width:g}-c{in_channels}-s{steps}-seed{seed}-{optimizer}{'-bn' if batch_norm else ''}"
    cached = Path(cache_dir) / f"source-vgg19-{label.split(':')[1]}.pt" if cache_dir else None
    train = dict(width=width, in_channels=in_channels, steps=steps, optimizer=optimizer, batch_norm=batch_norm,
                 seed=seed, log=log)
    if cached is None:
        return train_texture_vgg(**train), label
    cached.parent.mkdir(parents=True, exist_ok=True)
    # concurrent trials of a sweep share the cache: one trains, the others wait for its file
    with exclusive(cached.with_suffix(".lock")):
        if cached.is_file():
            model = VGG19(len(TEXTURE_CLASSES), in_channels=in_channels, width=width, batch_norm=batch_norm)
            model.load_state_dict(torch.load(cached, map_location="cpu", weights_only=True))
            return model.eval(), label
        model = train_texture_vgg(**train)
        with atomic_output(cached) as tmp:
            torch.save(model.state_dict(), tmp)
    return model, label
