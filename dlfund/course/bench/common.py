"""What every benchmark suite shares: a row of the comparison table and the two measurements."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from dlfund.utils.timing import median_seconds, synchronize

__all__ = ["Row", "peak_mb", "seconds_per_call"]


@dataclass
class Row:
    """One measured comparison: ``ratio = ours / reference`` (for throughputs: above 1 means ours is faster)."""

    benchmark: str
    setting: str
    metric: str
    ours: float
    reference: float
    ratio: float
    note: str = ""


def seconds_per_call(fn: Callable[[], Any], device: torch.device, min_run_s: float) -> float:
    """Median seconds per call of ``fn()`` (:func:`dlfund.perf.median_seconds`), after one warm-up call
    outside the measurement, so that a ``torch.compile`` of the first call is not timed."""
    fn()
    synchronize(device)
    return median_seconds(fn, min_run_time=min_run_s)


def peak_mb(fn: Callable[[], Any], device: torch.device) -> float | None:
    """CUDA's peak allocated memory (MB) during one call of ``fn()``; ``None`` on other devices."""
    if device.type != "cuda":
        return None
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20
