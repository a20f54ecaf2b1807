"""Checks for unit 3 (backpropagation): the backward of two engine operations, and standardisation.

Each check draws fresh random inputs (a new seed on every call, printed in failure messages so a
failure can be replayed with ``seed=...``), compares the learner's functions with a reference
(``torch.autograd`` and central differences for gradients), and names the typical mistakes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import torch

from dlfund.autograd import Value, numerical_grad
from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["backward_ops", "standardise", "custom_function"]

Tensor = torch.Tensor


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


# ---------------------------------------------------------------------------------------------
# ex01: backward of division and of the sigmoid

_ACCUMULATE = (
    "use +=, not =: a value used in several places (or twice, as in div(x, x)) must receive the sum "
    "of the contributions of all its uses (accumulate, don't overwrite)"
)


def _draw(rng: random.Random) -> float:
    """A number away from 0 (a safe denominator), of either sign."""
    return rng.choice((-1, 1)) * rng.uniform(0.5, 2.0)


def _expect_value(out: Any, call: str, inputs: tuple[Value, ...], op_hint: str) -> Value:
    expect(isinstance(out, Value), f"{call} should return a dlfund.autograd.Value, found {type(out).__name__}")
    missing = [i for i, v in enumerate(inputs) if not any(c is v for c in out.children)]
    expect(
        not missing,
        f"{call}: the result must record its inputs as children, or backward() never reaches "
        f"them: create it as {op_hint}",
    )
    return out


def _run_backward(out: Value, call: str) -> None:
    call_learner(out._backward, what=f"the _backward of {call}")


def _check_div_local(div: Callable[..., Any], rng: random.Random, where: str) -> None:
    x, y = _draw(rng), _draw(rng)
    a, b = Value(x, label="a"), Value(y, label="b")
    call = f"div(a, b) with a = {x:.4g}, b = {y:.4g} {where}"
    out = _expect_value(call_learner(div, a, b, what=call), call, (a, b), "Value(a.data / b.data, (a, b), '/')")
    expect(
        _close(out.data, x / y, 1e-12), f"{call}: the forward value should be a / b = {x / y:.6g}, found {out.data:.6g}"
    )

    # Earlier contributions already in a.grad, b.grad (from other uses), and an upstream gradient ≠ 1
    ga0, gb0, g = 0.5 + rng.random(), -(0.5 + rng.random()), rng.choice((-1, 1)) * rng.uniform(1.5, 3.0)
    a.grad, b.grad, out.grad = ga0, gb0, g
    _run_backward(out, call)
    da, db = a.grad - ga0, b.grad - gb0  # what this operation added
    want_da, want_db = g / y, -g * x / y**2
    setup = (
        f"{call}: with out.grad = {g:.4g}, and a.grad = {ga0:.4g}, b.grad = {gb0:.4g} already holding "
        "the contributions of other uses"
    )
    if a.grad == ga0 and b.grad == gb0:
        raise CheckFailed(
            f"{setup}, out._backward() changed neither a.grad nor b.grad: it must add "
            "∂out/∂a · out.grad to a.grad and ∂out/∂b · out.grad to b.grad "
            "(and the operation must set out._backward = _backward)"
        )
    for name, found, before, want in (("a", a.grad, ga0, want_da), ("b", b.grad, gb0, want_db)):
        if _close(found, want) and not _close(found, before + want):
            raise CheckFailed(
                f"{setup}, {name}.grad was overwritten: it now holds {found:.6g}, this operation's "
                f"contribution alone, and the earlier {before:.4g} is lost; {_ACCUMULATE}"
            )
    if _close(da, 1 / y) or _close(db, -x / y**2):
        raise CheckFailed(
            f"{setup}: the gradients did not include out.grad. Chain rule: "
            "∂L/∂a = ∂L/∂out · ∂out/∂a, so a.grad += out.grad / b.data (and likewise for b)"
        )
    if _close(da, want_db) and _close(db, want_da):
        raise CheckFailed(f"{setup}: a and b received each other's gradients: ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -a/b²")
    if not _close(da, want_da):
        raise CheckFailed(
            f"{setup}: a.grad should grow by out.grad · ∂(a/b)/∂a = out.grad / b = {want_da:.6g}, it grew by {da:.6g}"
        )
    if not _close(db, want_db):
        hint = {
            "sign": (-want_db, "the sign: ∂(a/b)/∂b = -a/b², negative where a/b > 0"),
            "a missing": (-g / y**2, "∂(a/b)/∂b = -a/b²: the factor a is missing"),
            "not squared": (-g * x / y, "∂(a/b)/∂b = -a/b²: b must be squared"),
        }
        named = next((text for value, text in hint.values() if _close(db, value)), "")
        raise CheckFailed(
            f"{setup}: b.grad should grow by out.grad · ∂(a/b)/∂b = -out.grad · a / b² = "
            f"{want_db:.6g}, it grew by {db:.6g}" + (f" ({named})" if named else "")
        )


def _check_sigmoid_local(sigmoid: Callable[..., Any], rng: random.Random, where: str) -> None:
    x = _draw(rng)
    a = Value(x, label="a")
    call = f"sigmoid(a) with a = {x:.4g} {where}"
    out = _expect_value(call_learner(sigmoid, a, what=call), call, (a,), "Value(s, (a,), 'σ')")
    s = 1 / (1 + math.exp(-x))
    expect(
        _close(out.data, s, 1e-12),
        f"{call}: the forward value should be σ(a) = 1 / (1 + exp(-a)) = {s:.6g}, found {out.data:.6g}",
    )
    ga0, g = 0.5 + rng.random(), rng.choice((-1, 1)) * rng.uniform(1.5, 3.0)
    a.grad, out.grad = ga0, g
    _run_backward(out, call)
    da, want = a.grad - ga0, g * s * (1 - s)
    setup = f"{call}: with out.grad = {g:.4g}, and a.grad = {ga0:.4g} already holding the contributions of other uses"
    if a.grad == ga0:
        raise CheckFailed(
            f"{setup}, out._backward() did not change a.grad: it must add σ'(a) · out.grad to it "
            "(and sigmoid must set out._backward = _backward)"
        )
    if _close(a.grad, want):
        raise CheckFailed(
            f"{setup}, a.grad was overwritten: it now holds {a.grad:.6g}, this operation's contribution "
            f"alone, and the earlier {ga0:.4g} is lost; {_ACCUMULATE}"
        )
    if _close(da, want):
        return
    hint = {
        "no out.grad": (s * (1 - s), "the gradient did not include out.grad (chain rule: a.grad += σ'(a) · out.grad)"),
        "input": (
            g * x * (1 - x),
            "σ'(a) = σ(a)(1 - σ(a)) is written with the output s = out.data, not with the input a",
        ),
        "sign": (-want, "the sign: σ'(a) = σ(a)(1 - σ(a)) is positive"),
        "s only": (g * s, "σ'(a) = σ(a)(1 - σ(a)): the factor (1 - σ(a)) is missing"),
        "1-s only": (g * (1 - s), "σ'(a) = σ(a)(1 - σ(a)): the factor σ(a) is missing"),
    }
    named = next((text for value, text in hint.values() if _close(da, value)), "")
    raise CheckFailed(
        f"{setup}: a.grad should grow by out.grad · σ(a)(1 - σ(a)) = {want:.6g}, it grew by "
        f"{da:.6g}" + (f": {named}" if named else "")
    )


def _expressions(
    div: Callable[..., Any], sigmoid: Callable[..., Any]
) -> list[tuple[str, Callable[..., Any], Callable[..., Any], bool]]:
    """(text, on Values with the learner's ops, on tensors, whether x is used twice)."""
    return [
        ("div(x, x)", lambda x, y: div(x, x) + y, lambda x, y: x / x + y, True),
        ("sigmoid(x) * x", lambda x, y: sigmoid(x) * x + y, lambda x, y: torch.sigmoid(x) * x + y, True),
        (
            "div(sigmoid(x), x) + x * y",
            lambda x, y: div(sigmoid(x), x) + x * y,
            lambda x, y: torch.sigmoid(x) / x + x * y,
            True,
        ),
        (
            "x * y + div(sigmoid(x), y)",
            lambda x, y: x * y + div(sigmoid(x), y),
            lambda x, y: x * y + torch.sigmoid(x) / y,
            True,
        ),
        (
            "div(x * y + 1, sigmoid(y) + 0.5)",
            lambda x, y: div(x * y + 1, sigmoid(y) + 0.5),
            lambda x, y: (x * y + 1) / (torch.sigmoid(y) + 0.5),
            False,
        ),
        (
            "sigmoid(div(x, y)) * sigmoid(y)",
            lambda x, y: sigmoid(div(x, y)) * sigmoid(y),
            lambda x, y: torch.sigmoid(x / y) * torch.sigmoid(y),
            False,
        ),
    ]


def _check_expressions(div: Callable[..., Any], sigmoid: Callable[..., Any], rng: random.Random, where: str) -> int:
    checked = 0
    for text, on_values, on_tensors, reused in _expressions(div, sigmoid):
        x, y = _draw(rng), _draw(rng)
        call = f"f(x, y) = {text} at x = {x:.4g}, y = {y:.4g} {where}"
        vx, vy = Value(x, label="x"), Value(y, label="y")
        out = call_learner(on_values, vx, vy, what=call)
        call_learner(out.backward, what=f"backward() of {call}")
        tx, ty = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, y))
        t_out = on_tensors(tx, ty)
        t_out.backward()
        expect(
            _close(out.data, t_out.item(), 1e-12),
            f"{call}: the forward value should be {t_out.item():.10g}, found {out.data:.10g}",
        )
        numerical = numerical_grad(lambda xs, f=on_values: f(Value(xs[0]), Value(xs[1])).data, [x, y])
        for name, found, exact, num in (
            ("x", vx.grad, tx.grad.item(), numerical[0]),
            ("y", vy.grad, ty.grad.item(), numerical[1]),
        ):
            if _close(found, exact) and abs(found - num) <= 1e-6 + 1e-5 * abs(num):
                continue
            twice = (
                f"; x is used twice here, so its gradient is the sum over both uses: {_ACCUMULATE}"
                if reused and name == "x"
                else ""
            )
            raise CheckFailed(
                f"{call}: ∂f/∂{name} should be {exact:.10g} (torch.autograd; central differences "
                f"give {num:.10g}), found {found:.10g}{twice}"
            )
        checked += 1
    return checked


def backward_ops(div: Callable[..., Any], sigmoid: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``div(a, b) -> Value`` (a / b) and ``sigmoid(a) -> Value`` (1 / (1 + e⁻ᵃ)), each one node of a
    :class:`dlfund.autograd.Value` graph with its own ``_backward``.

    Expected: each returns ``Value(result, (inputs...), op)`` whose ``_backward`` *adds*
    ``local derivative · out.grad`` to each input's ``grad``: ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -a/b²,
    σ'(a) = σ(a)(1 - σ(a)). Checked on fresh random inputs, one rule at a time, then inside expressions
    against ``torch.autograd`` and central differences, including inputs used twice.
    """
    seed = fresh_seed(seed)
    rng = random.Random(seed)
    where = f"(seed {seed})"
    for _ in range(3):
        _check_div_local(div, rng, where)
        _check_sigmoid_local(sigmoid, rng, where)
    checked = _check_expressions(div, sigmoid, rng, where)
    passed(
        f"backward ops: div and sigmoid give the right gradients, accumulate them (+=), and agree with "
        f"torch.autograd and central differences in {checked} expressions on fresh inputs"
    )


# ---------------------------------------------------------------------------------------------
# ex02: standardisation


def _reference_stats(X: Tensor) -> tuple[Tensor, Tensor]:
    std = X.std(dim=0, correction=0)
    return X.mean(dim=0), torch.where(std == 0, torch.ones_like(std), std)


def _features(gen: torch.Generator, n: int, d: int, dtype: torch.dtype, constant: int) -> Tensor:
    """Columns with very different offsets and scales; column ``constant`` holds one integer value."""
    offsets = 10 * torch.randn(d, generator=gen, dtype=torch.float64)
    scales = torch.exp(3 * torch.randn(d, generator=gen, dtype=torch.float64))  # from ~0.01 to ~100
    X = offsets + scales * torch.randn(n, d, generator=gen, dtype=torch.float64)
    X[:, constant] = float(torch.randint(-5, 6, (), generator=gen))  # exactly representable: its std is exactly 0
    return X.to(dtype)


def _as_pair(out: Any, call: str, names: str) -> tuple[Any, Any]:
    expect(
        isinstance(out, (tuple, list)) and len(out) == 2,
        f"{call}: expected a tuple {names}, found {type(out).__name__}"
        + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
    )
    return out[0], out[1]


def _expect_tensor(t: Any, name: str, shape: tuple[int, ...], dtype: torch.dtype, call: str, meaning: str) -> None:
    expect(isinstance(t, torch.Tensor), f"{call}: {name} should be a tensor, found {type(t).__name__}")
    if tuple(t.shape) != shape:
        extra = ""
        if len(shape) == 1 and tuple(t.shape) == (1, *shape):
            extra = ": drop keepdim=True"
        elif len(shape) == 1 and t.ndim == 1:
            extra = ": one value per column (feature) means reducing over the rows, dim=0"
        raise CheckFailed(f"{call}: {name} should have shape {shape} ({meaning}), found {tuple(t.shape)}{extra}")
    expect(t.dtype == dtype, f"{call}: {name} should have dtype {dtype} (the dtype of X), found {t.dtype}")


def _check_fit(fit: Callable[..., Any], X: Tensor, constant: int, where: str) -> None:
    n, d = X.shape
    call = f"fit_standardiser(X) with X of shape {(n, d)}, {X.dtype} {where}"
    before = X.clone()
    mean, std = _as_pair(call_learner(fit, X, what=call), call, "(mean, std)")
    expect(torch.equal(X, before), f"{call}: fit_standardiser changed its input X in place; leave X as it was")
    _expect_tensor(mean, "mean", (d,), X.dtype, call, "one mean per column")
    _expect_tensor(std, "std", (d,), X.dtype, call, "one standard deviation per column")
    ref_mean, ref_std = _reference_stats(X)
    tol = {"rtol": 1e-5, "atol": 1e-6} if X.dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}
    if not torch.allclose(mean, ref_mean, **tol):
        j = int((mean - ref_mean).abs().argmax())
        raise CheckFailed(f"{call}: mean of column {j} should be {ref_mean[j].item():.6g}, found {mean[j].item():.6g}")
    found_c = std[constant].item()
    if found_c != 1.0:
        raise CheckFailed(
            f"{call}: column {constant} is constant (all values {X[0, constant].item():g}), so its "
            f"standard deviation is 0 and dividing by it gives NaN or inf; fit_standardiser must "
            f"replace a std of exactly 0 by 1 (as scikit-learn's StandardScaler does), found std "
            f"{found_c:.6g} for that column"
        )
    others = [j for j in range(d) if j != constant]
    found, want = std[others], ref_std[others]
    if torch.allclose(found, want, **tol):
        return
    sample = X[:, others].std(dim=0, correction=1)
    if torch.allclose(found, sample, **tol):
        raise CheckFailed(
            f"{call}: you computed the sample standard deviation (dividing by N - 1 = {n - 1}, torch's "
            f"default for .std()); standardising uses the population standard deviation, dividing by "
            f"N = {n}: X.std(dim=0, correction=0), as scikit-learn's StandardScaler does"
        )
    if torch.allclose(found, want**2, **tol):
        raise CheckFailed(f"{call}: this is the variance; the standard deviation is its square root")
    j = others[int((found - want).abs().argmax())]
    raise CheckFailed(
        f"{call}: std of column {j} should be {ref_std[j].item():.6g} (population standard deviation, "
        f"dividing by N), found {std[j].item():.6g}"
    )


def _check_apply(standardise: Callable[..., Any], X: Tensor, mean: Tensor, std: Tensor, where: str) -> None:
    call = f"standardise(X, mean, std) with X of shape {tuple(X.shape)}, {X.dtype} {where}"
    before = X.clone()
    out = call_learner(standardise, X, mean, std, what=call)
    expect(
        torch.equal(X, before),
        f"{call}: standardise changed its input X in place (X -= mean?); return a new tensor and leave X as it was",
    )
    _expect_tensor(out, "the result", tuple(X.shape), X.dtype, call, "the shape of X")
    expect(bool(torch.isfinite(out).all()), f"{call}: the result contains NaN or inf")
    want = (X - mean) / std
    tol = {"rtol": 1e-5, "atol": 1e-5} if X.dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-10}
    if torch.allclose(out, want, **tol):
        return
    own_mean, own_std = _reference_stats(X)
    wrong = {
        "own": (
            (X - own_mean) / own_std,
            "standardise must use the mean and std it is given (the training "
            "statistics), not statistics computed from X itself",
        ),
        "no division": (X - mean, "the result was not divided by std"),
        "no centring": (X / std, "the mean was not subtracted"),
        "times std": ((X - mean) * std, "the result was multiplied by std instead of divided by it"),
    }
    for value, text in wrong.values():
        if torch.allclose(out, value, **tol):
            raise CheckFailed(f"{call}: expected (X - mean) / std; {text}")
    i, j = (int(v) for v in torch.nonzero((out - want).abs() == (out - want).abs().max())[0])
    raise CheckFailed(
        f"{call}: expected (X - mean) / std; at row {i}, column {j}: expected {want[i, j].item():.6g}, "
        f"found {out[i, j].item():.6g}"
    )


def _check_split(split: Callable[..., Any], X_train: Tensor, X_test: Tensor, where: str) -> None:
    call = (
        f"standardise_split(X_train, X_test) with X_train {tuple(X_train.shape)}, X_test {tuple(X_test.shape)} {where}"
    )
    out_train, out_test = _as_pair(
        call_learner(split, X_train, X_test, what=call), call, "(X_train_standardised, X_test_standardised)"
    )
    _expect_tensor(out_train, "X_train_standardised", tuple(X_train.shape), X_train.dtype, call, "the shape of X_train")
    _expect_tensor(out_test, "X_test_standardised", tuple(X_test.shape), X_test.dtype, call, "the shape of X_test")

    def apply(X: Tensor, stats: tuple[Tensor, Tensor]) -> Tensor:
        return (X - stats[0]) / stats[1]

    train_stats = _reference_stats(X_train)
    all_stats = _reference_stats(torch.cat([X_train, X_test]))
    test_stats = _reference_stats(X_test)

    def same(a: Tensor, b: Tensor) -> bool:
        return torch.allclose(a, b, rtol=1e-10, atol=1e-10)

    if same(out_train, apply(X_train, train_stats)) and same(out_test, apply(X_test, train_stats)):
        return
    if same(out_train, apply(X_train, all_stats)) or same(out_test, apply(X_test, all_stats)):
        raise CheckFailed(
            f"{call}: you standardised with statistics of all the data (train and test together): "
            "information about the test set leaks into training, and the test score is no longer an "
            "honest estimate. Use training statistics only: fit the standardiser on X_train, then apply "
            "that same mean and std to both X_train and X_test"
        )
    if same(out_train, apply(X_train, test_stats)):
        raise CheckFailed(
            f"{call}: the standardiser was fitted on X_test; use training statistics only: fit on "
            "X_train, then apply to both"
        )
    if same(out_test, apply(X_test, test_stats)):
        raise CheckFailed(
            f"{call}: X_test was standardised with its own mean and std (test statistics); use "
            "training statistics only: the test set must be transformed with the mean and std fitted "
            "on X_train, exactly as new data would be"
        )
    if same(out_train, X_train) or same(out_test, X_test):
        raise CheckFailed(f"{call}: a returned tensor is the unstandardised input")
    if same(out_train, apply(X_test, train_stats)) or same(out_test, apply(X_train, train_stats)):
        raise CheckFailed(f"{call}: the two results are swapped: return (X_train_standardised, X_test_standardised)")
    raise CheckFailed(
        f"{call}: expected both sets standardised with the mean and std of X_train ((X - mean_train) / std_train)"
    )


def standardise(
    fit_standardiser: Callable[..., Any],
    standardise: Callable[..., Any],
    standardise_split: Callable[..., Any],
    *,
    seed: int | None = None,
) -> None:
    """Check ``fit_standardiser(X) -> (mean (D,), std (D,))``, ``standardise(X, mean, std) -> (N, D)`` and
    ``standardise_split(X_train, X_test) -> (X_train_standardised, X_test_standardised)``.

    Expected: the mean and the *population* standard deviation (dividing by N) of every column, in
    the dtype of ``X``, with a std of exactly 0 (a constant column) replaced by 1; ``(X - mean) / std``
    without changing ``X``; and both sets standardised with the statistics of the training set only.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    for dtype in (torch.float64, torch.float32):
        n, d = int(torch.randint(6, 12, (), generator=gen)), int(torch.randint(3, 6, (), generator=gen))
        constant = int(torch.randint(0, d, (), generator=gen))
        X = _features(gen, n, d, dtype, constant)
        _check_fit(fit_standardiser, X, constant, where)
        X_new = _features(gen, n + 3, d, dtype, constant)
        _check_apply(standardise, X_new, *_reference_stats(X), where)
    n, d = int(torch.randint(10, 20, (), generator=gen)), int(torch.randint(3, 6, (), generator=gen))
    constant = int(torch.randint(0, d, (), generator=gen))
    X_train = _features(gen, n, d, torch.float64, constant)
    shift = 3 * X_train.std(dim=0) * torch.rand(d, generator=gen, dtype=torch.float64) + 1.0
    X_test = 2.0 * (X_train[: n // 2] + 0.3 * torch.randn(n // 2, d, generator=gen, dtype=torch.float64)) + shift
    _check_split(standardise_split, X_train, X_test, where)
    passed(
        "standardise: population statistics per column, constant columns kept finite, dtype and shape "
        "preserved, and the test set transformed with training statistics only"
    )


# ---------------------------------------------------------------------------------------------
# ex03: a custom autograd Function (the Huber loss)


def _huber(pred: Tensor, target: Tensor, delta: float) -> Tensor:
    """The mean Huber loss written with PyTorch operations, so that autograd differentiates it: the
    independent reference for the learner's hand-written backward."""
    r = pred - target
    small = r.abs() <= delta
    return torch.where(small, 0.5 * r**2, delta * (r.abs() - 0.5 * delta)).mean()


def _huber_case(gen: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[Tensor, Tensor, float]:
    """Predictions and targets whose residuals lie both inside and outside ``[-delta, delta]``, none within
    10 % of the kink at ±delta (where central differences would straddle it), and a delta other than 1."""
    delta = round(float(torch.empty(()).uniform_(0.4, 2.5, generator=gen)), 3)
    while abs(delta - 1.0) < 0.1:
        delta = round(float(torch.empty(()).uniform_(0.4, 2.5, generator=gen)), 3)
    n = math.prod(shape)
    inside = torch.rand(n, generator=gen, dtype=torch.float64) < 0.5
    inside[:2] = torch.tensor([True, False])  # both regions occur
    size = torch.where(
        inside,
        torch.empty(n, dtype=torch.float64).uniform_(0.05, 0.9, generator=gen),
        torch.empty(n, dtype=torch.float64).uniform_(1.1, 3.0, generator=gen),
    )
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    target = torch.randn(n, generator=gen, dtype=torch.float64)
    pred = target + delta * size * sign
    perm = torch.randperm(n, generator=gen)
    return pred[perm].reshape(shape).to(dtype), target[perm].reshape(shape).to(dtype), delta


def _is_function(fn: Any) -> None:
    if not (isinstance(fn, type) and issubclass(fn, torch.autograd.Function)):
        kind = "a function" if callable(fn) else type(fn).__name__
        raise CheckFailed(
            f"expected the class Huber, a subclass of torch.autograd.Function with forward and backward written by "
            f"you, found {kind} ({getattr(fn, '__name__', fn)!r}): autograd would differentiate a plain function for "
            "you, and writing the backward is the exercise"
        )
    if fn.backward is torch.autograd.Function.backward or fn.forward is torch.autograd.Function.forward:
        raise CheckFailed(
            f"{fn.__name__} must define both forward(ctx, pred, target, delta) and backward(ctx, grad_output)"
        )


def _grad_error(err: BaseException, call: str) -> CheckFailed:
    """Name what torch complained about when it received the learner's backward's results."""
    text = str(err)
    if isinstance(err, NotImplementedError):
        return CheckFailed(f"{call}: backward is not implemented yet: replace the `raise NotImplementedError` line")
    if "incorrect number of gradients" in text:
        return CheckFailed(
            f"{call}: {text}. backward must return one value per input of forward, in order: (grad of pred, grad "
            "of target, None), with None for delta, a plain number that needs no gradient"
        )
    if "invalid gradient" in text or "expected shape" in text:
        return CheckFailed(
            f"{call}: {text}. Each gradient must have the shape of its input: ∂L/∂pred[i] for every element, "
            "not a sum or a mean over them"
        )
    if "expected Variable or None" in text:
        return CheckFailed(
            f"{call}: {text}. backward must return tensors (or None for delta), not Python numbers: keep the "
            "gradients as tensors of the shape of their inputs"
        )
    return CheckFailed(f"{call}: backward raised {type(err).__name__}: {text}")


def _forward(Huber: Any, pred: Tensor, target: Tensor, delta: float, call: str) -> Tensor:
    out = call_learner(Huber.apply, pred, target, delta, what=call)
    expect(isinstance(out, torch.Tensor), f"{call}: forward should return a tensor, found {type(out).__name__}")
    expect(out.shape == (), f"{call}: the loss should be one number, shape (), found {tuple(out.shape)}: take the mean")
    expect(out.dtype == pred.dtype, f"{call}: the loss should have the dtype of pred ({pred.dtype}), found {out.dtype}")
    return out


def _backward(out: Tensor, inputs: tuple[Tensor, Tensor], upstream: Tensor, call: str) -> tuple[Any, Any]:
    expect(
        out.requires_grad and out.grad_fn is not None,
        f"{call}: the loss has no grad_fn: call the class as Huber.apply(pred, target, delta), and return the "
        "loss from forward",
    )
    try:
        grads = torch.autograd.grad(out, inputs, grad_outputs=upstream, allow_unused=True)
    except Exception as err:  # whatever the learner's backward does, the check names it
        raise _grad_error(err, call) from err
    return grads[0], grads[1]


def _diagnose_huber(
    found: Tensor, pred: Tensor, target: Tensor, delta: float, upstream: float, ref: Tensor
) -> str | None:
    n, r = pred.numel(), (pred - target).detach()
    wrong = {
        "did not multiply by grad_output: the chain rule multiplies the local gradient by the gradient "
        "arriving from above (grad_output)": ref / upstream,
        "is sum-reduced: the loss is the mean over the elements, so each gradient is divided by their number "
        f"({n})": ref * n,
        "is the gradient of the mean squared error/2 (the residual, not clipped): outside [-delta, delta] the "
        "Huber loss is linear, so its slope there is ±delta": upstream * r / n,
        "is ±delta everywhere (the L1 slope): inside [-delta, delta] the Huber loss is quadratic, so its "
        "slope there is the residual": upstream * delta * r.sign() / n,
        "clips at ±1 instead of ±delta: use the delta passed to forward (save it on ctx)": upstream
        * r.clamp(-1, 1)
        / n,
        "has the wrong sign": -ref,
    }
    for text, value in wrong.items():
        if torch.allclose(found, value.to(found.dtype), rtol=1e-6, atol=1e-9):
            return text
    return None


def _check_gradients(
    grads: tuple[Any, Any],
    pred: Tensor,
    target: Tensor,
    delta: float,
    upstream: float,
    numeric: Tensor | None,
    call: str,
) -> None:
    p = pred.detach().clone().requires_grad_(True)
    t = target.detach().clone().requires_grad_(True)
    ref_pred, ref_target = torch.autograd.grad(
        _huber(p, t, delta), (p, t), grad_outputs=torch.tensor(upstream, dtype=p.dtype)
    )
    tol = {"rtol": 1e-6, "atol": 1e-9} if pred.dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-6}
    for name, found, ref in (("pred", grads[0], ref_pred), ("target", grads[1], ref_target)):
        if found is None:
            raise CheckFailed(
                f"{call}: no gradient reached {name} (backward returned None for it): the loss depends on "
                f"{name} too, so return ∂L/∂{name}" + (" = -∂L/∂pred" if name == "target" else "")
            )
        expect(
            found.shape == ref.shape,
            f"{call}: the gradient of {name} should have shape {tuple(ref.shape)}, found {tuple(found.shape)}",
        )
        if torch.allclose(found, ref, **tol):
            continue
        if name == "target" and torch.allclose(found, -ref, **tol):
            raise CheckFailed(
                f"{call}: the gradient of target has the wrong sign: r = pred - target, so ∂L/∂target = -∂L/∂pred"
            )
        diagnosis = _diagnose_huber(found, pred, target, delta, upstream, ref)
        i = int((found - ref).abs().flatten().argmax())
        r = float((pred - target).flatten()[i])
        numeric_text = (
            f", central differences {float(numeric.flatten()[i]):.8g}" if numeric is not None and name == "pred" else ""
        )
        raise CheckFailed(
            f"{call}: the gradient of {name} {diagnosis or 'is wrong'}. At element {i} (residual {r:.4g}, "
            f"delta {delta}, grad_output {upstream:.4g}) expected {float(ref.flatten()[i]):.8g} (autograd of a plain "
            f"implementation{numeric_text}), found {float(found.flatten()[i]):.8g}"
        )


def _central_differences(
    Huber: Any, pred: Tensor, target: Tensor, delta: float, upstream: float, h: float = 1e-6
) -> Tensor:
    """upstream · ∂L/∂pred by central differences of the learner's own forward, in float64."""
    grad = torch.empty_like(pred)
    with torch.no_grad():
        for i in range(pred.numel()):
            plus, minus = pred.clone(), pred.clone()
            plus.view(-1)[i] += h
            minus.view(-1)[i] -= h
            grad.view(-1)[i] = (
                upstream * (Huber.apply(plus, target, delta) - Huber.apply(minus, target, delta)) / (2 * h)
            )
    return grad


def custom_function(Huber: Any, *, seed: int | None = None) -> None:
    """Check ``Huber``, a ``torch.autograd.Function`` whose ``forward(ctx, pred, target, delta)`` returns the
    mean Huber loss and whose ``backward(ctx, grad_output)`` returns ``(∂L/∂pred, ∂L/∂target, None)``.

    Expected: the loss of ``F.huber_loss(pred, target, delta=delta)`` (mean reduction), the inputs left
    unchanged, and gradients equal to autograd of a plain implementation and to central differences,
    scaled by the incoming gradient, for any shape and dtype, with what backward needs saved on ``ctx``.
    """
    _is_function(Huber)
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    name = Huber.__name__
    cases = [  # the last two share a shape: a backward that reads the latest forward's state shows there
        ((4, 7), torch.float32),
        ((int(torch.randint(9, 17, (), generator=gen)),), torch.float64),
        ((3, 5), torch.float64),
        ((3, 5), torch.float64),
    ]
    states = []
    for shape, dtype in cases:
        pred, target, delta = _huber_case(gen, shape, dtype)
        upstream = round(float(torch.empty(()).uniform_(1.5, 3.0, generator=gen)), 3)
        call = f"{name}.apply(pred, target, delta={delta}) with pred and target of shape {shape}, {dtype} {where}"
        p, t = pred.clone().requires_grad_(True), target.clone().requires_grad_(True)
        out = _forward(Huber, p, t, delta, call)
        expect(
            torch.equal(p.detach(), pred) and torch.equal(t.detach(), target),
            f"{call}: forward changed pred or target in place (pred.sub_(target)? r -= ...?): compute the residual "
            "into a new tensor, r = pred - target",
        )
        ref = _huber(pred, target, delta)
        tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
        if not torch.allclose(out.detach(), ref, **tol):
            hint = ""
            if torch.allclose(out.detach(), ref * pred.numel(), **tol):
                hint = ": this is the sum; the loss is the mean over the elements"
            elif torch.allclose(out.detach(), (0.5 * (pred - target) ** 2).mean(), **tol):
                hint = ": this is the mean squared error/2; outside [-delta, delta] the loss is delta·(|r| - delta/2)"
            raise CheckFailed(
                f"{call}: the loss should be {ref.item():.10g} (as F.huber_loss(pred, target, delta={delta})), "
                f"found {out.item():.10g}{hint}"
            )
        states.append((call, out, p, t, pred, target, delta, upstream))
    # the backward passes run after all forward passes: each must use what its own forward saved on ctx
    for call, out, p, t, pred, target, delta, upstream in reversed(states):
        grads = _backward(out, (p, t), torch.tensor(upstream, dtype=out.dtype), call)
        numeric = _central_differences(Huber, pred, target, delta, upstream) if pred.dtype == torch.float64 else None
        try:
            _check_gradients(grads, pred, target, delta, upstream, numeric, call)
        except CheckFailed as err:
            later = states[-1]
            if later[0] != call and _backward_matches_latest(Huber, grads, later, pred, delta, upstream):
                raise CheckFailed(
                    f"{call}: the gradients belong to a later call's inputs: backward used what the most recent "
                    "forward stored (on the class or in a global), not this call's. Save what backward needs on "
                    "ctx (ctx.save_for_backward(...), ctx.delta = delta)"
                ) from None
            raise err
    passed(
        f"{name}: the forward equals F.huber_loss and the hand-written backward equals autograd and central "
        f"differences, scaled by grad_output, on {len(cases)} fresh inputs of different shapes and dtypes"
    )


def _backward_matches_latest(
    Huber: Any, grads: tuple[Any, Any], latest: tuple, pred: Tensor, delta: float, upstream: float
) -> bool:
    """Whether ``grads`` are what the latest forward's inputs would give (shapes permitting)."""
    other_pred, other_target = latest[4], latest[5]
    if grads[0] is None or grads[0].shape != pred.shape or other_pred.shape != pred.shape:
        return False
    p = other_pred.detach().double().clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(_huber(p, other_target.double(), latest[6]) * upstream, (p,))
    return torch.allclose(grads[0].double(), ref, rtol=1e-4, atol=1e-6)
