"""The unit-05 Fabric gradient-accumulation check accepts right answers and names every usual mistake."""

from __future__ import annotations

import time

import pytest
import torch.nn.functional as F
from check_helpers import rejects, solution, stub

from dlfund.checks import unit05


def accumulating_variant(mistake: str = ""):
    """A learner's train_accumulating with one typical mistake switched on."""

    def train_accumulating(fabric, model, optimizer, batches, k):
        losses, total = [], 0.0
        n = len(batches)
        for i, (x, y) in enumerate(batches):
            start = i - i % k
            size = min(k, n - start)  # micro-batches in this step: k, or the leftover
            last = i == start + size - 1
            if mistake == "modulo sync":
                skip = (i + 1) % k != 0
            elif mistake == "always no sync":
                skip = True
            else:
                skip = not last
            if mistake == "zero_grad every micro-batch":
                optimizer.zero_grad()
            divide = {"not divided": 1, "leftover divided by k": k}.get(mistake, size)
            if mistake == "no no_backward_sync":
                loss = F.cross_entropy(model(x), y) / divide
                fabric.backward(loss)
            elif mistake == "forward outside":
                loss = F.cross_entropy(model(x), y) / divide
                with fabric.no_backward_sync(model, enabled=skip):
                    fabric.backward(loss)
            else:
                with fabric.no_backward_sync(model, enabled=skip):
                    loss = F.cross_entropy(model(x), y) / divide
                    if mistake == "loss.backward":
                        loss.backward()
                    else:
                        fabric.backward(loss)
            total += loss.item() * divide / size
            if mistake == "step every micro-batch" or last:
                if mistake == "drop leftover" and size < k:
                    break
                optimizer.step()
                if mistake != "no zero_grad":
                    optimizer.zero_grad()
                losses.append(loss.item() if mistake == "returns last micro-batch loss" else total)
                total = 0.0
        if mistake == "returns every micro-batch loss":
            return losses + [0.0] * (n - len(losses))
        return losses

    return train_accumulating


MISTAKES = [
    ("not divided", r"times too large: each micro-batch's loss must be divided"),
    ("leftover divided by k", r"leftover step has only \d micro-batches, so its losses are divided by \d, not by k"),
    ("zero_grad every micro-batch", r"gradient was that of the last micro-batch only"),
    ("no zero_grad", r"still held the previous step's"),
    ("step every micro-batch", r"optimizer.step\(\) ran after every one of the \d+ micro-batches"),
    ("drop leftover", r"none for the \d micro-batches left over"),
    ("loss.backward", r"call fabric.backward\(loss\), not loss.backward\(\)"),
    ("no no_backward_sync", r"no_backward_sync\(model, enabled=...\) was never used"),
    ("always no sync", r"every backward pass ran inside no_backward_sync\(enabled=True\), also the last"),
    ("modulo sync", r"last micro-batch of the leftover step ran inside no_backward_sync"),
    ("forward outside", r"the forward passes did not"),
    ("returns last micro-batch loss", r"the loss returned for step 1 should be the mean loss"),
    ("returns every micro-batch loss", r"one loss per optimizer step .* \(one per micro-batch\?\)"),
]


def test_the_variant_without_mistakes_passes(capsys):
    for seed in range(3):
        unit05.fabric_accumulation(accumulating_variant(), seed=seed)
    assert capsys.readouterr().out.startswith("✓ Fabric gradient accumulation")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit05.fabric_accumulation(solution(5, "ex04-fabric-accumulation", "train_accumulating"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ Fabric gradient accumulation")


def test_rejects_the_stub():
    rejects(unit05.fabric_accumulation, stub, match=r"train_accumulating.* is not implemented yet")


def test_rejects_wrong_returns_and_crashes_without_crashing():
    rejects(unit05.fabric_accumulation, lambda f, m, o, b, k: None, match=r"optimizer steps")

    def returns_nothing(fabric, model, optimizer, batches, k):
        accumulating_variant()(fabric, model, optimizer, batches, k)

    rejects(unit05.fabric_accumulation, returns_nothing, match=r"should return a list of floats")

    def crashes(fabric, model, optimizer, batches, k):
        raise RuntimeError("boom")

    rejects(unit05.fabric_accumulation, crashes, match=r"raised RuntimeError: boom")

    def unset_model(fabric, model, optimizer, batches, k):
        with fabric.no_backward_sync(model.module):
            pass

    rejects(unit05.fabric_accumulation, unset_model, match=r"raised TypeError")


@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistake, match, seed):
    rejects(unit05.fabric_accumulation, accumulating_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistake, match):
    for seed in range(50):
        rejects(unit05.fabric_accumulation, accumulating_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(5, "ex04-fabric-accumulation", "train_accumulating")
    for seed in range(200):
        unit05.fabric_accumulation(fn, seed=seed)


def test_a_call_is_fast():
    start = time.perf_counter()
    unit05.fabric_accumulation(accumulating_variant(), seed=7)
    assert time.perf_counter() - start < 1.0
