"""How sure is a test accuracy? Confidence intervals, and honest comparisons of two models (unit 14).

A test accuracy is a mean of 0/1 outcomes, one per test example: ``correct (N,)``, 1 where the
model's prediction was right. Another test set of the same size, drawn from the same distribution,
would give a somewhat different accuracy. The functions here say by how much:

- :func:`normal_ci` and :func:`wilson_ci`: formulas for a binomial proportion;
- :func:`bootstrap_ci`: resample the test set with replacement and read the spread of the accuracy;
- :func:`seed_variation`: the spread over retrained models (another seed, another model), a t-interval;
- :func:`paired_bootstrap` and :func:`mcnemar`: is model A really better than model B *on this
  kind of data*, when both were tested on the same examples?

>>> correct = torch.tensor([1] * 85 + [0] * 15)
>>> ci = normal_ci(correct)
>>> round(ci.estimate, 2), round(ci.lower, 3), round(ci.upper, 3)
(0.85, 0.78, 0.92)

The bootstrap functions follow one random-number convention, so a result can be reproduced exactly
(the unit-14 exercises use it too): ``g = torch.Generator().manual_seed(seed)`` and
``idx = torch.randint(0, N, (n_boot, N), generator=g)``: row ``r`` of ``idx`` lists the test examples
of resample ``r``. The percentile interval is ``torch.quantile`` of the ``n_boot`` resampled
statistics at ``(1 - level) / 2`` and ``(1 + level) / 2`` (linear interpolation, torch's default).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

__all__ = [
    "ConfidenceInterval",
    "SeedVariation",
    "McNemarResult",
    "as_correct",
    "correct_predictions",
    "z_value",
    "normal_ci",
    "wilson_ci",
    "bootstrap_accuracies",
    "bootstrap_ci",
    "seed_variation",
    "paired_bootstrap",
    "unpaired_bootstrap",
    "mcnemar",
]

CorrectLike = torch.Tensor | np.ndarray | Sequence[int] | Sequence[bool]

_CHUNK_ELEMENTS = 1 << 22
"""How many resampled indices the bootstrap draws at once (32 MB of int64): 10,000 resamples of a
10,000-example test set would otherwise need 800 MB. Drawing ``idx`` row block by row block gives the
same numbers as one ``torch.randint(0, N, (n_boot, N))`` call (a test checks it)."""


class ConfidenceInterval(NamedTuple):
    """An estimate with a confidence interval ``[lower, upper]`` at ``level`` (0.95 for 95%)."""

    estimate: float
    lower: float
    upper: float
    level: float
    method: str

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def __str__(self) -> str:
        return f"{self.estimate:.4f} [{self.lower:.4f}, {self.upper:.4f}] ({self.level:.0%} {self.method} interval)"


class SeedVariation(NamedTuple):
    """Mean and spread of a metric over ``n`` independent runs, with a t-interval for the mean."""

    mean: float
    std: float
    """Sample standard deviation (``ddof=1``): how much one run differs from another."""
    n: int
    lower: float
    upper: float
    level: float

    @property
    def interval(self) -> ConfidenceInterval:
        return ConfidenceInterval(self.mean, self.lower, self.upper, self.level, "t")


class McNemarResult(NamedTuple):
    """McNemar's test on paired outcomes: only the examples on which the two models disagree count."""

    statistic: float
    """``min(b, c)`` for the exact test; ``(|b - c| - 1)² / (b + c)`` for the chi-square test."""
    p_value: float
    b: int
    """Examples model A gets right and model B gets wrong."""
    c: int
    """Examples model A gets wrong and model B gets right."""
    method: str


def as_correct(correct: CorrectLike, name: str = "correct") -> torch.Tensor:
    """``correct`` as a 1-D float64 CPU tensor of 0s and 1s (it may be bool, int or float, tensor or array).

    Raises ``ValueError`` (saying what it found) for an empty input, more than one dimension, or
    values other than 0 and 1.
    """
    if isinstance(correct, torch.Tensor):
        t = correct.detach().cpu()
    else:
        t = torch.as_tensor(np.asarray(correct))
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, one 0/1 entry per test example; found shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name} is empty: there is no test example to compute an accuracy from")
    t = t.to(torch.float64)
    bad = (t != 0) & (t != 1)
    if bool(bad.any()):
        first = t[bad][0].item()
        raise ValueError(
            f"{name} must hold only 0/1 (or False/True), one per test example; found {first!r} "
            "(pass predictions == labels, not the predictions or probabilities)"
        )
    return t


@torch.no_grad()
def correct_predictions(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Which test examples ``model`` classifies correctly: a bool tensor ``(N,)`` on the CPU.

    ``inputs (N, ...)`` go through the model in batches (in ``eval()`` mode, without gradients) on
    ``device`` (default: where the model's parameters are); ``labels (N,)`` are class indices.
    The mean of the result is the test accuracy; the vector itself is what the intervals need.
    """
    if len(inputs) != len(labels):
        raise ValueError(f"inputs and labels must have the same length, found {len(inputs)} and {len(labels)}")
    if device is None:
        device = next(model.parameters()).device
    model.eval()
    predictions = [
        model(inputs[i : i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, len(inputs), batch_size)
    ]
    return torch.cat(predictions) == labels.cpu()


def z_value(level: float) -> float:
    """The standard normal quantile for a two-sided interval: 1.96 for ``level=0.95``."""
    _check_level(level)
    return NormalDist().inv_cdf((1 + level) / 2)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(
            f"level must be a probability in (0, 1) such as 0.95, found {level!r}"
            + (" (a percentage? use 0.95, not 95)" if 1 < level <= 100 else "")
        )


def normal_ci(correct: CorrectLike, level: float = 0.95) -> ConfidenceInterval:
    """The normal-approximation (Wald) interval ``p ± z·sqrt(p(1-p)/N)``, clipped to [0, 1].

    ``p`` is the accuracy, the mean of ``correct (N,)``. It relies on the central limit theorem and
    is good when ``N·p`` and ``N·(1-p)`` are both large (say over 10). Near 0 or 1 it fails: at
    ``p = 1`` its width is zero, as if 100 correct answers out of 100 proved a perfect model.
    """
    c = as_correct(correct)
    n, p = c.numel(), c.mean().item()
    half = z_value(level) * math.sqrt(p * (1 - p) / n)
    return ConfidenceInterval(p, max(0.0, p - half), min(1.0, p + half), level, "normal")


def wilson_ci(correct: CorrectLike, level: float = 0.95) -> ConfidenceInterval:
    """The Wilson score interval: the ``q`` whose normal test would not reject ``p``, solved exactly.

    Instead of using the *observed* ``p`` in the standard error (as :func:`normal_ci` does) it uses
    the unknown true accuracy ``q`` and solves ``|p - q| ≤ z·sqrt(q(1-q)/N)`` for ``q``:

        centre = (p + z²/2N) / (1 + z²/N),  half-width = z/(1 + z²/N) · sqrt(p(1-p)/N + z²/4N²).

    It never leaves [0, 1], keeps a positive width at ``p = 0`` or ``1``, and its coverage stays
    near the nominal level for small ``N`` and accuracies near 0 or 1, where the Wald interval's
    coverage collapses. For large ``N`` and ``p`` away from the ends, the two agree.
    """
    c = as_correct(correct)
    n, p = c.numel(), c.mean().item()
    z = z_value(level)
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return ConfidenceInterval(p, max(0.0, centre - half), min(1.0, centre + half), level, "Wilson")


def _resample_means(values: torch.Tensor, n_boot: int, generator: torch.Generator) -> torch.Tensor:
    """``values (N, K)`` → ``(n_boot, K)``: the column means of ``n_boot`` resamples of the rows.

    Rows are drawn as ``torch.randint(0, N, (n_boot, N), generator=generator)``, in blocks of rows
    so that memory stays bounded; the block boundaries do not change the numbers.
    """
    n = values.shape[0]
    rows_per_block = max(1, _CHUNK_ELEMENTS // n)
    means = []
    for start in range(0, n_boot, rows_per_block):
        rows = min(rows_per_block, n_boot - start)
        idx = torch.randint(0, n, (rows, n), generator=generator)  # (rows, N) example indices
        means.append(values[idx].mean(dim=1))  # (rows, N, K) -> (rows, K)
    return torch.cat(means)


def _check_boot(n_boot: int) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 2:
        raise ValueError(f"n_boot must be an int >= 2 (usually 1,000 to 10,000), found {n_boot!r}")


def _percentile_interval(stats: torch.Tensor, level: float) -> tuple[float, float]:
    alpha = 1 - level
    q = torch.tensor([alpha / 2, 1 - alpha / 2], dtype=stats.dtype)
    lower, upper = torch.quantile(stats, q).tolist()
    return lower, upper


def bootstrap_accuracies(correct: CorrectLike, n_boot: int = 1000, seed: int = 0) -> torch.Tensor:
    """The accuracies of ``n_boot`` bootstrap resamples of the test set: a float64 tensor ``(n_boot,)``.

    Resample ``r`` draws N test examples *with replacement* (rows of
    ``torch.randint(0, N, (n_boot, N), generator=torch.Generator().manual_seed(seed))``).
    """
    c = as_correct(correct)
    _check_boot(n_boot)
    g = torch.Generator().manual_seed(seed)
    return _resample_means(c[:, None], n_boot, g)[:, 0]


def bootstrap_ci(correct: CorrectLike, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> ConfidenceInterval:
    """The percentile bootstrap interval of the accuracy: resample the test set, read off quantiles.

    The test set stands in for the population: drawing N examples from it with replacement
    ``n_boot`` times and recomputing the accuracy each time shows how much the accuracy moves from
    one test set to another. The interval is the ``(1-level)/2`` and ``(1+level)/2`` quantiles of
    these accuracies. Deterministic for a given ``seed`` (see the module docstring's convention).
    """
    _check_level(level)
    c = as_correct(correct)
    lower, upper = _percentile_interval(bootstrap_accuracies(c, n_boot, seed), level)
    return ConfidenceInterval(c.mean().item(), lower, upper, level, "percentile bootstrap")


def seed_variation(values: Sequence[float] | torch.Tensor | np.ndarray, level: float = 0.95) -> SeedVariation:
    """Mean, standard deviation and a t-interval for the mean of a metric over retrained runs.

    ``values (R,)``: e.g. the test accuracies of R models trained with different seeds. The spread
    measures how much *training* varies (initial weights, data order), which the test-set intervals
    above do not see. The interval ``mean ± t(R-1)·std/sqrt(R)`` uses Student's t distribution
    because ``std`` itself is estimated from few runs.
    """
    from scipy import stats  # scipy comes with scikit-learn

    _check_level(level)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2:
        raise ValueError(f"seed_variation needs a 1-D sequence of at least 2 runs, found shape {v.shape}")
    mean, std, n = float(v.mean()), float(v.std(ddof=1)), int(v.size)
    half = float(stats.t.ppf((1 + level) / 2, df=n - 1)) * std / math.sqrt(n)
    return SeedVariation(mean, std, n, mean - half, mean + half, level)


def _paired(correct_a: CorrectLike, correct_b: CorrectLike) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = as_correct(correct_a, "correct_a"), as_correct(correct_b, "correct_b")
    if a.shape != b.shape:
        raise ValueError(
            f"correct_a and correct_b must score the same test examples, found lengths {a.numel()} and {b.numel()}"
        )
    return a, b


def paired_bootstrap(
    correct_a: CorrectLike, correct_b: CorrectLike, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> ConfidenceInterval:
    """Percentile bootstrap interval of ``accuracy(A) - accuracy(B)`` on the same test examples.

    Each resample draws one set of test examples (``idx``, the module's convention) and scores both
    models on it. An easy example is easy for both models: resampling it moves both accuracies
    together, and the difference hardly moves. That is why this interval is narrower than
    :func:`unpaired_bootstrap`'s when the models' errors are correlated, as they usually are.
    """
    _check_level(level)
    _check_boot(n_boot)
    a, b = _paired(correct_a, correct_b)
    g = torch.Generator().manual_seed(seed)
    diffs = _resample_means((a - b)[:, None], n_boot, g)[:, 0]  # mean of differences = difference of means
    lower, upper = _percentile_interval(diffs, level)
    return ConfidenceInterval((a.mean() - b.mean()).item(), lower, upper, level, "paired bootstrap")


def unpaired_bootstrap(
    correct_a: CorrectLike, correct_b: CorrectLike, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> ConfidenceInterval:
    """The same interval, resampling each model's results *independently*: what not to do on a shared test set.

    Model A's resamples are drawn first, then model B's, from one generator
    (``torch.Generator().manual_seed(seed)``). This treats the two accuracies as if they came from
    different test sets; it throws the pairing away and gives a wider interval.
    """
    _check_level(level)
    _check_boot(n_boot)
    a, b = _paired(correct_a, correct_b)
    g = torch.Generator().manual_seed(seed)
    diffs = _resample_means(a[:, None], n_boot, g)[:, 0] - _resample_means(b[:, None], n_boot, g)[:, 0]
    lower, upper = _percentile_interval(diffs, level)
    return ConfidenceInterval((a.mean() - b.mean()).item(), lower, upper, level, "unpaired bootstrap")


def mcnemar(correct_a: CorrectLike, correct_b: CorrectLike, *, exact: bool = True) -> McNemarResult:
    """McNemar's test of "A and B are equally accurate" on paired test results.

    Only the discordant examples count: ``b`` (A right, B wrong) and ``c`` (A wrong, B right).
    Under the null hypothesis each of the ``b + c`` disagreements goes either way with probability
    1/2, so ``b ~ Binomial(b + c, 1/2)``.

    - ``exact=True``: the two-sided binomial p-value ``min(1, 2·P(X ≤ min(b, c)))``, computed with
      exact integers (valid for any counts);
    - ``exact=False``: the chi-square approximation with continuity correction,
      ``(|b - c| - 1)² / (b + c)`` on 1 degree of freedom (fine when ``b + c`` is over ~25).

    With no disagreements at all the p-value is 1.
    """
    a, bb = _paired(correct_a, correct_b)
    b = int(((a == 1) & (bb == 0)).sum())
    c = int(((a == 0) & (bb == 1)).sum())
    n = b + c
    if exact:
        k = min(b, c)
        if n == 0:
            return McNemarResult(0.0, 1.0, b, c, "exact binomial")
        tail = Fraction(sum(math.comb(n, i) for i in range(k + 1)), 2**n)  # P(X <= k), exactly
        return McNemarResult(float(k), float(min(Fraction(1), 2 * tail)), b, c, "exact binomial")
    if n == 0:
        return McNemarResult(0.0, 1.0, b, c, "chi-square, continuity-corrected")
    statistic = max(abs(b - c) - 1, 0) ** 2 / n
    p_value = math.erfc(math.sqrt(statistic / 2))  # P(chi2 with 1 dof > statistic)
    return McNemarResult(statistic, p_value, b, c, "chi-square, continuity-corrected")
