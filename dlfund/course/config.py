"""Tiers, devices, seeds: what the first cell of every notebook calls.

>>> cfg = dlfund.setup(unit=1, notebook="02-perceptron-python")   # doctest: +SKIP

picks the tier (``DLFUND_TIER=smoke|full``; default ``full`` on CUDA, ``smoke`` otherwise), the device
(cuda → mps → cpu, or ``DLFUND_DEVICE``), seeds Python, NumPy and torch, prints one environment line,
the notebook's budget and last measured time and memory for the tier, and the tier's settings, which
the notebook then reads as attributes (``cfg.epochs``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from dlfund.course import manifest, results
from dlfund.course.settings import Settings, flatten, override
from dlfund.utils.device import device_name, pick_device, seed_everything
from dlfund.utils.net import block_network

ENV_PACKAGES = ("torch", "lightning", "torchmetrics", "numpy", "matplotlib", "scikit-learn")
"""Distribution names: watermark reads their versions from the package metadata, without importing them
(importing scikit-learn to ask its version would cost most of a second in every notebook)."""


def pick_tier(requested: str | None = None, *, verbose: bool = True) -> str:
    """``requested``, else ``$DLFUND_TIER``, else ``full`` with CUDA and ``smoke`` without."""
    tier = requested or os.environ.get("DLFUND_TIER") or None
    if tier is None:
        tier = "full" if torch.cuda.is_available() else "smoke"
        why = "CUDA is available" if tier == "full" else "no CUDA device"
        if verbose:
            print(f"tier: {tier} (default because {why}; set DLFUND_TIER=smoke|full to choose)")
        return tier
    tier = tier.strip().lower()
    if tier not in manifest.TIERS:
        raise ValueError(f"unknown tier {tier!r} (from DLFUND_TIER or the caller): expected smoke or full")
    if verbose:
        print(f"tier: {tier} (chosen)")
    return tier


def environment_line(device: torch.device) -> str:
    """One line: Python and the key package versions (read by ``watermark``) and the device."""
    from watermark import watermark

    text = watermark(python=True, packages=",".join(ENV_PACKAGES))
    found = dict(re.findall(r"^(\S[^:\n]*?)\s*:\s*(\S+)\s*$", text, flags=re.M))
    parts = [f"Python {found.get('Python version', '?')}"]
    parts += [f"{p} {found[p]}" for p in ENV_PACKAGES if p in found]
    return "env: " + " | ".join(parts) + f" | device: {device_name(device)}"


@dataclass
class RunConfig:
    """What :func:`setup` chose, and the tier's settings read as attributes (``cfg.epochs``, ``cfg.vit.dim``).

    ``cfg.settings`` is the unit's typed settings object (:mod:`dlfund.course.settings`); its fields
    are also attributes of ``cfg`` itself and appear in ``dir(cfg)``, so Tab completion lists them.
    """

    unit: manifest.Unit
    notebook: str
    tier: str
    device: torch.device
    seed: int
    settings: Settings
    started: float = field(default_factory=time.perf_counter)

    def __getattr__(self, name: str) -> Any:
        # only called for names that are not attributes of the run itself: the unit's settings
        settings = self.__dict__.get("settings")
        if settings is not None and name in {f.name for f in dataclasses.fields(settings)}:
            return getattr(settings, name)
        names = ", ".join(f.name for f in dataclasses.fields(settings)) if settings is not None else "none"
        raise AttributeError(
            f"unit {self.__dict__['unit'].number} has no setting {name!r}; settings: {names} "
            f"(`dlfund units --settings {self.__dict__['unit'].number}` explains them)"
        )

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(f.name for f in dataclasses.fields(self.settings))})

    @property
    def run_dir(self) -> Path:
        """A git-ignored folder for this notebook's logs and checkpoints."""
        path = manifest.RUNS_DIR / self.unit.dirname / self.notebook
        path.mkdir(parents=True, exist_ok=True)
        return path

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def record(self, metrics: dict[str, Any]) -> None:
        """Write this notebook's key metrics with provenance (see :mod:`dlfund.course.results`)."""
        results.record(
            self.unit, self.notebook, self.tier, self.device, self.elapsed(), dataclasses.asdict(self.settings), metrics
        )


def setup(
    unit: int | str,
    notebook: str,
    *,
    seed: int = 123,
    tier: str | None = None,
    device: str | None = None,
    **overrides: Any,
) -> RunConfig:
    """The first call of every notebook. See the module docstring."""
    u = manifest.get_unit(unit)
    u.budget(notebook, "smoke")  # raises a clear KeyError for an unknown notebook
    chosen_tier = pick_tier(tier)
    dev = pick_device(device)
    seed_everything(seed)
    if os.environ.get("DLFUND_NO_NETWORK") == "1":
        block_network()
    settings = override(u.tier_settings(chosen_tier), overrides)
    cfg = RunConfig(unit=u, notebook=notebook, tier=chosen_tier, device=dev, seed=seed, settings=settings)

    print(environment_line(dev))
    print(f"unit {u.number:02d} · {notebook} · seed {seed}")
    budget = u.budget(notebook, chosen_tier)
    last = results.load(u, notebook, results.result_tier(chosen_tier, dev.type))
    if last is not None:
        prov = last.get("provenance", {})
        mem = prov.get("peak_memory_mb")
        mem_text = f", peak memory {mem:.0f} MB ({prov.get('peak_memory_kind', '?')})" if mem else ""
        print(
            f"expected: ≤ {budget} s (budget); last measured {prov.get('wall_s', float('nan')):.0f} s"
            f"{mem_text} on {prov.get('device', '?')}, {prov.get('date', '?')[:10]}"
        )
    else:
        print(f"expected: ≤ {budget} s (budget); no {chosen_tier}-tier measurement recorded yet")
    print("settings: " + ", ".join(f"{k}={v}" for k, v in flatten(settings).items()))
    return cfg
