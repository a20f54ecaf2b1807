"""dlfund.perf.mfu: the FLOPs formula, the peak table, and an honest CPU report."""

from __future__ import annotations

import math

import pytest
import torch

from dlfund.models.llama import Llama, LlamaConfig
from dlfund.perf import mfu

TINY = LlamaConfig(vocab_size=128, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64, context_length=64)


def test_flops_per_token_is_6n_plus_attention():
    n = Llama(TINY).num_parameters()
    assert mfu.flops_per_token(TINY, n, 64) == 6 * n + 12 * 2 * 32 * 64
    smol = LlamaConfig.smollm2_135m()
    with torch.device("meta"):
        n_smol = Llama(smol).num_parameters()
    per_token = mfu.flops_per_token(smol, n_smol, 1024)
    assert 0.9e9 < per_token < 1.1e9  # ≈ 6 × 134.5M + 12 × 30 × 576 × 1024


@pytest.mark.parametrize(
    ("name", "peak"),
    [
        ("NVIDIA H100 80GB HBM3", 989e12),
        ("NVIDIA H100 PCIe", 756e12),
        ("NVIDIA H200", 989e12),
        ("NVIDIA A100-SXM4-80GB", 312e12),
        ("NVIDIA GeForce GTX 1080", None),
    ],
)
def test_peak_table_by_device_name(monkeypatch, name, peak):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    assert mfu.peak_bf16_flops(torch.device("cuda", 0)) == (peak, name)


def test_cpu_measurement_reports_flops_and_no_mfu(capsys):
    torch.manual_seed(0)
    result = mfu.measure_mfu(Llama(TINY), batch=2, seq_len=16, steps=2, warmup=1, device="cpu")
    assert result.mfu is None and result.peak_flops is None and result.device.startswith("CPU")
    assert math.isclose(result.achieved_flops, result.flops_per_token * result.tokens_per_s)
    assert result.tokens_per_s == pytest.approx(2 * 16 / result.seconds_per_step)
    assert "MFU: no peak known for this CPU" in result.summary()
    with pytest.raises(ValueError, match="exceeds the model's context_length=64"):
        mfu.measure_mfu(Llama(TINY), batch=1, seq_len=65, steps=1, device="cpu")


def test_mfu_is_achieved_over_peak(monkeypatch):
    monkeypatch.setattr(mfu, "peak_bf16_flops", lambda device: (1e9, "a fake chip"))
    result = mfu.measure_mfu(Llama(TINY), batch=1, seq_len=8, steps=1, warmup=0, device="cpu")
    assert result.mfu == pytest.approx(result.achieved_flops / 1e9)
    assert f"MFU: {result.mfu:.1%} of" in result.summary() and "dense bf16 peak" in result.summary()


def test_command_line_runs_on_cpu(capsys):
    assert mfu.main(["--tiny", "--seq", "8", "--batch", "1", "--steps", "1"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs per token: 6·N + 12·L·d·T" in out and "MFU: no peak known for this CPU" in out


def test_bench_rows_for_llama_and_mfu(monkeypatch, capsys):
    import builtins

    from dlfund.course.bench import reference

    size = reference.SIZES["smoke"]
    (row,) = reference.bench_mfu(size, torch.device("cpu"))
    assert row.ours > 0 and math.isnan(row.reference) and "MFU: no peak known for this CPU" in row.note
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name.startswith("transformers"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    (skipped,) = reference.bench_llama(size, torch.device("cpu"))
    assert "transformers is not installed: skipped" in skipped.note and math.isnan(skipped.ours)
    assert capsys.readouterr().out.count("\n") == 1  # one printed line


def test_bench_llama_parity_against_transformers():
    pytest.importorskip("transformers")
    from dlfund.course.bench import reference

    (row,) = reference.bench_llama(reference.SIZES["smoke"], torch.device("cpu"))
    assert row.ours > 0 and row.reference > 0
    assert float(row.note.split("max difference ")[1].split(";")[0]) <= 1e-4
