"""The check of unit 7's supervised contrastive exercise (re-exported by :mod:`dlfund.checks.unit07`).

The lecture's NT-Xent loss has one positive per view: the other view of the same image. The supervised
contrastive loss (SupCon, Khosla et al. 2020) uses the labels: every other row of the batch with the same
class is a positive. The exercise asks for the "L_out" form, with ``s_ij = cos(z_i, z_j) / tau``::

    loss_i = -1/|P(i)| · sum_{p in P(i)} [ s_ip - log sum_{a != i} exp(s_ia) ]
    loss   = mean of loss_i over the anchors i with P(i) non-empty (0 if there is none)

where ``P(i)`` is every row ``p != i`` with ``labels[p] == labels[i]``. The check draws fresh projections
(two stacked views of images of unequal classes; single views with a class seen once; all classes
distinct), compares the learner's loss and its gradient with an explicit per-anchor loop in float64, and
names the usual mistakes by recomputing each of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["supervised_contrastive", "reference_supcon", "SUPCON_MISTAKES"]

Tensor = torch.Tensor
TOL = 1e-6


def reference_supcon(z: Tensor, labels: Tensor, temperature: float, *, variant: str = "") -> Tensor:
    """SupCon (L_out) one anchor at a time, in float64; ``variant`` recomputes a usual mistake instead.

    For ``variant="labels ignored"`` the rows must be two stacked views (row i and row i + M/2 a pair)."""
    z = z.double()
    m = len(labels)
    if variant == "no normalisation":
        u = z
    elif variant == "wrong axis":
        u = z / z.norm(dim=0, keepdim=True)
    else:
        u = z / z.norm(dim=1, keepdim=True)
    tau = {"no temperature": 1.0, "temperature multiplied": 1 / temperature}.get(variant, temperature)
    sim = u @ u.T / tau  # (M, M)
    per_anchor, pairs, terms = [], 0, z.new_zeros(())
    for i in range(m):
        others = [a for a in range(m) if a != i or variant == "self in denominator"]
        log_denominator = torch.logsumexp(sim[i, others], dim=0)
        if variant == "labels ignored":
            positives = [(i + m // 2) % m]
        else:
            positives = [p for p in range(m) if labels[p] == labels[i] and (p != i or variant == "self positive")]
        if not positives:
            if variant == "no-positive anchors counted":
                per_anchor.append(z.new_zeros(()))
            continue
        log_probs = sim[i, positives] - log_denominator  # (|P(i)|,)
        if variant == "L_in":
            per_anchor.append(-torch.logsumexp(log_probs, dim=0) + math.log(len(positives)))
        elif variant == "sum over positives":
            per_anchor.append(-log_probs.sum())
        else:
            per_anchor.append(-log_probs.mean())
        pairs += len(positives)
        terms = terms - log_probs.sum()
    if variant == "pooled":
        return terms / pairs if pairs else z.sum() * 0
    if not per_anchor:
        return z.sum() * 0  # no anchor has a positive: zero, still a function of z
    stacked = torch.stack(per_anchor)
    return stacked.sum() if variant == "sum over anchors" else stacked.mean()


SUPCON_MISTAKES = {
    "self positive": "each anchor counted itself as a positive: P(i) holds the OTHER rows with the same label (p != i)",
    "self in denominator": "the anchor's similarity with itself is in the denominator: sum exp(s_ia) over a != i "
    "(mask the diagonal out)",
    "no normalisation": "the rows of z were not normalised: the similarity is the cosine, the dot product of the "
    "L2-normalised rows",
    "wrong axis": "z was normalised along the wrong axis: every ROW (one projection) must have length 1 (dim=1)",
    "no temperature": "the temperature is missing: divide the cosines by tau",
    "temperature multiplied": "the cosines were multiplied by the temperature: divide them by tau",
    "L_in": "this is the L_in form, the log of the MEAN probability of the positives: the exercise asks for L_out, "
    "the mean over the positives of the log-probabilities",
    "sum over positives": "each anchor's log-probabilities were summed over its positives: take their MEAN "
    "(divide by |P(i)|)",
    "pooled": "all (anchor, positive) pairs were averaged together: average over each anchor's positives first, "
    "then over the anchors, so every anchor weighs the same",
    "sum over anchors": "the per-anchor losses were summed: take their mean over the anchors",
    "labels ignored": "only the other view of the same image counted as a positive (plain NT-Xent): every other row "
    "with the same LABEL is a positive",
    "no-positive anchors counted": "anchors without any positive were counted in the mean as 0: leave them out "
    "of the mean",
}


def _draw(seed: int) -> dict[str, Any]:
    """Three cases in which every usual mistake gives another number (temperature never 1)."""
    g = torch.Generator().manual_seed(seed)
    tau = (0.2, 0.35, 0.5, 0.7)[int(torch.randint(0, 4, (1,), generator=g))]
    d = int(torch.randint(5, 8, (1,), generator=g))

    def projections(labels: Tensor) -> Tensor:
        centres = torch.randn(10, d, generator=g, dtype=torch.float64)
        scale = torch.rand(len(labels), 1, generator=g, dtype=torch.float64) * 3 + 0.5
        return (centres[labels] + 0.9 * torch.randn(len(labels), d, generator=g, dtype=torch.float64)) * scale

    # A: two stacked views of n images; classes of sizes 1, 2 and 3 or more (unequal positive counts)
    n = int(torch.randint(8, 11, (1,), generator=g))
    y = torch.cat([torch.tensor([0, 1, 1]), torch.randint(2, 5, (n - 3,), generator=g)])
    y = y[torch.randperm(n, generator=g)]
    labels_a = torch.cat([y, y])
    # B: single views; class 9 is seen once, so that anchor has no positive
    labels_b = torch.cat([torch.tensor([9, 3, 3, 6, 6, 6]), torch.randint(3, 7, (5,), generator=g)])
    labels_b = labels_b[torch.randperm(len(labels_b), generator=g)]
    # C: every label different: no anchor has a positive
    labels_c = torch.randperm(10, generator=g)[:5]
    return {
        "tau": tau,
        "cases": [
            ("two stacked views of each image", projections(labels_a), labels_a),
            ("single views, one class seen once", projections(labels_b), labels_b),
            ("five rows of five different classes", projections(labels_c), labels_c),
        ],
    }


def _as_scalar(found: Any, call: str) -> Tensor:
    expect(
        isinstance(found, torch.Tensor),
        f"{call} should return the loss as a 0-dim tensor (one that carries gradients), found {type(found).__name__}",
    )
    expect(found.dim() == 0, f"{call} should return one number, a 0-dim tensor; found shape {tuple(found.shape)}")
    expect(found.dtype.is_floating_point, f"{call} should return a floating-point loss, found {found.dtype}")
    return found


def _close(a: Tensor, b: Tensor) -> bool:
    return bool(torch.isfinite(a)) and abs(float(a) - float(b)) <= TOL + TOL * abs(float(b))


def _diagnose(found: Tensor, z: Tensor, labels: Tensor, tau: float, name: str, call: str) -> CheckFailed:
    want = reference_supcon(z, labels, tau)
    if torch.isnan(found):
        if name.startswith("five"):
            return CheckFailed(
                f"{call}: the loss is NaN; with no anchor that has a positive, return 0 (a tensor) instead of an "
                "average over no anchors"
            )
        if name.startswith("single"):
            return CheckFailed(
                f"{call}: the loss is NaN; an anchor without positives divides 0 by 0: leave such anchors out of "
                "the mean"
            )
        return CheckFailed(
            f"{call}: the loss is NaN; multiplying a masked -inf by a 0 gives NaN: pick the positives' "
            "log-probabilities with a mask that selects (torch.where or indexing), or mask with a large negative "
            "number"
        )
    for variant, why in SUPCON_MISTAKES.items():
        if variant == "labels ignored" and not name.startswith("two"):
            continue
        if _close(found.detach().double().cpu(), reference_supcon(z, labels, tau, variant=variant)):
            return CheckFailed(f"{call}: {why}")
    return CheckFailed(f"{call}: expected the loss {float(want):.6f}, found {float(found):.6f}")


def supervised_contrastive(supcon_loss: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``supcon_loss(z (M, D), labels (M,), temperature) -> scalar`` (SupCon, L_out) and its gradient."""
    seed = fresh_seed(seed)
    draw = _draw(seed)
    tau = draw["tau"]
    for name, z, labels in draw["cases"]:
        call = f"supcon_loss(z {tuple(z.shape)}, labels, temperature={tau}) on {name} (seed={seed})"
        given = z.clone().requires_grad_(True)
        given_labels = labels.clone()
        found = _as_scalar(call_learner(supcon_loss, given, given_labels, tau, what=call), call)
        expect(
            torch.equal(given.detach(), z) and torch.equal(given_labels, labels), f"{call} changed its inputs in place"
        )
        if not _close(found.detach().double().cpu(), reference_supcon(z, labels, tau)):
            raise _diagnose(found, z, labels, tau, name, call)
        if name.startswith("five"):
            continue  # a constant 0: no gradient to compare
        expect(
            found.requires_grad,
            f"{call}: the loss carries no gradient (was it detached, or rebuilt from .item()?): training needs it",
        )
        leaf = z.clone().requires_grad_(True)
        (want_grad,) = torch.autograd.grad(reference_supcon(leaf, labels, tau), leaf)
        try:
            (grad,) = torch.autograd.grad(found, given)
        except RuntimeError as err:
            raise CheckFailed(f"{call}: the loss could not be differentiated with respect to z ({err})") from None
        expect(
            grad is not None and torch.allclose(grad.double(), want_grad, atol=1e-5, rtol=1e-4),
            f"{call}: the loss is right but its gradient with respect to z is not (largest difference "
            f"{(grad.double() - want_grad).abs().max().item() if grad is not None else float('nan'):.3g})",
        )
    passed(
        f"supervised contrastive loss: values and gradients match a per-anchor computation on stacked views, on a "
        f"class seen once and with no positives at all (temperature {tau}, seed={seed})"
    )
