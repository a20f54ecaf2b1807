"""Key metrics of a notebook run, written with their provenance.

Every run writes ``runs/results/<unit>/<notebook>.<tier>.json`` (git-ignored: the learner's own run).
A reference run (``dlfund run N --record`` or ``DLFUND_RECORD=1``) also writes
``book/results/<unit>/<notebook>.<tier>.json``, which is committed; the README, the book and the
setup cell read measured numbers only from these files, never from hand-typed prose.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import torch

from dlfund.course import manifest
from dlfund.utils.io import atomic_write_json
from dlfund.utils.provenance import clean_metric, provenance

GPU_SMOKE = "gpu-smoke"
"""The smoke tier run on a GPU is recorded under a name of its own: it never replaces the CPU smoke results
(which the tests and the setup cell compare a learner's CPU run with), nor the full tier's."""


def result_tier(tier: str, device_type: str) -> str:
    """The name under which a run in ``tier`` on a device of ``device_type`` ("cuda", "cpu") is recorded."""
    return GPU_SMOKE if tier == "smoke" and device_type == "cuda" else tier


def settings_tier(recorded: str) -> str:
    """The tier whose settings a result recorded as ``recorded`` was measured with."""
    return "smoke" if recorded == GPU_SMOKE else recorded


def result_path(root: Path, unit: manifest.Unit, notebook: str, tier: str) -> Path:
    return root / unit.dirname / f"{notebook}.{tier}.json"


def record(
    unit: manifest.Unit,
    notebook: str,
    tier: str,
    device: torch.device,
    wall_s: float,
    settings: dict[str, Any],
    metrics: dict[str, Any],
) -> None:
    """Write ``metrics`` with provenance; print them beside the committed reference for the tier.

    Called by ``cfg.record(...)`` (:meth:`dlfund.course.config.RunConfig.record`). Returns nothing, so a
    notebook cell ending in ``cfg.record(...)`` shows only the printed table."""
    if not metrics:
        raise ValueError("record() needs at least one metric")
    tier = result_tier(tier, device.type)
    payload = {
        "unit": unit.number,
        "notebook": notebook,
        "metrics": {k: clean_metric(v, k) for k, v in metrics.items()},
        "settings": {k: clean_metric(v, k) for k, v in settings.items()},
        "provenance": provenance(device, tier, wall_s),
    }
    reference = load(unit, notebook, tier)
    own = result_path(manifest.RUNS_DIR / "results", unit, notebook, tier)
    atomic_write_json(own, payload, sort_keys=False)  # metrics keep the author's order
    if os.environ.get("DLFUND_RECORD") == "1":
        atomic_write_json(result_path(manifest.RESULTS_DIR, unit, notebook, tier), payload, sort_keys=False)
    _print_comparison(payload, reference)


def load(unit: manifest.Unit | int | str, notebook: str, tier: str) -> dict[str, Any] | None:
    """The committed reference result of a notebook in a tier, or ``None`` if none was recorded."""
    u = unit if isinstance(unit, manifest.Unit) else manifest.get_unit(unit)
    path = result_path(manifest.RESULTS_DIR, u, notebook, tier)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} is not valid JSON ({err}); re-record it with `dlfund run {u.number} --record`"
        ) from err


def _git_unchanged_since(commit: str, path: Path) -> bool:
    """True when ``path`` in the working tree is byte-identical to its version at ``commit``."""
    try:
        out = subprocess.run(
            ["git", "-C", str(manifest.ROOT), "diff", "--quiet", commit, "--", str(path)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0  # 1: changed; 128: unknown commit or not a repository


def stale_reason(unit: manifest.Unit, notebook: str, path: Path, tier: str, device_type: str) -> str | None:
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
    settings = clean_metric(dataclasses.asdict(unit.tier_settings(settings_tier(tier))), "settings")
    if payload.get("settings") != settings:
        return f"the manifest's {settings_tier(tier)} settings changed since {commit}"
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


def table(unit: manifest.Unit, tiers: tuple[str, ...] = manifest.TIERS, *, max_metrics: int | None = None) -> list[str]:
    """Markdown rows of every committed result of ``unit`` in ``tiers`` (none: an empty list)."""
    files = sorted(p for t in tiers for p in (manifest.RESULTS_DIR / unit.dirname).glob(f"*.{t}.json"))
    if not files:
        return []
    rows = [
        "| notebook | tier | key metrics | wall time | peak memory | device | date | commit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for path in files:
        r = json.loads(path.read_text(encoding="utf-8"))
        p = r["provenance"]
        scalars = [(k, v) for k, v in r["metrics"].items() if not isinstance(v, (list, dict))][:max_metrics]
        metrics = ", ".join(f"{k}={fmt(v)}" for k, v in scalars)
        mem = f"{p['peak_memory_mb']:.0f} MB ({p['peak_memory_kind']})" if p.get("peak_memory_mb") else "n/a"
        rows.append(
            f"| {r['notebook']} | {p['tier']} | {metrics} | {p['wall_s']:.1f} s | {mem} | "
            f"{p['device']} | {p['date'][:10]} | {p['commit']} |"
        )
    return rows
