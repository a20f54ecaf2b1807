"""The check of unit 13's IPO exercise (re-exported by :mod:`dlfund.checks.unit13`).

The lecture builds the DPO loss from sequence log-probabilities; the exercise asks for the IPO loss (Azar et
al., 2023) from *per-token* log-probabilities and a response mask: each answer's log-probability is the sum
over its response tokens, ``h`` is the chosen answer's log-ratio to the reference minus the rejected one's,
and the loss is the mean over the pairs of ``(h − 1/(2β))²``. The check draws fresh per-token log-probs with
prompts, responses and padding of different lengths (chosen and rejected answers of different lengths, so
a mean over tokens cannot pass for a sum), a β that is never 0.5, compares the value and the gradients with
an independent computation, and names each usual mistake by recomputing it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["IPO_MISTAKES", "REFERENCE_GRADIENT", "ipo_loss", "reference_ipo_loss"]

Tensor = torch.Tensor


def reference_ipo_loss(
    policy_logps: Tensor, ref_logps: Tensor, mask: Tensor, beta: float, *, variant: str = ""
) -> Tensor:
    """The IPO loss of ``(2, B, T)`` per-token log-probabilities (index 0: chosen, 1: rejected) and mask.

    ``variant`` recomputes a usual mistake instead (the check uses them to name what it sees)."""
    keep = torch.ones_like(mask) if variant == "no mask" else mask
    positions = torch.arange(mask.shape[-1])
    if variant == "padding counted":  # from the first response token to the end
        keep = positions >= mask.float().argmax(-1, keepdim=True)
    elif variant == "prompt counted":  # from the start to the last response token
        keep = positions <= mask.shape[-1] - 1 - mask.flip(-1).float().argmax(-1, keepdim=True)
    ref = torch.zeros_like(ref_logps) if variant == "no reference" else ref_logps.detach()
    ratio = ((policy_logps - ref) * keep).sum(-1)  # (2, B): each answer's log-ratio
    if variant == "token mean":
        ratio = ratio / keep.sum(-1)
    h = ratio[0] - ratio[1]
    if variant == "swapped":
        h = -h
    target = 1 / (2 * beta)
    if variant == "dpo":
        per_pair = -F.logsigmoid(beta * h)
    elif variant == "target 1/beta":
        per_pair = (h - 1 / beta) ** 2
    elif variant == "beta times h":
        per_pair = (beta * h - 0.5) ** 2
    elif variant == "absolute":
        per_pair = (h - target).abs()
    else:
        per_pair = (h - target) ** 2
    return per_pair.sum() if variant == "sum over pairs" else per_pair.mean()


IPO_MISTAKES = {
    "swapped": "chosen and rejected are exchanged (or the target was added to h: (h + t)^2 = (-h - t)^2): h is "
    "the chosen answer's log-ratio (index 0 of the first axis) minus the rejected answer's (index 1), and the loss "
    "is its squared distance to the target",
    "no reference": "the reference was not subtracted: each answer's log-ratio is its log-probability under the "
    "policy minus its log-probability under the reference",
    "no mask": "the prompt and padding tokens were summed too: an answer's log-probability counts the positions "
    "where the mask is True only",
    "padding counted": "the padding after each response was summed too: an answer's log-probability counts the "
    "positions where the mask is True only",
    "prompt counted": "the prompt tokens were summed too: the prompt is given, not generated, so only the positions "
    "where the mask is True count",
    "token mean": "the log-probabilities were averaged over the response tokens: a sequence's log-probability is "
    "their sum (the probability of a sequence is the product of its tokens')",
    "target 1/beta": "the target margin is 1/beta here: IPO's target is 1/(2 beta)",
    "beta times h": "beta multiplies h, as in DPO: IPO compares h itself with the target 1/(2 beta)",
    "absolute": "the distance to the target was not squared: IPO's loss per pair is the squared difference",
    "dpo": "this is DPO's loss -log sigmoid(beta h): the exercise asks for IPO's squared loss toward a finite target",
    "sum over pairs": "the pairs' losses were summed: return their mean, so the loss does not grow with the batch",
}


REFERENCE_GRADIENT = (
    "a gradient reached the reference log-probabilities: the reference is frozen, so detach them (a "
    "reference computed with autograd on would otherwise be trained too)"
)


def _draw(seed: int) -> dict[str, Any]:
    """Per-token log-probs with prompt, response and padding of different lengths per row."""
    g = torch.Generator().manual_seed(seed)
    b = int(torch.randint(5, 9, (1,), generator=g))
    t = int(torch.randint(12, 17, (1,), generator=g))
    beta = (0.07, 0.15, 0.25, 0.4, 0.8)[int(torch.randint(0, 5, (1,), generator=g))]
    mask = torch.zeros(2, b, t, dtype=torch.bool)
    prompt = torch.randint(2, 6, (b,), generator=g)
    for i in range(b):
        long, short = (
            int(torch.randint(4, t - int(prompt[i]), (1,), generator=g)),
            int(torch.randint(1, 4, (1,), generator=g)),
        )
        lengths = (long, short) if i % 2 == 0 else (short, long)  # chosen and rejected of different lengths
        for k in range(2):
            mask[k, i, int(prompt[i]) : int(prompt[i]) + lengths[k]] = True
    policy = -torch.rand(2, b, t, generator=g, dtype=torch.float64) * 3 - 0.05
    # the reference differs from the policy by a few tenths per token, prompt and padding included
    ref = policy + 0.4 * torch.randn(2, b, t, generator=g, dtype=torch.float64)
    return {"policy": policy, "ref": ref, "mask": mask, "beta": beta, "b": b, "t": t}


def _close(found: float, want: float) -> bool:
    return math.isfinite(found) and abs(found - want) <= 1e-9 + 1e-7 * abs(want)


def ipo_loss(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check the learner's ``ipo_loss(policy_logps, ref_logps, mask, beta) -> scalar tensor``.

    ``policy_logps, ref_logps (2, B, T)``: per-token log-probabilities of each answer's next tokens (index 0
    of the first axis: the chosen answer, 1: the rejected one); ``mask (2, B, T)`` bool, True on response
    tokens."""
    seed = fresh_seed(seed)
    case = _draw(seed)
    beta = case["beta"]
    call = (
        f"ipo_loss(policy_logps, ref_logps, mask, beta={beta}) on {case['b']} pairs of {case['t']} positions "
        f"(seed={seed})"
    )
    policy = case["policy"].clone().requires_grad_(True)
    ref = case["ref"].clone().requires_grad_(True)  # as if computed with autograd on: it must be cut off
    mask = case["mask"].clone()
    found = call_learner(fn, policy, ref, mask, beta, what=call)
    expect(
        isinstance(found, torch.Tensor),
        f"{call} should return a scalar tensor (so that it can be backpropagated), found {type(found).__name__}",
    )
    expect(
        found.numel() == 1,
        f"{call} should return one number, the mean over the pairs; found shape {tuple(found.shape)}",
    )
    expect(found.dtype.is_floating_point, f"{call} should return a floating-point loss, found {found.dtype}")
    expect(
        torch.equal(policy.detach(), case["policy"])
        and torch.equal(ref.detach(), case["ref"])
        and torch.equal(mask, case["mask"]),
        f"{call} changed its inputs in place",
    )
    value = float(found.detach().double().reshape(()))
    want = float(reference_ipo_loss(case["policy"], case["ref"], case["mask"], beta))
    if not _close(value, want):
        for variant, why in IPO_MISTAKES.items():
            if _close(
                value, float(reference_ipo_loss(case["policy"], case["ref"], case["mask"], beta, variant=variant))
            ):
                raise CheckFailed(f"{call}: {why}")
        raise CheckFailed(
            f"{call}: the loss should be {want:.6g} (the mean over the pairs of (h - 1/(2 beta))^2, with h the "
            f"difference of the two answers' log-ratios to the reference, each summed over its response tokens); "
            f"found {value:.6g}"
        )
    expect(
        found.requires_grad,
        f"{call}: the loss carries no gradient: compute it with tensor operations, not .item() or a detached copy",
    )
    try:
        found.reshape(()).backward()
    except Exception as err:  # the learner's graph may be broken in ways we cannot foresee
        raise CheckFailed(f"{call}: backward() through the returned loss raised {type(err).__name__}: {err}") from None
    expect(ref.grad is None or not bool(ref.grad.any()), f"{call}: {REFERENCE_GRADIENT}")
    policy_ref = case["policy"].clone().requires_grad_(True)
    reference_ipo_loss(policy_ref, case["ref"], case["mask"], beta).backward()
    expect(
        policy.grad is not None and torch.allclose(policy.grad, policy_ref.grad, atol=1e-9, rtol=1e-6),
        f"{call}: the loss is right but its gradient with respect to the policy's log-probabilities is not; "
        "compute it with differentiable tensor operations from the inputs",
    )
    passed(
        f"IPO loss: value {value:.4f} and gradients right for {case['b']} pairs with prompts, responses and "
        f"padding of different lengths, beta = {beta} (seed={seed}); no gradient reaches the reference"
    )
