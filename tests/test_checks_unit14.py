"""The unit-14 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("mistake", "match"),
    [
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
        ("unseeded", r"two calls with the same seed gave different intervals.*torch.Generator\(\).manual_seed\(seed\)"),
        ("in place", r"changed `correct` in place"),
    ],
)
def test_bootstrap_ci_rejects_typical_mistakes(mistake: str, match: str) -> None:
    message = rejects(unit14.bootstrap_ci, bootstrap_variant(mistake), match=match)
    assert "(data seed 0)" in message


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
        if mistake == "totals":
            right_a, right_b = int(correct_a.sum()), int(correct_b.sum())
            p = binomtest(right_a, right_a + right_b, 0.5).pvalue
        elif mistake == "all examples":
            p = binomtest(only_a, n, 0.5).pvalue
        else:
            p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
        difference = (a.mean() - b.mean()).item()
        if mistake == "sign of difference":
            better = "A" if difference > 0 else "B"
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


@pytest.mark.parametrize(
    ("mistake", "match"),
    [
        ("swapped", r"the sign is swapped; the difference is accuracy\(A\) - accuracy\(B\)"),
        ("unpaired", r"as wide as the paired one; the two models were resampled independently"),
        ("totals", r"compares the two totals of correct answers.*only the discordant pairs"),
        ("all examples", r"counts b out of all N examples.*test b out of b \+ c"),
        ("sign of difference", r"expected better = 'neither', found '(A|B)': the interval .* contains 0"),
        ("reversed decision", r"the decision is reversed"),
        ("missing key", r"expected exactly the keys .*missing \['p_value'\]"),
    ],
)
def test_paired_comparison_rejects_typical_mistakes(mistake: str, match: str) -> None:
    message = rejects(unit14.paired_comparison, comparison_variant(mistake), match=match)
    assert "(data seed 0)" in message


def test_paired_comparison_rejects_chi_square_and_wrong_types() -> None:
    from dlfund import evaluation as ev

    def chi_square(correct_a, correct_b, n_boot, level, seed):
        result = comparison_variant()(correct_a, correct_b, n_boot, level, seed)
        return {**result, "p_value": ev.mcnemar(correct_a, correct_b, exact=False).p_value}

    rejects(unit14.paired_comparison, chi_square, match=r"chi-square approximation; the exercise asks for the exact")
    rejects(unit14.paired_comparison, lambda *args: (0.1, 0.0, 0.2), match=r"expected a dict with keys")
    rejects(
        unit14.paired_comparison,
        lambda *args: {**comparison_variant()(*args), "better": "model A"},
        match=r"better should be one of",
    )
