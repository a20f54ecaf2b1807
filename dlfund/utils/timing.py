"""Timing code the way the field does: ``torch.utils.benchmark``, reported as a median.

A single ``time.perf_counter()`` around one call is a poor measurement: the first call pays one-off
costs (lazy initialisation, memory the operating system has not handed out yet, cold caches), other
programs interrupt some runs, and on a GPU the call returns before the work is done.
:class:`torch.utils.benchmark.Timer` deals with all three: it runs the code first to warm up and to
pick how many calls to time together, repeats the measurement until ``min_run_time`` has passed,
synchronises an accelerator before reading the clock, and fixes the number of CPU threads.
The helpers here wrap it for the course: a function in, a measurement or a median out.

>>> seconds = median_seconds(lambda: sum(range(1000)), min_run_time=0.01)
>>> 0 < seconds < 0.1
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils import benchmark

__all__ = ["measure", "median_seconds", "synchronize"]


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously): read a clock only after this.

    A no-op on the CPU, whose work is done when the call returns.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    fn: Callable[[], Any],
    *,
    min_run_time: float = 0.2,
    num_threads: int = 1,
    label: str | None = None,
    description: str | None = None,
) -> benchmark.Measurement:
    """Time ``fn()`` with :meth:`torch.utils.benchmark.Timer.blocked_autorange`.

    Args:
        fn: the code to time, as a function without arguments (wrap other calls in a ``lambda``).
            Each call adds the cost of one Python function call (tens of nanoseconds), so time
            work that takes at least a few microseconds.
        min_run_time: seconds of measurement to collect after the warm-up; more gives a steadier
            median.
        num_threads: CPU threads torch may use while timing; torch's own setting is restored
            afterwards. The default, 1 (as in ``Timer``), makes numbers comparable between
            machines and steady on a busy one: an operation split over several threads waits for
            the slowest, and when other programs occupy the cores that wait can cost far more
            than the operation. Pass ``torch.get_num_threads()`` to time what your code gets on
            an otherwise idle machine.
        label, description: shown when the measurement is printed or put in a
            :class:`torch.utils.benchmark.Compare` table.

    Returns:
        The :class:`~torch.utils.benchmark.Measurement`: ``.median`` and ``.mean`` in seconds per
        call, ``.iqr`` (the spread), ``.times`` (seconds per call of each timed block) and
        ``.number_per_run`` (calls per block).
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function without arguments, got {type(fn).__name__} (wrap it: lambda: ...)")
    if not min_run_time > 0:
        raise ValueError(f"min_run_time must be positive, got {min_run_time!r}")
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
    timer = benchmark.Timer(
        stmt="fn()",
        globals={"fn": fn},
        num_threads=num_threads,
        label=label,
        description=description,
    )
    return timer.blocked_autorange(min_run_time=min_run_time)


def median_seconds(fn: Callable[[], Any], *, min_run_time: float = 0.2, num_threads: int = 1) -> float:
    """The median wall time of one call of ``fn()`` in seconds (see :func:`measure`)."""
    return float(measure(fn, min_run_time=min_run_time, num_threads=num_threads).median)
