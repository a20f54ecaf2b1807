"""Key metrics of a notebook run, written with their provenance.

Every run writes ``runs/results/<unit>/<notebook>.<tier>.json`` (git-ignored: the learner's own run).
A reference run (``dlfund run N --record`` or ``DLFUND_RECORD=1``) also writes
``book/results/<unit>/<notebook>.<tier>.json``, which is committed; the README, the book and the
setup cell read measured numbers only from these files, never from hand-typed prose.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import course
from ._io import atomic_write_json

if TYPE_CHECKING:
    from .config import RunConfig


def _git_commit() -> str:
    """The repository's commit (``+dirty`` with uncommitted changes to tracked files).

    A copy of the course without ``.git`` (e.g. sent to a GPU machine by ``tools/gpu-full-tier.sh``)
    reports ``$DLFUND_COMMIT``, which the bundle records from the tree it was made from.
    """
    fallback = os.environ.get("DLFUND_COMMIT") or "unknown"
    try:
        out = subprocess.run(["git", "-C", str(course.ROOT), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return fallback
        dirty = subprocess.run(["git", "-C", str(course.ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return fallback


def peak_memory(device: torch.device) -> tuple[float, str]:
    """Peak memory in MB and what was measured: CUDA's max allocated bytes, or the process's max RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports kilobytes, macOS bytes.
        return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_max_rss"
    except ImportError:  # Windows
        return float("nan"), "unavailable"


def provenance(device: torch.device, tier: str, wall_s: float) -> dict[str, Any]:
    """Where, when and with what a result was measured."""
    from importlib.metadata import PackageNotFoundError, version

    from .config import device_name

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
        "commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        prov["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        prov["cuda"] = torch.version.cuda
        prov["cudnn"] = torch.backends.cudnn.version()
    return prov


def _clean(value: Any, key: str) -> Any:
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
        return [_clean(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _clean(v, f"{key}.{k}") for k, v in value.items()}
    raise TypeError(f"metric {key!r} has type {type(value).__name__}; record numbers, strings, lists or dicts")


def result_path(root: Path, unit: course.Unit, notebook: str, tier: str) -> Path:
    return root / unit.dirname / f"{notebook}.{tier}.json"


def record(cfg: RunConfig, metrics: dict[str, Any]) -> None:
    """Write ``metrics`` with provenance; print them beside the committed reference for the tier.

    Returns nothing, so a notebook cell ending in ``cfg.record(...)`` shows only the printed table."""
    if not metrics:
        raise ValueError("record() needs at least one metric")
    payload = {
        "unit": cfg.unit.number,
        "notebook": cfg.notebook,
        "metrics": {k: _clean(v, k) for k, v in metrics.items()},
        "settings": {k: _clean(v, k) for k, v in cfg.values.items()},
        "provenance": provenance(cfg.device, cfg.tier, cfg.elapsed()),
    }
    reference = load(cfg.unit, cfg.notebook, cfg.tier)
    own = result_path(course.RUNS_DIR / "results", cfg.unit, cfg.notebook, cfg.tier)
    atomic_write_json(own, payload, sort_keys=False)  # metrics keep the author's order
    if os.environ.get("DLFUND_RECORD") == "1":
        atomic_write_json(result_path(course.RESULTS_DIR, cfg.unit, cfg.notebook, cfg.tier), payload, sort_keys=False)
    _print_comparison(payload, reference)


def load(unit: course.Unit | int | str, notebook: str, tier: str) -> dict[str, Any] | None:
    """The committed reference result of a notebook in a tier, or ``None`` if none was recorded."""
    u = unit if isinstance(unit, course.Unit) else course.get_unit(unit)
    path = result_path(course.RESULTS_DIR, u, notebook, tier)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); re-record it with `dlfund run {u.number} --record`") from err


def _git_unchanged_since(commit: str, path: Path) -> bool:
    """True when ``path`` in the working tree is byte-identical to its version at ``commit``."""
    try:
        out = subprocess.run(["git", "-C", str(course.ROOT), "diff", "--quiet", commit, "--", str(path)],
                             capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0  # 1: changed; 128: unknown commit or not a repository


def stale_reason(unit: course.Unit, notebook: str, path: Path, tier: str, device_type: str) -> str | None:
    """Why the committed result of a notebook would have to be measured again; ``None`` when it is current.

    Current means: recorded on the same kind of device (cuda/mps/cpu), from a clean commit, with the
    notebook's file unchanged since that commit and the manifest's settings for the tier unchanged.
    """
    try:
        payload = load(unit, notebook, tier)
    except ValueError as err:
        return str(err)
    if payload is None:
        return "no recorded result"
    prov = payload.get("provenance", {})
    if prov.get("device_type") != device_type:
        return f"recorded on {prov.get('device_type')!r}, this run uses {device_type!r}"
    commit = str(prov.get("commit", "unknown"))
    if commit == "unknown" or commit.endswith("+dirty"):
        return f"recorded from commit {commit!r}, not a clean commit"
    if not _git_unchanged_since(commit, path):
        return f"{path.name} changed since {commit}"
    settings = {k: _clean(v, k) for k, v in unit.tier_config(tier).items()}
    if payload.get("settings") != settings:
        return f"the manifest's {tier} settings changed since {commit}"
    return None


def fmt(value: Any) -> str:
    """A metric for a table: floats to 4 significant digits, everything else as is."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _print_comparison(payload: dict[str, Any], reference: dict[str, Any] | None) -> None:
    prov = payload["provenance"]
    print(f"recorded {payload['notebook']} ({prov['tier']} tier, {prov['wall_s']:.1f} s on {prov['device']})")
    ref = reference["metrics"] if reference else {}
    ref_dev = reference["provenance"]["device"] if reference else None
    width = max(len(k) for k in payload["metrics"])
    header = f"  {'metric':<{width}}  {'this run':>12}"
    if reference:
        header += f"  {'reference':>12}  (reference: {ref_dev}, {reference['provenance']['date'][:10]})"
    print(header)
    for key, value in payload["metrics"].items():
        if isinstance(value, (list, dict)):
            continue
        line = f"  {key:<{width}}  {fmt(value):>12}"
        if key in ref:
            line += f"  {fmt(ref[key]):>12}"
        print(line)


def table(unit: course.Unit, tiers: tuple[str, ...] = course.TIERS, *, max_metrics: int | None = None) -> list[str]:
    """Markdown rows of every committed result of ``unit`` in ``tiers`` (none: an empty list)."""
    files = sorted(p for t in tiers for p in (course.RESULTS_DIR / unit.dirname).glob(f"*.{t}.json"))
    if not files:
        return []
    rows = ["| notebook | tier | key metrics | wall time | peak memory | device | date | commit |",
            "|---|---|---|---|---|---|---|---|"]
    for path in files:
        r = json.loads(path.read_text(encoding="utf-8"))
        p = r["provenance"]
        scalars = [(k, v) for k, v in r["metrics"].items() if not isinstance(v, (list, dict))][:max_metrics]
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in scalars)
        mem = f"{p['peak_memory_mb']:.0f} MB ({p['peak_memory_kind']})" if p.get("peak_memory_mb") else "n/a"
        rows.append(f"| {r['notebook']} | {p['tier']} | {metrics} | {p['wall_s']:.1f} s | {mem} | "
                    f"{p['device']} | {p['date'][:10]} | {p['commit']} |")
    return rows
