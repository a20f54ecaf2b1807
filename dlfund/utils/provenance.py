"""Provenance: where, when and with what a number was measured.

Every recorded result (a notebook's key metrics, a benchmark table) carries :func:`provenance`: the
device and its memory, Python, torch and Lightning versions, the commit of the code, the date, the
tier and the wall time. :func:`clean_metric` turns tensors and NumPy scalars into plain JSON values
and refuses what cannot be a result (NaN, infinity, a whole tensor).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from dlfund.utils.device import device_name

__all__ = ["clean_metric", "git_commit", "peak_memory", "provenance"]

REPOSITORY = Path(__file__).resolve().parents[2]
"""The folder the package lies in: the course repository when installed with ``pip install -e .``."""


RECORDED = "book/results"
"""Where recorded results are committed, relative to the repository (``dlfund.course.manifest.RESULTS_DIR``)."""


def git_commit(root: Path = REPOSITORY) -> str:
    """The repository's commit (``+dirty`` with uncommitted changes to tracked files other than the recorded
    results under :data:`RECORDED`: a recording run writes those itself, and must not mark its own later
    results dirty).

    A copy of the course without ``.git`` (e.g. sent to a GPU machine by ``tools/gpu-full-tier.sh``)
    reports ``$DLFUND_COMMIT``, which the bundle records from the tree it was made from.
    """
    fallback = os.environ.get("DLFUND_COMMIT") or "unknown"
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return fallback
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(root),
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                f":(exclude){RECORDED}",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def peak_memory(device: torch.device) -> tuple[float, str]:
    """Peak memory in MB and what was measured: CUDA's max allocated bytes, or the process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    try:
        import resource  # POSIX only

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports kilobytes, macOS bytes.
        return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_max_rss"
    except ImportError:  # Windows
        return float("nan"), "unavailable"


def provenance(device: torch.device, tier: str, wall_s: float) -> dict[str, Any]:
    """Where, when and with what a result was measured."""
    try:
        lightning_version = version("lightning")  # not `import lightning`: that costs seconds
    except PackageNotFoundError:
        lightning_version = None

    mem, kind = peak_memory(device)
    prov: dict[str, Any] = {
        "device": device_name(device),
        "device_type": device.type,
        "tier": tier,
        "wall_s": round(wall_s, 2),
        "peak_memory_mb": None if math.isnan(mem) else round(mem, 1),
        "peak_memory_kind": kind,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning_version,
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu_count": os.cpu_count(),
        "commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    jobs = os.environ.get("DLFUND_JOBS", "1")
    if jobs.isdigit() and int(jobs) > 1:  # `dlfund run -j N`: the machine was shared, times are longer
        prov["concurrent_notebooks"] = int(jobs)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        prov["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        prov["cuda"] = torch.version.cuda
        prov["cudnn"] = torch.backends.cudnn.version()
    return prov


def clean_metric(value: Any, key: str) -> Any:
    """``value`` as a plain JSON value (floats to 7 significant digits); ``key`` names it in errors."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"metric {key!r} is a tensor of shape {tuple(value.shape)}; record scalars")
        value = value.item()
    if hasattr(value, "item") and callable(value.item):  # NumPy scalars
        value = value.item()
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metric {key!r} is {value}: a result must be a finite number")
        return float(f"{value:.7g}")  # 7 significant digits: tiny differences (1e-10) stay visible
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [clean_metric(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): clean_metric(v, f"{key}.{k}") for k, v in value.items()}
    raise TypeError(f"metric {key!r} has type {type(value).__name__}; record numbers, strings, lists or dicts")
