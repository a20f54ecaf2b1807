"""The unit-14 class-conditional conformal check accepts right answers and names every usual mistake."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import unit14


def thresholds_variant(mistake: str = ""):
    """A learner's class_thresholds with one typical mistake switched on."""

    def class_thresholds(cal_probs, cal_labels, alpha):
        n_classes = cal_probs.shape[1]
        true_p = cal_probs[torch.arange(len(cal_labels)), cal_labels]
        scores = true_p if mistake == "probability score" else 1 - true_p
        groups = cal_probs.argmax(dim=1) if mistake == "grouped by prediction" else cal_labels
        out = []
        for c in range(n_classes):
            s = scores if mistake == "one threshold" else scores[groups == c]
            n = len(s)
            if mistake == "interpolated":
                out.append(torch.quantile(s, 1 - alpha).item())
                continue
            level = alpha if mistake == "alpha as level" else 1 - alpha
            k = math.ceil(n * level) if mistake == "no +1" else math.ceil((n + 1) * level)
            ordered = s.sort().values
            if k > n:
                out.append(ordered[-1].item() if mistake == "clamped" else math.inf)
            else:
                out.append(ordered[k - 1].item())
        return torch.tensor(out, dtype=torch.float64)

    return class_thresholds


def sets_variant(mistake: str = ""):
    """A learner's class_conditional_sets with one typical mistake switched on."""

    def class_conditional_sets(probs, thresholds):
        scores = probs if mistake == "probability" else 1 - probs
        t = thresholds[probs.argmax(dim=1)][:, None] if mistake == "threshold of the prediction" else thresholds
        sets = scores < t if mistake == "strict" else scores <= t
        if mistake == "forced top":
            sets[torch.arange(len(probs)), probs.argmax(dim=1)] = True
        if mistake == "float mask":
            return sets.float()
        if mistake == "in place":
            probs.mul_(1.0 + 1e-3)
        return sets

    return class_conditional_sets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit14.class_conditional_conformal(
        *solution(14, "ex04-class-conditional-conformal", "class_thresholds", "class_conditional_sets"), seed=seed
    )
    assert capsys.readouterr().out.startswith("✓ class-conditional conformal")


def test_accepts_a_threshold_of_one_for_a_class_too_small_for_a_finite_one():
    """Scores are at most 1: a threshold of 1 keeps every label, as +inf does."""

    def ones_for_inf(p, y, a):
        t = thresholds_variant()(p, y, a)
        return torch.where(torch.isinf(t), torch.ones_like(t), t)

    unit14.class_conditional_conformal(ones_for_inf, sets_variant(), seed=3)


def test_rejects_stubs():
    rejects(
        unit14.class_conditional_conformal, stub, sets_variant(), match=r"class_thresholds.* is not implemented yet"
    )
    rejects(
        unit14.class_conditional_conformal,
        thresholds_variant(),
        stub,
        match=r"class_conditional_sets.* is not implemented yet",
    )


MISTAKES = [
    (("one threshold", ""), r"one threshold for all classes"),
    (("grouped by prediction", ""), r"grouped by the PREDICTED class"),
    (("no +1", ""), r"ceil\(n\(1 - alpha\)\)-th smallest score: the finite-sample correction"),
    (("alpha as level", ""), r"quantile at alpha, not at 1 - alpha"),
    (("interpolated", ""), r"torch.quantile interpolates"),
    (("probability score", ""), r"the score is 1 - p\(true class\)"),
    (("clamped", ""), r"threshold is \+inf \(every label is kept\), not its largest score"),
    (("", "strict"), r"equals its class's threshold was left out.*<=, not <"),
    (("", "threshold of the prediction"), r"threshold of the PREDICTED class"),
    (("", "forced top"), r"top class was added to every set"),
    (("", "probability"), r"kept when p\(c\) <= threshold\[c\]"),
    (("", "float mask"), r"should return a boolean mask"),
    (("", "in place"), r"changed its input in place"),
]


@pytest.mark.parametrize(("mistakes", "match"), MISTAKES, ids=[m[0][0] or m[0][1] for m in MISTAKES])
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistakes, match, seed):
    threshold_mistake, set_mistake = mistakes
    rejects(
        unit14.class_conditional_conformal,
        thresholds_variant(threshold_mistake),
        sets_variant(set_mistake),
        match=match,
        seed=seed,
    )


@pytest.mark.seeds
@pytest.mark.parametrize(("mistakes", "match"), MISTAKES, ids=[m[0][0] or m[0][1] for m in MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistakes, match):
    threshold_mistake, set_mistake = mistakes
    for seed in range(50):
        rejects(
            unit14.class_conditional_conformal,
            thresholds_variant(threshold_mistake),
            sets_variant(set_mistake),
            match=match,
            seed=seed,
        )


def test_rejects_wrong_shapes_and_types_without_crashing():
    rejects(unit14.class_conditional_conformal, lambda p, y, a: 0.5, sets_variant(), match=r"one threshold per class")
    rejects(unit14.class_conditional_conformal, lambda p, y, a: "x", sets_variant(), match=r"should return a tensor")
    rejects(
        unit14.class_conditional_conformal,
        thresholds_variant(),
        lambda p, t: torch.nonzero((1 - p) <= t),
        match=r"one row per prediction and one column per class",
    )


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fns = solution(14, "ex04-class-conditional-conformal", "class_thresholds", "class_conditional_sets")
    for seed in range(200):
        unit14.class_conditional_conformal(*fns, seed=seed)
