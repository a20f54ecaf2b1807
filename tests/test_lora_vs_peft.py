"""dlfund bench's LoRA comparison: skipped with one line without peft; like with like where peft is installed."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from dlfund.course.bench import lora_vs_peft, reference

HAVE_PEFT = all(importlib.util.find_spec(m) is not None for m in ("peft", "transformers"))


@pytest.mark.skipif(HAVE_PEFT, reason="peft is installed: the comparison runs instead")
def test_skipped_with_one_line_without_peft(capsys) -> None:
    rows = lora_vs_peft.bench_lora_vs_peft(reference.SIZES["smoke"], torch.device("cpu"))
    assert len(rows) == 1 and "not installed: skipped" in rows[0].note and math.isnan(rows[0].ours)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("LoRA vs peft: skipped")


def test_same_trainable_parameters_and_same_base_logits() -> None:
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    rows = lora_vs_peft.bench_lora_vs_peft(reference.SIZES["smoke"], torch.device("cpu"))
    (row,) = rows
    assert row.ours > 0 and row.reference > 0 and math.isclose(row.ratio, row.ours / row.reference)
    counts = row.note.split("trainable ")[1].split(";")[0].split(" = ")
    assert counts[0] == counts[1]
    assert float(row.note.split("differ by ")[1].split(";")[0]) <= 1e-3


def test_different_weights_are_refused(monkeypatch) -> None:
    pytest.importorskip("peft")
    pytest.importorskip("transformers")
    original = lora_vs_peft.hf_llama

    def perturbed(model):
        hf = original(model)
        with torch.no_grad():
            hf.model.norm.weight.mul_(2.0)
        return hf

    monkeypatch.setattr(lora_vs_peft, "hf_llama", perturbed)
    with pytest.raises(AssertionError, match="differ by"):
        lora_vs_peft.bench_lora_vs_peft(reference.SIZES["smoke"], torch.device("cpu"))
