"""dlfund.evaluation: intervals that cover what they claim, a bootstrap with a known answer, McNemar vs scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from dlfund import evaluation as ev


def draws(p: float, n: int, reps: int, seed: int) -> torch.Tensor:
    """``reps`` simulated test sets of ``n`` examples, each correct with probability ``p``: ``(reps, n)`` bool."""
    return torch.rand(reps, n, generator=torch.Generator().manual_seed(seed)) < p


def coverage(interval, p: float, n: int, reps: int = 2000, seed: int = 0) -> float:
    return float(np.mean([interval(row).contains(p) for row in draws(p, n, reps, seed)]))


def test_normal_interval_covers_the_true_accuracy_95_percent_of_the_time() -> None:
    assert coverage(ev.normal_ci, 0.8, 400) == pytest.approx(0.95, abs=0.015)
    assert coverage(lambda c: ev.normal_ci(c, level=0.8), 0.7, 300) == pytest.approx(0.80, abs=0.025)


def test_wilson_keeps_its_coverage_near_one_where_the_normal_interval_fails() -> None:
    wald, wilson = coverage(ev.normal_ci, 0.98, 50), coverage(ev.wilson_ci, 0.98, 50)
    assert wald < 0.80, "the Wald interval under-covers near 1 with few examples"
    assert wilson > 0.90 and wilson > wald + 0.1
    perfect = torch.ones(30)
    assert ev.normal_ci(perfect).width == 0  # the Wald interval claims certainty
    assert 0.85 < ev.wilson_ci(perfect).lower < 1 and ev.wilson_ci(perfect).upper == 1


def test_normal_and_wilson_formulas_on_a_known_case() -> None:
    correct = torch.tensor([1] * 85 + [0] * 15)
    ci = ev.normal_ci(correct)
    half = 1.959964 * math.sqrt(0.85 * 0.15 / 100)
    assert (ci.estimate, ci.lower, ci.upper) == pytest.approx((0.85, 0.85 - half, 0.85 + half), abs=1e-6)
    w = ev.wilson_ci(correct)
    assert (w.lower, w.upper) == pytest.approx(
        (0.7672, 0.9069), abs=1e-4
    )  # Wilson (1927), also e.g. R's prop.test(correct=FALSE)
    z = ev.z_value(0.9)
    assert z == pytest.approx(stats.norm.ppf(0.95))


def test_bootstrap_of_an_accuracy_matches_the_binomial_it_estimates() -> None:
    """Resampling N 0/1 outcomes with K ones gives accuracies distributed as Binomial(N, K/N) / N."""
    n, k = 200, 150
    correct = torch.cat([torch.ones(k), torch.zeros(n - k)])
    accs = ev.bootstrap_accuracies(correct, n_boot=20000, seed=3)
    assert accs.mean().item() == pytest.approx(k / n, abs=0.002)
    assert accs.std().item() == pytest.approx(math.sqrt(0.75 * 0.25 / n), rel=0.03)
    ci = ev.bootstrap_ci(correct, n_boot=20000, level=0.95, seed=3)
    lower, upper = stats.binom.ppf([0.025, 0.975], n, k / n) / n
    assert abs(ci.lower - lower) <= 1 / n and abs(ci.upper - upper) <= 1 / n
    assert ci.estimate == k / n
    assert ev.bootstrap_ci(torch.ones(50), n_boot=100).width == 0


def test_bootstrap_is_deterministic_and_follows_the_documented_convention(monkeypatch: pytest.MonkeyPatch) -> None:
    correct = draws(0.7, 123, 1, seed=1)[0]
    first = ev.bootstrap_ci(correct, n_boot=500, level=0.9, seed=7)
    assert ev.bootstrap_ci(correct, n_boot=500, level=0.9, seed=7) == first
    assert ev.bootstrap_ci(correct, n_boot=500, level=0.9, seed=8) != first

    g = torch.Generator().manual_seed(7)
    idx = torch.randint(0, 123, (500, 123), generator=g)
    accs = correct.double()[idx].mean(dim=1)
    expected = torch.quantile(accs, torch.tensor([0.05, 0.95], dtype=torch.float64)).tolist()
    assert [first.lower, first.upper] == expected

    monkeypatch.setattr(ev, "_CHUNK_ELEMENTS", 1000)  # 8 rows per block: the same numbers
    assert ev.bootstrap_ci(correct, n_boot=500, level=0.9, seed=7) == first
    assert torch.equal(ev.bootstrap_accuracies(correct, 500, seed=7), accs)


def test_paired_bootstrap_is_narrower_than_unpaired_when_errors_are_correlated() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.rand(1000, generator=g) < 0.85
    b = a.clone()
    flip = torch.rand(1000, generator=g) < 0.05  # B disagrees with A on about 5% of the examples
    b[flip] = ~b[flip]
    paired, unpaired = ev.paired_bootstrap(a, b, 2000, seed=1), ev.unpaired_bootstrap(a, b, 2000, seed=1)
    assert paired.estimate == unpaired.estimate == pytest.approx(a.double().mean() - b.double().mean())
    assert paired.width < 0.6 * unpaired.width
    # Same model twice: the paired difference is exactly zero, the unpaired one is not.
    same = ev.paired_bootstrap(a, a, 500, seed=2)
    assert same.lower == same.upper == 0 and ev.unpaired_bootstrap(a, a, 500, seed=2).width > 0.02
    # The convention: one index tensor for both models.
    idx = torch.randint(0, 1000, (2000, 1000), generator=torch.Generator().manual_seed(1))
    diffs = a.double()[idx].mean(1) - b.double()[idx].mean(1)
    expected = torch.quantile(diffs, torch.tensor([0.025, 0.975], dtype=torch.float64))
    assert [paired.lower, paired.upper] == pytest.approx(expected.tolist(), abs=1e-12)


@pytest.mark.parametrize("b,c", [(0, 0), (1, 0), (3, 9), (10, 10), (40, 10), (7, 30), (120, 95), (600, 540)])
def test_mcnemar_matches_scipy(b: int, c: int) -> None:
    both, neither = 50, 20
    a_right = torch.tensor([1] * both + [1] * b + [0] * c + [0] * neither)
    b_right = torch.tensor([1] * both + [0] * b + [1] * c + [0] * neither)
    exact = ev.mcnemar(a_right, b_right)
    assert (exact.b, exact.c) == (b, c)
    expected = stats.binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    assert exact.p_value == pytest.approx(expected, rel=1e-9, abs=1e-300)
    chi = ev.mcnemar(a_right, b_right, exact=False)
    if b + c:
        statistic = max(abs(b - c) - 1, 0) ** 2 / (b + c)
        assert chi.statistic == pytest.approx(statistic)
        assert chi.p_value == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-9)
    else:
        assert chi.p_value == 1.0


def test_mcnemar_ignores_the_examples_both_models_agree_on() -> None:
    a = torch.tensor([1, 1, 0, 1, 0])
    b = torch.tensor([1, 0, 1, 0, 0])
    extra = torch.ones(500)
    assert ev.mcnemar(a, b) == ev.mcnemar(torch.cat([a, extra]), torch.cat([b, extra]))


def test_seed_variation_is_a_t_interval() -> None:
    values = [0.861, 0.874, 0.869, 0.858, 0.871]
    sv = ev.seed_variation(values)
    lower, upper = stats.t.interval(0.95, df=4, loc=np.mean(values), scale=stats.sem(values))
    assert (sv.mean, sv.std, sv.n) == pytest.approx((np.mean(values), np.std(values, ddof=1), 5))
    assert (sv.lower, sv.upper) == pytest.approx((lower, upper))
    assert sv.interval.contains(sv.mean) and sv.interval.method == "t"
    with pytest.raises(ValueError, match="at least 2 runs"):
        ev.seed_variation([0.8])


def test_bad_inputs_are_explained() -> None:
    with pytest.raises(ValueError, match="only 0/1 .*found 3"):
        ev.normal_ci(torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match=r"1-D.*found shape \(2, 2\)"):
        ev.wilson_ci(torch.ones(2, 2))
    with pytest.raises(ValueError, match="empty"):
        ev.bootstrap_ci(torch.ones(0))
    with pytest.raises(ValueError, match="a percentage\\? use 0.95"):
        ev.normal_ci(torch.ones(4), level=95)
    with pytest.raises(ValueError, match="n_boot must be an int >= 2"):
        ev.bootstrap_ci(torch.ones(4), n_boot=1)
    with pytest.raises(ValueError, match="same test examples, found lengths 3 and 4"):
        ev.mcnemar(torch.ones(3), torch.ones(4))
    assert ev.normal_ci(np.array([True, False, True, True])).estimate == 0.75
    assert ev.normal_ci([1, 0]).estimate == 0.5


def test_correct_predictions() -> None:
    model = torch.nn.Linear(3, 2)
    x = torch.randn(10, 3)
    labels = model(x).argmax(1)
    labels[:3] = 1 - labels[:3]
    found = ev.correct_predictions(model, x, labels, batch_size=4)
    assert found.dtype == torch.bool and found.tolist() == [False] * 3 + [True] * 7


def test_notebook_intervals_match_the_library() -> None:
    """Parity: the vectorised normal and Wilson intervals built in notebook 01 are the library's."""
    from dlfund.course import manifest
    from dlfund.course.notebooks import definitions

    path = manifest.get_unit(14).notebook_path("01-confidence-intervals")
    found = definitions(path, names=("normal_interval", "wilson_interval"))
    z = ev.z_value(0.9)
    for p, n, seed in ((0.5, 40, 0), (0.93, 300, 1), (1.0, 25, 2), (0.0, 10, 3)):
        correct = draws(p, n, 1, seed)[0]
        k = correct.sum().double()
        for name, library in (("normal_interval", ev.normal_ci), ("wilson_interval", ev.wilson_ci)):
            lower, upper = found[name](k, n, z)
            ci = library(correct, level=0.9)
            assert (lower.item(), upper.item()) == pytest.approx((ci.lower, ci.upper), abs=1e-12), name
