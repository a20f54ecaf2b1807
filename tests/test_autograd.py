"""Library tests for dlfund.autograd: gradients of random expressions against torch.autograd and finite
differences, accumulation, clear errors, gradient checking, drawings, and parity with notebook 02."""

from __future__ import annotations

import doctest
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib
import pytest
import torch

from dlfund import autograd
from dlfund.autograd import GradcheckError, Value, gradcheck, numerical_grad
from dlfund.course import manifest
from dlfund.course.notebooks import definitions

matplotlib.use("Agg")
UNIT = manifest.get_unit(3)


# --- random expressions --------------------------------------------------------------------------
#
# A random *program*: each step applies one operation to earlier results (chosen at random, so
# results are reused: the graph is a DAG, not just a tree). The same program runs on Values and on
# float64 torch tensors. Steps are only kept where the operation is smooth and well defined at the
# current values (log of x > 0.05, no division by ~0, no kink of relu nearby...), so that finite
# differences are meaningful too.

UNARY = ("neg", "exp", "log", "tanh", "relu", "sigmoid", "pow")
BINARY = ("add", "sub", "mul", "div")
WITH_CONSTANT = ("radd", "rsub", "rmul", "rdiv", "add_c", "mul_c", "div_c")
EXPONENTS = (2, 3, -1, -2, 0.5, 1.5, -0.5)


@dataclass(frozen=True)
class Step:
    op: str
    a: int
    b: int = -1
    c: float = 0.0


def apply(step: Step, xs: list[Any]) -> Any:
    """One step on Values or tensors: both support the same operators and method names."""
    a, b, c = xs[step.a], xs[step.b] if step.b >= 0 else None, step.c
    return {
        "neg": lambda: -a,
        "exp": lambda: a.exp(),
        "log": lambda: a.log(),
        "tanh": lambda: a.tanh(),
        "relu": lambda: a.relu(),
        "sigmoid": lambda: a.sigmoid(),
        "pow": lambda: a**c,
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "div": lambda: a / b,
        "radd": lambda: c + a,
        "rsub": lambda: c - a,
        "rmul": lambda: c * a,
        "rdiv": lambda: c / a,
        "add_c": lambda: a + c,
        "mul_c": lambda: a * c,
        "div_c": lambda: a / c,
    }[step.op]()


def run(program: list[Step], inputs: list[Any]) -> Any:
    xs = list(inputs)
    for step in program:
        xs.append(apply(step, xs))
    return xs[-1]


def _well_defined(step: Step, x: list[float]) -> bool:
    a = x[step.a]
    b = x[step.b] if step.b >= 0 else None
    if step.op == "log":
        return a > 0.05
    if step.op == "exp":
        return a < 4
    if step.op == "relu":
        return abs(a) > 1e-2
    if step.op == "pow":
        if not float(step.c).is_integer() and a < 0.05:
            return False
        return not (step.c < 0 and abs(a) < 0.2)
    if step.op in ("div", "rdiv"):
        return abs(b if step.op == "div" else a) > 0.2
    return True


def random_program(rng: random.Random, n_inputs: int, n_steps: int) -> tuple[list[Step], list[float]]:
    inputs = [rng.choice((-1, 1)) * rng.uniform(0.3, 2.0) for _ in range(n_inputs)]
    values = list(inputs)
    program: list[Step] = []
    while len(program) < n_steps:
        op = rng.choice(UNARY + BINARY + WITH_CONSTANT)
        recent = max(0, len(values) - 4)  # prefer recent results: deeper graphs
        a = rng.randrange(recent, len(values)) if rng.random() < 0.7 else rng.randrange(len(values))
        b = rng.randrange(len(values)) if op in BINARY else -1
        c = rng.choice(EXPONENTS) if op == "pow" else rng.choice((-1, 1)) * rng.uniform(0.5, 3.0)
        step = Step(op, a, b, c)
        if not _well_defined(step, values):
            continue
        new = apply(step, [Value(v) for v in values]).data
        if abs(new) > 50:  # keep numbers moderate, so that relative tolerances are meaningful
            continue
        program.append(step)
        values.append(new)
    # the output combines the last result with every input, so every input has a gradient path
    for i in range(n_inputs):
        program.append(Step("add", len(values) - 1, i))
        values.append(values[-1] + values[i])
    return program, inputs


def value_grads(program: list[Step], inputs: list[float]) -> tuple[float, list[float]]:
    leaves = [Value(x) for x in inputs]
    out = run(program, leaves)
    out.backward()
    return out.data, [leaf.grad for leaf in leaves]


def torch_grads(program: list[Step], inputs: list[float]) -> tuple[float, list[float]]:
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in inputs]
    out = run(program, leaves)
    out.backward()
    return out.item(), [leaf.grad.item() for leaf in leaves]


PROGRAMS = [
    random_program(random.Random(seed), n_inputs=3, n_steps=random.Random(seed).randint(3, 14)) for seed in range(300)
]


def test_random_programs_use_every_operation_and_reuse_nodes() -> None:
    used = {step.op for program, _ in PROGRAMS for step in program}
    assert used == set(UNARY + BINARY + WITH_CONSTANT)

    def reuses(program: list[Step]) -> bool:  # some result (or input) is an operand more than once
        operands = [s.a for s in program] + [s.b for s in program if s.b >= 0]
        return len(operands) > len(set(operands))

    assert sum(map(reuses, (p for p, _ in PROGRAMS))) == len(PROGRAMS)


def test_gradients_of_random_expressions_match_torch() -> None:
    worst = 0.0
    for k, (program, inputs) in enumerate(PROGRAMS):
        data, grads = value_grads(program, inputs)
        t_data, t_grads = torch_grads(program, inputs)
        assert math.isclose(data, t_data, rel_tol=1e-12, abs_tol=1e-12), f"program {k}: forward differs"
        for i, (g, t) in enumerate(zip(grads, t_grads)):
            scale = max(abs(t), 1e-3)
            worst = max(worst, abs(g - t) / scale)
            assert abs(g - t) <= 1e-9 * scale, f"program {k} {program}: d/dx{i} = {g!r}, torch {t!r}"
    assert worst < 1e-9


def test_gradients_of_random_expressions_match_finite_differences() -> None:
    for k, (program, inputs) in enumerate(PROGRAMS[:100]):
        _, grads = value_grads(program, inputs)
        numerical = numerical_grad(lambda xs, p=program: run(p, [Value(x) for x in xs]).data, inputs, eps=1e-6)
        for i, (g, n) in enumerate(zip(grads, numerical)):
            assert abs(g - n) <= 1e-6 + 1e-5 * abs(n), f"program {k}: d/dx{i} = {g!r}, finite differences {n!r}"


# --- individual rules and gradient accumulation -------------------------------------------------


@pytest.mark.parametrize(
    ("f", "df"),
    [
        (lambda x: x / 4.0, lambda x: 0.25),
        (lambda x: 3.0 / x, lambda x: -3.0 / x**2),
        (lambda x: 5.0 - x, lambda x: -1.0),
        (lambda x: x**3, lambda x: 3 * x**2),
        (lambda x: x.exp(), math.exp),
        (lambda x: x.log(), lambda x: 1 / x),
        (lambda x: x.tanh(), lambda x: 1 - math.tanh(x) ** 2),
        (lambda x: x.sigmoid(), lambda x: math.exp(-x) / (1 + math.exp(-x)) ** 2),
        (lambda x: x.relu(), lambda x: 1.0),
    ],
)
def test_local_derivatives(f: Callable[[Any], Any], df: Callable[[float], float]) -> None:
    x = Value(1.3)
    f(x).backward()
    assert math.isclose(x.grad, df(1.3), rel_tol=1e-12)


def test_relu_gradient_at_and_below_zero_is_zero_like_torch() -> None:
    for v in (0.0, -2.0):
        x, t = Value(v), torch.tensor(v, requires_grad=True)
        x.relu().backward()
        t.relu().backward()
        assert x.grad == t.grad.item() == 0.0


def test_sigmoid_is_stable_for_large_inputs() -> None:
    for v in (-800.0, 800.0):
        x = Value(v)
        out = x.sigmoid()
        out.backward()
        assert out.data == (0.0 if v < 0 else 1.0) and x.grad == 0.0


def test_a_value_used_twice_accumulates() -> None:
    x = Value(3.0)
    (x * x).backward()  # the same Value on both sides of ×: 2x
    assert x.grad == 6.0
    x = Value(3.0)
    (x + x).backward()
    assert x.grad == 2.0
    x = Value(0.7)
    y = x.tanh()
    f = y * y + y / x  # y feeds three uses, x two
    f.backward()
    t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    ty = t.tanh()
    (ty * ty + ty / t).backward()
    assert math.isclose(x.grad, t.grad.item(), rel_tol=1e-12)


def test_backward_twice_accumulates_leaves_like_torch() -> None:
    x, w = Value(2.0), Value(-1.5)
    f = (x * w).tanh() + x
    f.backward()
    first = x.grad
    f.backward()  # interior grads restart at 0; leaves add a second copy, as torch's .grad does
    assert math.isclose(x.grad, 2 * first, rel_tol=1e-12)
    t = torch.tensor(2.0, dtype=torch.float64, requires_grad=True)
    tf = (t * -1.5).tanh() + t
    tf.backward(retain_graph=True)
    tf.backward()
    assert math.isclose(x.grad, t.grad.item(), rel_tol=1e-12)


def test_backward_on_a_leaf_and_on_a_deep_chain() -> None:
    x = Value(1.0)
    x.backward()
    assert x.grad == 1.0
    x = Value(0.5)
    total = x
    for _ in range(5000):  # deeper than Python's recursion limit
        total = total + x
    total.backward()
    assert x.grad == 5001.0


def test_topological_order_lists_children_first() -> None:
    a, b = Value(1.0), Value(2.0)
    c = a * b
    d = c + a
    e = d * c
    order = e.topological_order()
    assert len(order) == len(set(order)) == 5 and order[-1] is e
    for node in order:
        for child in node.children:
            assert order.index(child) < order.index(node)


def test_repr_and_labels() -> None:
    assert repr(Value(2.0, label="w")) == "Value(w, data=2, grad=0)"
    assert (Value(1.0) * 2).op == "×" and (Value(4.0) ** 0.5).op == "**0.5" and Value(1.0).sigmoid().op == "σ"


# --- clear errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda: Value(0.0).log(), ValueError, r"log of a non-positive value.*x > 0"),
        (lambda: Value(-1.0).log(), ValueError, r"log of a non-positive value"),
        (lambda: Value(2.0) ** Value(3.0), TypeError, r"exponent must be a constant int or float"),
        (lambda: 2.0 ** Value(3.0), TypeError, r"only a constant exponent"),
        (lambda: Value(-2.0) ** 0.5, ValueError, r"non-integer power"),
        (lambda: Value(0.0) ** -1, ZeroDivisionError, r"zero to a negative power"),
        (lambda: Value(1.0) / 0.0, ZeroDivisionError, r"division by zero"),
        (lambda: 1.0 / Value(0.0), ZeroDivisionError, r"division by zero"),
        (lambda: Value(800.0).exp(), OverflowError, r"exp\(800\) is too large"),
        (lambda: Value("3"), TypeError, r"real number, got str"),
        (lambda: Value(torch.tensor(1.0)), TypeError, r"real number, got Tensor"),
        (lambda: Value(1.0) + "a", TypeError, r"unsupported operand"),
    ],
)
def test_errors_are_clear(make: Callable[[], Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        make()


# --- gradient checking ---------------------------------------------------------------------------


def test_numerical_grad_is_second_order_accurate() -> None:
    def cube(xs: list[float]) -> float:
        return xs[0] ** 3 + 2 * xs[1]

    g = numerical_grad(cube, [1.0, 5.0], eps=1e-3)
    assert math.isclose(g[0], 3.0 + 1e-6, rel_tol=1e-9)  # the central difference of x³ is 3x² + eps²
    assert math.isclose(g[1], 2.0, rel_tol=1e-9)


def test_gradcheck_accepts_right_and_rejects_wrong_gradients() -> None:
    assert gradcheck(lambda x, y: (x * y).tanh() / (y.exp() + 1) + x.log(), [0.8, -0.4])

    def wrong_tanh(x: Value) -> Value:
        out = Value(math.tanh(x.data), (x,), "tanh")

        def _backward() -> None:
            x.grad += (1 - x.data**2) * out.grad  # a typical mistake: the input instead of the output

        out._backward = _backward
        return out

    with pytest.raises(GradcheckError, match=r"gradient mismatch for input 1 \(x1 = 0\.9\).*central differences"):
        gradcheck(lambda x, y: x * 2 + wrong_tanh(y), [0.3, 0.9])
    assert gradcheck(lambda x: wrong_tanh(x), [0.0])  # right by accident where tanh(x) = x


def test_docstring_example() -> None:
    assert doctest.testmod(autograd).failed == 0


# --- drawings ------------------------------------------------------------------------------------


def test_draw_graph_places_inputs_left_of_outputs() -> None:
    import matplotlib.pyplot as plt

    x, w = Value(2.0, label="x"), Value(-1.0, label="w")
    f = (x * w).tanh() + x
    f.backward()
    ax = autograd.draw(f)
    texts = {t.get_text().split("\n")[0]: t.get_position() for t in ax.texts}
    assert {"x", "w", "×", "tanh", "+"} <= set(texts)
    assert texts["x"][0] < texts["×"][0] < texts["tanh"][0] < texts["+"][0]
    assert any("grad" in t.get_text() for t in ax.texts)
    ax = autograd.draw_graph({"a": "a", "b": "b", "c": "a·b"}, [("a", "c", "∂c/∂a = b"), ("b", "c", "")])
    assert "∂c/∂a = b" in [t.get_text() for t in ax.texts]
    plt.close("all")


# --- parity with the notebook that builds the engine step by step --------------------------------


def test_notebook_engine_matches_library() -> None:
    nb = definitions(UNIT.notebook_path("02-autograd-engine"), names=("Value",))
    NotebookValue = nb["Value"]
    shared_ops = {
        "neg",
        "exp",
        "log",
        "tanh",
        "relu",
        "sigmoid",
        "pow",
        "add",
        "sub",
        "mul",
        "div",
        "radd",
        "rsub",
        "rmul",
        "rdiv",
        "add_c",
        "mul_c",
        "div_c",
    }
    checked = 0
    for program, inputs in PROGRAMS[:150]:
        assert {s.op for s in program} <= shared_ops
        leaves = [NotebookValue(x) for x in inputs]
        out = run(program, leaves)
        out.backward()
        data, grads = value_grads(program, inputs)
        assert math.isclose(out.data, data, rel_tol=1e-12, abs_tol=1e-12)
        for leaf, g in zip(leaves, grads):
            assert math.isclose(leaf.grad, g, rel_tol=1e-9, abs_tol=1e-12)
        checked += 1
    assert checked == 150
