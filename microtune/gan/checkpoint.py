"""Network construction from options, and checkpoint load/save (written with :mod:`microtune.io`).

A checkpoint is a plain dict of tensors and JSON-like values (loadable with
``torch.load(..., weights_only=True)``)::

    format      "microtune-gan/1"
    options     TrainOptions.to_dict()
    G, D, G_ema state dicts;  opt_G, opt_D optimiser state dicts
    ada         AdaController.state_dict();  loss  GanLoss.state_dict()
    progress    {"nimg", "batch_idx", "tick", "tick_start_nimg"}
    rng         {"torch": CPU generator state, "cuda": [per-device states]}
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from microtune.errors import MicrotuneError
from microtune.gan.config import TrainOptions

FORMAT = "microtune-gan/1"


def build_networks(options: TrainOptions) -> tuple[nn.Module, nn.Module]:
    """(G, D) for ``options.model`` at ``options.resolution`` / ``options.img_channels``."""
    o = options
    if o.model == "dcgan":
        from microtune.gan.dcgan import DCGANDiscriminator, DCGANGenerator

        G = DCGANGenerator(z_dim=o.z_dim, resolution=o.resolution, img_channels=o.img_channels, ngf=o.dcgan_ngf)
        D = DCGANDiscriminator(resolution=o.resolution, img_channels=o.img_channels, ndf=o.dcgan_ndf)
        return G, D
    from microtune.gan.networks import Discriminator, Generator

    G = Generator(
        z_dim=o.z_dim, w_dim=o.w_dim, resolution=o.resolution, img_channels=o.img_channels,
        channel_base=o.channel_base, channel_max=o.channel_max, mapping_layers=o.mapping_layers,
        fused_modconv=o.fused_modconv,
    )
    D = Discriminator(
        resolution=o.resolution, img_channels=o.img_channels, channel_base=o.channel_base,
        channel_max=o.channel_max, mbstd_group_size=o.mbstd_group,
    )
    return G, D


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``; MicrotuneError naming the file if unusable."""
    path = Path(path)
    if not path.is_file():
        raise MicrotuneError(f"checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        first = (str(exc).strip().splitlines() or [""])[0].split(". ")[0][:200]  # torch's run to many lines
        raise MicrotuneError(f"checkpoint {path} cannot be read: not a PyTorch checkpoint, or a damaged one "
                             f"({type(exc).__name__}: {first}).") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise MicrotuneError(f"checkpoint {path} is not a microtune GAN checkpoint ({FORMAT}).")
    return state


def load_generator(path: str | os.PathLike, device="cpu") -> tuple[nn.Module, TrainOptions]:
    """The EMA generator of a checkpoint, in eval mode on ``device``, and its options."""
    state = load_checkpoint(path)
    options = TrainOptions.from_dict(state["options"])
    G, _ = build_networks(options)
    G.load_state_dict(state["G_ema"])
    return G.eval().requires_grad_(False).to(device), options


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory's ``checkpoint-latest.pt``."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint-latest.pt"
    if not path.is_file():
        raise MicrotuneError(f"checkpoint {path} does not exist.")
    return path
