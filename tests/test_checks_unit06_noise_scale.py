"""The unit-06 noise-scale check accepts the committed solution and names the typical mistakes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import CheckFailed, unit06
from dlfund.checks._unit06_noise_scale import noise_scale_estimates


def noise_scale_variant(
    *,
    square: bool = True,
    reduction: str = "mean",
    zero_between: bool = True,
    zero_first: bool = True,
    norm: str = "sum",
    swap: str = "",
    same_batch: bool = False,
    biased: str = "",
    inverted: bool = False,
    train: bool = False,
) -> Callable[..., Any]:
    """A learner's noise_scale with one typical mistake switched on (the defaults are right)."""

    def sq_norm(model: nn.Module, loss_fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
        loss = loss_fn(model(x), y) * (len(x) if reduction == "sum" else 1)
        loss.backward()
        squares = [(p.grad**2).sum() for p in model.parameters()]
        if norm == "tensors":
            total = sum(squares) / len(squares)
        elif norm == "entries":
            total = sum(squares) / sum(p.numel() for p in model.parameters())
        else:
            total = sum(squares)
        return float(total) if square else math.sqrt(float(total))

    def fn(model, loss_fn, x_small, y_small, x_big, y_big):
        if zero_first:
            model.zero_grad()
        g2_small = sq_norm(model, loss_fn, x_small, y_small)
        if zero_between:
            model.zero_grad()
        g2_big = sq_norm(model, loss_fn, *((x_small, y_small) if same_batch else (x_big, y_big)))
        if train:
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
        b_small, b_big = len(x_small), len(x_big)
        if swap == "sizes":
            b_small, b_big = b_big, b_small
        elif swap == "norms":
            g2_small, g2_big = g2_big, g2_small
        b_simple, trace, grad_sq = noise_scale_estimates(g2_small, g2_big, b_small, b_big)
        if biased == "grad_sq":
            grad_sq = g2_big
            b_simple = trace / grad_sq
        elif biased == "trace":
            trace = b_small * g2_small
            b_simple = trace / grad_sq
        if inverted:
            b_simple = 1 / b_simple
        return b_simple, trace, grad_sq

    return fn


NOISE_MISTAKES = [
    ({"square": False}, r"squared norms \|G_B\|² .*not the norms"),
    ({"reduction": "sum"}, r"B times too large: the loss is summed over the batch"),
    ({"zero_between": False}, r"not zeroed between the two backward passes"),
    ({"zero_first": False}, r"arrived with old gradients in \.grad"),
    ({"norm": "tensors"}, r"averaged over the parameter tensors"),
    ({"norm": "entries"}, r"averaged over the parameter entries"),
    ({"swap": "sizes"}, r"wrong sign: B_small and B_big \(or the two norms\) are swapped"),
    ({"swap": "norms"}, r"wrong sign: B_small and B_big \(or the two norms\) are swapped"),
    ({"same_batch": True}, r"both gradients come from the same batch"),
    ({"biased": "grad_sq"}, r"grad_sq is a batch's \|G_B\|² itself: that is biased"),
    ({"biased": "trace"}, r"trace_sigma is B·\|G_B\|² itself: that is biased"),
    ({"inverted": True}, r"b_simple is upside down"),
    ({"train": True}, r"the model's weights changed"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noise_scale_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit06.noise_scale(solution(6, "ex04-gradient-noise-scale", "noise_scale"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ gradient noise scale")


def test_noise_scale_accepts_the_right_variant_and_tensor_results() -> None:
    unit06.noise_scale(noise_scale_variant())
    right = noise_scale_variant()
    unit06.noise_scale(lambda *args: tuple(torch.tensor(v) for v in right(*args)))


def test_noise_scale_rejects_stub() -> None:
    rejects(unit06.noise_scale, stub, match=r"fn\(model, F\.cross_entropy, .*is not implemented yet")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (lambda *a: None, r"expected a tuple \(b_simple, trace_sigma, grad_sq\), found NoneType"),
        (lambda *a: (1.0, 2.0), r"found tuple of length 2"),
        (lambda *a: ("x", 1.0, 2.0), r"b_simple: expected a number, found str"),
        (lambda *a: (torch.ones(2), 1.0, 2.0), r"b_simple: expected a number, found a tensor of shape \(2,\)"),
        (lambda *a: 1 / 0, r"raised ZeroDivisionError"),
        (lambda *a: (math.nan, math.nan, math.nan), r"expected \(b_simple, trace_sigma, grad_sq\) = "),
    ],
)
def test_noise_scale_never_crashes(bad: Callable[..., Any], match: str) -> None:
    with pytest.raises(CheckFailed, match=match):
        unit06.noise_scale(bad, seed=0)


def test_noise_scale_names_inputs_changed_in_place() -> None:
    right = noise_scale_variant()

    def scaling_inputs(model, loss_fn, x_small, y_small, x_big, y_big):
        out = right(model, loss_fn, x_small, y_small, x_big, y_big)
        x_small.mul_(2)
        return out

    rejects(unit06.noise_scale, scaling_inputs, match="changed in place")


def test_the_estimators_are_unbiased_on_a_finite_dataset() -> None:
    """Averaged over many random batch pairs, the estimators approach the exact |G|² and tr(Σ)."""
    gen = torch.Generator().manual_seed(0)
    grads = torch.randn(200, 6, generator=gen, dtype=torch.float64) + torch.tensor([1.0, 0, 0, 0, 0, 0])
    mean = grads.mean(0)
    exact_g2, exact_trace = float(mean @ mean), float(((grads - mean) ** 2).sum(1).mean())
    estimates = []
    for _ in range(4000):
        small = grads[torch.randint(0, 200, (4,), generator=gen)].mean(0)
        big = grads[torch.randint(0, 200, (32,), generator=gen)].mean(0)
        estimates.append(noise_scale_estimates(float(small @ small), float(big @ big), 4, 32)[1:])
    trace, g2 = torch.tensor(estimates).mean(0).tolist()
    assert trace == pytest.approx(exact_trace, rel=0.05) and g2 == pytest.approx(exact_g2, rel=0.1)


@pytest.mark.parametrize(("kwargs", "match"), NOISE_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_noise_scale_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    message = rejects(unit06.noise_scale, noise_scale_variant(**kwargs), match=match, seed=seed)
    assert f"(seed {seed}, case" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), NOISE_MISTAKES)
def test_noise_scale_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit06.noise_scale, noise_scale_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_noise_scale_accepts_solution_on_every_seed() -> None:
    fn = solution(6, "ex04-gradient-noise-scale", "noise_scale")
    for seed in range(200):
        unit06.noise_scale(fn, seed=seed)
