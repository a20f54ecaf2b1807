"""The unit-01 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
from check_helpers import mistake_cases, rejects, rejects_named, solution, stub

from dlfund.checks import unit01
from dlfund.course import manifest
from dlfund.models.perceptron import Perceptron

UNIT = manifest.get_unit(1)
SEEDS = [0, 1]


# --- ex01: early stopping -----------------------------------------------------------------------


def early_stopping_variant(
    *,
    restore: bool = True,
    clone: bool = True,
    off_by_one: int = 0,
    ties_improve: bool = False,
    zero_based: bool = False,
):
    """A learner's train_with_early_stopping with one typical mistake switched on."""

    def train(model, X_train, y_train, X_val, y_val, *, max_epochs, patience):
        val, best_epoch, best = [], 0, None
        for epoch in range(1, max_epochs + 1):
            model.train_epoch(X_train, y_train)
            val.append(int((model.predict(X_val) != y_val).sum()))
            improved = best is None or (
                val[-1] <= val[best_epoch - 1] if ties_improve else val[-1] < val[best_epoch - 1]
            )
            if improved:
                best_epoch = epoch
                best = (model.weight.clone(), model.bias.clone()) if clone else (model.weight, model.bias)
            elif epoch - best_epoch >= patience + off_by_one:
                break
        if restore:
            model.weight.copy_(best[0])
            model.bias.copy_(best[1])
        return {
            "val_mistakes": val,
            "best_epoch": best_epoch - 1 if zero_based else best_epoch,
            "stopped_epoch": len(val),
        }

    return train


@pytest.mark.parametrize("seed", SEEDS)
def test_early_stopping_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit01.early_stopping(solution(1, "ex01-early-stopping", "train_with_early_stopping"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ early stopping")


def test_early_stopping_accepts_fresh_data_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    unit01.early_stopping(early_stopping_variant())
    assert "✓" in capsys.readouterr().out


def test_early_stopping_rejects_stub() -> None:
    rejects(unit01.early_stopping, stub, match="is not implemented yet.*hint: write this function")


@pytest.mark.parametrize("seed", SEEDS)
def test_early_stopping_rejects_weights_not_restored(seed: int) -> None:
    message = rejects(
        unit01.early_stopping,
        early_stopping_variant(restore=False),
        seed=seed,
        match="should hold the weights of the best epoch",
    )
    assert "holds the weights of the last epoch" in message and ".clone()" in message


def test_early_stopping_rejects_saved_weights_without_clone() -> None:
    rejects(unit01.early_stopping, early_stopping_variant(clone=False), match=r"last epoch \(\d+\).*clone")


@pytest.mark.parametrize("seed", SEEDS)
def test_early_stopping_rejects_off_by_one_patience(seed: int) -> None:
    rejects(
        unit01.early_stopping,
        early_stopping_variant(off_by_one=1),
        seed=seed,
        match=r"ran \d+ epochs, expected \d+ \(.*\); it runs one epoch too many before stopping: off by one",
    )
    rejects(
        unit01.early_stopping,
        early_stopping_variant(off_by_one=-1),
        seed=seed,
        match=r"ran \d+ epochs, expected \d+ \(.*\); it stops one epoch too early: off by one",
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_early_stopping_rejects_ties_as_improvements(seed: int) -> None:
    rejects(
        unit01.early_stopping,
        early_stopping_variant(ties_improve=True),
        seed=seed,
        match=r"ran \d+ epochs, expected \d+ .*only equals the best validation mistakes.*strict improvements",
    )


def test_early_stopping_rejects_zero_based_epochs() -> None:
    rejects(
        unit01.early_stopping,
        early_stopping_variant(zero_based=True),
        match=r"best_epoch: expected \d+.*counted from 1",
    )


def test_early_stopping_rejects_wrong_return_type() -> None:
    def returns_tuple(model, X_train, y_train, X_val, y_val, *, max_epochs, patience):
        return [], 1, 1

    rejects(unit01.early_stopping, returns_tuple, match="expected a dict with keys.*found tuple")


def test_early_stopping_rejects_a_new_model() -> None:
    solve = solution(1, "ex01-early-stopping", "train_with_early_stopping")

    def trains_a_copy(model, *args, **kwargs):
        return solve(Perceptron(model.num_features), *args, **kwargs)

    rejects(unit01.early_stopping, trains_a_copy, match="holds its initial weights")


# --- ex02: random initialisation ----------------------------------------------------------------


def init_variant(*, use_generator: bool = True, scaled: bool = True, random_bias: bool = False):
    def init_weights(num_features, init, *, generator=None, scale=0.01):
        if init == "zeros":
            return torch.zeros(num_features), torch.zeros(())
        draw = torch.randn(num_features, generator=generator if use_generator else None)
        bias = torch.randn((), generator=generator) if random_bias else torch.zeros(())
        return (scale if scaled else 1.0) * draw, bias

    return init_weights


def predictions_variant(init_weights, *, shared_generator: bool = False, ignore_lr: bool = False):
    def predictions_per_learning_rate(X_train, y_train, X_test, lrs, *, init, seed, epochs):
        gen = torch.Generator().manual_seed(seed)
        rows = []
        for lr in lrs:
            model = Perceptron(X_train.shape[1])
            weight, bias = init_weights(
                X_train.shape[1], init, generator=gen if shared_generator else torch.Generator().manual_seed(seed)
            )
            model.weight.copy_(weight)
            model.bias.copy_(bias)
            model.fit(X_train, y_train, epochs, 1.0 if ignore_lr else lr, stop_when_converged=False)
            rows.append(model.predict(X_test))
        return torch.stack(rows)

    return predictions_per_learning_rate


@pytest.mark.parametrize("seed", SEEDS)
def test_random_init_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    fns = solution(1, "ex02-random-init", "init_weights", "predictions_per_learning_rate")
    unit01.random_init(*fns, seed=seed)
    assert capsys.readouterr().out.startswith("✓ random init")


def test_random_init_rejects_stubs() -> None:
    init_weights = solution(1, "ex02-random-init", "init_weights")
    rejects(unit01.random_init, stub, stub, match=r"init_weights\(.*is not implemented yet")
    rejects(unit01.random_init, init_weights, stub, match=r"predictions_per_learning_rate\(.*is not implemented yet")


def test_random_init_rejects_ignored_generator() -> None:
    init = init_variant(use_generator=False)
    rejects(unit01.random_init, init, predictions_variant(init), match="the generator was not used")


def test_random_init_rejects_global_rng_after_using_generator() -> None:
    def init_weights(num_features, init, *, generator=None, scale=0.01):
        if init == "zeros":
            return torch.zeros(num_features), torch.zeros(())
        torch.randn(1, generator=generator)  # touches the generator, but draws from the global RNG
        return scale * torch.randn(num_features), torch.zeros(())

    rejects(
        unit01.random_init,
        init_weights,
        predictions_variant(init_weights),
        match="two generators seeded alike .* gave different weights",
    )


def test_random_init_rejects_missing_scale() -> None:
    init = init_variant(scaled=False)
    rejects(unit01.random_init, init, predictions_variant(init), match=r"standard deviation 0.01 .*found 1\.0")


def test_random_init_rejects_random_bias() -> None:
    init = init_variant(random_bias=True)
    rejects(unit01.random_init, init, predictions_variant(init), match="the bias should start at 0")


@pytest.mark.parametrize("seed", SEEDS)
def test_random_init_rejects_shared_generator_across_learning_rates(seed: int) -> None:
    init = init_variant()
    rejects(
        unit01.random_init,
        init,
        predictions_variant(init, shared_generator=True),
        seed=seed,
        match="did not start from the same initial weights",
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_random_init_rejects_ignored_learning_rate(seed: int) -> None:
    init = init_variant()
    rejects(
        unit01.random_init,
        init,
        predictions_variant(init, ignore_lr=True),
        seed=seed,
        match="every learning rate gave the same predictions.*is lr passed",
    )


def test_random_init_rejects_wrong_shape_and_dtype() -> None:
    init = init_variant()
    right = predictions_variant(init)
    rejects(
        unit01.random_init, init, lambda *a, **k: right(*a, **k).T, match=r"expected shape \(4, 30\).*found \(30, 4\)"
    )
    rejects(unit01.random_init, init, lambda *a, **k: right(*a, **k).float(), match="expected int64")


# --- ex03: the learning rate --------------------------------------------------------------------


def mistakes_variant(
    *,
    init: str = "random",
    fresh_model: bool = True,
    ignore_lr: bool = False,
    as_list: bool = False,
    transpose: bool = False,
):
    def mistakes_per_epoch(X, y, lrs, *, epochs, seed, scale=0.01):
        rows, model = [], None
        for lr in lrs:
            if fresh_model or model is None:
                model = (
                    Perceptron(X.shape[1], init="random", generator=torch.Generator().manual_seed(seed), scale=scale)
                    if init == "random"
                    else Perceptron(X.shape[1])
                )
            rows.append([model.train_epoch(X, y, 1.0 if ignore_lr else lr) for _ in range(epochs)])
        if as_list:
            return rows
        out = torch.tensor(rows)
        return out.T if transpose else out

    return mistakes_per_epoch


@pytest.mark.parametrize("seed", SEEDS)
def test_learning_rate_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit01.learning_rate(solution(1, "ex03-learning-rate", "mistakes_per_epoch"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ learning rate")


def test_learning_rate_rejects_stub() -> None:
    rejects(unit01.learning_rate, stub, match="is not implemented yet")


@pytest.mark.parametrize("seed", SEEDS)
def test_learning_rate_rejects_zero_init(seed: int) -> None:
    rejects(
        unit01.learning_rate,
        mistakes_variant(init="zeros"),
        seed=seed,
        match="starts from zeros, where the learning rate changes nothing",
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_learning_rate_rejects_continued_model(seed: int) -> None:
    rejects(
        unit01.learning_rate,
        mistakes_variant(fresh_model=False),
        seed=seed,
        match="continued training the previous learning rate's model",
    )


def test_learning_rate_rejects_ignored_lr() -> None:
    rejects(
        unit01.learning_rate,
        mistakes_variant(ignore_lr=True),
        match=r"every learning rate gave the mistakes of lr=1.*pass lr to train_epoch",
    )


def test_learning_rate_rejects_list_and_transposed() -> None:
    rejects(unit01.learning_rate, mistakes_variant(as_list=True), match="expected a tensor.*found list")
    rejects(unit01.learning_rate, mistakes_variant(transpose=True), match=r"one row per learning rate.*transposed\?")


def test_learning_rate_rejects_wrong_counts() -> None:
    right = mistakes_variant()
    rejects(
        unit01.learning_rate,
        lambda *a, **k: right(*a, **k).cumsum(dim=1),
        match=r"mistakes for lr=.* in epoch \d+: expected \d+, found \d+",
    )


# --- named typical mistakes, each rejected on every seed ----------------------------------------


# --- ex04: the multiclass perceptron ----------------------------------------------------------------


def multiclass_variant(
    *,
    clone: bool = True,
    true_row: bool = True,
    predicted_row: bool = True,
    sign: float = 1.0,
    bias: bool = True,
    batch: bool = False,
    ignore_lr: bool = False,
    argmin: bool = False,
    transpose: bool = False,
    count_all: bool = False,
):
    """A learner's multiclass_epoch with one typical mistake switched on."""

    def multiclass_epoch(W, b, X, y, lr=1.0):
        lr = 1.0 if ignore_lr else lr
        if clone:
            W, b = W.clone(), b.clone()
        W_start, b_start = W.clone(), b.clone()
        mistakes = 0
        for x_i, y_i in zip(X, y):
            scores = (W_start if batch else W) @ x_i + (b_start if batch else b)
            pred = int(scores.argmin() if argmin else scores.argmax())
            mistakes += 1 if count_all else int(pred != int(y_i))
            if pred == int(y_i):
                continue
            if true_row:
                W[y_i] += sign * lr * x_i
                b[y_i] += sign * lr if bias else 0.0
            if predicted_row:
                W[pred] -= sign * lr * x_i
                b[pred] -= sign * lr if bias else 0.0
        return (W.T if transpose else W), b, mistakes

    return multiclass_epoch


def test_multiclass_perceptron_accepts_fresh_data(capsys: pytest.CaptureFixture[str]) -> None:
    unit01.multiclass_perceptron(multiclass_variant())
    assert capsys.readouterr().out.startswith("✓ multiclass perceptron")


@pytest.mark.parametrize("seed", range(2))
def test_multiclass_perceptron_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit01.multiclass_perceptron(solution(1, "ex04-multiclass-perceptron", "multiclass_epoch"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ multiclass perceptron")


def test_multiclass_perceptron_rejects_stub_and_wrong_return() -> None:
    rejects(unit01.multiclass_perceptron, stub, match=r"multiclass_epoch\(W, b, X, y, lr=1.0\).*is not implemented yet")
    rejects(
        unit01.multiclass_perceptron,
        lambda W, b, X, y, lr=1.0: multiclass_variant()(W, b, X, y, lr)[:2],
        match=r"expected a tuple \(W, b, mistakes\), found tuple of length 2",
    )


def _none_best_epoch(model, X_train, y_train, X_val, y_val, *, max_epochs, patience):
    out = early_stopping_variant()(model, X_train, y_train, X_val, y_val, max_epochs=max_epochs, patience=patience)
    return {**out, "best_epoch": None}


def _float_init(num_features, init, *, generator=None, scale=0.01):
    w, b = init_variant()(num_features, init, generator=generator, scale=scale)
    return w.double(), b.double()


def _ignores_scale(num_features, init, *, generator=None, scale=0.01):
    return init_variant()(num_features, init, generator=generator)


_RIGHT_INIT = init_variant()
EARLY_STOPPING_MISTAKES = {
    "weights not restored": (early_stopping_variant(restore=False), r"should hold the weights of the best epoch"),
    "saved without clone": (early_stopping_variant(clone=False), r"best epoch|\.clone\(\)"),
    "patience off by one (late)": (early_stopping_variant(off_by_one=1), r"one epoch too many|off by one"),
    "patience off by one (early)": (early_stopping_variant(off_by_one=-1), r"one epoch too early|off by one"),
    "ties count as improvements": (early_stopping_variant(ties_improve=True), r"strict improvements"),
    "zero-based best epoch": (early_stopping_variant(zero_based=True), r"best_epoch: expected \d+"),
    "best_epoch left None": (_none_best_epoch, r"best_epoch should be an int.*found None"),
}
RANDOM_INIT_MISTAKES = {
    "global RNG instead of the generator": (
        (init_variant(use_generator=False), predictions_variant(init_variant(use_generator=False))),
        r"generator",
    ),
    "scale ignored (unit normal)": (
        (init_variant(scaled=False), predictions_variant(_RIGHT_INIT)),
        r"standard deviation",
    ),
    "scale argument ignored": ((_ignores_scale, predictions_variant(_RIGHT_INIT)), r"standard deviation 0.5"),
    "random bias": ((init_variant(random_bias=True), predictions_variant(_RIGHT_INIT)), r"bias should start at 0"),
    "upcast to float64": ((_float_init, predictions_variant(_RIGHT_INIT)), r"should be float32, found torch.float64"),
    "one generator shared across learning rates": (
        (_RIGHT_INIT, predictions_variant(_RIGHT_INIT, shared_generator=True)),
        r"same initial weights",
    ),
    "learning rate ignored": (
        (_RIGHT_INIT, predictions_variant(_RIGHT_INIT, ignore_lr=True)),
        r"every learning rate gave the same predictions|is lr passed",
    ),
}
LEARNING_RATE_MISTAKES = {
    "zero initialisation": (mistakes_variant(init="zeros"), r"starts from zeros"),
    "model continued across learning rates": (mistakes_variant(fresh_model=False), r"continued training"),
    "learning rate ignored": (mistakes_variant(ignore_lr=True), r"mistakes of lr=1|pass lr"),
    "list instead of tensor": (mistakes_variant(as_list=True), r"expected a tensor"),
    "transposed": (mistakes_variant(transpose=True), r"transposed"),
    "scale ignored": (
        lambda X, y, lrs, *, epochs, seed, scale=0.01: mistakes_variant()(X, y, lrs, epochs=epochs, seed=seed),
        r"mistakes for lr=|differ|same",
    ),
}
MULTICLASS_MISTAKES = {
    "only the true row updated": (multiclass_variant(predicted_row=False), r"only the true class's row moved"),
    "only the predicted row updated": (multiclass_variant(true_row=False), r"only the predicted class's row moved"),
    "signs reversed": (multiclass_variant(sign=-1.0), r"the signs are reversed"),
    "bias not updated": (multiclass_variant(bias=False), r"the biases never changed"),
    "one update per epoch": (multiclass_variant(batch=True), r"every prediction was made with the starting weights"),
    "learning rate ignored": (multiclass_variant(ignore_lr=True), r"the learning rate lr=0.5 was ignored"),
    "argmin": (multiclass_variant(argmin=True), r"largest score \(argmax\)"),
    "caller's weights changed": (multiclass_variant(clone=False), r"the W and b you were given changed.*clone"),
    "W transposed": (multiclass_variant(transpose=True), r"W should have shape \(4, 5\).*transposed"),
    "every example counted": (multiclass_variant(count_all=True), r"the weights are right, but mistakes should be"),
}
_CHECKS = {
    "early_stopping": (unit01.early_stopping, EARLY_STOPPING_MISTAKES),
    "random_init": (unit01.random_init, RANDOM_INIT_MISTAKES),
    "learning_rate": (unit01.learning_rate, LEARNING_RATE_MISTAKES),
    "multiclass_perceptron": (unit01.multiclass_perceptron, MULTICLASS_MISTAKES),
}
_CASES = mistake_cases(_CHECKS)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("check", "name"), _CASES)
def test_named_mistake_rejected(check: str, name: str, seed: int) -> None:
    rejects_named(_CHECKS, check, name, seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(100, 150))
@pytest.mark.parametrize(("check", "name"), _CASES)
def test_named_mistake_rejected_on_many_seeds(check: str, name: str, seed: int) -> None:
    rejects_named(_CHECKS, check, name, seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(200))
def test_solutions_pass_on_many_seeds(seed: int) -> None:
    unit01.early_stopping(solution(1, "ex01-early-stopping", "train_with_early_stopping"), seed=seed)
    unit01.random_init(*solution(1, "ex02-random-init", "init_weights", "predictions_per_learning_rate"), seed=seed)
    unit01.learning_rate(solution(1, "ex03-learning-rate", "mistakes_per_epoch"), seed=seed)
    unit01.multiclass_perceptron(solution(1, "ex04-multiclass-perceptron", "multiclass_epoch"), seed=seed)
