"""dlfund bench: the reference comparisons run (smoke sizes, CPU), check parity first, and record."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dlfund.course import cli, manifest
from dlfund.course.bench import reference


def test_smoke_benchmarks_run_and_compare_like_with_like(capsys):
    rows = reference.run("smoke", "cpu")
    attn = [r for r in rows if r.benchmark.startswith("attention")]
    assert len(attn) == len(reference.SIZES["smoke"]["attn_lengths"])
    for r in attn:
        assert r.ours > 0 and r.reference > 0 and math.isclose(r.ratio, r.ours / r.reference)
        assert float(r.note.split("max difference ")[1].split(";")[0]) <= 1e-4
    bf16 = next(r for r in rows if r.benchmark.startswith("GPT step: bf16 autocast"))
    assert bf16.ours > 0 and bf16.reference > 0
    vit = next(r for r in rows if r.benchmark.startswith("ViT"))
    assert vit.ours > 0 or "timm is not installed" in vit.note
    text = reference.table(rows)
    for what, unit in reference.PENDING:
        assert (what in text) == (unit not in {u.number for u in manifest.UNITS})


def test_attention_benchmark_refuses_modules_that_differ(monkeypatch):
    monkeypatch.setattr(reference, "load_attention_weights", lambda module, **weights: None)
    with pytest.raises(AssertionError, match="the two implementations differ"):
        reference.bench_attention(reference.SIZES["smoke"], torch.device("cpu"))


def test_cli_bench_records_with_provenance(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(manifest, "RESULTS_DIR", tmp_path)
    assert cli.main(["bench", "--record"]) == 0
    out = capsys.readouterr().out
    assert "attention: explicit vs SDPA" in out and "recorded" in out
    payload = json.loads((tmp_path / "benchmarks" / "reference.smoke.json").read_text())
    assert payload["provenance"]["tier"] == "smoke" and payload["provenance"]["device_type"] == "cpu"
    assert payload["rows"] and all(set(r) >= {"benchmark", "ours", "reference", "ratio"} for r in payload["rows"])
    from dlfund.course import book

    page = book.results_markdown()  # the book's results page shows the recorded table
    assert "## Reference benchmarks" in page and "| attention: explicit vs SDPA | T=64" in page


def test_unknown_tier_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown tier 'huge'"):
        reference.run("huge", "cpu")
