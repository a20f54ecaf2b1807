"""The check of unit 6, exercise 4: the gradient noise scale of McCandlish et al. (2018), estimated from the
squared gradient norms of a model on a small and a big batch.

The learner writes ``noise_scale(model, loss_fn, x_small, y_small, x_big, y_big)`` and returns
``(b_simple, trace_sigma, grad_sq)``. The check computes the same estimate independently: the gradient of
every single example with ``torch.func`` (no ``backward()``, no ``.grad``), the batch gradients as their
means, and the paper's unbiased estimators from their squared norms. The model and the data are float64,
so the two routes agree to rounding, and every typical mistake moves at least one of the three numbers
far beyond it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["noise_scale", "noise_scale_estimates"]

Tensor = torch.Tensor
_RTOL = 1e-6


def noise_scale_estimates(g2_small: float, g2_big: float, b_small: int, b_big: int) -> tuple[float, float, float]:
    """``(b_simple, trace_sigma, grad_sq)`` from the squared norms of the mean gradients of two batches.

    ``E|G_B|² = |G|² + tr(Σ) / B`` for a batch of B examples; two batch sizes give two equations, and
    solving them gives the unbiased estimators of ``|G|²`` and ``tr(Σ)``; ``B_simple = tr(Σ) / |G|²``.
    """
    grad_sq = (b_big * g2_big - b_small * g2_small) / (b_big - b_small)
    trace = (g2_small - g2_big) / (1 / b_small - 1 / b_big)
    return trace / grad_sq, trace, grad_sq


def _per_example_grads(model: nn.Module, x: Tensor, y: Tensor) -> list[Tensor]:
    """The gradient of each example's cross-entropy, one ``(B, *param.shape)`` tensor per parameter."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(model, p, (xi.unsqueeze(0),)), yi.unsqueeze(0))

    per_example = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    return [per_example[k] for k in params]


def _sq_norm(grads: Sequence[Tensor]) -> float:
    return float(sum((g.double() ** 2).sum() for g in grads))


def _number(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        expect(value.numel() == 1, f"{what}: expected a number, found a tensor of shape {tuple(value.shape)}")
        value = value.item()
    expect(
        isinstance(value, numbers.Real) and not isinstance(value, bool),
        f"{what}: expected a number, found {type(value).__name__} {value!r}",
    )
    return float(value)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=_RTOL, abs_tol=1e-12)


def _diagnose(found: tuple[float, float, float], inputs: dict[str, Any]) -> str:
    """Name the mistake that gives ``found`` (b_simple, trace, grad_sq), if one does."""
    b_s, b_b = inputs["b_small"], inputs["b_big"]
    g2s, g2b, n_params, n_tensors = inputs["g2_small"], inputs["g2_big"], inputs["numel"], inputs["tensors"]
    bs, tr, g2 = noise_scale_estimates(g2s, g2b, b_s, b_b)
    f_bs, f_tr, f_g2 = found
    candidates: list[tuple[tuple[float, float, float] | None, str]] = [
        (
            noise_scale_estimates(math.sqrt(g2s), math.sqrt(g2b), b_s, b_b),
            "the estimators take squared norms |G_B|² (the sum of the squares of all gradient entries), "
            "not the norms |G_B|",
        ),
        (
            noise_scale_estimates(g2s * b_s**2, g2b * b_b**2, b_s, b_b),
            "the gradients are B times too large: the loss is summed over the batch (or multiplied by B); "
            "use the mean loss that loss_fn returns",
        ),
        (
            noise_scale_estimates(g2s, g2b + g2s + 2 * inputs["dot"], b_s, b_b),
            "the big batch's gradient includes the small batch's: the gradients were not zeroed between the "
            "two backward passes (.grad accumulates)",
        ),
        (
            noise_scale_estimates(inputs["g2_small_stale"], g2b, b_s, b_b),
            "the model arrived with old gradients in .grad and they were added to yours: zero them before the "
            "first backward pass (or use torch.autograd.grad)",
        ),
        (
            noise_scale_estimates(inputs["g2_small_stale"], inputs["g2_big_stale"], b_s, b_b),
            "the model arrived with old gradients in .grad and they were added to yours: zero them before the "
            "first backward pass (or use torch.autograd.grad)",
        ),
        (
            noise_scale_estimates(g2s / n_tensors, g2b / n_tensors, b_s, b_b),
            "the squared norm is averaged over the parameter tensors; it is the sum over all of them",
        ),
        (
            noise_scale_estimates(g2s / n_params, g2b / n_params, b_s, b_b),
            "the squared norm is averaged over the parameter entries; it is the sum over all of them",
        ),
    ]
    for expected, message in candidates:
        if expected is not None and all(_close(f, e) for f, e in zip(found, expected)):
            return message
    if _close(f_tr, -tr):
        return (
            "the trace has the wrong sign: B_small and B_big (or the two norms) are swapped somewhere; "
            "the small batch's gradient is the noisier one, so |G_small|² > |G_big|² on average"
        )
    if _close(f_tr, 0.0) and (_close(f_g2, g2s) or _close(f_g2, g2b)):
        return "both gradients come from the same batch: G_small from the small batch, G_big from the big one"
    if _close(f_g2, g2b) or _close(f_g2, g2s):
        return (
            "grad_sq is a batch's |G_B|² itself: that is biased upwards by tr(Σ)/B; combine the two batches "
            "with the unbiased estimator"
        )
    if _close(f_tr, b_s * g2s) or _close(f_tr, b_b * g2b):
        return (
            "trace_sigma is B·|G_B|² itself: that is biased (it also holds B·|G|²); combine the two batches "
            "with the unbiased estimator"
        )
    if _close(f_tr, tr) and _close(f_g2, g2) and _close(f_bs, 1 / bs):
        return "b_simple is upside down: it is tr(Σ) / |G|²"
    return ""


def _model(gen: torch.Generator) -> nn.Module:
    """A float64 MLP 7 → 5 → 3 with a tanh, its weights drawn from ``gen`` and a bias towards class 0."""
    model = nn.Sequential(nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.7)
    return model


def noise_scale(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(model, loss_fn, x_small, y_small, x_big, y_big)`` → ``(b_simple, trace_sigma, grad_sq)``.

    Expected: with ``G_B`` the gradient of the mean loss over a batch of B examples (all parameters),
    ``grad_sq = (B_big |G_big|² − B_small |G_small|²) / (B_big − B_small)``,
    ``trace_sigma = (|G_small|² − |G_big|²) / (1/B_small − 1/B_big)`` and
    ``b_simple = trace_sigma / grad_sq``; the model's weights unchanged. Three fresh models and batch
    pairs, the model handed over with stale gradients in ``.grad`` each time.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    for case in range(3):
        b_small = int(torch.randint(4, 7, (), generator=gen))  # 4-6: never 3 (classes), 5 (hidden), 7 (inputs)
        b_big = int(torch.randint(20, 33, (), generator=gen))
        model = _model(gen)
        x_small = torch.randn(b_small, 7, generator=gen, dtype=torch.float64)
        x_big = torch.randn(b_big, 7, generator=gen, dtype=torch.float64)
        # labels mostly class 0: the mean gradient is then clearly non-zero next to the per-example noise
        y_small, y_big = (
            torch.where(torch.rand(b, generator=gen) < 0.6, 0, torch.randint(0, 3, (b,), generator=gen))
            for b in (b_small, b_big)
        )
        stale = [torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in model.parameters()]
        small = [g.mean(0) for g in _per_example_grads(model, x_small, y_small)]
        big = [g.mean(0) for g in _per_example_grads(model, x_big, y_big)]
        inputs = {
            "b_small": b_small,
            "b_big": b_big,
            "g2_small": _sq_norm(small),
            "g2_big": _sq_norm(big),
            "dot": float(sum((a * b).sum() for a, b in zip(small, big))),
            "g2_small_stale": _sq_norm([a + s for a, s in zip(small, stale)]),
            "g2_big_stale": _sq_norm([a + b + s for a, b, s in zip(small, big, stale)]),
            "numel": sum(p.numel() for p in model.parameters()),
            "tensors": len(stale),
        }
        expected = noise_scale_estimates(inputs["g2_small"], inputs["g2_big"], b_small, b_big)
        before = [p.detach().clone() for p in model.parameters()]
        for p, s in zip(model.parameters(), stale):
            p.grad = s.clone()  # as if handed over in the middle of training
        args = [t.clone() for t in (x_small, y_small, x_big, y_big)]
        call = (
            f"fn(model, F.cross_entropy, x_small ({b_small}, 7), y_small, x_big ({b_big}, 7), y_big) "
            f"(seed {seed}, case {case})"
        )
        result = call_learner(fn, model, F.cross_entropy, *args, what=call)
        expect(
            isinstance(result, (tuple, list)) and len(result) == 3,
            f"{call}: expected a tuple (b_simple, trace_sigma, grad_sq), found {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""),
        )
        found = tuple(_number(v, f"{call}: {name}") for v, name in zip(result, ("b_simple", "trace_sigma", "grad_sq")))
        expect(
            all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before)),
            f"{call}: the model's weights changed; measuring the gradient noise must not train the model",
        )
        expect(
            all(torch.equal(a, b) for a, b in zip(args, (x_small, y_small, x_big, y_big))),
            f"{call}: the batches were changed in place",
        )
        if not all(_close(f, e) for f, e in zip(found, expected)):
            hint = _diagnose(found, inputs)  # type: ignore[arg-type]
            raise CheckFailed(
                f"{call}: expected (b_simple, trace_sigma, grad_sq) = ({expected[0]:.6g}, {expected[1]:.6g}, "
                f"{expected[2]:.6g}), found ({found[0]:.6g}, {found[1]:.6g}, {found[2]:.6g})"
                + (f": {hint}" if hint else "")
            )
    passed("gradient noise scale: the unbiased estimates agree with per-example gradients on 3 fresh models")
