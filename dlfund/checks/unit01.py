"""Checks for unit 1 (the perceptron): early stopping, random initialisation, the learning rate, the
multiclass perceptron.

Each check builds fresh random data (a new seed on every call, printed in failure messages so a
failure can be replayed with ``seed=...``), runs the reference from :mod:`dlfund.models.perceptron`
beside the learner's function, and says precisely what differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.models.perceptron import Perceptron

__all__ = ["early_stopping", "random_init", "learning_rate", "multiclass_perceptron"]

Tensor = torch.Tensor
State = tuple[Tensor, Tensor]


# ---------------------------------------------------------------------------------------------
# fresh data


def _blobs(gen: torch.Generator, n: int, d: int, separation: float) -> tuple[Tensor, Tensor]:
    """``n`` points in ``d`` dimensions from two overlapping Gaussian classes (labels 0/1), off-centre
    so that the bias matters. ``separation`` is the distance between the class means in units of
    the class standard deviation: around 2 they overlap, so the data are not linearly separable."""
    y = torch.randint(0, 2, (n,), generator=gen)
    direction = torch.randn(d, generator=gen)
    direction /= direction.norm()
    centre = 2.0 * torch.randn(d, generator=gen)
    sign = (2 * y - 1).float()[:, None]
    X = torch.randn(n, d, generator=gen) + centre + 0.5 * separation * sign * direction
    return X, y


def _state(model: Perceptron) -> State:
    return model.weight.detach().clone(), model.bias.detach().clone()


def _same(a: State, b: State) -> bool:
    return all(x.shape == y.shape and torch.allclose(x, y, rtol=1e-5, atol=1e-6) for x, y in zip(a, b))


def _val_mistakes(model: Perceptron, X: Tensor, y: Tensor) -> int:
    return int((model.predict(X) != y).sum())


# ---------------------------------------------------------------------------------------------
# ex01: early stopping


def _stop_epoch(val: list[int], patience: int, max_epochs: int, *, ties_improve: bool = False) -> int | None:
    """The last epoch (1-based) a patience rule runs on the validation curve ``val``; ``None`` when the
    curve ends before the rule decides."""
    best_epoch = 1
    for epoch in range(2, min(len(val), max_epochs) + 1):
        better = val[epoch - 1] <= val[best_epoch - 1] if ties_improve else val[epoch - 1] < val[best_epoch - 1]
        if better:
            best_epoch = epoch
        elif epoch - best_epoch >= patience:
            return epoch
    return max_epochs if len(val) >= max_epochs else None


def _diagnose_stop(val: list[int], patience: int, max_epochs: int) -> str:
    """Name the stopping rule the learner's run is consistent with, judged on its own validation curve."""
    n = len(val)
    if patience > 1 and n == _stop_epoch(val, patience - 1, max_epochs):
        return "; it stops one epoch too early: off by one in the patience test?"
    if n == _stop_epoch(val, patience + 1, max_epochs):
        return "; it runs one epoch too many before stopping: off by one in the patience test?"
    if n == _stop_epoch(val, patience, max_epochs, ties_improve=True):
        return (
            "; it counts an epoch that only equals the best validation mistakes as an improvement: "
            "count only strict improvements (<)"
        )
    return ""


def _rules(patience: int, must_stop: bool) -> list[dict[str, Any]]:
    """The right stopping rule first, then (if ``must_stop``) the typical wrong ones to tell apart."""
    rules: list[dict[str, Any]] = [{"patience": patience}]
    if must_stop:
        rules += [{"patience": patience + 1}, {"patience": patience, "ties_improve": True}]
        if patience > 1:
            rules.append({"patience": patience - 1})
    return rules


def _early_stopping_case(gen: torch.Generator, max_epochs: int, patience: int, *, must_stop: bool):
    """Fresh data on which early stopping is informative: a best epoch whose weights differ from the
    last epoch's and, if ``must_stop``, a run on which the right rule, the off-by-one rules and the
    rule that counts ties as improvements all stop at different epochs before ``max_epochs`` (so each
    mistake shows and can be named). Also returns the weights after every epoch (index 0: before
    training): every stopping rule follows this same run up to where it stops."""
    rules = _rules(patience, must_stop)
    for _ in range(500):
        d = int(torch.randint(3, 7, (), generator=gen))
        X, y = _blobs(gen, 120, d, separation=float(torch.empty(()).uniform_(1.5, 3.0, generator=gen)))
        data = (X[:80], y[:80], X[80:], y[80:])
        model = Perceptron(d)
        states, val = [_state(model)], []
        stops: list[int | None] = [None]
        while len(val) < max_epochs and None in stops:  # train until every rule has decided
            model.train_epoch(data[0], data[1])
            states.append(_state(model))
            val.append(_val_mistakes(model, data[2], data[3]))
            stops = [_stop_epoch(val, max_epochs=max_epochs, **rule) for rule in rules]
        stop = stops[0]
        if stop is None or None in stops:
            continue
        best = 1 + min(range(stop), key=lambda i: (val[i], i))
        informative = best >= 2 and not _same(states[best], states[stop])
        if must_stop:
            informative = informative and len(set(stops)) == len(stops) and max(stops) < max_epochs  # type: ignore[type-var]
        if informative:
            ref = {"val_mistakes": val[:stop], "best_epoch": best, "stopped_epoch": stop}
            return data, ref, states
    raise RuntimeError("could not build an informative early-stopping case; please report this")  # pragma: no cover


def early_stopping(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``train_with_early_stopping(model, X_train, y_train, X_val, y_val, *, max_epochs, patience)``.

    Expected: it trains ``model`` one epoch at a time, counts the validation mistakes after each
    epoch, stops once ``patience`` epochs in a row brought no strict improvement, restores the
    weights of the best epoch and returns ``{"val_mistakes": [...], "best_epoch": b, "stopped_epoch": s}``
    (epochs counted from 1).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    cases = [(30, 3, True), (30, 2, True), (8, 8, False)]  # (max_epochs, patience, must stop early)
    for max_epochs, patience, must_stop in cases:
        data, ref, states = _early_stopping_case(gen, max_epochs, patience, must_stop=must_stop)
        call = (
            f"train_with_early_stopping(model, X_train, y_train, X_val, y_val, max_epochs={max_epochs}, "
            f"patience={patience})"
        )
        model = Perceptron(data[0].shape[1])
        out = call_learner(fn, model, *data, max_epochs=max_epochs, patience=patience, what=call)
        _compare_early_stopping(out, model, ref, states, max_epochs, patience, f"{call} {where}")
    passed(
        f"early stopping: stopping epoch, best epoch, validation mistakes and restored weights match "
        f"the reference on {len(cases)} fresh data sets"
    )


def _compare_early_stopping(
    out: Any, model: Perceptron, ref: dict[str, Any], states: list[State], max_epochs: int, patience: int, call: str
) -> None:
    keys = ("val_mistakes", "best_epoch", "stopped_epoch")
    expect(isinstance(out, dict), f"{call}: expected a dict with keys {keys}, found {type(out).__name__}")
    missing = [k for k in keys if k not in out]
    expect(not missing, f"{call}: the returned dict lacks {missing}; expected keys {keys}")
    val = out["val_mistakes"]
    try:
        val = [int(v) for v in val]
    except (TypeError, ValueError):
        raise CheckFailed(
            f"{call}: val_mistakes should be a list of ints (one per epoch run), found {type(val).__name__}"
        ) from None
    exp_val, best, stop = ref["val_mistakes"], ref["best_epoch"], ref["stopped_epoch"]
    common = min(len(val), len(exp_val))
    for epoch in range(1, common + 1):
        expect(
            val[epoch - 1] == exp_val[epoch - 1],
            f"{call}: validation mistakes after epoch {epoch}: expected {exp_val[epoch - 1]}, found "
            f"{val[epoch - 1]} (train one epoch with model.train_epoch, then count "
            f"model.predict(X_val) != y_val)",
        )
    if len(val) != len(exp_val):
        rule = (
            f"the best epoch was {best} and patience is {patience}, so training stops at epoch {stop}"
            if stop < max_epochs
            else f"no stop was due before max_epochs={max_epochs}"
        )
        raise CheckFailed(
            f"{call}: ran {len(val)} epochs, expected {stop} ({rule}){_diagnose_stop(val, patience, max_epochs)}"
        )
    for key in ("best_epoch", "stopped_epoch"):
        value = out[key]
        ok = isinstance(value, int) and not isinstance(value, bool)
        if isinstance(value, torch.Tensor):
            ok = value.numel() == 1 and not value.dtype.is_floating_point and value.dtype != torch.bool
        expect(
            ok,
            f"{call}: {key} should be an int (an epoch counted from 1), found {value!r} ({type(value).__name__})"
            + (": set it when the validation mistakes improve, starting from epoch 1" if value is None else ""),
        )
    expect(
        int(out["best_epoch"]) == best,
        f"{call}: best_epoch: expected {best} (the first epoch with the fewest validation mistakes, "
        f"counted from 1), found {out['best_epoch']}",
    )
    expect(
        int(out["stopped_epoch"]) == stop,
        f"{call}: stopped_epoch: expected {stop} (the number of epochs run), found {out['stopped_epoch']}",
    )
    held = _state(model)
    if not _same(held, states[best]):
        matches = [e for e, s in enumerate(states) if _same(held, s)]
        if matches and matches[-1] == stop:
            found = (
                f"the weights of the last epoch ({stop}): keep a copy (.clone()) of the weights when "
                "validation improves and copy it back into the model before returning"
            )
        elif matches and matches[-1] == 0:
            found = "its initial weights: train and restore the model you were given, not a new one"
        elif matches:
            found = f"the weights after epoch {matches[-1]}"
        else:
            found = (
                "weights that match no epoch (a saved copy that was not cloned changes with the model: use .clone())"
            )
        raise CheckFailed(
            f"{call}: after returning, the model should hold the weights of the best epoch ({best}); it holds {found}"
        )


# ---------------------------------------------------------------------------------------------
# ex02: random initialisation


def _init_reference_predictions(
    init_fn: Callable[..., Any],
    X_train: Tensor,
    y_train: Tensor,
    X_test: Tensor,
    lrs: Sequence[float],
    init: str,
    seed: int,
    epochs: int,
    shared_generator: bool = False,
) -> Tensor:
    """The test predictions per learning rate, using the learner's (already checked) ``init_fn``."""
    shared = torch.Generator().manual_seed(seed)
    rows = []
    for lr in lrs:
        gen = shared if shared_generator else torch.Generator().manual_seed(seed)
        weight, bias = init_fn(X_train.shape[1], init, generator=gen)
        model = Perceptron(X_train.shape[1])
        model.weight.copy_(weight)
        model.bias.copy_(bias)
        model.fit(X_train, y_train, epochs, lr, stop_when_converged=False)
        rows.append(model.predict(X_test))
    return torch.stack(rows)


def _check_init_output(out: Any, d: int, call: str) -> State:
    expect(
        isinstance(out, tuple) and len(out) == 2,
        f"{call}: expected a tuple (weight, bias), found {type(out).__name__}"
        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
    )
    weight, bias = out
    for name, value, shape in (("weight", weight, (d,)), ("bias", bias, ())):
        expect(isinstance(value, torch.Tensor), f"{call}: {name} should be a tensor, found {type(value).__name__}")
        expect(tuple(value.shape) == shape, f"{call}: {name} should have shape {shape}, found {tuple(value.shape)}")
        expect(value.dtype == torch.float32, f"{call}: {name} should be float32, found {value.dtype}")
    expect(float(bias) == 0.0, f"{call}: the bias should start at 0, found {float(bias):.4g}")
    return weight, bias


def random_init(
    init_weights: Callable[..., Any], predictions_per_learning_rate: Callable[..., Any], *, seed: int | None = None
) -> None:
    """Check ``init_weights(num_features, init, *, generator=None, scale=0.01) -> (weight (D,), bias ())``
    and ``predictions_per_learning_rate(X_train, y_train, X_test, lrs, *, init, seed, epochs) -> (len(lrs), N)``.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    d = 4000  # many weights, so their mean and standard deviation are measured precisely
    s1, s2 = (int(v) for v in torch.randint(0, 2**31 - 1, (2,), generator=gen))

    # zeros
    call = f"init_weights({d}, 'zeros')"
    weight, _ = _check_init_output(call_learner(init_weights, d, "zeros", what=call), d, call)
    expect(bool(torch.all(weight == 0)), f"{call}: every weight should be 0, found {int((weight != 0).sum())} non-zero")

    # random: uses the generator, reproducible, independent of the global RNG, N(0, scale^2)
    global_state = torch.random.get_rng_state()
    try:
        outs = []
        for seed_, global_seed in ((s1, 1), (s1, 2), (s2, 1)):
            torch.manual_seed(global_seed)  # a different global RNG must not matter
            g = torch.Generator().manual_seed(seed_)
            before = g.get_state()
            call = f"init_weights({d}, 'random', generator=torch.Generator().manual_seed({seed_}))"
            out = _check_init_output(call_learner(init_weights, d, "random", generator=g, what=call), d, call)
            expect(
                not torch.equal(before, g.get_state()),
                f"{call}: the generator was not used (its state did not change): "
                "draw the weights with torch.randn(..., generator=generator)",
            )
            outs.append(out[0])
    finally:
        torch.random.set_rng_state(global_state)
    call = "init_weights(D, 'random', generator=...)"
    expect(
        torch.equal(outs[0], outs[1]),
        f"{call}: two generators seeded alike ({s1}) gave different weights: the draw must come from the "
        "generator alone (pass generator=generator to every random call), not from the global RNG",
    )
    expect(
        not torch.equal(outs[0], outs[2]),
        f"{call}: generators seeded {s1} and {s2} gave the same weights: draw them with the generator",
    )
    expect(bool(torch.all(outs[0] != 0)), f"{call}: random weights should all be non-zero draws from a normal")
    for scale in (0.01, 0.5):
        call = f"init_weights({d}, 'random', generator=..., scale={scale})"
        w, _ = _check_init_output(
            call_learner(
                init_weights, d, "random", generator=torch.Generator().manual_seed(s1), scale=scale, what=call
            ),
            d,
            call,
        )
        std, mean = float(w.std()), float(w.mean())
        expect(
            abs(std / scale - 1) < 0.1,
            f"{call}: the weights should have standard deviation {scale} (scale × standard normal draws), "
            f"found {std:.4g}",
        )
        expect(abs(mean) < 5 * scale / d**0.5, f"{call}: the weights should have mean 0, found {mean:.4g}")

    # predictions per learning rate
    lrs = (0.0001, 0.01, 1.0, 100.0)
    for _ in range(200):
        X, y = _blobs(gen, 90, 3, separation=2.0)
        X_train, y_train, X_test = X[:60], y[:60], X[60:]
        epochs = int(torch.randint(2, 5, (), generator=gen))
        init_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
        ref_random = _init_reference_predictions(
            init_weights, X_train, y_train, X_test, lrs, "random", init_seed, epochs
        )
        shared = _init_reference_predictions(
            init_weights, X_train, y_train, X_test, lrs, "random", init_seed, epochs, shared_generator=True
        )
        lr_ignored = _init_reference_predictions(
            init_weights, X_train, y_train, X_test, [1.0] * len(lrs), "random", init_seed, epochs
        )
        answers = [ref_random, shared, lr_ignored]
        if all(not torch.equal(a, b) for i, a in enumerate(answers) for b in answers[i + 1 :]):
            break
    else:  # pragma: no cover
        raise RuntimeError("could not build an informative random-init case; please report this")
    for init in ("zeros", "random"):
        call = (
            f"predictions_per_learning_rate(X_train, y_train, X_test, lrs={list(lrs)}, init={init!r}, "
            f"seed={init_seed}, epochs={epochs}) {where}"
        )
        expected = (
            ref_random
            if init == "random"
            else _init_reference_predictions(init_weights, X_train, y_train, X_test, lrs, init, init_seed, epochs)
        )
        out = call_learner(
            predictions_per_learning_rate,
            X_train,
            y_train,
            X_test,
            list(lrs),
            init=init,
            seed=init_seed,
            epochs=epochs,
            what=call,
        )
        expect(isinstance(out, torch.Tensor), f"{call}: expected a tensor, found {type(out).__name__}")
        expect(
            tuple(out.shape) == tuple(expected.shape),
            f"{call}: expected shape {tuple(expected.shape)} (one row of test predictions per learning rate), "
            f"found {tuple(out.shape)}",
        )
        expect(out.dtype == torch.int64, f"{call}: expected int64 labels 0/1 (from model.predict), found {out.dtype}")
        if torch.equal(out, expected):
            continue
        if init == "random" and torch.equal(out, shared):
            raise CheckFailed(
                f"{call}: the learning rates did not start from the same initial weights: seed a new "
                "torch.Generator().manual_seed(seed) for each learning rate, so lr is the only change"
            )
        if init == "random" and (torch.equal(out, lr_ignored) or all(torch.equal(out[0], r) for r in out[1:])):
            raise CheckFailed(
                f"{call}: every learning rate gave the same predictions; with random initial weights "
                "they should differ: is lr passed to the training (model.fit(..., lr) or train_epoch)?"
            )
        bad = [i for i in range(len(lrs)) if not torch.equal(out[i], expected[i])]
        i = bad[0]
        raise CheckFailed(
            f"{call}: the predictions for lr={lrs[i]} differ from the reference at "
            f"{int((out[i] != expected[i]).sum())} of {expected.shape[1]} test points (start each "
            f"learning rate from init_weights(D, init, generator=torch.Generator().manual_seed(seed)), "
            f"train {epochs} epochs with that lr, predict X_test)"
        )
    passed(
        "random init: zeros and seeded normal weights are right, and the predictions per learning rate match "
        "the reference for both initialisations"
    )


# ---------------------------------------------------------------------------------------------
# ex03: the learning rate


def _mistakes_reference(
    X: Tensor,
    y: Tensor,
    lrs: Sequence[float],
    epochs: int,
    seed: int,
    scale: float,
    *,
    init: str = "random",
    fresh_model: bool = True,
    shared_generator: bool = False,
) -> Tensor:
    shared = torch.Generator().manual_seed(seed)
    rows, model = [], None
    for lr in lrs:
        if fresh_model or model is None:
            gen = shared if shared_generator else torch.Generator().manual_seed(seed)
            model = (
                Perceptron(X.shape[1], init="random", generator=gen, scale=scale)
                if init == "random"
                else Perceptron(X.shape[1])
            )
        rows.append([model.train_epoch(X, y, lr) for _ in range(epochs)])
    return torch.tensor(rows, dtype=torch.int64)


def learning_rate(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``mistakes_per_epoch(X, y, lrs, *, epochs, seed, scale=0.01) -> (len(lrs), epochs) int64``."""
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    lrs = (0.0001, 0.001, 0.1, 10.0)
    for _ in range(200):
        X, y = _blobs(gen, 80, int(torch.randint(3, 8, (), generator=gen)), separation=2.0)
        epochs = int(torch.randint(5, 8, (), generator=gen))  # never len(lrs): a transposed answer shows
        init_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
        scale = 0.05
        expected = _mistakes_reference(X, y, lrs, epochs, init_seed, scale)
        wrong = {
            "zeros": _mistakes_reference(X, y, lrs, epochs, init_seed, scale, init="zeros"),
            "continued": _mistakes_reference(X, y, lrs, epochs, init_seed, scale, fresh_model=False),
            "shared": _mistakes_reference(X, y, lrs, epochs, init_seed, scale, shared_generator=True),
            "lr ignored": _mistakes_reference(X, y, [1.0] * len(lrs), epochs, init_seed, scale),
        }
        rows_differ = any(not torch.equal(expected[0], r) for r in expected[1:])
        answers = [expected, *wrong.values()]
        if rows_differ and all(not torch.equal(a, b) for i, a in enumerate(answers) for b in answers[i + 1 :]):
            break
    else:  # pragma: no cover
        raise RuntimeError("could not build an informative learning-rate case; please report this")
    call = f"mistakes_per_epoch(X, y, lrs={list(lrs)}, epochs={epochs}, seed={init_seed}, scale={scale}) {where}"
    out = call_learner(fn, X, y, list(lrs), epochs=epochs, seed=init_seed, scale=scale, what=call)
    expect(
        isinstance(out, torch.Tensor),
        f"{call}: expected a tensor of shape {tuple(expected.shape)}, "
        f"found {type(out).__name__} (build it with torch.tensor(rows))",
    )
    if tuple(out.shape) == tuple(expected.shape)[::-1]:
        raise CheckFailed(
            f"{call}: expected shape {tuple(expected.shape)} (one row per learning rate, one column "
            f"per epoch), found {tuple(out.shape)}: transposed?"
        )
    expect(
        tuple(out.shape) == tuple(expected.shape),
        f"{call}: expected shape {tuple(expected.shape)} (one row per learning rate, one column per epoch), "
        f"found {tuple(out.shape)}",
    )
    expect(out.dtype == torch.int64, f"{call}: expected dtype torch.int64 (counts of mistakes), found {out.dtype}")
    if torch.equal(out, expected):
        passed(f"learning rate: mistakes per epoch match the reference for {len(lrs)} learning rates on fresh data")
        return
    if torch.equal(out, wrong["lr ignored"]):
        raise CheckFailed(
            f"{call}: every learning rate gave the mistakes of lr=1 (expected first column "
            f"{expected[:, 0].tolist()}, found {out[:, 0].tolist()}): pass lr to train_epoch(X, y, lr)"
        )
    if torch.equal(out, wrong["zeros"]):
        raise CheckFailed(
            f"{call}: your counts match a perceptron that starts from zeros, where the learning rate "
            "changes nothing (ex02); start from random weights: Perceptron(D, init='random', "
            "generator=torch.Generator().manual_seed(seed), scale=scale)"
        )
    if torch.equal(out, wrong["continued"]):
        raise CheckFailed(
            f"{call}: each learning rate continued training the previous learning rate's model; "
            "create a fresh Perceptron for every learning rate"
        )
    if torch.equal(out, wrong["shared"]):
        raise CheckFailed(
            f"{call}: the learning rates did not start from the same initial weights; seed a new "
            "torch.Generator().manual_seed(seed) for each learning rate"
        )
    if all(torch.equal(out[0], r) for r in out[1:]):
        raise CheckFailed(
            f"{call}: every learning rate gave the same mistakes per epoch, expected them to differ "
            f"(expected first column {expected[:, 0].tolist()}): is lr passed to train_epoch?"
        )
    i, e = (int(v) for v in torch.nonzero(out != expected)[0])
    raise CheckFailed(
        f"{call}: mistakes for lr={lrs[i]} in epoch {e + 1}: expected {int(expected[i, e])}, found "
        f"{int(out[i, e])} (count the mistakes train_epoch returns in each epoch)"
    )


# ---------------------------------------------------------------------------------------------
# ex04: the multiclass perceptron


def _multiclass_reference(
    W: Tensor,
    b: Tensor,
    X: Tensor,
    y: Tensor,
    lr: float,
    *,
    true_row: bool = True,
    predicted_row: bool = True,
    sign: float = 1.0,
    bias: bool = True,
    batch: bool = False,
    pick: str = "max",
) -> tuple[Tensor, Tensor, int]:
    """One epoch of the multiclass perceptron written out in plain Python, one example at a time, and
    (with the keyword switches) the typical wrong versions the check names."""
    W, b = W.clone().double(), b.clone().double()
    start_W, start_b = W.clone(), b.clone()
    mistakes = 0
    for x_i, y_i in zip(X.double(), y.tolist()):
        scores = (start_W if batch else W) @ x_i + (start_b if batch else b)  # (C,)
        values = scores.tolist()
        best = max(values) if pick == "max" else min(values)
        predicted = values.index(best)  # ties: the first class, as torch.argmax
        if predicted == y_i:
            continue
        mistakes += 1
        if true_row:
            W[y_i] += sign * lr * x_i
            b[y_i] += sign * lr if bias else 0.0
        if predicted_row:
            W[predicted] -= sign * lr * x_i
            b[predicted] -= sign * lr if bias else 0.0
    return W.float(), b.float(), mistakes


_MULTICLASS_WRONG = {
    "true only": (
        {"predicted_row": False},
        "only the true class's row moved: also subtract lr·x from the row of the predicted class "
        "(and lr from its bias)",
    ),
    "predicted only": (
        {"true_row": False},
        "only the predicted class's row moved: also add lr·x to the row of the true class (and lr to its bias)",
    ),
    "sign": (
        {"sign": -1.0},
        "the signs are reversed: the true class's row should move towards x (+ lr·x) and the "
        "predicted class's row away from it (- lr·x)",
    ),
    "no bias": (
        {"bias": False},
        "the biases never changed: on a mistake add lr to b[true] and subtract it from b[pred]",
    ),
    "batch": (
        {"batch": True},
        "every prediction was made with the starting weights: the perceptron updates after every example, "
        "and the next prediction uses the updated W and b",
    ),
    "argmin": ({"pick": "min"}, "the prediction is the class with the largest score (argmax), not the smallest"),
}


def _multiclass_case(gen: torch.Generator, kind: str) -> tuple[Tensor, Tensor, Tensor, Tensor, float]:
    """(W0, b0, X, y, lr) with all sizes different, every class present and many mistakes in one epoch."""
    n, d, c = 33, 5, 4
    if kind == "zeros":
        W0, b0, lr = torch.zeros(c, d), torch.zeros(c), 1.0
        X = torch.randint(-3, 4, (n, d), generator=gen).float()
    else:
        W0 = torch.randint(-2, 3, (c, d), generator=gen).float()
        b0 = torch.randint(-2, 3, (c,), generator=gen).float()
        X = torch.randint(-3, 4, (n, d), generator=gen).float()
        lr = 0.5 if kind == "whole" else 0.25
    y = torch.randint(0, c, (n,), generator=gen)
    y[:c] = torch.randperm(c, generator=gen)
    return W0, b0, X, y, lr


def multiclass_perceptron(epoch_fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``multiclass_epoch(W, b, X, y, lr=1.0) -> (W, b, mistakes)``: one epoch of the multiclass
    perceptron with one weight row per class, ``W (C, D)``, ``b (C,)``.

    Expected: for each example in order, predict the class with the largest score ``W @ x + b`` (ties:
    the first such class); on a mistake add ``lr·x`` to the true class's row and subtract it from the
    predicted class's row (biases: ``±lr``); return updated copies and the number of mistakes (an int).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    kinds = ("zeros", "whole", "small lr")
    for kind in kinds:
        W0, b0, X, y, lr = _multiclass_case(gen, kind)
        c, d = W0.shape
        what = (
            f"multiclass_epoch(W, b, X, y, lr={lr}) with W {(c, d)}, b {(c,)}, X {tuple(X.shape)}, {c} classes, "
            f"{'zero' if kind == 'zeros' else 'whole-number'} starting weights {where}"
        )
        W_in, b_in, X_in, y_in = W0.clone(), b0.clone(), X.clone(), y.clone()
        out = call_learner(epoch_fn, W_in, b_in, X_in, y_in, lr=lr, what=what)
        expect(
            isinstance(out, (tuple, list)) and len(out) == 3,
            f"{what}: expected a tuple (W, b, mistakes), found {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
        )
        W, b, mistakes = out
        for name, value, shape, meaning in (("W", W, (c, d), "one row per class"), ("b", b, (c,), "one per class")):
            expect(isinstance(value, torch.Tensor), f"{what}: {name} should be a tensor, found {type(value).__name__}")
            if name == "W" and tuple(value.shape) == (d, c):
                raise CheckFailed(f"{what}: W should have shape {(c, d)} ({meaning}), found {(d, c)}: transposed?")
            expect(
                tuple(value.shape) == shape,
                f"{what}: {name} should have shape {shape} ({meaning}), found {tuple(value.shape)}",
            )
            expect(value.dtype == torch.float32, f"{what}: {name} should be float32, found {value.dtype}")
        expect(
            torch.equal(W_in, W0) and torch.equal(b_in, b0),
            f"{what}: the W and b you were given changed: start with W, b = W.clone(), b.clone() and update the "
            "copies, so the caller keeps its weights",
        )
        expect(torch.equal(X_in, X) and torch.equal(y_in, y), f"{what}: X or y changed; leave the data as it was")
        W_ref, b_ref, m_ref = _multiclass_reference(W0, b0, X, y, lr)
        if torch.allclose(W, W_ref, atol=1e-5) and torch.allclose(b, b_ref, atol=1e-5):
            ok = isinstance(mistakes, int) and not isinstance(mistakes, bool)
            if isinstance(mistakes, torch.Tensor):
                ok = mistakes.numel() == 1 and not mistakes.dtype.is_floating_point and mistakes.dtype != torch.bool
            expect(ok, f"{what}: mistakes should be an int (a count), found {mistakes!r} ({type(mistakes).__name__})")
            expect(
                int(mistakes) == m_ref,
                f"{what}: the weights are right, but mistakes should be {m_ref} (the examples whose predicted "
                f"class was wrong, counted before each update), found {int(mistakes)}",
            )
            continue
        variants = dict(_MULTICLASS_WRONG)
        if lr != 1.0:
            variants["lr"] = ({}, f"the weights match lr=1.0: the learning rate lr={lr} was ignored")
        for key, (switches, text) in variants.items():
            W_v, b_v, _ = _multiclass_reference(W0, b0, X, y, 1.0 if key == "lr" else lr, **switches)
            if torch.allclose(W, W_v, atol=1e-5) and torch.allclose(b, b_v, atol=1e-5):
                raise CheckFailed(f"{what}: {text}")
        row = int(
            torch.nonzero(~torch.isclose(W, W_ref, atol=1e-5).all(dim=1) | ~torch.isclose(b, b_ref, atol=1e-5))[0]
        )
        raise CheckFailed(
            f"{what}: the weights differ from one epoch of the multiclass perceptron (predict argmax of W @ x + b; "
            f"on a mistake W[true] += lr·x, W[pred] -= lr·x); first wrong row: class {row}, bias expected "
            f"{b_ref[row].item():.4g}, found {b[row].item():.4g}"
        )
    passed(
        f"multiclass perceptron: weights, biases and mistake counts match a plain-Python reference on "
        f"{len(kinds)} fresh data sets (zero and whole-number starting weights, three learning rates)"
    )
