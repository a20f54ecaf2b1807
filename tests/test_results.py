"""Results are written atomically with provenance; the committed reference only when asked."""

from __future__ import annotations

import json
import math

import pytest
import torch

import dlfund
from dlfund import course, results


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "RESULTS_DIR", tmp_path / "book")
    monkeypatch.setattr(course, "RUNS_DIR", tmp_path / "runs")
    return dlfund.setup(unit=1, notebook="03-perceptron-vectorised", tier="smoke")


def test_record_writes_the_run_with_provenance(cfg, tmp_path, capsys):
    assert cfg.record({"test_acc": torch.tensor(0.975), "epochs": 5, "curve": [3, 1, 0]}) is None
    path = tmp_path / "runs" / "results" / "01-perceptron" / "03-perceptron-vectorised.smoke.json"
    r = json.loads(path.read_text())
    assert r["metrics"] == {"test_acc": 0.975, "epochs": 5, "curve": [3, 1, 0]}
    assert r["settings"]["epochs"] == cfg.epochs
    prov = r["provenance"]
    assert prov["tier"] == "smoke" and prov["device_type"] == cfg.device.type and prov["wall_s"] >= 0
    assert prov["torch"] == torch.__version__ and prov["date"].startswith("20") and prov["commit"]
    assert prov["peak_memory_mb"] > 0
    assert not (tmp_path / "book").exists(), "without DLFUND_RECORD the committed results stay untouched"
    assert "test_acc" in capsys.readouterr().out


def test_record_reference_when_asked(cfg, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLFUND_RECORD", "1")
    cfg.record({"test_acc": 0.5})
    ref = results.load(1, "03-perceptron-vectorised", "smoke")
    assert ref is not None and ref["metrics"]["test_acc"] == 0.5
    cfg.record({"test_acc": 0.75})
    out = capsys.readouterr().out
    assert "reference" in out and "0.5" in out  # the second run is shown beside the first


@pytest.mark.parametrize("bad,match", [
    ({"x": math.nan}, "finite"),
    ({"x": torch.ones(2)}, "shape \\(2,\\)"),
    ({"x": object()}, "type object"),
    ({}, "at least one metric"),
])
def test_bad_metrics_are_refused(cfg, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cfg.record(bad)


def test_corrupt_reference_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(course, "RESULTS_DIR", tmp_path)
    path = results.result_path(tmp_path, course.get_unit(1), "x", "full")
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON.*dlfund run 1 --record"):
        results.load(1, "x", "full")
