"""Performance measurement: timing; and for unit 11 (imported by module, they load more) ``precision``,
``memory``, ``compiled`` (torch.compile), ``distributed`` (DDP/FSDP as several processes) and ``speed``
(``dlfund bench --suite fast-training``). FLOPs/MFU join as later units need them."""

from __future__ import annotations

from dlfund.utils.timing import measure, median_seconds, synchronize

__all__ = ["measure", "median_seconds", "synchronize"]
