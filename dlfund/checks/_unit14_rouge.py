"""The check of unit 14's ROUGE-L exercise (re-exported by :mod:`dlfund.checks.unit14`).

Notebook 05 scores generated text with ROUGE-N, built from n-gram counts, and takes ROUGE-L from
``torchmetrics``. The exercise asks for ROUGE-L itself: the length of the longest common subsequence (LCS)
of two word lists, and from it a precision, a recall and an F-score weighted by ``beta``. The check draws
fresh word lists and sentences (repeated words, reordered and dropped words, capitals and punctuation, a
prediction never as long as its reference, ``beta`` never 1), compares the learner's numbers with an
independent computation, and names the usual mistakes by recomputing each of them.
"""

from __future__ import annotations

import math
import numbers
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from torchmetrics.functional.text import rouge as _tm_rouge

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing
from dlfund.text.metrics import words

__all__ = ["reference_lcs", "reference_rouge_l", "rouge_l"]

TOL = 1e-9
_LIBRARY = {"torchmetrics' ROUGE-L (_rouge_l_score)": _tm_rouge._rouge_l_score, "torchmetrics' _lcs": _tm_rouge._lcs}
_VOCAB = ("the", "king", "is", "dead", "long", "live", "queen", "my", "lord", "good", "night", "sweet", "prince")


def reference_lcs(a: Sequence[str], b: Sequence[str], *, variant: str = "") -> int:
    """The length of the longest common subsequence of ``a`` and ``b``; ``variant`` recomputes a usual mistake."""
    if variant == "set":
        return len(set(a) & set(b))
    if variant == "counts":
        return sum((Counter(a) & Counter(b)).values())
    if variant == "last ignored":
        a, b = a[:-1], b[:-1]
    best = 0
    row = [0] * (len(b) + 1)  # row[j]: the answer for a[:i] and b[:j] (LCS), or for runs ending there (substring)
    for i in range(1, len(a) + 1):
        previous, row = row, [0] * (len(b) + 1)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                row[j] = previous[j - 1] + 1
            elif variant != "substring":
                row[j] = max(previous[j], row[j - 1])
            best = max(best, row[j])
    return best


def _tokens(text: str, variant: str) -> list[str]:
    if variant == "split":
        return text.split()
    if variant == "lower split":
        return text.lower().split()
    return words(text)


def reference_rouge_l(prediction: str, reference: str, beta: float, *, variant: str = "") -> tuple[float, float, float]:
    """``(precision, recall, F_beta)`` of ROUGE-L on :func:`dlfund.text.metrics.words`; ``variant`` recomputes a
    usual mistake."""
    pred, ref = _tokens(prediction, variant), _tokens(reference, variant)
    lcs = reference_lcs(pred, ref)
    if not pred or not ref or lcs == 0:
        return 0.0, 0.0, 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    if variant == "swapped":
        p, r = r, p
    b2 = {"beta not squared": beta, "beta ignored": 1.0}.get(variant, beta * beta)
    if variant == "beta on recall":
        return p, r, (1 + b2) * p * r / (p + b2 * r)
    if variant == "arithmetic mean":
        return p, r, (p + r) / 2
    return p, r, (1 + b2) * p * r / (b2 * p + r)


LCS_MISTAKES = {
    "substring": "this is the longest common SUBSTRING (a run of consecutive words); a subsequence keeps the order "
    "but may skip words in between: when the words differ, carry over the better of the two neighbours",
    "set": "this counts the distinct words the two lists share (a set intersection): the subsequence keeps every "
    "repeat and the order of the words",
    "counts": "this counts the shared words with their repeats but ignores their order (ROUGE-1's overlap): a "
    "subsequence must appear in the same order in both lists",
    "last ignored": "the last word of the lists is never compared: the table has one row and one column more than "
    "the lists have words, and the answer is its last cell",
}

ROUGE_MISTAKES = {
    "swapped": "precision and recall are swapped: precision divides the LCS by the PREDICTION's words, recall by the "
    "REFERENCE's",
    "beta not squared": "the F-score uses beta where it needs beta squared",
    "beta on recall": "beta squared weights the wrong side: a beta above 1 must favour recall, so beta squared "
    "multiplies the precision in the denominator",
    "beta ignored": "this is the F1 score whatever beta is: weight the harmonic mean with beta squared",
    "arithmetic mean": "the F-score is the arithmetic mean of precision and recall; it is a weighted HARMONIC mean",
    "split": "the words were split on spaces as written, so 'Lord,' and 'lord' differ: tokenise with "
    "dlfund.text.metrics.words (lowercase letters and digits only)",
    "lower split": "the words were lowercased but split on spaces, so punctuation stays attached ('lord,' is not "
    "'lord'): tokenise with dlfund.text.metrics.words",
}


def _render(tokens: Sequence[str], rng: random.Random) -> str:
    """A sentence of ``tokens`` with a capital, attached punctuation and a stray symbol, as a model writes."""
    out = list(tokens)
    if not out:
        return "?!"
    out[0] = out[0].capitalize()
    k = rng.randrange(len(out))
    out[k] = out[k].upper() if rng.random() < 0.5 else out[k] + ","
    out[-1] += rng.choice([".", "!", "?"])
    return " ".join(out)


def _edit(tokens: list[str], rng: random.Random) -> list[str]:
    """A prediction made from a reference: words dropped, swapped, replaced and added, never the same length."""
    out = list(tokens)
    for _ in range(rng.randint(2, 4)):
        action = rng.choice(("drop", "swap", "replace", "insert"))
        i = rng.randrange(len(out))
        if action == "drop" and len(out) > 3:
            del out[i]
        elif action == "swap":
            j = rng.randrange(len(out))
            out[i], out[j] = out[j], out[i]
        elif action == "replace":
            out[i] = rng.choice(_VOCAB)
        else:
            out.insert(i, rng.choice(_VOCAB))
    if len(out) == len(tokens):
        out.append(rng.choice(_VOCAB))
    return out


def _lcs_pairs(rng: random.Random) -> list[tuple[list[str], list[str]]]:
    """Word-list pairs on which every LCS mistake gives another answer than the LCS, plus empty lists."""
    while True:
        pairs = []
        for _ in range(5):
            a = [rng.choice(_VOCAB[:7]) for _ in range(rng.randint(6, 11))]
            pairs.append((a, _edit(a, rng)))
        results = [[reference_lcs(a, b, variant=v) for a, b in pairs] for v in ("", *LCS_MISTAKES)]
        if all(results[i] != results[j] for i in range(len(results)) for j in range(i)):
            return [*pairs, ([], pairs[0][0]), (pairs[1][0], [])]


def _rouge_cases(rng: random.Random, beta: float) -> list[tuple[str, str]]:
    """Sentence pairs on which every ROUGE-L mistake gives other numbers."""
    while True:
        cases = []
        for _ in range(4):
            ref = [rng.choice(_VOCAB) for _ in range(rng.randint(6, 10))]
            cases.append((_render(_edit(ref, rng), rng), _render(ref, rng)))
        # the right numbers and each mistake's, all told apart by at least one pair
        results = [[reference_rouge_l(p, r, beta, variant=v) for p, r in cases] for v in ("", *ROUGE_MISTAKES)]
        if all(w[2] > 0 for w in results[0]) and all(
            any(_differs(x, y) for x, y in zip(results[i], results[j])) for i in range(len(results)) for j in range(i)
        ):
            return cases


def _differs(a: Sequence[float], b: Sequence[float]) -> bool:
    return any(abs(x - y) > 1e-6 for x, y in zip(a, b))


def _number(value: Any) -> float | None:
    if hasattr(value, "numel") and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _as_int(found: Any, call: str) -> int:
    value = _number(found)
    expect(value is not None, f"{call} should return a whole number (the LCS length), found {type(found).__name__}")
    expect(float(value).is_integer(), f"{call} should return a whole number of words, found {value}")  # type: ignore[union-attr]
    return int(value)  # type: ignore[arg-type]


def _as_triple(found: Any, call: str) -> tuple[float, float, float]:
    expect(
        isinstance(found, (tuple, list)) and len(found) == 3,
        f"{call} should return three numbers (precision, recall, F), found "
        f"{type(found).__name__}{' of length ' + str(len(found)) if isinstance(found, (tuple, list)) else ''}",
    )
    values = [_number(v) for v in found]
    expect(all(v is not None for v in values), f"{call} should return three numbers, found {found!r}")
    expect(
        all(not math.isnan(v) for v in values),  # type: ignore[arg-type]
        f"{call} returned NaN ({found!r}): with no common word (or no word at all) precision, recall and F are 0; "
        "guard the division by zero",
    )
    return values[0], values[1], values[2]  # type: ignore[return-value]


def _check_lcs(fn: Callable[..., Any], rng: random.Random, seed: int) -> None:
    pairs = _lcs_pairs(rng)
    found = []
    for a, b in pairs:
        call = f"lcs_length({a}, {b}) (seed={seed})"
        given = list(a), list(b)
        if not a or not b:
            try:
                with refusing(_LIBRARY, "the longest common subsequence"):
                    result = fn(*given)
            except CheckFailed:
                raise
            except NotImplementedError:
                result = call_learner(fn, *given, what=call)
            except Exception as err:
                raise CheckFailed(
                    f"{call} raised {type(err).__name__}: {err}. An empty list shares no word with anything: "
                    "its LCS length is 0"
                ) from err
        else:
            with refusing(_LIBRARY, "the longest common subsequence"):
                result = call_learner(fn, *given, what=call)
        expect(given == (a, b), f"{call} changed its input lists")
        value = _as_int(result, call)
        if not a or not b:
            expect(
                value == 0, f"{call}: an empty list has no common subsequence with anything, expected 0, found {value}"
            )
        found.append(value)
    filled = pairs[:-2]
    want = [reference_lcs(a, b) for a, b in filled]
    if found[:-2] == want:
        return
    for variant, why in LCS_MISTAKES.items():
        if found[:-2] == [reference_lcs(a, b, variant=variant) for a, b in filled]:
            raise CheckFailed(f"lcs_length on {len(filled)} pairs of word lists (seed={seed}): {why}")
    i = next(k for k, (f, w) in enumerate(zip(found, want)) if f != w)
    a, b = filled[i]
    raise CheckFailed(
        f"lcs_length({a}, {b}) (seed={seed}): expected {want[i]}, the length of the longest list of words that "
        f"appears in both in the same order (not necessarily side by side), found {found[i]}"
    )


def _call_rouge(fn: Callable[..., Any], prediction: str, reference: str, beta: float, call: str) -> Any:
    try:
        with refusing(_LIBRARY, "ROUGE-L"):
            return fn(prediction, reference, beta=beta)
    except CheckFailed:
        raise
    except NotImplementedError:
        return call_learner(fn, prediction, reference, beta=beta, what=call)
    except ZeroDivisionError as err:
        raise CheckFailed(
            f"{call} divided by zero ({err}): when one text has no word, or the two share none, precision, recall "
            "and F are all 0"
        ) from err
    except Exception as err:
        raise CheckFailed(f"{call} raised {type(err).__name__}: {err}") from err


def _check_rouge(fn: Callable[..., Any], rng: random.Random, seed: int) -> float:
    beta = rng.choice((0.5, 2.0, 3.0))
    cases = _rouge_cases(rng, beta)
    # texts with no word at all, or no word in common: every number is 0
    disjoint = (_render(["to", "be", "or", "not"], rng), _render(["my", "lord"], rng))
    for prediction, reference in (("", cases[0][1]), (cases[1][0], " . "), disjoint):
        call = f"rouge_l({prediction!r}, {reference!r}, beta={beta}) (seed={seed})"
        got = _as_triple(_call_rouge(fn, prediction, reference, beta, call), call)
        expect(
            not _differs(got, (0.0, 0.0, 0.0)),
            f"{call}: the two texts share no word, so precision, recall and F are all 0; found {got}",
        )
    found = []
    for prediction, reference in cases:
        call = f"rouge_l({prediction!r}, {reference!r}, beta={beta}) (seed={seed})"
        found.append(_as_triple(_call_rouge(fn, prediction, reference, beta, call), call))
    want = [reference_rouge_l(p, r, beta) for p, r in cases]
    if not any(_differs(f, w) for f, w in zip(found, want)):
        return sum(w[2] for w in want) / len(want)
    for variant, why in ROUGE_MISTAKES.items():
        if not any(_differs(f, reference_rouge_l(p, r, beta, variant=variant)) for f, (p, r) in zip(found, cases)):
            raise CheckFailed(f"rouge_l on {len(cases)} sentence pairs with beta={beta} (seed={seed}): {why}")
    i = next(k for k, (f, w) in enumerate(zip(found, want)) if _differs(f, w))
    p, r = cases[i]
    raise CheckFailed(
        f"rouge_l({p!r}, {r!r}, beta={beta}) (seed={seed}): expected (precision, recall, F) = "
        f"({want[i][0]:.6f}, {want[i][1]:.6f}, {want[i][2]:.6f}) from the LCS of their words, found "
        f"({found[i][0]:.6f}, {found[i][1]:.6f}, {found[i][2]:.6f})"
    )


def rouge_l(lcs_length: Callable[..., Any], rouge_l: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check the learner's ``lcs_length(a: list[str], b: list[str]) -> int`` and
    ``rouge_l(prediction: str, reference: str, beta: float) -> (precision, recall, F_beta)``."""
    seed = fresh_seed(seed)
    rng = random.Random(seed)
    _check_lcs(lcs_length, rng, seed)
    mean_f = _check_rouge(rouge_l, rng, seed)
    passed(
        f"ROUGE-L: the LCS lengths and (precision, recall, F_beta) are right, empty texts give 0 (seed={seed}); "
        f"mean F on the check's sentences {mean_f:.3f}"
    )
