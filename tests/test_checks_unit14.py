"""The unit-14 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from check_helpers import rejects, solution, stub
from scipy.stats import binomtest

from dlfund.checks import unit14

# --- ex01: bootstrap CI ---------------------------------------------------------------------------


def bootstrap_variant(mistake: str = "none"):
    """A learner's bootstrap_ci with one typical mistake switched on."""

    def bootstrap_ci(correct, n_boot, level, seed):
        n = len(correct)
        g = torch.Generator().manual_seed(seed)
        if mistake == "without replacement":
            idx = torch.stack([torch.randperm(n, generator=g) for _ in range(n_boot)])
        elif mistake == "transposed":
            idx = torch.randint(0, n, (n, n_boot), generator=g).T
        elif mistake == "unseeded":
            idx = torch.randint(0, n, (n_boot, n))
        else:
            idx = torch.randint(0, n, (n_boot, n), generator=g)
        accs = correct.float()[idx].mean(dim=1)
        alpha = 1 - level
        q = {"wrong quantiles": [alpha, 1 - alpha], "hard-coded": [0.025, 0.975]}.get(
            mistake, [alpha / 2, 1 - alpha / 2]
        )
        lower, upper = torch.quantile(accs, torch.tensor(q)).tolist()
        if mistake == "std":
            return accs.std().item()
        if mistake == "normal":
            z = (
                1.959963984540054
                if level == 0.95
                else float(torch.distributions.Normal(0, 1).icdf(torch.tensor(1 - alpha / 2)))
            )
            mean = correct.float().mean().item()
            return mean - z * accs.std().item(), mean + z * accs.std().item()
        if mistake == "percent":
            return 100 * lower, 100 * upper
        if mistake == "swapped":
            return upper, lower
        if mistake == "min max":
            return accs.min().item(), accs.max().item()
        if mistake == "in place":
            correct[0] = ~correct[0]
        return lower, upper

    return bootstrap_ci


@pytest.mark.parametrize("seed", [0, 1])
def test_bootstrap_ci_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit14.bootstrap_ci(solution(14, "ex01-bootstrap-ci", "bootstrap_ci"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ bootstrap CI")


def test_bootstrap_ci_accepts_numpy_quantiles_and_float64() -> None:
    import numpy as np

    def numpy_version(correct, n_boot, level, seed):
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, len(correct), (n_boot, len(correct)), generator=g)
        accs = correct.double()[idx].mean(dim=1).numpy()
        return tuple(np.quantile(accs, [(1 - level) / 2, (1 + level) / 2]))

    unit14.bootstrap_ci(numpy_version, seed=3)
    unit14.bootstrap_ci(bootstrap_variant(), seed=4)


def test_bootstrap_ci_rejects_stub() -> None:
    rejects(unit14.bootstrap_ci, stub, match=r"bootstrap_ci\(correct \(N=\d+\).*is not implemented yet")


def library_bootstrap(correct, n_boot, level, seed):
    from dlfund import evaluation as ev

    ci = ev.bootstrap_ci(correct, n_boot=n_boot, level=level, seed=seed)
    return ci.lower, ci.upper


def library_accuracies(correct, n_boot, level, seed):
    from dlfund import evaluation as ev

    accs = ev.bootstrap_accuracies(correct, n_boot, seed)
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=accs.dtype)
    return tuple(torch.quantile(accs, q).tolist())


def bootstrap_mistake(mistake: str):
    return {"library": library_bootstrap, "library accuracies": library_accuracies}.get(mistake) or bootstrap_variant(
        mistake
    )


BOOTSTRAP_MISTAKES = [
    (
        "without replacement",
        r"every resample has the test accuracy itself.*Sample \*with\* replacement \(torch.randint\)",
    ),
    ("wrong quantiles", r"these are the 5% and 95% quantiles; a 95% interval leaves 2.5% out on \*each\* side"),
    ("std", r"returned one number .*not an interval"),
    ("normal", r"accuracy ± z·std of the bootstrap accuracies .*percentile interval"),
    ("transposed", r"the index tensor has shape \(N, n_boot\); the convention is \(n_boot, N\)"),
    ("percent", r"looks like percentages; return fractions"),
    ("swapped", r"lower .* > upper .*return \(lower, upper\) in that order"),
    ("min max", r"smallest and largest bootstrap accuracy, not the quantiles"),
    ("unseeded", r"calls with the same seed gave different intervals.*torch.Generator\(\).manual_seed\(seed\)"),
    ("in place", r"changed `correct` in place"),
    ("hard-coded", r"level=0\.(8|9|99).*2.5% and 97.5% quantiles, right only for level = 0.95"),
    ("library", r"this is the library's own dlfund.evaluation.bootstrap_ci: write yours"),
    ("library accuracies", r"this is the library's own dlfund.evaluation.bootstrap_accuracies: write yours"),
]


@pytest.mark.parametrize(("mistake", "match"), BOOTSTRAP_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_bootstrap_ci_rejects_typical_mistakes(mistake: str, match: str, seed: int) -> None:
    message = rejects(unit14.bootstrap_ci, bootstrap_mistake(mistake), match=match, seed=seed)
    assert f"(data seed {seed})" in message or "library's own" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), BOOTSTRAP_MISTAKES)
def test_bootstrap_ci_rejects_typical_mistakes_on_every_seed(mistake: str, match: str) -> None:
    for seed in range(50):
        rejects(unit14.bootstrap_ci, bootstrap_mistake(mistake), match=match, seed=seed)


def test_bootstrap_ci_rejects_quantiles_hard_coded_for_95_percent() -> None:
    # The second call uses another level; seed 0 picks one of 0.8, 0.9, 0.99.
    rejects(
        unit14.bootstrap_ci,
        bootstrap_variant("hard-coded"),
        match=r"level=0\.(8|9|99).*2.5% and 97.5% quantiles, right only for level = 0.95",
    )


def test_bootstrap_ci_rejects_other_random_streams() -> None:
    def numpy_rng(correct, n_boot, level, seed):
        import numpy as np

        rng = np.random.default_rng(seed)
        idx = torch.from_numpy(rng.integers(0, len(correct), (n_boot, len(correct))))
        accs = correct.float()[idx].mean(dim=1)
        return tuple(torch.quantile(accs, torch.tensor([(1 - level) / 2, (1 + level) / 2])).tolist())

    rejects(
        unit14.bootstrap_ci,
        numpy_rng,
        match=r"expected \(lower, upper\) = .*Follow the convention: g = torch.Generator",
    )


# --- ex02: paired comparison ----------------------------------------------------------------------


def two_sided(k: int, m: int) -> float:
    """The exact two-sided p-value of k successes in m fair coin flips, by hand (1.0 when m = 0)."""
    tail = sum(math.comb(m, i) for i in range(min(k, m - k) + 1)) / 2**m
    return min(1.0, 2 * tail)


def comparison_variant(mistake: str = "none"):
    """A learner's paired_comparison with one typical mistake switched on."""

    def paired_comparison(correct_a, correct_b, n_boot, level, seed):
        a, b = correct_a.float(), correct_b.float()
        if mistake == "swapped":
            a, b = b, a
            correct_a, correct_b = correct_b, correct_a
        n = len(a)
        g = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, n, (n_boot, n), generator=g)
        idx_b = torch.randint(0, n, (n_boot, n), generator=g) if mistake == "unpaired" else idx
        diffs = a[idx].mean(1) - b[idx_b].mean(1)
        alpha = 1 - level
        lower, upper = torch.quantile(diffs, torch.tensor([alpha / 2, 1 - alpha / 2])).tolist()
        only_a, only_b = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
        m = only_a + only_b
        if mistake == "totals":
            right_a, right_b = int(correct_a.sum()), int(correct_b.sum())
            p = two_sided(right_a, right_a + right_b)
        elif mistake == "all examples":
            p = two_sided(only_a, n)
        elif mistake == "library mcnemar":
            from dlfund import evaluation as ev

            p = ev.mcnemar(correct_a, correct_b).p_value
        elif mistake == "scipy binomtest":
            p = binomtest(only_a, m, 0.5).pvalue if m else 1.0
        elif mistake == "strict tail":
            p = min(1.0, 2 * sum(math.comb(m, i) for i in range(min(only_a, only_b))) / 2**m)
        elif mistake == "tail of b":  # the tail up to b, whichever of b and c is smaller
            p = min(1.0, 2 * sum(math.comb(m, i) for i in range(only_a + 1)) / 2**m)
        elif mistake == "no cap":
            p = 2 * sum(math.comb(m, i) for i in range(min(only_a, only_b) + 1)) / 2**m
        else:
            p = two_sided(only_a, m)
        difference = (a.mean() - b.mean()).item()
        if mistake == "sign of difference":
            better = "A" if difference > 0 else "B"
        elif mistake == "decided by p":
            better = ("A" if difference > 0 else "B") if p < 1 - level else "neither"
        elif mistake == "reversed decision":
            better = "B" if lower > 0 else "A" if upper < 0 else "neither"
        else:
            better = "A" if lower > 0 else "B" if upper < 0 else "neither"
        result: dict[str, Any] = {
            "difference": difference,
            "lower": lower,
            "upper": upper,
            "p_value": p,
            "better": better,
        }
        if mistake == "missing key":
            del result["p_value"]
        return result

    return paired_comparison


@pytest.mark.parametrize("seed", [0, 1])
def test_paired_comparison_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit14.paired_comparison(solution(14, "ex02-paired-comparison", "paired_comparison"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ paired comparison")


def test_paired_comparison_accepts_the_reference_variant() -> None:
    unit14.paired_comparison(comparison_variant(), seed=5)


def test_paired_comparison_rejects_stub() -> None:
    rejects(unit14.paired_comparison, stub, match=r"paired_comparison\(correct_a, correct_b .*is not implemented yet")


def library_paired(correct_a, correct_b, n_boot, level, seed):
    from dlfund import evaluation as ev

    ref = ev.paired_bootstrap(correct_a, correct_b, n_boot=n_boot, level=level, seed=seed)
    better = "A" if ref.lower > 0 else "B" if ref.upper < 0 else "neither"
    p = ev.mcnemar(correct_a, correct_b).p_value
    return {"difference": ref.estimate, "lower": ref.lower, "upper": ref.upper, "p_value": p, "better": better}


def comparison_mistake(mistake: str):
    return library_paired if mistake == "library" else comparison_variant(mistake)


PAIRED_MISTAKES = [
    ("swapped", r"the sign is swapped; the difference is accuracy\(A\) - accuracy\(B\)"),
    ("unpaired", r"as wide as the paired one; the two models were resampled independently"),
    ("totals", r"compares the two totals of correct answers.*only the discordant pairs"),
    ("all examples", r"counts b out of all N examples.*test b out of b \+ c"),
    ("sign of difference", r"expected better = 'neither', found '(A|B)': the interval .* contains 0"),
    ("reversed decision", r"the decision is reversed"),
    ("missing key", r"expected exactly the keys .*missing \['p_value'\]"),
    ("decided by p", r"that follows the p-value .*the interval .* and the p-value disagree"),
    ("library mcnemar", r"this is the library's own dlfund.evaluation.mcnemar: write yours"),
    ("library", r"this is the library's own dlfund.evaluation.paired_bootstrap: write yours"),
    ("scipy binomtest", r"this is the library's own scipy.stats.binomtest: write yours"),
    ("strict tail", r"the tail leaves out the split that was observed"),
    ("tail of b", r"sums the probabilities up to the larger of b and c"),
    ("no cap", r"p_value must be a probability in \[0, 1\], found .*a probability stops at 1"),
]


@pytest.mark.parametrize(("mistake", "match"), PAIRED_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_paired_comparison_rejects_typical_mistakes(mistake: str, match: str, seed: int) -> None:
    message = rejects(unit14.paired_comparison, comparison_mistake(mistake), match=match, seed=seed)
    assert f"(data seed {seed})" in message or "library's own" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), PAIRED_MISTAKES)
def test_paired_comparison_rejects_typical_mistakes_on_every_seed(mistake: str, match: str) -> None:
    for seed in range(50):
        rejects(unit14.paired_comparison, comparison_mistake(mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_solutions_pass_on_every_seed() -> None:
    ci = solution(14, "ex01-bootstrap-ci", "bootstrap_ci")
    paired = solution(14, "ex02-paired-comparison", "paired_comparison")
    for seed in range(200):
        unit14.bootstrap_ci(ci, seed=seed)
        unit14.paired_comparison(paired, seed=seed)


def test_paired_comparison_rejects_chi_square_and_wrong_types() -> None:

    def chi_square(correct_a, correct_b, n_boot, level, seed):
        from scipy.stats import chi2

        result = comparison_variant()(correct_a, correct_b, n_boot, level, seed)
        b, c = int((correct_a & ~correct_b).sum()), int((~correct_a & correct_b).sum())
        return {**result, "p_value": float(chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1))}

    rejects(unit14.paired_comparison, chi_square, match=r"chi-square approximation; the exercise asks for the exact")
    rejects(unit14.paired_comparison, lambda *args: (0.1, 0.0, 0.2), match=r"expected a dict with keys")
    rejects(
        unit14.paired_comparison,
        lambda *args: {**comparison_variant()(*args), "better": "model A"},
        match=r"better should be one of",
    )


# --- ex03: the paired permutation test ------------------------------------------------------------


def permutation_variant(mistake: str = "none"):
    """A learner's permutation_test with one typical mistake switched on."""

    def permutation_test(scores_a, scores_b, n_perm, seed, alternative="two-sided"):
        a, b = scores_a.double(), scores_b.double()
        n = len(a)
        g = None if mistake == "unseeded" else torch.Generator().manual_seed(seed)
        if mistake == "pooled":  # the unpaired test: pool the 2N scores, split them at random
            pooled = torch.cat([a, b])
            order = torch.rand(n_perm, 2 * n, generator=g).argsort(dim=1)
            flipped = pooled[order][:, :n].mean(dim=1) - pooled[order][:, n:].mean(dim=1)
        elif mistake in ("shuffle one", "shuffle both"):  # reorder within a model: the means never change
            order = torch.rand(n_perm, n, generator=g).argsort(dim=1)
            other = b[torch.rand(n_perm, n, generator=g).argsort(dim=1)] if mistake == "shuffle both" else b
            flipped = a[order].mean(dim=1) - other.mean(dim=-1)
        else:
            signs = torch.randint(0, 2, (n_perm, n), generator=g).double() * 2 - 1
            flipped = (signs * (a - b)).mean(dim=1)
        observed = a.mean() - b.mean()
        asked = {"one-sided": "greater", "ignores alternative": "two-sided"}.get(mistake, alternative)
        if mistake == "other side":
            asked = {"greater": "less", "less": "greater"}.get(alternative, alternative)
        if asked == "two-sided":
            extreme = flipped.abs() > observed.abs() if mistake == "strict" else flipped.abs() >= observed.abs()
        elif asked == "greater":
            extreme = flipped > observed if mistake == "strict" else flipped >= observed
        else:
            extreme = flipped < observed if mistake == "strict" else flipped <= observed
        count = int(extreme.sum())
        p = count / n_perm if mistake == "no +1" else (1 + count) / (n_perm + 1)
        difference = {"swapped": -observed, "sum": observed * n}.get(mistake, observed)
        return float(difference), float(p)

    return permutation_test


def library_permutation(scores_a, scores_b, n_perm, seed, alternative="two-sided"):
    import numpy as np
    from scipy.stats import permutation_test

    result = permutation_test(
        (scores_a.numpy(), scores_b.numpy()),
        lambda x, y: np.mean(x - y),
        permutation_type="samples",
        n_resamples=n_perm,
        alternative=alternative,
        rng=np.random.default_rng(seed),
    )
    return float(scores_a.mean() - scores_b.mean()), float(result.pvalue)


@pytest.mark.parametrize("seed", [0, 1])
def test_permutation_test_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit14.permutation_test(solution(14, "ex03-permutation-test", "permutation_test"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ permutation test")


def test_permutation_test_accepts_the_reference_variant_and_a_loop() -> None:
    unit14.permutation_test(permutation_variant(), seed=7)

    def one_flip_at_a_time(scores_a, scores_b, n_perm, seed, alternative="two-sided"):
        d = (scores_a - scores_b).tolist()
        g = torch.Generator().manual_seed(seed)
        observed = sum(d) / len(d)
        count = 0
        for _ in range(n_perm):
            signs = torch.randint(0, 2, (len(d),), generator=g).tolist()
            t = sum(x if s else -x for x, s in zip(d, signs, strict=True)) / len(d)
            count += {"two-sided": abs(t) >= abs(observed), "greater": t >= observed, "less": t <= observed}[
                alternative
            ]
        return observed, (1 + count) / (n_perm + 1)

    unit14.permutation_test(one_flip_at_a_time, seed=8)


def test_permutation_test_refuses_scipy() -> None:
    """scipy's permutation_test computes what the exercise asks for (up to its two-sided convention): calling it
    is not writing the test. Not in the seed sweep: scipy runs to the end under the check's watch, slowly."""
    rejects(
        unit14.permutation_test, library_permutation, match=r"this is the library's own scipy.stats.permutation_test"
    )


def test_permutation_test_rejects_stub() -> None:
    rejects(unit14.permutation_test, stub, match=r"permutation_test\(scores_a, scores_b .*is not implemented yet")


PERMUTATION_MISTAKES = [
    ("pooled", r"an unpaired test: the 2N scores were pooled .*flip the\s+sign of its difference"),
    ("shuffle one", r"every rearranged statistic equals the observed one: reordering one model's scores"),
    ("shuffle both", r"every rearranged statistic equals the observed one"),
    ("one-sided", r"that is a one-sided p-value .*count the flips with \|T\*\| ≥ \|T\|"),
    ("ignores alternative", r"that is the two-sided p-value; a one-sided alternative asks about one direction"),
    ("other side", r"that counts the wrong tail"),
    ("strict", r"strictly more extreme than the observed statistic \(>\); those exactly as\s+extreme count too"),
    ("no +1", r"the p-value must lie in \(0, 1\], found 0: a Monte Carlo p-value is never 0"),
    ("swapped", r"the sign is swapped; the difference is mean\(scores_a\) - mean\(scores_b\)"),
    ("sum", r"that is the sum of the differences; return their mean"),
    ("unseeded", r"three calls with the same seed gave different p-values .*torch.Generator\(\).manual_seed\(seed\)"),
]


@pytest.mark.parametrize(("mistake", "match"), PERMUTATION_MISTAKES)
@pytest.mark.parametrize("seed", range(2))
def test_permutation_test_rejects_typical_mistakes(mistake: str, match: str, seed: int) -> None:
    message = rejects(unit14.permutation_test, permutation_variant(mistake), match=match, seed=seed)
    assert f"(data seed {seed})" in message or "library's own" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), PERMUTATION_MISTAKES)
def test_permutation_test_rejects_typical_mistakes_on_every_seed(mistake: str, match: str) -> None:
    for seed in range(50):
        rejects(unit14.permutation_test, permutation_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_permutation_solution_passes_on_every_seed() -> None:
    fn = solution(14, "ex03-permutation-test", "permutation_test")
    for seed in range(200):
        unit14.permutation_test(fn, seed=seed)


def test_permutation_test_rejects_wrong_return_types() -> None:
    rejects(unit14.permutation_test, lambda *args, **kwargs: 0.5, match=r"expected a pair \(difference, p_value\)")
    rejects(
        unit14.permutation_test,
        lambda *args, **kwargs: {"difference": 0.1, "p_value": 0.5},
        match=r"expected a pair \(difference, p_value\), found dict",
    )
    rejects(unit14.permutation_test, lambda *args, **kwargs: (0.1, None), match=r"expected two numbers")
