"""Performance measurement: timing now; memory and FLOPs/MFU join as later units need them."""

from __future__ import annotations

from .timing import measure, median_seconds

__all__ = ["measure", "median_seconds"]
