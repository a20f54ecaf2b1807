"""The check of unit 14's class-conditional conformal exercise (re-exported by :mod:`dlfund.checks.unit14`).

The lecture calibrates one threshold for all classes (split conformal prediction with the score
``1 - p(true class)``); the exercise asks for one threshold per class, so that every class, not only the
average, is covered with probability at least ``1 - alpha``. The check draws fresh synthetic predictions
(classes of different difficulty and size, one class too small for a finite threshold, ties between test
and calibration scores, ``alpha`` never 0.1), compares the learner's thresholds and sets with an independent
computation, and names the usual mistakes by recomputing each of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["class_conditional_conformal", "reference_thresholds"]

Tensor = torch.Tensor
TOL = 1e-6


def _rank(n: int, alpha: float) -> int:
    """The rank (1-based) of the calibration score that is the threshold: ceil((n + 1)(1 - alpha)).

    The check's class sizes never make (n + 1) alpha a whole number, so float rounding cannot move the
    ceiling by one whichever way a learner writes it."""
    return math.ceil((n + 1) * (1 - alpha))


def _kth(scores: Tensor, k: int) -> float:
    """The k-th smallest of ``scores`` (1-based); +inf when k is beyond the count (every label is kept)."""
    if k > len(scores):
        return math.inf
    return float(scores.sort().values[k - 1])


def reference_thresholds(probs: Tensor, labels: Tensor, alpha: float, *, variant: str = "") -> Tensor:
    """One threshold per class from calibration predictions ``probs`` (N, C) and ``labels`` (N,).

    ``variant`` recomputes a usual mistake instead (the check uses them to name what it sees)."""
    n_classes = probs.shape[1]
    scores = 1 - probs[torch.arange(len(labels)), labels]
    if variant == "probability score":
        scores = probs[torch.arange(len(labels)), labels]
    group = probs.argmax(dim=1) if variant == "grouped by prediction" else labels
    out = torch.empty(n_classes, dtype=torch.float64)
    for c in range(n_classes):
        s = scores[group == c].double() if variant != "one threshold" else scores.double()
        n = len(s)
        if variant == "no +1":
            k = math.ceil(n * (1 - alpha))
        elif variant == "alpha as level":
            k = math.ceil((n + 1) * alpha)
        else:
            k = _rank(n, alpha)
        if variant == "interpolated":
            out[c] = float(torch.quantile(s, 1 - alpha)) if n else math.inf
        elif variant == "clamped":
            out[c] = _kth(s, min(k, n)) if n else math.inf
        else:
            out[c] = _kth(s, max(k, 1)) if n else math.inf
    return out


def _draw(seed: int) -> dict[str, Any]:
    """Synthetic calibration and test predictions where every usual mistake gives another answer."""
    g = torch.Generator().manual_seed(seed)
    n_classes = int(torch.randint(5, 8, (1,), generator=g))
    percent = (5, 15, 20, 25)[int(torch.randint(0, 4, (1,), generator=g))]
    alpha = percent / 100
    # classes of different difficulty: the true class gets a boost from large (easy) to small (hard)
    boost = torch.linspace(8.0, 0.5, n_classes)[torch.randperm(n_classes, generator=g)]
    sizes = torch.randint(25, 70, (n_classes,), generator=g)
    # a class with 2 calibration examples: ceil(3 (1 - alpha)) = 3 > 2, so no score is large enough
    sizes[int(torch.randint(0, n_classes, (1,), generator=g))] = 2
    # sizes where (n + 1) alpha or n alpha is a whole number would leave the ceiling to float rounding
    while any(((int(n) + 1) * percent) % 100 == 0 or (int(n) * percent) % 100 == 0 for n in sizes):
        sizes = torch.where(((sizes + 1) * percent) % 100 == 0, sizes + 1, sizes)
        sizes = torch.where((sizes * percent) % 100 == 0, sizes + 1, sizes)

    def predictions(counts: Tensor) -> tuple[Tensor, Tensor]:
        labels = torch.cat([torch.full((int(n),), c) for c, n in enumerate(counts)])
        logits = torch.randn(len(labels), n_classes, generator=g, dtype=torch.float64) * 1.5
        logits[torch.arange(len(labels)), labels] += boost[labels]
        order = torch.randperm(len(labels), generator=g)
        return logits.softmax(dim=1)[order], labels[order]

    cal_probs, cal_labels = predictions(sizes)
    thresholds = reference_thresholds(cal_probs, cal_labels, alpha)
    # below, the easiest class must be able to top a row that leaves it out: draw again in the rare case not
    while float(thresholds.min()) + 0.02 >= (n_classes - 1) / n_classes - 0.01:
        cal_probs, cal_labels = predictions(sizes)
        thresholds = reference_thresholds(cal_probs, cal_labels, alpha)
    test_probs, test_labels = predictions(torch.full((n_classes,), 40))
    # ties: copies of the calibration rows whose scores are the thresholds, so a score equals its threshold
    scores = 1 - cal_probs[torch.arange(len(cal_labels)), cal_labels].double()
    copies = (scores == thresholds[cal_labels]).nonzero()[:, 0]
    # a row whose most probable class is not in its set (the easiest class, just above its threshold)
    easy = int(thresholds.argmin())
    top = 1 - float(thresholds[easy]) - 0.02
    row = torch.full((1, n_classes), (1 - top) / (n_classes - 1), dtype=torch.float64)
    row[0, easy] = top
    test_probs = torch.cat([test_probs, cal_probs[copies], row])
    test_labels = torch.cat([test_labels, cal_labels[copies], torch.tensor([easy])])
    return {
        "cal": (cal_probs, cal_labels),
        "test": (test_probs, test_labels),
        "alpha": alpha,
        "n_classes": n_classes,
    }


THRESHOLD_MISTAKES = {
    "one threshold": "one threshold for all classes: calibrate each class on its own calibration examples "
    "(those whose TRUE label is that class)",
    "grouped by prediction": "the calibration examples were grouped by the PREDICTED class: group them by their "
    "true label, since the guarantee is about the examples of each true class",
    "no +1": "this is the ceil(n(1 - alpha))-th smallest score: the finite-sample correction uses "
    "ceil((n + 1)(1 - alpha)), with n the number of calibration examples of the class",
    "alpha as level": "this is the quantile at alpha, not at 1 - alpha: the threshold must let 1 - alpha of the "
    "class's calibration scores through",
    "interpolated": "torch.quantile interpolates between scores: the threshold is one of the calibration scores, "
    "the ceil((n + 1)(1 - alpha))-th smallest",
    "probability score": "the score is 1 - p(true class) (small when the model is confident and right), not "
    "p(true class)",
    "clamped": "a class with so few calibration examples that ceil((n + 1)(1 - alpha)) exceeds n has no score "
    "large enough: its threshold is +inf (every label is kept), not its largest score",
}


def _as_thresholds(found: Any, call: str, n_classes: int) -> Tensor:
    if not isinstance(found, torch.Tensor):
        try:
            found = torch.as_tensor(found, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            kind = type(found).__name__
            raise CheckFailed(f"{call} should return a tensor of {n_classes} thresholds, found {kind}") from None
    expect(
        found.shape == (n_classes,),
        f"{call} should return one threshold per class, shape ({n_classes},); found {tuple(found.shape)}",
    )
    expect(found.dtype.is_floating_point, f"{call} should return floating-point thresholds, found {found.dtype}")
    return found.detach().double().cpu()


def _same(found: Tensor, want: Tensor) -> bool:
    """Equal thresholds; where ``want`` is +inf any threshold >= 1 keeps every label (scores are <= 1) too."""
    keep_all = torch.isinf(want) & (found >= 1)
    return bool((keep_all | ((found - want).abs() <= TOL)).all())


def _check_thresholds(fn: Callable[..., Any], case: dict[str, Any], seed: int) -> Tensor:
    cal_probs, cal_labels = case["cal"]
    alpha, n_classes = case["alpha"], case["n_classes"]
    call = (
        f"class_thresholds(cal_probs, cal_labels, alpha={alpha}) on {len(cal_labels)} examples of "
        f"{n_classes} classes (seed={seed})"
    )
    given = cal_probs.clone(), cal_labels.clone()
    found = _as_thresholds(call_learner(fn, *given, alpha, what=call), call, n_classes)
    expect(
        torch.equal(given[0], cal_probs) and torch.equal(given[1], cal_labels),
        f"{call} changed its inputs in place",
    )
    want = reference_thresholds(cal_probs, cal_labels, alpha)
    if _same(found, want):
        return found
    for variant, why in THRESHOLD_MISTAKES.items():
        if _same(found, reference_thresholds(cal_probs, cal_labels, alpha, variant=variant)):
            raise CheckFailed(f"{call}: {why}")
    c = int(((found - want).abs().nan_to_num(math.inf) > TOL).nonzero()[0])
    n_c = int((cal_labels == c).sum())
    raise CheckFailed(
        f"{call}: the threshold of class {c} ({n_c} calibration examples) should be {want[c]:.6g} — the "
        f"ceil((n + 1)(1 - alpha)) = {_rank(n_c, alpha)}-th smallest of its scores 1 - p(true class), or +inf "
        f"when that rank exceeds n — found {found[c]:.6g}"
    )


SET_MISTAKES = {
    "strict": "a label whose score equals its class's threshold was left out: keep label c when "
    "1 - p(c) <= threshold[c] (<=, not <)",
    "threshold of the prediction": "every label was compared with the threshold of the PREDICTED class: compare "
    "label c's score with threshold[c]",
    "forced top": "the top class was added to every set: a set may be empty, and the guarantee is for the sets "
    "as the thresholds define them",
    "probability": "labels were kept when p(c) <= threshold[c]: the score is 1 - p(c)",
}


def _reference_sets(probs: Tensor, thresholds: Tensor, variant: str = "") -> Tensor:
    scores = 1 - probs.double()
    if variant == "probability":
        scores = probs.double()
    t = thresholds.double()[None, :]
    if variant == "threshold of the prediction":
        t = thresholds.double()[probs.argmax(dim=1)][:, None]
    sets = scores < t if variant == "strict" else scores <= t
    if variant == "forced top":
        sets[torch.arange(len(probs)), probs.argmax(dim=1)] = True
    return sets


def _check_sets(fn: Callable[..., Any], case: dict[str, Any], thresholds: Tensor, seed: int) -> Tensor:
    probs, _ = case["test"]
    call = f"class_conditional_sets(test_probs, thresholds) on {len(probs)} test predictions (seed={seed})"
    given = probs.clone()
    found = call_learner(fn, given, thresholds.clone(), what=call)
    expect(isinstance(found, torch.Tensor), f"{call} should return a boolean tensor, found {type(found).__name__}")
    expect(
        found.shape == probs.shape,
        f"{call} should return one row per prediction and one column per class, shape {tuple(probs.shape)}; "
        f"found {tuple(found.shape)}",
    )
    expect(
        found.dtype == torch.bool,
        f"{call} should return a boolean mask (True: the label is in the set), found {found.dtype}",
    )
    expect(torch.equal(given, probs), f"{call} changed its input in place")
    want = _reference_sets(probs, thresholds)
    if torch.equal(found.cpu(), want):
        return found
    for variant, why in SET_MISTAKES.items():
        if torch.equal(found.cpu(), _reference_sets(probs, thresholds, variant)):
            raise CheckFailed(f"{call}: {why}")
    row, col = (found.cpu() != want).nonzero()[0].tolist()
    raise CheckFailed(
        f"{call}: row {row}, label {col}: its score 1 - p = {1 - float(probs[row, col]):.6g} and the class's "
        f"threshold {float(thresholds[col]):.6g} say it is {'in' if want[row, col] else 'not in'} the set; "
        f"found {'in' if found[row, col] else 'not in'}"
    )


def class_conditional_conformal(
    class_thresholds: Callable[..., Any], class_conditional_sets: Callable[..., Any], *, seed: int | None = None
) -> None:
    """Check the learner's per-class conformal thresholds and prediction sets.

    ``class_thresholds(cal_probs (N, C), cal_labels (N,), alpha) -> (C,)`` float thresholds, and
    ``class_conditional_sets(probs (M, C), thresholds (C,)) -> (M, C)`` bool sets."""
    seed = fresh_seed(seed)
    case = _draw(seed)
    thresholds = _check_thresholds(class_thresholds, case, seed)
    sets = _check_sets(class_conditional_sets, case, thresholds, seed)
    passed(
        f"class-conditional conformal: thresholds and sets right for {case['n_classes']} classes of different "
        f"difficulty at alpha = {case['alpha']} (seed={seed}); mean set size {sets.sum(dim=1).double().mean():.2f}"
    )
