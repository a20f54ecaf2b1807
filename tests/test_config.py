"""dlfund.setup: tier, device, seeds, settings, and the clear errors around them."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

import dlfund
from dlfund.course import config, manifest, results


def test_tier_from_environment_and_default(monkeypatch, capsys):
    monkeypatch.setenv("DLFUND_TIER", "full")
    assert config.pick_tier() == "full"
    monkeypatch.delenv("DLFUND_TIER")
    expected = "full" if torch.cuda.is_available() else "smoke"
    assert config.pick_tier() == expected
    assert "set DLFUND_TIER" in capsys.readouterr().out  # the default says how to choose


def test_unknown_tier_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DLFUND_TIER", "fast")
    with pytest.raises(ValueError, match="unknown tier 'fast'.*smoke or full"):
        config.pick_tier()


def test_device_choice(monkeypatch):
    monkeypatch.setenv("DLFUND_DEVICE", "cpu")
    assert config.pick_device() == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            config.pick_device("cuda")


def test_seeding_makes_runs_repeatable():
    config.seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(3))
    config.seed_everything(7)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_setup_prints_environment_budget_and_settings(capsys, monkeypatch):
    monkeypatch.setenv("DLFUND_TIER", "smoke")
    cfg = dlfund.setup(unit=1, notebook="02-perceptron-python")
    out = capsys.readouterr().out
    assert "tier: smoke" in out and "env: Python" in out and "torch" in out
    assert f"expected: ≤ {manifest.get_unit(1).budget('02-perceptron-python', 'smoke')} s (budget)" in out
    assert "settings: fmnist_train=1000" in out
    assert cfg.epochs == manifest.get_unit(1).tier_settings("smoke").epochs
    assert cfg.device.type in ("cpu", "cuda", "mps")
    assert {"epochs", "fmnist_train", "fmnist_test"} <= set(dir(cfg)), "Tab completion lists the settings"
    with pytest.raises(AttributeError, match="unit 1 has no setting 'width'; settings: fmnist_train"):
        _ = cfg.width


def test_setup_rejects_unknown_notebooks_and_settings(monkeypatch):
    monkeypatch.setenv("DLFUND_TIER", "smoke")
    with pytest.raises(KeyError, match="has no notebook or exercise 'nope'"):
        dlfund.setup(unit=1, notebook="nope")
    with pytest.raises(TypeError, match="Unit01 has no setting width"):
        dlfund.setup(unit=1, notebook="02-perceptron-python", width=3)
    with pytest.raises(TypeError, match=r"Unit01.epochs must be int, got '2' \(str\)"):
        dlfund.setup(unit=1, notebook="02-perceptron-python", epochs="2")
    cfg = dlfund.setup(unit=1, notebook="02-perceptron-python", epochs=2)
    assert cfg.epochs == 2
    cfg = dlfund.setup(unit=7, notebook="06-vision-transformer", vit={"dim": 32})
    assert cfg.vit.dim == 32 and cfg.vit.depth == manifest.get_unit(7).tier_settings(cfg.tier).vit.depth
    with pytest.raises(TypeError, match="ViTSettings has no setting width"):
        dlfund.setup(unit=7, notebook="06-vision-transformer", vit={"width": 32})


def test_setup_shows_the_recorded_measurement(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(manifest, "RESULTS_DIR", tmp_path)
    unit = manifest.get_unit(1)
    path = results.result_path(tmp_path, unit, "02-perceptron-python", "smoke")
    path.parent.mkdir(parents=True)
    path.write_text(
        json.dumps(
            {
                "unit": 1,
                "notebook": "02-perceptron-python",
                "metrics": {"acc": 1.0},
                "provenance": {
                    "wall_s": 12.3,
                    "peak_memory_mb": 456.0,
                    "peak_memory_kind": "process_max_rss",
                    "device": "CPU (x86_64, 2 cores)",
                    "date": "2026-11-22T00:00:00+00:00",
                },
            }
        )
    )
    dlfund.setup(unit=1, notebook="02-perceptron-python", tier="smoke")
    assert (
        "last measured 12 s, peak memory 456 MB (process_max_rss) on CPU (x86_64, 2 cores), 2026-11-22"
        in capsys.readouterr().out
    )
