"""Checks for unit 14 (evaluation): a percentile bootstrap interval, and a paired comparison of two models.

Both exercises follow the random-number convention of :mod:`dlfund.evaluation`, so the learner's
numbers can be compared with the reference exactly (up to float rounding):

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, N, (n_boot, N), generator=g)     # row r: the test examples of resample r

and the interval is ``torch.quantile`` of the resampled statistics at ``(1 - level) / 2`` and
``(1 + level) / 2``. Each check draws fresh test outcomes (a new seed on every call, printed in
failure messages so a failure can be replayed with ``seed=...``) and names the mistake it sees.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from dlfund import evaluation as ev
from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing

__all__ = ["bootstrap_ci", "paired_comparison", "PAIRED_KEYS", "CONVENTION"]

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
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    n = int(torch.randint(400, 700, (), generator=gen))
    cases = []
    for truth in ("A", "neither", "B"):
        both = int(n * (0.7 + 0.1 * torch.rand((), generator=gen).item()))
        big, small = int(torch.randint(45, 60, (), generator=gen)), int(torch.randint(8, 14, (), generator=gen))
        even = int(torch.randint(18, 26, (), generator=gen))
        counts = {"A": (both, big, small), "B": (both, small, big), "neither": (both, even, even + 1)}[truth]
        n_boot = int(torch.randint(500, 1200, (), generator=gen))
        cases.append((truth, *_outcomes(gen, n, counts), n_boot, int(torch.randint(0, 2**31 - 1, (), generator=gen))))
    cases.append(_disagreeing_case(gen, n))
    order = torch.randperm(len(cases), generator=gen).tolist()
    level = 0.95
    for _truth, a, b, n_boot, boot_seed in [cases[i] for i in order]:
        call = (
            f"paired_comparison(correct_a, correct_b (N={n}), n_boot={n_boot}, level={level}, seed={boot_seed}) {where}"
        )
        with refusing(_PAIRED_HELPERS, "the paired comparison"):
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
                hint = ": that is the interval of B - A; the sign is swapped"
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
        expect(0 <= p <= 1, f"{call}: p_value must be a probability in [0, 1], found {p:.4g}")
        if not math.isclose(p, reference_p, rel_tol=1e-6, abs_tol=1e-12):
            only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
            raise CheckFailed(
                f"{call}: expected McNemar's exact p_value {reference_p:.6g} (b = {only_a} examples only A "
                f"gets right, c = {only_b} only B gets right: binomtest(b, b + c, 0.5)), found {p:.6g}"
                + _diagnose_p_value(a, b, p)
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


from dlfund.checks._unit14_conformal import class_conditional_conformal  # noqa: E402

__all__ += ["class_conditional_conformal"]
