"""Checks for unit 14 (evaluation): a percentile bootstrap interval, a paired comparison of two models, and a
paired permutation (sign-flip) test.

The two bootstrap exercises follow the random-number convention of :mod:`dlfund.evaluation`, so the
learner's numbers can be compared with the reference exactly (up to float rounding):

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, N, (n_boot, N), generator=g)     # row r: the test examples of resample r

and the interval is ``torch.quantile`` of the resampled statistics at ``(1 - level) / 2`` and
``(1 + level) / 2``. The permutation test's p-values are compared with exact ones, within the error of
its random sign flips. Each check draws fresh test outcomes (a new seed on every call, printed in
failure messages so a failure can be replayed with ``seed=...``) and names the mistake it sees.
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from dlfund import evaluation as ev
from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing

__all__ = [
    "bootstrap_ci",
    "paired_comparison",
    "permutation_test",
    "class_conditional_conformal",
    "rouge_l",
    "PAIRED_KEYS",
    "CONVENTION",
    "ALTERNATIVES",
]

Tensor = torch.Tensor

CONVENTION = (
    "g = torch.Generator().manual_seed(seed); idx = torch.randint(0, N, (n_boot, N), generator=g); "
    "then torch.quantile of the n_boot resampled values at (1 - level) / 2 and (1 + level) / 2"
)
TOL = 1e-6


def _number(value: Any) -> float | None:
    """``value`` as a float if it is a real number or a one-element tensor, else ``None``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        return float(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= TOL


def _outcomes(gen: torch.Generator, n: int, counts: tuple[int, int, int]) -> tuple[Tensor, Tensor]:
    """Paired 0/1 outcomes of two models on ``n`` examples: ``counts = (both right, only A, only B)``."""
    both, only_a, only_b = counts
    neither = n - both - only_a - only_b
    a = torch.tensor([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    b = torch.tensor([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    order = torch.randperm(n, generator=gen)
    return a[order], b[order]


def _quantiles(values: Tensor, lo: float, hi: float) -> tuple[float, float]:
    q = torch.tensor([lo, hi], dtype=torch.float64)
    low, high = torch.quantile(values.double(), q).tolist()
    return low, high


# ---------------------------------------------------------------------------------------------
# ex01: the percentile bootstrap interval of an accuracy


def _as_interval(result: Any, call: str) -> tuple[float, float]:
    if _number(result) is not None:
        raise CheckFailed(
            f"{call} returned one number ({_number(result):.4g}); expected the interval's two ends "
            "(lower, upper). A single number such as the standard deviation of the bootstrap "
            "accuracies is not an interval: take two quantiles of them"
        )
    if isinstance(result, torch.Tensor):
        result = result.flatten().tolist() if result.numel() == 2 else result
    expect(
        isinstance(result, (Sequence, torch.Tensor)) and not isinstance(result, (str, bytes)),
        f"{call}: expected a pair (lower, upper), found {type(result).__name__}",
    )
    expect(len(result) == 2, f"{call}: expected a pair (lower, upper), found {len(result)} values")
    values = [_number(v) for v in result]
    expect(
        all(v is not None for v in values),
        f"{call}: expected two numbers (lower, upper), found {[type(v).__name__ for v in result]}",
    )
    lower, upper = float(values[0]), float(values[1])  # type: ignore[arg-type]
    expect(
        not (1 < max(lower, upper) <= 100),
        f"{call}: found ({lower:.4g}, {upper:.4g}), which looks like percentages; return fractions in [0, 1]",
    )
    return lower, upper


def _diagnose_bootstrap(correct: Tensor, n_boot: int, level: float, seed: int, found: tuple[float, float]) -> str:
    """Name the mistake that produces ``found``, if it is one of the usual ones."""
    n = len(correct)
    c = correct.double()
    accuracy = c.mean().item()
    alpha = 1 - level
    accs = ev.bootstrap_accuracies(c, n_boot, seed)
    lower, upper = found
    if _close(lower, upper) and _close(lower, accuracy):
        return (
            ": every resample has the test accuracy itself, so the resamples are the test set reshuffled. "
            "Sample *with* replacement (torch.randint), not a permutation (torch.randperm)"
        )
    if _close(lower, upper):
        return ": the interval has zero width; its two ends should be two different quantiles"
    candidates = {
        "(1 - level, level)": _quantiles(accs, alpha, 1 - alpha),
        "(level, 1 - level)": _quantiles(accs, 1 - alpha, alpha),
        "(2.5%, 97.5%) whatever the level": _quantiles(accs, 0.025, 0.975),
    }
    for name, (lo, hi) in candidates.items():
        if _close(lower, lo) and _close(upper, hi) and not _close(lo, hi):
            if name.startswith("(1 - level"):
                return (
                    f": these are the {alpha:.0%} and {1 - alpha:.0%} quantiles; a {level:.0%} interval leaves "
                    f"{alpha / 2:.1%} out on *each* side: use (1 - level) / 2 and (1 + level) / 2"
                )
            if name.startswith("(level"):
                return ": these are the quantiles at level and 1 - level; use (1 - level) / 2 and (1 + level) / 2"
            return (
                f": these are the 2.5% and 97.5% quantiles, right only for level = 0.95; this call has level = "
                f"{level}: use (1 - level) / 2 and (1 + level) / 2"
            )
    if _close(upper, accs.max().item()) and _close(lower, accs.min().item()):
        return ": that is the smallest and largest bootstrap accuracy, not the quantiles"
    z = ev.z_value(level)
    std = accs.std().item()
    if _close(lower, accuracy - z * std) and _close(upper, accuracy + z * std):
        return (
            ": that is accuracy ± z·std of the bootstrap accuracies (a normal approximation); the exercise "
            "asks for the percentile interval: the quantiles of the bootstrap accuracies themselves"
        )
    g = torch.Generator().manual_seed(seed)
    transposed = c[torch.randint(0, n, (n, n_boot), generator=g)].mean(dim=0)
    if all(map(_close, found, _quantiles(transposed, alpha / 2, 1 - alpha / 2))):
        return (
            ": the index tensor has shape (N, n_boot); the convention is (n_boot, N), one row per resample, "
            "and the mean over dim=1"
        )
    return ""


_BOOTSTRAP_HELPERS = {
    "dlfund.evaluation.bootstrap_ci": ev.bootstrap_ci,
    "dlfund.evaluation.bootstrap_accuracies": ev.bootstrap_accuracies,
    "dlfund.evaluation percentile interval": ev._percentile_interval,
    "dlfund.evaluation resampling": ev._resample_means,
}
_PAIRED_HELPERS = {
    **_BOOTSTRAP_HELPERS,
    "dlfund.evaluation.paired_bootstrap": ev.paired_bootstrap,
    "dlfund.evaluation.unpaired_bootstrap": ev.unpaired_bootstrap,
    "dlfund.evaluation.mcnemar": ev.mcnemar,
}


def bootstrap_ci(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``bootstrap_ci(correct, n_boot, level, seed) -> (lower, upper)``.

    Expected: the percentile bootstrap interval of the accuracy ``correct.float().mean()``, where
    ``correct`` is a bool tensor ``(N,)``, following the convention in this module's docstring.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    other_level = (0.8, 0.9, 0.99)[int(torch.randint(0, 3, (), generator=gen))]
    # Accuracies are multiples of 1/N, so two different random streams can give the same quantiles
    # by chance on a small test set; several test sets of a few hundred to a few thousand examples
    # make that chance negligible.
    for level in (0.95, other_level, 0.95, other_level):
        n = int(torch.randint(400, 2000, (), generator=gen))
        p = 0.6 + 0.35 * torch.rand((), generator=gen).item()
        correct = torch.rand(n, generator=gen) < p
        n_boot = int(torch.randint(300, 1500, (), generator=gen))
        boot_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
        call = f"bootstrap_ci(correct (N={n}), n_boot={n_boot}, level={level}, seed={boot_seed}) {where}"
        given = correct.clone()
        with refusing(_BOOTSTRAP_HELPERS, "the percentile bootstrap"):
            result = call_learner(fn, correct, n_boot, level, boot_seed, what=call)
        expect(torch.equal(correct, given), f"{call} changed `correct` in place; leave the input as it is")
        lower, upper = _as_interval(result, call)
        expect(
            lower <= upper, f"{call}: found lower {lower:.6g} > upper {upper:.6g}; return (lower, upper) in that order"
        )
        reference = ev.bootstrap_ci(correct, n_boot=n_boot, level=level, seed=boot_seed)
        if not (_close(lower, reference.lower) and _close(upper, reference.upper)):
            # Two random streams often give the same quantiles here (accuracies are multiples of 1/N, and
            # many resamples tie at the quantile), so probe with two resamples of a large test set at
            # level 0.5, whose interval interpolates between them: equal only with the same indices.
            probe = torch.arange(5000) % 2 == 0
            probe_call = f"bootstrap_ci(correct (N=5000), n_boot=2, level=0.5, seed={boot_seed}) {where}"
            probes = {
                _as_interval(call_learner(fn, probe, 2, 0.5, boot_seed, what=probe_call), probe_call) for _ in "wxyz"
            }
            expect(
                len(probes) == 1,
                f"{call}: calls with the same seed gave different intervals ({sorted(probes)[:2]} for a probe "
                "with n_boot=2): "
                "draw the indices from a generator seeded with `seed` "
                "(g = torch.Generator().manual_seed(seed)), not from the global random state",
            )
            raise CheckFailed(
                f"{call}: expected (lower, upper) = ({reference.lower:.6f}, {reference.upper:.6f}), found "
                f"({lower:.6f}, {upper:.6f})"
                + (
                    _diagnose_bootstrap(correct, n_boot, level, boot_seed, (lower, upper))
                    or f". Follow the convention: {CONVENTION}"
                )
            )
    passed(
        f"bootstrap CI: the percentile interval matches the reference on four test sets, levels 0.95 and {other_level}"
    )


# ---------------------------------------------------------------------------------------------
# ex02: a paired comparison of two models


PAIRED_KEYS = ("difference", "lower", "upper", "p_value", "better")
DECISIONS = ("A", "B", "neither")


def _diagnose_p_value(a: Tensor, b: Tensor, found: float) -> str:
    from scipy import stats

    n = len(a)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    right_a, right_b = int(a.sum()), int(b.sum())
    variants = {
        "totals": stats.binomtest(right_a, right_a + right_b, 0.5).pvalue,
        "all examples": stats.binomtest(only_a, n, 0.5).pvalue,
        "chi-square": ev.mcnemar(a, b, exact=False).p_value,
        "chi-square without correction": math.erfc(math.sqrt((only_a - only_b) ** 2 / max(only_a + only_b, 1) / 2)),
        "one-sided": stats.binomtest(min(only_a, only_b), only_a + only_b, 0.5, alternative="less").pvalue,
        "strict tail": min(1.0, 2 * stats.binom.cdf(min(only_a, only_b) - 1, only_a + only_b, 0.5)),
        "larger tail": min(1.0, 2 * stats.binom.cdf(max(only_a, only_b), only_a + only_b, 0.5)),
    }
    messages = {
        "totals": (
            "that compares the two totals of correct answers, as if they came from different test sets; "
            "McNemar uses only the discordant pairs: b (A right, B wrong) and c (A wrong, B right)"
        ),
        "all examples": (
            "that counts b out of all N examples; the examples both models get right (or both wrong) "
            "say nothing about which is better: test b out of b + c"
        ),
        "chi-square": "that is the chi-square approximation; the exercise asks for the exact binomial test",
        "chi-square without correction": "that is the chi-square approximation without continuity correction; "
        "the exercise asks for the exact binomial test",
        "one-sided": "that is a one-sided p-value; the question 'do they differ?' is two-sided",
        "strict tail": (
            "the tail leaves out the split that was observed: 'at least as lopsided' includes the observed split itself"
        ),
        "larger tail": (
            "that sums the probabilities up to the larger of b and c, which holds nearly the whole distribution; "
            "a lopsided split is one as far from the middle as the one observed, on either side"
        ),
    }
    for name, value in variants.items():
        if math.isclose(found, value, rel_tol=1e-6, abs_tol=1e-12):
            return f": {messages[name]}"
    return ""


def _disagreeing_case(gen: torch.Generator, n: int) -> tuple[str, Tensor, Tensor, int, int]:
    """Two models and a bootstrap seed for which the paired interval and McNemar's p-value (at 5%) lead to
    different decisions, so that a decision taken from the p-value shows. Near the edge of significance
    the exact test is a little more cautious than the interval, so such cases exist; search them."""
    case = None
    for _ in range(400):
        c = int(torch.randint(10, 25, (), generator=gen))
        b_count = c + int(round(2.0 * math.sqrt(2 * c))) + int(torch.randint(-2, 3, (), generator=gen))
        both = int(n * 0.7)
        a, b = _outcomes(gen, n, (both, b_count, c))
        if torch.rand((), generator=gen) < 0.5:  # B the better one
            a, b = b, a
        n_boot = int(torch.randint(500, 1200, (), generator=gen))
        boot_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
        ref = ev.paired_bootstrap(a, b, n_boot=n_boot, level=0.95, seed=boot_seed)
        by_interval = "A" if ref.lower > 0 else "B" if ref.upper < 0 else "neither"
        p = ev.mcnemar(a, b).p_value
        by_p = ("A" if ref.estimate > 0 else "B") if p < 0.05 else "neither"
        case = (by_interval, a, b, n_boot, boot_seed)
        clear = min(abs(ref.lower), abs(ref.upper)) > 0.5 / n  # no bound at 0, where rounding could decide
        if by_interval != by_p and clear:
            return case
    assert case is not None
    return case


def paired_comparison(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``paired_comparison(correct_a, correct_b, n_boot, level, seed) -> dict``.

    Expected keys: ``difference`` (accuracy of A minus accuracy of B), ``lower`` and ``upper`` (the
    paired percentile bootstrap interval of that difference: one index tensor, by the convention,
    scores both models on the same resampled examples), ``p_value`` (McNemar's exact test: two-sided
    binomial test of b successes out of b + c discordant pairs, probability 1/2; 1.0 when b + c = 0),
    and ``better``: ``"A"`` if ``lower > 0``, ``"B"`` if ``upper < 0``, else ``"neither"``.
    """
    from scipy.stats import binomtest

    refused = {**_PAIRED_HELPERS, "scipy.stats.binomtest": binomtest}  # the exact test is the exercise
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    n = int(torch.randint(400, 700, (), generator=gen))
    cases = []
    for truth in ("A", "neither", "B"):
        both = int(n * (0.7 + 0.1 * torch.rand((), generator=gen).item()))
        big, small = int(torch.randint(45, 60, (), generator=gen)), int(torch.randint(8, 14, (), generator=gen))
        even = int(torch.randint(18, 26, (), generator=gen))
        counts = {"A": (both, big, small), "B": (both, small, big), "neither": (both, even, even)}[truth]
        n_boot = int(torch.randint(500, 1200, (), generator=gen))
        cases.append((truth, *_outcomes(gen, n, counts), n_boot, int(torch.randint(0, 2**31 - 1, (), generator=gen))))
    cases.append(_disagreeing_case(gen, n))
    order = torch.randperm(len(cases), generator=gen).tolist()
    level = 0.95
    for _truth, a, b, n_boot, boot_seed in [cases[i] for i in order]:
        call = (
            f"paired_comparison(correct_a, correct_b (N={n}), n_boot={n_boot}, level={level}, seed={boot_seed}) {where}"
        )
        with refusing(refused, "the paired comparison"):
            result = call_learner(fn, a.clone(), b.clone(), n_boot, level, boot_seed, what=call)
        expect(
            isinstance(result, Mapping),
            f"{call}: expected a dict with keys {list(PAIRED_KEYS)}, found {type(result).__name__}",
        )
        missing = [k for k in PAIRED_KEYS if k not in result]
        extra = [k for k in result if k not in PAIRED_KEYS]
        expect(
            not missing and not extra,
            f"{call}: expected exactly the keys {list(PAIRED_KEYS)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else ""),
        )
        values: dict[str, float] = {}
        for key in ("difference", "lower", "upper", "p_value"):
            value = _number(result[key])
            expect(value is not None, f"{call}: {key} should be a number, found {type(result[key]).__name__}")
            values[key] = float(value)  # type: ignore[arg-type]

        ref = ev.paired_bootstrap(a, b, n_boot=n_boot, level=level, seed=boot_seed)
        accuracy_a, accuracy_b = a.double().mean().item(), b.double().mean().item()
        d = values["difference"]
        if not _close(d, ref.estimate):
            hint = ""
            if _close(d, -ref.estimate):
                hint = ": the sign is swapped; the difference is accuracy(A) - accuracy(B)"
            elif 1 < abs(d) <= 100:
                hint = ": that looks like percentage points; return fractions"
            raise CheckFailed(
                f"{call}: expected difference = accuracy(A) - accuracy(B) = {accuracy_a:.4f} - "
                f"{accuracy_b:.4f} = {ref.estimate:.6f}, found {d:.6f}{hint}"
            )
        lower, upper = values["lower"], values["upper"]
        if not (_close(lower, ref.lower) and _close(upper, ref.upper)):
            hint = f". Follow the convention: {CONVENTION}, with the same idx for both models"
            unpaired = ev.unpaired_bootstrap(a, b, n_boot=n_boot, level=level, seed=boot_seed)
            if _close(lower, -ref.upper) and _close(upper, -ref.lower):
                hint = (
                    ": that is the interval of B - A: the sign is swapped; the difference is accuracy(A) - accuracy(B)"
                )
            elif _close(lower, unpaired.lower) and _close(upper, unpaired.upper) or upper - lower > 1.3 * ref.width:
                hint = (
                    f": the interval is {(upper - lower) / ref.width:.1f}× as wide as the paired one; the two models "
                    "were resampled independently. Draw one idx and score both models on the same resampled "
                    "examples: a[idx].mean(1) - b[idx].mean(1)"
                )
            elif lower > upper:
                hint = ": lower > upper"
            raise CheckFailed(
                f"{call}: expected the paired interval (lower, upper) = ({ref.lower:.6f}, {ref.upper:.6f}), "
                f"found ({lower:.6f}, {upper:.6f}){hint}"
            )
        reference_p = ev.mcnemar(a, b).p_value
        p = values["p_value"]
        only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
        expect(
            0 <= p <= 1,
            f"{call}: p_value must be a probability in [0, 1], found {p:.4g}"
            + (
                f" (b = {only_a}, c = {only_b}): twice a tail that holds the middle of the distribution exceeds 1 "
                "when b and c are close; a probability stops at 1"
                if p > 1
                else ""
            ),
        )
        if not math.isclose(p, reference_p, rel_tol=1e-6, abs_tol=1e-12):
            raise CheckFailed(
                f"{call}: expected McNemar's exact p_value {reference_p:.6g} (b = {only_a} examples only A "
                f"gets right, c = {only_b} only B gets right; b ~ Binomial(b + c, 1/2) if they were equally "
                f"accurate), found {p:.6g}" + _diagnose_p_value(a, b, p)
            )
        better = result["better"]
        expected = "A" if ref.lower > 0 else "B" if ref.upper < 0 else "neither"
        expect(better in DECISIONS, f"{call}: better should be one of {DECISIONS}, found {better!r}")
        if better != expected:
            by_p = ("A" if ref.estimate > 0 else "B") if reference_p < 1 - level else "neither"
            if better == {"A": "B", "B": "A"}.get(expected):
                why = "the decision is reversed: a positive difference (lower > 0) means A is better"
            elif better == by_p:
                why = (
                    f"that follows the p-value ({reference_p:.3g}), but here the interval ({ref.lower:.4f}, "
                    f"{ref.upper:.4f}) and the p-value disagree; the exercise decides by the interval: 'A' if "
                    "lower > 0, 'B' if upper < 0, else 'neither'"
                )
            elif expected == "neither":
                why = f"the interval ({ref.lower:.4f}, {ref.upper:.4f}) contains 0: the data do not show a difference"
            else:
                why = (
                    f"the interval ({ref.lower:.4f}, {ref.upper:.4f}) excludes 0, so the difference is real at "
                    f"this level; a difference of {ref.estimate:+.4f} alone does not decide, its interval does"
                )
            raise CheckFailed(f"{call}: expected better = {expected!r}, found {better!r}: {why}")
    passed(
        "paired comparison: difference, paired interval, McNemar p-value and decision match the reference "
        "on three pairs of models"
    )


# ---------------------------------------------------------------------------------------------
# ex03: a paired permutation test (transfer: the sign-flip test, for any per-example score)

ALTERNATIVES = ("two-sided", "greater", "less")


def _exact_sign_flip(d: Tensor) -> dict[str, float]:
    """Exact p-values of the sign-flip test for integer differences ``d (N,)``, by convolution.

    Under the null hypothesis each ``d_i`` keeps or flips its sign with probability 1/2, so the sum
    ``S = Σ s_i d_i`` has a distribution we build term by term (all ``2^N`` flips, without listing
    them): ``probs[S + total]``. Returns the usual (``≥``) and the strict (``>``) tail probabilities
    of ``S`` beyond the observed sum, for each alternative."""
    import numpy as np

    values = d.round().long().tolist()
    total = sum(abs(v) for v in values)
    probs = np.zeros(2 * total + 1)
    probs[total] = 1.0
    for v in values:
        if v:  # the partial sums stay within ±total, so np.roll never wraps a non-zero value around
            probs = 0.5 * (np.roll(probs, v) + np.roll(probs, -v))
    sums = np.arange(-total, total + 1)
    observed = sum(values)
    return {
        "two-sided": float(probs[np.abs(sums) >= abs(observed)].sum()),
        "greater": float(probs[sums >= observed].sum()),
        "less": float(probs[sums <= observed].sum()),
        "two-sided strict": float(probs[np.abs(sums) > abs(observed)].sum()),
        "greater strict": float(probs[sums > observed].sum()),
        "less strict": float(probs[sums < observed].sum()),
    }


def _pooled_p(a: Tensor, b: Tensor) -> float:
    """The unpaired permutation test's two-sided p-value (a typical mistake: pool the 2N scores, split them at
    random into two groups of N), in its normal approximation: over random splits the difference of the two
    means has mean 0 and variance ``4 σ² / (2N - 1)``, ``σ²`` the pooled scores' variance (divided by 2N)."""
    n = len(a)
    pooled = torch.cat([a, b]).double()
    sd = math.sqrt(4 * pooled.var(unbiased=False).item() / (2 * n - 1))
    z = abs((a.double().mean() - b.double().mean()).item()) / sd
    return math.erfc(z / math.sqrt(2))


def _pooled_p_binary(a: Tensor, b: Tensor) -> float:
    """The unpaired test's exact two-sided p-value for 0/1 scores: the number of ones that a random split of the
    2N pooled scores puts into the first group is hypergeometric."""
    n, ones = len(a), int(a.sum() + b.sum())
    observed = abs(2 * int(a.sum()) - ones)
    total = math.comb(2 * n, n)
    return (
        sum(
            math.comb(ones, x) * math.comb(2 * n - ones, n - x)
            for x in range(max(0, ones - n), min(ones, n) + 1)
            if abs(2 * x - ones) >= observed
        )
        / total
    )


def _mc_tolerance(p: float, n_perm: int) -> float:
    """How far a Monte Carlo p-value from ``n_perm`` sign flips may stray from ``p``: five standard errors, plus
    the +1 correction's shift."""
    return 5 * math.sqrt(max(p * (1 - p), 1 / n_perm) / n_perm) + 2 / n_perm


def _mc_expected(p: float, n_perm: int) -> float:
    """The mean of ``(1 + K) / (n_perm + 1)`` when ``K`` of ``n_perm`` flips are at least as extreme (``K ~ Bin``)."""
    return (1 + n_perm * p) / (n_perm + 1)


_ONE_SIDED = (
    "that is a one-sided p-value (the flips at least as far as the observed difference on one side only); the "
    "two-sided test asks whether the models differ at all: count the flips with |T*| ≥ |T|"
)
_MESSAGES = {
    "strict": (
        "that counts only the flips strictly more extreme than the observed statistic (>); those exactly as "
        "extreme count too (≥): scores that take few values give many ties"
    ),
    "pooled": (
        "that is an unpaired test: the 2N scores were pooled and split at random, as if the two models had been "
        "scored on different examples. The test is paired: keep each example's two scores together and flip the "
        "sign of its difference d_i = a_i - b_i"
    ),
    "two-sided": (
        "that is the two-sided p-value; a one-sided alternative asks about one direction only: count the flips "
        "with T* ≥ T for 'greater' (A scores higher), T* ≤ T for 'less'"
    ),
    "other side": (
        "that counts the wrong tail: 'greater' (A scores higher than B) counts the flips with T* ≥ T, "
        "'less' the flips with T* ≤ T"
    ),
    "unchanged": (
        "every rearranged statistic equals the observed one: reordering one model's scores (or both, "
        "independently) leaves each mean as it is. Under the null hypothesis the two scores of the *same* "
        "example are exchangeable: swap a_i and b_i at random, that is, flip the sign of d_i = a_i - b_i"
    ),
}


def _diagnose_permutation(
    found: float,
    expected: float,
    exact: dict[str, float],
    pooled: tuple[float, float] | None,
    alternative: str,
    n_perm: int,
) -> str:
    """Name the mistake whose p-value ``found`` is, if it is one of the usual ones; ``pooled`` is the unpaired
    test's p-value and how far from it that mistake's may stray."""
    if abs(found - 1) < 1e-9:
        return f": {_MESSAGES['unchanged']}"
    if pooled is not None and abs(found - pooled[0]) <= pooled[1]:
        return f": {_MESSAGES['pooled']}"
    candidates: list[tuple[float, str]] = []
    if alternative == "two-sided":
        candidates += [(exact["greater"], _ONE_SIDED), (exact["less"], _ONE_SIDED)]
    else:
        other = "less" if alternative == "greater" else "greater"
        candidates += [(exact["two-sided"], _MESSAGES["two-sided"]), (exact[other], _MESSAGES["other side"])]
    candidates.append((exact[f"{alternative} strict"], _MESSAGES["strict"]))
    for p, message in candidates:
        if abs(found - _mc_expected(p, n_perm)) <= _mc_tolerance(p, n_perm) and abs(p - expected) > 1e-12:
            return f": {message}"
    return ""


def _two_numbers(result: Any, call: str) -> tuple[float, float]:
    expect(
        isinstance(result, (tuple, list)) and len(result) == 2,
        f"{call}: expected a pair (difference, p_value), found "
        + (f"{len(result)} values" if isinstance(result, (tuple, list)) else type(result).__name__),
    )
    values = [_number(v) for v in result]
    expect(
        all(v is not None for v in values),
        f"{call}: expected two numbers (difference, p_value), found {[type(v).__name__ for v in result]}",
    )
    return float(values[0]), float(values[1])  # type: ignore[arg-type]


def _binary_case(gen: torch.Generator, n: int, discordant: int, a_wins: int) -> tuple[Tensor, Tensor]:
    """0/1 scores of two models on ``n`` examples: ``discordant`` examples where exactly one is right (A on
    ``a_wins`` of them), the others both right or both wrong."""
    agree = (torch.rand(n - discordant, generator=gen) < 0.7).float()
    a = torch.cat([torch.ones(a_wins), torch.zeros(discordant - a_wins), agree])
    b = torch.cat([torch.zeros(a_wins), torch.ones(discordant - a_wins), agree])
    order = torch.randperm(n, generator=gen)
    return a[order], b[order]


def _separated(values: list[float], n_perm: int) -> bool:
    """No two of ``values`` could be mistaken for one another by Monte Carlo p-values of ``n_perm`` flips."""
    return all(
        abs(p - q) > _mc_tolerance(p, n_perm) + _mc_tolerance(q, n_perm) + 0.01
        for i, p in enumerate(values)
        for q in values[i + 1 :]
    )


_N_PERM = 10000
"""Random sign flips the check asks for: enough for p-values within about ±0.02 of the exact ones."""


def _small_case(gen: torch.Generator) -> tuple[Tensor, Tensor, dict[str, float], tuple[float, float]]:
    """16 examples scored right/wrong, a two-sided p-value between 0.1 and 0.55 with many ties (the flips as
    extreme as the observed one weigh at least 0.08), and every usual mistake's p-value apart."""
    case = None
    for _ in range(200):
        discordant = int(torch.randint(9, 14, (), generator=gen))
        a_wins = int(torch.randint(0, discordant + 1, (), generator=gen))
        a, b = _binary_case(gen, 16, discordant, a_wins)
        exact = _exact_sign_flip(a - b)
        p, tied = exact["two-sided"], exact["two-sided"] - exact["two-sided strict"]
        if a_wins * 2 == discordant or not 0.1 <= p <= 0.55 or tied < 0.08:
            continue
        others = [exact["greater"], exact["less"], exact["two-sided strict"], 1.0]
        if not _separated([p, *others], _N_PERM):
            continue
        pooled = _pooled_p_binary(a, b)
        case = (a, b, exact, (pooled, _mc_tolerance(pooled, _N_PERM)))
        # the unpaired test's p-value may be close to the paired one (then that mistake passes here, and the next
        # case shows it) but never close to another mistake's
        if _separated([pooled, *others], _N_PERM):
            return case
    assert case is not None
    return case


def _scores_with_difficulty(gen: torch.Generator, n: int, discordant: int, a_wins: int) -> tuple[Tensor, Tensor]:
    """Integer scores (points 0-7) that depend mostly on the example (some are hard for both models): the two
    models differ by one point on ``discordant`` examples, A higher on ``a_wins`` of them."""
    base = torch.randint(0, 7, (n,), generator=gen).float()
    a, b = base.clone(), base.clone()
    chosen = torch.randperm(n, generator=gen)[:discordant]
    a[chosen[:a_wins]] += 1
    b[chosen[a_wins:]] += 1
    return a, b


def _paired_case(gen: torch.Generator) -> tuple[Tensor, Tensor, dict[str, float], tuple[float, float]]:
    """64 examples whose scores depend mostly on the example: the paired p-value is small (0.002 to 0.03),
    the unpaired one large (known here only approximately: it is told apart by a wide margin)."""
    case = None
    for _ in range(200):
        discordant = int(torch.randint(12, 21, (), generator=gen))
        a_wins = int(torch.randint(discordant // 2, discordant + 1, (), generator=gen))
        a, b = _scores_with_difficulty(gen, 64, discordant, a_wins)
        if torch.rand((), generator=gen) < 0.5:
            a, b = b, a
        exact = _exact_sign_flip(a - b)
        if not 0.002 <= exact["two-sided"] <= 0.03:
            continue
        pooled = _pooled_p(a, b)
        case = (a, b, exact, (pooled, 0.1))
        if abs(pooled - exact["two-sided"]) > 0.25 and pooled < 0.85:
            return case
    assert case is not None
    return case


def _one_sided_case(gen: torch.Generator, alternative: str) -> tuple[Tensor, Tensor, dict[str, float]]:
    """32 or 64 examples scored 0-4 points, the observed difference in the direction of ``alternative``, a
    one-sided p-value between 0.04 and 0.25."""
    n = 32 * int(torch.randint(1, 3, (), generator=gen))
    case = None
    for _ in range(200):
        b = torch.randint(0, 5, (n,), generator=gen).float()
        shift = torch.randint(-2, 3, (n,), generator=gen).float()
        shift[torch.rand(n, generator=gen) < 0.04] = 1.0  # A a little better on a few examples
        a = (b + shift).clamp(0, 4)
        if alternative == "less":
            a, b = b, a
        exact = _exact_sign_flip(a - b)
        other = "less" if alternative == "greater" else "greater"
        case = (a, b, exact)
        p = exact[alternative]
        if 0.04 <= p <= 0.25 and _separated([p, exact["two-sided"], exact[other], 1.0], _N_PERM):
            return case
    assert case is not None
    return case


def _permutation_helpers() -> dict[str, Callable[..., Any]]:
    import scipy.stats

    # scipy wraps permutation_test in a decorator that many of its functions share: refuse the inner function
    return {**_PAIRED_HELPERS, "scipy.stats.permutation_test": inspect.unwrap(scipy.stats.permutation_test)}


def permutation_test(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``permutation_test(scores_a, scores_b, n_perm, seed, alternative) -> (difference, p_value)``.

    ``scores_a``, ``scores_b`` are float tensors ``(N,)``: the per-example scores of two models on the same test
    examples. ``difference`` is ``mean(a) - mean(b)``; ``p_value`` is the paired sign-flip test's: draw
    ``n_perm`` random sign vectors ``s ∈ {-1, +1}^N`` from a generator seeded with ``seed``, compute
    ``T* = mean(s · (a - b))`` for each, count ``K``, the flips at least as extreme as the observed ``T``
    (``|T*| ≥ |T|`` two-sided, ``T* ≥ T`` for ``"greater"``, ``T* ≤ T`` for ``"less"``), and return
    ``(1 + K) / (n_perm + 1)``.

    The p-values are compared with the exact ones (all ``2^N`` sign flips, by convolution) within five Monte
    Carlo standard errors; the scores are integers and ``N`` a power of two, so every mean is exact in
    floating point and ties (which ``≥`` counts) are not broken by rounding.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    small = _small_case(gen)
    cases = [
        ("16 examples scored 0/1", *small, "two-sided", _N_PERM),
        ("64 examples, scores that depend on the example", *_paired_case(gen), "two-sided", _N_PERM),
    ]
    alternative = ("greater", "less")[int(torch.randint(0, 2, (), generator=gen))]
    cases.append(("scores 0-4, one-sided", *_one_sided_case(gen, alternative), None, alternative, _N_PERM))
    discordant = int(torch.randint(36, 45, (), generator=gen))
    a, b = _binary_case(gen, 64, discordant, discordant)
    if torch.rand((), generator=gen) < 0.5:
        a, b = b, a
    extreme_perm = int(torch.randint(150, 400, (), generator=gen))
    cases.append(
        ("one model right on every disagreement", a, b, _exact_sign_flip(a - b), None, "two-sided", extreme_perm)
    )
    helpers = _permutation_helpers()

    for what, a, b, exact, pooled, alternative, n_perm in cases:
        perm_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
        call = (
            f"permutation_test(scores_a, scores_b (N={len(a)}, {what}), n_perm={n_perm}, seed={perm_seed}, "
            f"alternative={alternative!r}) {where}"
        )
        given_a, given_b = a.clone(), b.clone()
        with refusing(helpers, "the permutation test"):
            result = call_learner(fn, given_a, given_b, n_perm, perm_seed, alternative=alternative, what=call)
        expect(
            torch.equal(given_a, a) and torch.equal(given_b, b),
            f"{call} changed the scores in place; leave the inputs as they are",
        )
        d, p = _two_numbers(result, call)
        expected_d = (a.double().mean() - b.double().mean()).item()
        if not _close(d, expected_d):
            hint = ""
            if _close(d, -expected_d):
                hint = ": the sign is swapped; the difference is mean(scores_a) - mean(scores_b)"
            elif _close(d, len(a) * expected_d):
                hint = ": that is the sum of the differences; return their mean"
            elif _close(d, abs(expected_d)):
                hint = ": that is its absolute value; keep the sign, it says which model scored higher"
            raise CheckFailed(f"{call}: expected difference = {expected_d:.6f}, found {d:.6f}{hint}")
        expect(
            not math.isnan(p) and 0 < p <= 1,
            f"{call}: the p-value must lie in (0, 1], found {p:.6g}"
            + (
                ": a Monte Carlo p-value is never 0, since the observed arrangement is one of the possible "
                "ones; count it: (1 + K) / (n_perm + 1)"
                if p == 0
                else ""
            ),
        )
        p_exact = exact[alternative]
        if p_exact * n_perm < 1e-3:  # no random flip comes near: the answer is exactly 1 / (n_perm + 1)
            expected_p = 1 / (n_perm + 1)
            if not math.isclose(p, expected_p, rel_tol=1e-6):
                hint = ""
                if math.isclose(p, 2 * expected_p, rel_tol=1e-6):
                    hint = (
                        ": that doubles a one-sided count; count the flips with |T*| ≥ |T| in one pass (scipy's "
                        "convention differs, the exercise's is this one)"
                    )
                elif math.isclose(p, 1 / n_perm, rel_tol=1e-6):
                    hint = ": that divides by n_perm; with the observed arrangement counted, divide by n_perm + 1"
                raise CheckFailed(
                    f"{call}: none of the {n_perm} flips comes near the observed difference (the exact p-value is "
                    f"{p_exact:.3g}), so the p-value should be (1 + 0) / (n_perm + 1) = {expected_p:.6g}; found "
                    f"{p:.6g}{hint}"
                )
            continue
        mean = _mc_expected(p_exact, n_perm)
        if abs(p - mean) > _mc_tolerance(p_exact, n_perm):
            raise CheckFailed(
                f"{call}: expected a p-value near {mean:.4f} (the exact one over all 2^{len(a)} sign flips is "
                f"{p_exact:.4f}; allowed ± {_mc_tolerance(p_exact, n_perm):.4f} for the random flips), found {p:.4f}"
                + _diagnose_permutation(p, p_exact, exact, pooled, alternative, n_perm)
            )

    # the same seed, the same answer, whatever the global random state
    a, b = small[0], small[1]
    found = set()
    perm_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
    state = torch.get_rng_state()
    for global_seed in (1, 2, 3):
        torch.manual_seed(global_seed)
        call = f"permutation_test(scores_a, scores_b (N=16), n_perm={_N_PERM}, seed={perm_seed}) {where}"
        with refusing(helpers, "the permutation test"):
            found.add(
                _two_numbers(call_learner(fn, a, b, _N_PERM, perm_seed, alternative="two-sided", what=call), call)
            )
    expect(
        len(found) == 1,
        f"{call}: three calls with the same seed gave different p-values ({sorted(p for _, p in found)}): draw the "
        "signs from a generator seeded with `seed` (g = torch.Generator().manual_seed(seed)), not from the global "
        "random state",
    )
    torch.set_rng_state(state)
    passed(
        "permutation test: the sign-flip p-values match the exact ones (two-sided and one-sided, ties counted, "
        "+1 correction), the same for the same seed"
    )


from dlfund.checks._unit14_conformal import class_conditional_conformal  # noqa: E402
from dlfund.checks._unit14_rouge import rouge_l  # noqa: E402
