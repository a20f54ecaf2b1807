"""What every benchmark suite shares: a row of the comparison table, the two measurements, the printed
table and the recorded file ``book/results/benchmarks/<suite>.<tier>.json`` with its provenance."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from dlfund.course import manifest
from dlfund.utils.io import atomic_write_json
from dlfund.utils.provenance import clean_metric, provenance
from dlfund.utils.timing import median_seconds, synchronize

__all__ = ["Row", "peak_mb", "record", "seconds_per_call", "table"]


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


def table(rows: Sequence[Row], pending: Sequence[str] = ()) -> str:
    """The rows as a plain-text table; ``pending`` lines (comparisons not measured yet) at the end."""
    lines = [
        "ratio = ours / reference: for ms lower is better, for a rate (/s) higher is better",
        f"{'benchmark':<36} {'setting':<44} {'metric':<15} {'ours':>10} {'reference':>10} {'ratio':>7}  note",
    ]
    for r in rows:
        lines.append(
            f"{r.benchmark:<36} {r.setting:<44} {r.metric:<15} {r.ours:>10.4g} {r.reference:>10.4g} "
            f"{r.ratio:>7.3g}  {r.note}"
        )
    lines += [f"{'pending':<36} {what}" for what in pending]
    return "\n".join(lines)


def record(
    suite: str,
    rows: Sequence[Row],
    tier: str,
    device: torch.device,
    wall_s: float,
    *,
    pending: Sequence[dict[str, Any]] = (),
    references: dict[str, str | None] | None = None,
) -> str:
    """Write ``book/results/benchmarks/<suite>.<tier>.json``: the rows (NaN as null), what is pending and the
    provenance (with the versions of the reference libraries beside, if any); return its path."""
    path = manifest.RESULTS_DIR / "benchmarks" / f"{suite}.{tier}.json"
    prov = provenance(device, tier, wall_s)
    if references is not None:
        prov["references"] = references
    payload = {
        "rows": [
            {k: (None if isinstance(v, float) and math.isnan(v) else clean_metric(v, k)) for k, v in asdict(r).items()}
            for r in rows
        ],
        "pending": list(pending),
        "provenance": prov,
    }
    atomic_write_json(path, payload, sort_keys=False)
    return manifest.display_path(path)
