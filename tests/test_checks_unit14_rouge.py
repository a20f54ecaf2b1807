"""The unit-14 ROUGE-L check accepts right answers and names every usual mistake."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from check_helpers import rejects, solution, stub
from torchmetrics.functional.text import rouge_score
from torchmetrics.functional.text.rouge import _lcs

from dlfund.checks import _unit14_rouge, unit14
from dlfund.text.metrics import words


def lcs_variant(mistake: str = ""):
    """A learner's lcs_length with one typical mistake switched on."""

    def lcs_length(a, b):
        if mistake == "set":
            return len(set(a) & set(b))
        if mistake == "counts":
            return sum((Counter(a) & Counter(b)).values())
        if mistake == "in place":
            a.sort()
        m, n = len(a), len(b)
        if mistake == "no empty guard":
            _ = a[0], b[0]  # crashes on an empty list
        table = [[0] * (n + 1) for _ in range(m + 1)]
        best = 0
        for i in range(1, m + 1):
            for j in range(1, n + 1):
                if a[i - 1] == b[j - 1]:
                    table[i][j] = table[i - 1][j - 1] + 1
                elif mistake != "substring":
                    table[i][j] = max(table[i - 1][j], table[i][j - 1])
                best = max(best, table[i][j])
        if mistake == "substring":
            return best
        if mistake == "last ignored":
            return table[m - 1][n - 1] if m and n else 0
        return table[m][n]

    return lcs_length


def rouge_variant(mistake: str = "", lcs=None):
    """A learner's rouge_l with one typical mistake switched on."""
    lcs = lcs or lcs_variant()

    def rouge_l(prediction, reference, beta=1.0):
        if mistake == "split":
            pred, ref = prediction.split(), reference.split()
        elif mistake == "lower split":
            pred, ref = prediction.lower().split(), reference.lower().split()
        else:
            pred, ref = words(prediction), words(reference)
        common = lcs(pred, ref)
        if mistake == "zero division":
            p, r = common / len(pred), common / len(ref)
        elif mistake == "nan":
            p = common / len(pred) if pred else float("nan")
            r = common / len(ref) if ref else float("nan")
            if common == 0:
                return p, r, float("nan")
        else:
            if not pred or not ref or common == 0:
                return 0.0, 0.0, 0.0
            p, r = common / len(pred), common / len(ref)
        if mistake == "swapped":
            p, r = r, p
        b2 = {"beta not squared": beta, "beta ignored": 1.0}.get(mistake, beta**2)
        if mistake == "beta on recall":
            return p, r, (1 + b2) * p * r / (p + b2 * r)
        if mistake == "arithmetic mean":
            return p, r, (p + r) / 2
        if mistake == "f only":
            return (1 + b2) * p * r / (b2 * p + r)
        return p, r, (1 + b2) * p * r / (b2 * p + r)

    return rouge_l


def torchmetrics_lcs(a, b):
    """The library's LCS passed in place of the learner's."""
    return _lcs(a, b)


def torchmetrics_rouge(prediction, reference, beta=1.0):
    scores = rouge_score(prediction, reference, rouge_keys="rougeL")
    return tuple(float(scores[f"rougeL_{k}"]) for k in ("precision", "recall", "fmeasure"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit14.rouge_l(*solution(14, "ex05-rouge-l", "lcs_length", "rouge_l"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ ROUGE-L")


def test_accepts_the_variants_without_mistakes(capsys):
    unit14.rouge_l(lcs_variant(), rouge_variant(), seed=5)
    assert capsys.readouterr().out.startswith("✓ ROUGE-L")


def test_rejects_stubs():
    rejects(unit14.rouge_l, stub, rouge_variant(), match=r"lcs_length.* is not implemented yet")
    rejects(unit14.rouge_l, lcs_variant(), stub, match=r"rouge_l.* is not implemented yet")


def test_rejects_the_library():
    rejects(unit14.rouge_l, torchmetrics_lcs, rouge_variant(), match=r"library's own torchmetrics' _lcs")
    rejects(unit14.rouge_l, lcs_variant(), torchmetrics_rouge, match=r"library's own torchmetrics")


MISTAKES = [
    (("substring", ""), r"longest common SUBSTRING"),
    (("set", ""), r"distinct words the two lists share \(a set intersection\)"),
    (("counts", ""), r"ignores their order"),
    (("last ignored", ""), r"last word of the lists is never compared"),
    (("no empty guard", ""), r"IndexError.*An empty list shares no word"),
    (("in place", ""), r"changed its input lists"),
    (("", "swapped"), r"precision and recall are swapped"),
    (("", "beta not squared"), r"uses beta where it needs beta squared"),
    (("", "beta on recall"), r"beta squared weights the wrong side"),
    (("", "beta ignored"), r"F1 score whatever beta is"),
    (("", "arithmetic mean"), r"weighted HARMONIC mean"),
    (("", "split"), r"split on spaces as written"),
    (("", "lower split"), r"lowercased but split on spaces"),
    (("", "zero division"), r"divided by zero"),
    (("", "nan"), r"returned NaN"),
    (("", "f only"), r"should return three numbers \(precision, recall, F\)"),
]
IDS = [m[0][0] or m[0][1] for m in MISTAKES]


def _variants(mistakes):
    lcs_mistake, rouge_mistake = mistakes
    return lcs_variant(lcs_mistake), rouge_variant(rouge_mistake)


@pytest.mark.parametrize(("mistakes", "match"), MISTAKES, ids=IDS)
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistakes, match, seed):
    rejects(unit14.rouge_l, *_variants(mistakes), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistakes", "match"), MISTAKES, ids=IDS)
def test_rejects_typical_mistakes_on_every_seed(mistakes, match):
    for seed in range(50):
        rejects(unit14.rouge_l, *_variants(mistakes), match=match, seed=seed)


def test_rejects_wrong_types_without_crashing():
    rejects(unit14.rouge_l, lambda a, b: "3", rouge_variant(), match=r"should return a whole number")
    rejects(unit14.rouge_l, lambda a, b: 2.5, rouge_variant(), match=r"whole number of words")
    rejects(unit14.rouge_l, lcs_variant(), lambda p, r, beta=1.0: None, match=r"three numbers")
    rejects(unit14.rouge_l, lcs_variant(), lambda p, r, beta=1.0: ("a", "b", "c"), match=r"three numbers")


def test_the_reference_equals_torchmetrics_rouge_l_for_beta_one():
    rng = random.Random(0)
    vocab = ["The", "king,", "is", "dead.", "Long", "live", "the", "KING!"]
    for _ in range(50):
        p = " ".join(rng.choice(vocab) for _ in range(rng.randint(0, 9)))
        r = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 9)))
        ours = _unit14_rouge.reference_rouge_l(p, r, 1.0)
        assert ours == pytest.approx(torchmetrics_rouge(p, r), abs=1e-6)


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fns = solution(14, "ex05-rouge-l", "lcs_length", "rouge_l")
    for seed in range(200):
        unit14.rouge_l(*fns, seed=seed)
