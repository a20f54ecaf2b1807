"""Checks for unit 2 (tensors): choosing values with ``torch.where``, the perceptron with matrix
multiplication, and a confusion matrix counted without loops.

Each check draws fresh random tensors (a new seed on every call, printed in failure messages so that
a failure can be replayed with ``seed=...``), compares the learner's functions with a reference, and
says what differs: type, shape, dtype, an input changed in place, or the values, naming the typical
mistake when the answer matches one.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.models.perceptron import Perceptron

__all__ = ["torch_where", "matmul_perceptron", "confusion"]

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# shared helpers


def _python_loop(fn: Callable[..., Any]) -> str | None:
    """The kind of Python loop ("a for loop", ...) that ``fn`` runs over its first argument (a loop whose
    iterable or condition mentions that argument, as in ``for v in x`` or ``range(len(x))``), or None.
    Also None when the source cannot be read (a builtin, a function made with ``exec``)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        first = next(iter(inspect.signature(fn).parameters))
    except (OSError, TypeError, ValueError, SyntaxError, StopIteration):
        return None

    def mentions(node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id == first for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.AsyncFor)) and mentions(node.iter):
            return "a for loop"
        if isinstance(node, ast.While) and mentions(node.test):
            return "a while loop"
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)) and any(
            mentions(g.iter) for g in node.generators
        ):
            return "a comprehension"
    return None


def _any_loop(fn: Callable[..., Any]) -> str | None:
    """The kind of Python loop ``fn`` runs anywhere in its body (over the examples or over the classes),
    or None; also None when the source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, ValueError, SyntaxError):
        return None
    kinds = {
        ast.For: "a for loop",
        ast.AsyncFor: "a for loop",
        ast.While: "a while loop",
        ast.ListComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a comprehension",
    }
    return next((kinds[type(node)] for node in ast.walk(tree) if type(node) in kinds), None)


def _no_loop(fn: Callable[..., Any], name: str, instead: str) -> None:
    loop = _python_loop(fn)
    expect(
        loop is None,
        f"{name} uses {loop} over the elements of its input: the task is to work on whole tensors "
        f"without a Python loop ({instead})",
    )


def _call(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """:func:`call_learner`, plus a hint when a Python ``if`` met a tensor of many values."""
    try:
        return call_learner(fn, *args, what=what, **kwargs)
    except CheckFailed as err:
        if "ambiguous" in str(err):
            raise CheckFailed(
                f"{err}. A Python `if` (or `and`, `or`, `max`, `min`) needs one True/False, but a "
                "comparison of tensors gives one per element: choose per element with "
                "torch.where(condition, a, b)"
            ) from None
        raise


def _tensor_like(
    out: Any, *, shape: tuple[int, ...], dtype: torch.dtype, what: str, shape_hint: str = "", dtype_hint: str = ""
) -> Tensor:
    expect(isinstance(out, torch.Tensor), f"{what}: expected a tensor, found {type(out).__name__}")
    expect(tuple(out.shape) == shape, f"{what}: expected shape {shape}{shape_hint}, found {tuple(out.shape)}")
    expect(out.dtype == dtype, f"{what}: expected dtype {dtype}{dtype_hint}, found {out.dtype}")
    return out


def _unchanged(before: Tensor, after: Tensor, name: str, what: str) -> None:
    expect(
        torch.equal(before, after),
        f"{what}: your function changed its input {name} in place; return a new tensor instead "
        f"(torch.where returns one; x.clone() copies)",
    )


def _first_difference(found: Tensor, expected: Tensor, inputs: dict[str, Tensor]) -> str:
    """Where ``found`` and ``expected`` first differ, with the inputs at that position."""
    bad = (
        (found != expected)
        if not found.dtype.is_floating_point
        else ~torch.isclose(found, expected, rtol=1e-2, atol=1e-3)
    )
    idx = tuple(int(i) for i in torch.nonzero(bad)[0])
    shown = ", ".join(f"{k}={v[idx].item():.4g}" for k, v in inputs.items() if v.shape == found.shape)
    return (
        f"at index {idx}{' (' + shown + ')' if shown else ''}: expected {expected[idx].item():.6g}, "
        f"found {found[idx].item():.6g}; {int(bad.sum())} of {found.numel()} elements differ"
    )


def _random_with_zeros(gen: torch.Generator, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Values spread around 0 with a share of exact zeros (the edge case), as ``dtype``."""
    x = 3 * torch.randn(shape, generator=gen)
    x[torch.rand(shape, generator=gen) < 0.2] = 0.0
    if x.numel():
        x.view(-1)[0] = 0.0
    return x.to(dtype)


# ---------------------------------------------------------------------------------------------
# ex01: torch.where


def _check_step(step: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    _no_loop(step, "step", "torch.where(z > 0, 1, 0) labels every element at once")
    cases = [
        ((40,), torch.float32),
        ((3, 4, 5), torch.float32),
        ((), torch.float32),
        ((0, 3), torch.float32),
        ((6, 7), torch.float64),
        ((25,), torch.bfloat16),
    ]
    for shape, dtype in cases:
        z = _random_with_zeros(gen, shape, dtype)
        before = z.clone()
        what = f"step(z) for z of shape {shape} and dtype {dtype} {where}"
        out = _call(step, z, what=what)
        expect(isinstance(out, torch.Tensor), f"{what}: expected a tensor, found {type(out).__name__}")
        expect(tuple(out.shape) == shape, f"{what}: expected shape {shape} (the same as z), found {tuple(out.shape)}")
        if out.dtype == torch.bool:
            raise CheckFailed(
                f"{what}: expected dtype torch.int64 (labels 0/1), found torch.bool: a comparison gives "
                "True/False; turn it into labels with torch.where(z > 0, 1, 0) (or .long())"
            )
        expect(
            out.dtype == torch.int64,
            f"{what}: expected dtype torch.int64 (labels 0/1, whatever z's dtype), found "
            f"{out.dtype}: use integer values in torch.where (1 and 0, not 1.0 and 0.0)",
        )
        _unchanged(before, z, "z", what)
        expected = (z > 0).long()
        if torch.equal(out, expected):
            continue
        zeros = z == 0
        if bool(zeros.any()) and bool((out[zeros] == 1).any()) and torch.equal(out[~zeros], expected[~zeros]):
            raise CheckFailed(
                f"{what}: at z == 0 expected 0, found 1 (at {int((out[zeros] == 1).sum())} of the "
                f"{int(zeros.sum())} zeros): the perceptron predicts class 1 only when z > 0, so use > "
                "rather than >="
            )
        if torch.equal(out, (z < 0).long()):
            raise CheckFailed(f"{what}: the labels are reversed (1 where z < 0): class 1 is where z > 0")
        raise CheckFailed(f"{what}: {_first_difference(out, expected, {'z': z})}")


def _leaky(x: Tensor, slope: float) -> Tensor:
    return torch.where(x > 0, x, slope * x)


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {
        torch.float64: {"rtol": 1e-12, "atol": 1e-12},
        torch.float32: {"rtol": 1e-6, "atol": 1e-7},
        torch.float16: {"rtol": 1e-3, "atol": 1e-4},
        torch.bfloat16: {"rtol": 1e-2, "atol": 1e-3},
    }[dtype]


def _check_leaky_relu(leaky_relu: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    _no_loop(leaky_relu, "leaky_relu", "torch.where(x > 0, x, negative_slope * x) does every element at once")
    slope = round(float(torch.empty(()).uniform_(0.05, 0.3, generator=gen)), 3)
    cases = [
        ((50,), torch.float32, None),
        ((3, 4, 5), torch.float32, slope),
        ((), torch.float32, slope),
        ((6, 7), torch.float64, slope),
        ((30,), torch.bfloat16, slope),
        ((4, 9), torch.float16, None),
    ]
    for shape, dtype, s in cases:
        x = _random_with_zeros(gen, shape, dtype)
        before = x.clone()
        call = "leaky_relu(x)" if s is None else f"leaky_relu(x, negative_slope={s})"
        what = f"{call} for x of shape {shape} and dtype {dtype} {where}"
        out = _call(leaky_relu, x, what=what) if s is None else _call(leaky_relu, x, negative_slope=s, what=what)
        _tensor_like(
            out,
            shape=shape,
            dtype=dtype,
            what=what,
            shape_hint=" (the same as x)",
            dtype_hint=" (the same as x: a Python number times a tensor keeps the tensor's dtype)",
        )
        _unchanged(before, x, "x", what)
        used = 0.01 if s is None else s
        expected = _leaky(x, used)
        if torch.allclose(out, expected, **_tolerance(dtype)):
            continue
        negative = x < 0
        if torch.equal(out, torch.where(x > 0, x, torch.zeros((), dtype=dtype))):
            raise CheckFailed(
                f"{what}: negative inputs became 0: that is ReLU; leaky ReLU keeps a small slope, "
                "negative_slope * x, for them"
            )
        if bool(negative.any()) and torch.allclose(
            out[negative], torch.full_like(x[negative], used), **_tolerance(dtype)
        ):
            raise CheckFailed(
                f"{what}: negative inputs all became {used} (negative_slope itself); they should be negative_slope * x"
            )
        if torch.allclose(out, torch.where(x < 0, x, used * x), **_tolerance(dtype)):
            raise CheckFailed(
                f"{what}: positive inputs were scaled and negative ones passed through: the condition "
                "is reversed (keep x where x > 0)"
            )
        if s is not None and torch.allclose(out, _leaky(x, 0.01), **_tolerance(dtype)):
            raise CheckFailed(
                f"{what}: the result matches negative_slope=0.01: the negative_slope argument was ignored"
            )
        if s is None and bool(negative.any()):
            ratio = (out[negative].double() / x[negative].double()).median().item()
            raise CheckFailed(
                f"{what}: without a negative_slope argument the slope should default to 0.01; negative "
                f"inputs were multiplied by about {ratio:.4g}"
            )
        raise CheckFailed(f"{what}: {_first_difference(out, expected, {'x': x})}")


def _check_clip(clip: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    _no_loop(clip, "clip", "two torch.where calls, one per bound, do every element at once")
    low_d = torch.randn(5, generator=gen) - 1
    high_d = low_d + 0.2 + 2 * torch.rand(5, generator=gen)
    cases: list[tuple[str, Tensor, Any, Any]] = [
        ("Python-number bounds", 2 * torch.randn(30, 4, generator=gen), -1.0, 1.5),
        ("per-feature bounds low, high of shape (5,)", 2 * torch.randn(20, 5, generator=gen), low_d, high_d),
        ("int64 x and int bounds", torch.randint(-10, 11, (3, 4, 5), generator=gen), -3, 4),
        ("low == high", torch.randn(12, generator=gen, dtype=torch.float64), 0.5, 0.5),
    ]
    for label, x, low, high in cases:
        if isinstance(low, float) and x.dtype.is_floating_point and x.numel() >= 2:  # values exactly at the bounds
            x.view(-1)[0], x.view(-1)[1] = low, high
        tensors = {"x": x, **{k: v for k, v in (("low", low), ("high", high)) if isinstance(v, torch.Tensor)}}
        before = {k: v.clone() for k, v in tensors.items()}
        show = lambda v: f"tensor of shape {tuple(v.shape)}" if isinstance(v, torch.Tensor) else repr(v)
        what = (
            f"clip(x, {show(low)}, {show(high)}) for x of shape {tuple(x.shape)} and dtype {x.dtype}, {label} {where}"
        )
        out = _call(clip, x, low, high, what=what)
        _tensor_like(
            out,
            shape=tuple(x.shape),
            dtype=x.dtype,
            what=what,
            shape_hint=" (the same as x: the bounds broadcast against x)",
            dtype_hint=" (the same as x: pass Python numbers or tensors of x's dtype to torch.where; "
            "float(low) would turn integers into floats)",
        )
        for k, v in tensors.items():
            _unchanged(before[k], v, k, what)
        expected = torch.clamp(x, min=low, max=high)
        if torch.equal(out, expected):
            continue
        if torch.equal(out, torch.clamp(x, min=low)):
            raise CheckFailed(
                f"{what}: values above high were left unchanged: clip both ends (a second torch.where for x > high)"
            )
        if torch.equal(out, torch.clamp(x, max=high)):
            raise CheckFailed(
                f"{what}: values below low were left unchanged: clip both ends (a torch.where for x < low)"
            )
        swapped = torch.where(x < low, high, torch.where(x > high, low, x))
        if torch.equal(out, swapped):
            raise CheckFailed(
                f"{what}: values below low became high and values above high became low: the bounds are swapped"
            )
        raise CheckFailed(f"{what}: {_first_difference(out, expected, {'x': x})}")


def torch_where(
    step: Callable[..., Any], leaky_relu: Callable[..., Any], clip: Callable[..., Any], *, seed: int | None = None
) -> None:
    """Check ``step(z) -> int64 labels``, ``leaky_relu(x, negative_slope=0.01)`` and ``clip(x, low, high)``,
    each written with ``torch.where`` on whole tensors: shapes, dtypes, inputs left unchanged, values
    (including exactly 0 and exactly at a bound)."""
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(check seed {seed})"
    _check_step(step, gen, where)
    _check_leaky_relu(leaky_relu, gen, where)
    _check_clip(clip, gen, where)
    passed(
        "torch.where: step, leaky_relu and clip match the reference on fresh tensors of several shapes and dtypes, "
        "including the values at 0 and at the bounds"
    )


# ---------------------------------------------------------------------------------------------
# ex02: the perceptron with matrix multiplication


def _integer_data(gen: torch.Generator, *shape: int) -> Tensor:
    """Small whole numbers as float32: every sum and product below is exact, so a net input of exactly
    0 happens often and the results of different summation orders agree bit for bit."""
    return torch.randint(-3, 4, shape, generator=gen).float()


def _perceptron(weight: Tensor, bias: Tensor) -> Perceptron:
    model = Perceptron(weight.shape[0])
    model.weight.copy_(weight)
    model.bias.copy_(bias)
    return model


def _telling_data(draw: Callable[[], tuple[Tensor, Tensor, Tensor]], *, exact: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Draw ``(X, w, b)`` until the right labels (z > 0) differ from those without the bias and, for
    whole-number data (``exact``), the labels of >= differ from both, so that each of these mistakes
    shows and is named. With whole numbers ``X @ w > 0`` equals ``X @ w - 1 >= 0``, so b = -1 is redrawn."""
    for _ in range(1000):
        X, w, b = draw()
        z = X @ w + b
        labels = [(z > 0).long(), (X @ w > 0).long()] + ([(z >= 0).long()] if exact else [])
        if all(not torch.equal(first, second) for i, first in enumerate(labels) for second in labels[i + 1 :]):
            return X, w, b
    raise RuntimeError("could not draw telling data for predict; please report this")  # pragma: no cover


def _check_predict(predict: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    _no_loop(predict, "predict", "X @ w + b gives the net inputs of all examples at once")
    n, d = 60, 5
    whole = _telling_data(lambda: (_integer_data(gen, n, d), _integer_data(gen, d), _integer_data(gen)), exact=True)
    random = _telling_data(
        lambda: (torch.randn(n, 12, generator=gen), torch.randn(12, generator=gen), torch.randn((), generator=gen)),
        exact=False,
    )
    cases = [("whole-number data", *whole), ("random data", *random)]
    for label, X, w, b in cases:
        what = f"predict(X, w, b) with X {tuple(X.shape)}, w {tuple(w.shape)}, b {tuple(b.shape)}, {label} {where}"
        before = {"X": X.clone(), "w": w.clone(), "b": b.clone()}
        out = _call(predict, X, w, b, what=what)
        expect(isinstance(out, torch.Tensor), f"{what}: expected a tensor, found {type(out).__name__}")
        expect(
            tuple(out.shape) == (n,), f"{what}: expected shape ({n},), one label per row of X, found {tuple(out.shape)}"
        )
        if out.dtype == torch.bool:
            raise CheckFailed(
                f"{what}: expected int64 labels 0/1, found torch.bool: convert the comparison with "
                ".long() or torch.where(z > 0, 1, 0)"
            )
        if out.dtype.is_floating_point:
            raise CheckFailed(
                f"{what}: expected int64 labels 0/1, found {out.dtype}: threshold the net input "
                "(z > 0) instead of returning it"
            )
        expect(out.dtype == torch.int64, f"{what}: expected dtype torch.int64, found {out.dtype}")
        for k, v in before.items():
            _unchanged(v, {"X": X, "w": w, "b": b}[k], k, what)
        expected = _perceptron(w, b).predict(X)
        if torch.equal(out, expected):
            continue
        z = X @ w + b
        if torch.equal(out, (z >= 0).long()):
            raise CheckFailed(
                f"{what}: examples whose net input is exactly 0 got label 1; the perceptron predicts "
                "1 only when z > 0 (use >, not >=)"
            )
        if torch.equal(out, (X @ w > 0).long()):
            raise CheckFailed(f"{what}: the labels match X @ w > 0 without the bias: add b")
        raise CheckFailed(f"{what}: the labels differ from Perceptron.predict {_first_difference(out, expected, {})}")


def _check_predict_multiclass(predict_multiclass: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    _no_loop(predict_multiclass, "predict_multiclass", "X @ W + b gives all class scores of all examples at once")
    d, c = 6, 4
    for n in (40, 1):
        X, W = torch.randn(n, d, generator=gen), torch.randn(d, c, generator=gen)
        b = 2 * torch.randn(c, generator=gen)
        while n > 1 and torch.equal((X @ W + b).argmax(dim=1), (X @ W).argmax(dim=1)):  # the bias must matter
            b = 2 * torch.randn(c, generator=gen)
        what = f"predict_multiclass(X, W, b) with X {tuple(X.shape)}, W {tuple(W.shape)}, b {tuple(b.shape)} {where}"
        out = _call(predict_multiclass, X, W, b, what=what)
        expect(isinstance(out, torch.Tensor), f"{what}: expected a tensor, found {type(out).__name__}")
        if tuple(out.shape) == (c,) and n != c:
            raise CheckFailed(
                f"{what}: expected shape ({n},), one class per example, found ({c},): the argmax ran over "
                "the examples (dim=0); take it over the classes, dim=1"
            )
        if tuple(out.shape) == (n, c):
            raise CheckFailed(
                f"{what}: expected shape ({n},), found the scores' shape ({n}, {c}): return the index "
                "of the largest score of each row (argmax over dim=1)"
            )
        if tuple(out.shape) == () and n == 1:
            raise CheckFailed(
                f"{what}: expected shape (1,) for a batch of one, found (): an argmax without dim= (or a "
                "squeeze) dropped the batch dimension; use argmax(dim=1)"
            )
        expect(
            tuple(out.shape) == (n,), f"{what}: expected shape ({n},), one class per example, found {tuple(out.shape)}"
        )
        expect(out.dtype == torch.int64, f"{what}: expected int64 class indices, found {out.dtype}")
        scores = torch.stack([_perceptron(W[:, k], b[k]).net_input(X) for k in range(c)], dim=1)  # C perceptrons
        expected = scores.argmax(dim=1)
        if torch.equal(out, expected):
            continue
        if torch.equal(out, (X @ W).argmax(dim=1)):
            raise CheckFailed(
                f"{what}: the classes match argmax(X @ W) without the bias: add b (shape (C,) broadcasts over the rows)"
            )
        if torch.equal(out, scores.argmin(dim=1)):
            raise CheckFailed(
                f"{what}: you picked the class with the smallest score; the prediction is the largest (argmax)"
            )
        raise CheckFailed(
            f"{what}: the classes differ from the argmax of the {c} perceptrons' net inputs "
            f"{_first_difference(out, expected, {})}"
        )


def _ovr_reference(W: Tensor, b: Tensor, X: Tensor, y: Tensor, lr: float) -> tuple[Tensor, Tensor, Tensor]:
    """C library perceptrons, one per class (class c against the rest), each trained for one epoch."""
    models = [_perceptron(W[:, c], b[c]) for c in range(W.shape[1])]
    mistakes = [m.train_epoch(X, (y == c).long(), lr) for c, m in enumerate(models)]
    return (
        torch.stack([m.weight for m in models], dim=1),
        torch.stack([m.bias for m in models]),
        torch.tensor(mistakes, dtype=torch.int64),
    )


def _ovr_variant(
    W: Tensor, b: Tensor, X: Tensor, y: Tensor, lr: float, *, batch: bool = False, ge: bool = False
) -> tuple[Tensor, Tensor]:
    """Typical wrong versions: one update per epoch from the starting weights, or >= as the threshold."""
    T = (y[:, None] == torch.arange(W.shape[1])).float()  # (N, C) targets 0/1
    if batch:
        E = T - (X @ W + b > 0).float()  # (N, C) errors, all made with the starting weights
        return W + lr * X.T @ E, b + lr * E.sum(dim=0)
    W, b = W.clone(), b.clone()
    for x_i, t_i in zip(X, T):
        z = x_i @ W + b
        e = t_i - ((z >= 0) if ge else (z > 0)).float()
        W += lr * torch.outer(x_i, e)
        b += lr * e
    return W, b


def _check_ovr(ovr_train_epoch: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    n, d, c = 36, 5, 4
    cases = [
        ("zero initial weights", torch.zeros(d, c), torch.zeros(c), 1.0),
        ("whole-number initial weights", _integer_data(gen, d, c), _integer_data(gen, c), 1.0),
        ("zero initial weights", torch.zeros(d, c), torch.zeros(c), 0.5),
    ]
    for label, W0, b0, lr in cases:
        X, y = _integer_data(gen, n, d), torch.randint(0, c, (n,), generator=gen)
        y[:c] = torch.randperm(c, generator=gen)  # every class occurs
        what = (
            f"ovr_train_epoch(W, b, X, y, lr={lr}) with W {tuple(W0.shape)}, b {tuple(b0.shape)}, X {tuple(X.shape)}, "
            f"{c} classes, {label} {where}"
        )
        W_in, b_in = W0.clone(), b0.clone()
        out = _call(ovr_train_epoch, W_in, b_in, X, y, lr=lr, what=what)
        expect(
            isinstance(out, (tuple, list)) and len(out) == 3,
            f"{what}: expected a tuple (W, b, mistakes), found {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
        )
        W, b, mistakes = out
        expect(isinstance(W, torch.Tensor), f"{what}: W should be a tensor, found {type(W).__name__}")
        if tuple(W.shape) == (c, d):
            raise CheckFailed(
                f"{what}: W should have shape ({d}, {c}) (features, classes), found ({c}, {d}): "
                "transposed? torch.outer(x, error) is (D, C)"
            )
        _tensor_like(W, shape=(d, c), dtype=torch.float32, what=f"{what}: W", shape_hint=" (features, classes)")
        _tensor_like(b, shape=(c,), dtype=torch.float32, what=f"{what}: b", shape_hint=" (one bias per class)")
        expect(
            isinstance(mistakes, torch.Tensor) and tuple(mistakes.shape) == (c,),
            f"{what}: mistakes should be a tensor of shape ({c},), one count per class, found "
            + (f"shape {tuple(mistakes.shape)}" if isinstance(mistakes, torch.Tensor) else type(mistakes).__name__),
        )
        expect(mistakes.dtype == torch.int64, f"{what}: mistakes should be int64 counts, found {mistakes.dtype}")
        expect(
            torch.equal(W_in, W0) and torch.equal(b_in, b0),
            f"{what}: the W and b you were given changed: start with W = W.clone(), b = b.clone() and update "
            "the copies, so the caller keeps its weights",
        )
        W_ref, b_ref, m_ref = _ovr_reference(W0, b0, X, y, lr)
        if torch.allclose(W, W_ref, atol=1e-5) and torch.allclose(b, b_ref, atol=1e-5):
            if not torch.equal(mistakes, m_ref):
                raise CheckFailed(
                    f"{what}: the weights are right, but the mistakes per class should be "
                    f"{m_ref.tolist()}, found {mistakes.tolist()} (count, per class, the examples whose "
                    "error was not 0)"
                )
            continue
        for kind, (W_v, b_v) in {
            "batch": _ovr_variant(W0, b0, X, y, lr, batch=True),
            "ge": _ovr_variant(W0, b0, X, y, lr, ge=True),
            "lr": _ovr_variant(W0, b0, X, y, 1.0) if lr != 1.0 else (None, None),
        }.items():
            if W_v is not None and torch.allclose(W, W_v, atol=1e-5) and torch.allclose(b, b_v, atol=1e-5):
                raise CheckFailed(
                    f"{what}: "
                    + {
                        "batch": "the weights match one update for the whole epoch, computed from predictions made "
                        "with the starting weights. The perceptron updates after every example, and the next "
                        "prediction uses the updated weights: loop over the rows of X, vectorise over the classes",
                        "ge": "examples whose net input is exactly 0 were predicted as class 1 (>=); the perceptron "
                        "predicts 1 only when z > 0",
                        "lr": f"the weights match lr=1.0: the learning rate lr={lr} was ignored "
                        "(scale the update by lr)",
                    }[kind]
                )
        col = int(
            torch.nonzero(~torch.isclose(W, W_ref, atol=1e-5).all(dim=0) | ~torch.isclose(b, b_ref, atol=1e-5))[0]
        )
        raise CheckFailed(
            f"{what}: the weights differ from {c} library perceptrons trained one example at a time "
            f"(class k against the rest, target 1 where y == k); first wrong column: class {col}, bias "
            f"expected {b_ref[col].item():.4g}, found {b[col].item():.4g}"
        )


def matmul_perceptron(
    predict: Callable[..., Any],
    predict_multiclass: Callable[..., Any],
    ovr_train_epoch: Callable[..., Any],
    *,
    seed: int | None = None,
) -> None:
    """Check ``predict(X, w, b) -> (N,)``, ``predict_multiclass(X, W, b) -> (N,)`` and
    ``ovr_train_epoch(W, b, X, y, lr=1.0) -> (W, b, mistakes)`` against :class:`Perceptron`."""
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(check seed {seed})"
    _check_predict(predict, gen, where)
    _check_predict_multiclass(predict_multiclass, gen, where)
    _check_ovr(ovr_train_epoch, gen, where)
    passed(
        "matmul perceptron: predict, predict_multiclass and ovr_train_epoch match the library Perceptron on fresh "
        "data, including net inputs of exactly 0"
    )


# ---------------------------------------------------------------------------------------------
# ex03: a confusion matrix without loops


def _slow_confusion(y_true: Tensor, y_pred: Tensor, num_classes: int) -> Tensor:
    """The obvious double count, one example at a time in plain Python: the independent reference."""
    counts = [[0] * num_classes for _ in range(num_classes)]
    for t, p in zip(y_true.tolist(), y_pred.tolist()):
        counts[t][p] += 1
    return torch.tensor(counts, dtype=torch.int64).reshape(num_classes, num_classes)


def _labels(gen: torch.Generator, n: int, c: int, absent: tuple[int, ...] = (), never_predicted: int | None = None):
    """True labels and predictions that are right about 60 % of the time, the rest spread unevenly, so
    that the confusion matrix is far from symmetric. Classes in ``absent`` occur nowhere; the class
    ``never_predicted`` occurs as a true label but is never predicted."""
    allowed = torch.tensor([k for k in range(c) if k not in absent])
    y_true = allowed[torch.randint(0, len(allowed), (n,), generator=gen)]
    shift = allowed[torch.randint(0, len(allowed), (n,), generator=gen)]
    right = torch.rand(n, generator=gen) < 0.6
    y_pred = torch.where(right, y_true, shift)
    if n >= len(allowed):  # every allowed class occurs, as a true label and as a prediction
        y_true[: len(allowed)] = allowed
        y_pred[: len(allowed)] = allowed.flip(0)
    if never_predicted is not None:
        others = allowed[allowed != never_predicted]
        y_pred = torch.where(
            y_pred == never_predicted, others[torch.randint(0, len(others), (n,), generator=gen)], y_pred
        )
    return y_true, y_pred


def _check_confusion_matrix(confusion_matrix: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    loop = _any_loop(confusion_matrix)
    expect(
        loop is None,
        f"confusion_matrix uses {loop}: the task is to count without Python loops, over the examples or "
        "the classes (one torch.bincount over a combined index counts every pair at once)",
    )
    c = int(torch.randint(5, 8, (), generator=gen))
    cases = [
        ("every class present", 300, c, ()),
        (f"class {c - 1} (the last) never occurs", 200, c, (c - 1,)),
        ("one example", 1, c, ()),
        ("no examples", 0, c, ()),
    ]
    for label, n, k, absent in cases:
        y_true, y_pred = _labels(gen, n, k, absent)
        before = (y_true.clone(), y_pred.clone())
        what = f"confusion_matrix(y_true, y_pred, num_classes={k}) with {n} labels, {label} {where}"
        try:
            out = call_learner(confusion_matrix, y_true, y_pred, k, what=what)
        except CheckFailed as err:
            if "invalid for input of size" in str(err):
                raise CheckFailed(
                    f"{err}: torch.bincount only counts up to the largest value present; pass "
                    f"minlength=num_classes**2 so that absent pairs are counted as 0"
                ) from None
            raise
        expect(isinstance(out, torch.Tensor), f"{what}: expected a tensor, found {type(out).__name__}")
        if tuple(out.shape) != (k, k):
            extra = ""
            if out.ndim == 2 and out.shape[0] == out.shape[1] and out.shape[0] < k:
                extra = (
                    f": the number of classes was taken from the labels present; use num_classes={k}, "
                    "since a class may be missing from a batch"
                )
            elif out.ndim == 1:
                extra = ": reshape the counts to (num_classes, num_classes)"
            raise CheckFailed(f"{what}: expected shape ({k}, {k}), found {tuple(out.shape)}{extra}")
        if out.dtype.is_floating_point:
            raise CheckFailed(
                f"{what}: expected int64 counts, found {out.dtype}: count with torch.bincount (torch.histc "
                "counts in floats, and dividing by the row sums gives rates, not counts)"
            )
        expect(out.dtype == torch.int64, f"{what}: expected dtype torch.int64 (counts), found {out.dtype}")
        _unchanged(before[0], y_true, "y_true", what)
        _unchanged(before[1], y_pred, "y_pred", what)
        expected = _slow_confusion(y_true, y_pred, k)
        if torch.equal(out, expected):
            continue
        if torch.equal(out, expected.T):
            raise CheckFailed(
                f"{what}: the matrix is transposed: row i should hold the examples whose TRUE class is i, "
                "column j those PREDICTED as j (index y_true * num_classes + y_pred)"
            )
        if torch.equal(out, torch.diag(expected.diagonal())):
            raise CheckFailed(
                f"{what}: only the correct predictions were counted (every off-diagonal cell is 0); count every "
                "(true, predicted) pair"
            )
        if int(out.sum()) != n:
            raise CheckFailed(
                f"{what}: the counts add up to {int(out.sum())}, expected {n} (one count per example): is the "
                "combined index y_true * num_classes + y_pred?"
            )
        i, j = (int(v) for v in torch.nonzero(out != expected)[0])
        raise CheckFailed(
            f"{what}: cell ({i}, {j}) should count {int(expected[i, j])} examples of true class {i} predicted as "
            f"{j}, found {int(out[i, j])}"
        )


def _check_precision_recall(precision_recall: Callable[..., Any], gen: torch.Generator, where: str) -> None:
    loop = _any_loop(precision_recall)
    expect(
        loop is None,
        f"precision_recall uses {loop}: the task is to work without Python loops (the diagonal and the row "
        "and column sums give every class at once)",
    )
    c = int(torch.randint(5, 8, (), generator=gen))
    cases = [
        ("every class present and predicted", (), None),
        (f"class {c - 1} never occurs and class 0 is never predicted", (c - 1,), 0),
    ]
    for label, absent, never in cases:
        y_true, y_pred = _labels(gen, 250, c, absent, never)
        cm = _slow_confusion(y_true, y_pred, c)
        before = cm.clone()
        what = f"precision_recall(cm) for a {c}-class confusion matrix, {label} {where}"
        out = _call(precision_recall, cm, what=what)
        expect(
            isinstance(out, (tuple, list)) and len(out) == 2,
            f"{what}: expected a tuple (precision, recall), found {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else ""),
        )
        _unchanged(before, cm, "cm", what)
        diag = cm.diagonal().double()
        predicted, actual = cm.sum(dim=0).double(), cm.sum(dim=1).double()
        refs = {
            "precision": torch.where(predicted > 0, diag / predicted.clamp(min=1), 0.0),
            "recall": torch.where(actual > 0, diag / actual.clamp(min=1), 0.0),
        }
        for name, value, other in (("precision", out[0], "recall"), ("recall", out[1], "precision")):
            _tensor_like(
                value,
                shape=(c,),
                dtype=torch.float32,
                what=f"{what}: {name}",
                shape_hint=" (one value per class)",
                dtype_hint=" (the counts are int64: divide with /, which gives floats, and keep float32)",
            )
            found, want = value.double(), refs[name]
            if torch.allclose(found, want, atol=1e-6, equal_nan=False):
                continue
            zero = (predicted if name == "precision" else actual) == 0
            if bool(zero.any()) and bool(torch.isnan(found[zero]).any() or torch.isinf(found[zero]).any()):
                k = int(torch.nonzero(zero)[0])
                never_what = "never predicted" if name == "precision" else "never the true class"
                raise CheckFailed(
                    f"{what}: class {k} is {never_what}, so its {name} is 0/0; return 0 there "
                    f"(torch.where on the denominator), found {found[k].item()}"
                )
            if torch.allclose(found, refs[other], atol=1e-6):
                axis = "column" if name == "precision" else "row"
                raise CheckFailed(
                    f"{what}: this is the {other}: {name} divides the diagonal by the {axis} sums "
                    f"(the examples {'predicted as' if name == 'precision' else 'truly of'} each class)"
                )
            if torch.allclose(found, diag / cm.sum(), atol=1e-6):
                raise CheckFailed(
                    f"{what}: the diagonal was divided by the total number of examples; {name} divides by a sum "
                    "per class"
                )
            k = int((found - want).nan_to_num(1.0).abs().argmax())
            raise CheckFailed(
                f"{what}: {name} of class {k} should be {want[k].item():.6g}, found {found[k].item():.6g}"
            )


def confusion(
    confusion_matrix: Callable[..., Any], precision_recall: Callable[..., Any], *, seed: int | None = None
) -> None:
    """Check ``confusion_matrix(y_true, y_pred, num_classes) -> (C, C) int64`` (row: true class, column:
    predicted class) and ``precision_recall(cm) -> (precision (C,), recall (C,))`` float32, both without
    Python loops over the examples or the classes, against a plain-Python count."""
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(check seed {seed})"
    _check_confusion_matrix(confusion_matrix, gen, where)
    _check_precision_recall(precision_recall, gen, where)
    passed(
        "confusion matrix: counts, shape and dtype match a plain-Python count on fresh labels (with an absent class, "
        "one and no examples), and precision and recall are right per class, 0 where a class is never predicted"
    )
