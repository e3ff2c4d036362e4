"""Torch devices, shared by training, metrics, segmentation and the sweep trainables."""

from __future__ import annotations

from typing import Any

import torch

from microtune.errors import MicrotuneError


def select_device(name: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; a CUDA device (``cuda``, ``cuda:N``) without CUDA is refused."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MicrotuneError(f"--device {name} was requested but no CUDA device is available; "
                             "use --device cpu or auto.")
    return device


def device_name(device: Any) -> str:
    """``cpu`` or ``cuda:<GPU name>``: the value of the ``device`` tag of a run."""
    if getattr(device, "type", "cpu") == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return str(device)
