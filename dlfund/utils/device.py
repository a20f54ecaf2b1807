"""Devices, seeds and bf16: which hardware a run uses, and how it says so.

>>> device = pick_device()          # cuda, then mps, then cpu (or $DLFUND_DEVICE)   # doctest: +SKIP
>>> use_bf16 = resolve_bf16(None, device)                                          # doctest: +SKIP
"""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

__all__ = ["autocast_bf16", "device_name", "pick_device", "resolve_bf16", "seed_everything"]


def pick_device(requested: str | None = None) -> torch.device:
    """``requested`` or ``$DLFUND_DEVICE``, else the best available: cuda, then mps, then cpu."""
    name = requested or os.environ.get("DLFUND_DEVICE")
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for, but torch sees no CUDA device")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError(f"device {name!r} was asked for, but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's generators (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def device_name(device: torch.device) -> str:
    """A readable name: the GPU's model, ``Apple MPS``, or ``CPU (x86_64, 2 cores)``."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple MPS"
    return f"CPU ({platform.machine()}, {os.cpu_count()} cores)"


def resolve_bf16(bf16: bool | None, device: torch.device) -> bool:
    """Whether to use bf16 autocast: ``None`` means "where supported" (CUDA with bf16); ``True`` on a
    device without it falls back to float32 and says so."""
    supported = device.type == "cuda" and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if bf16 and not supported:
        print(f"bf16 autocast is not supported on {device}: training in float32")
    return supported if bf16 is None else bool(bf16) and supported


def autocast_bf16(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on ``device`` when ``enabled``, else a context that changes nothing."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)
