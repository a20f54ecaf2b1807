"""A tiny scalar autograd engine: reverse-mode differentiation, one number at a time.

Every :class:`Value` remembers the values it was computed from (``children``) and how to pass a
gradient back to them (``_backward``). Calling :meth:`Value.backward` on the final value visits the
graph in reverse topological order and applies the chain rule at every node, exactly what
``torch.autograd`` does for tensors (unit 3, notebook 02 builds this file step by step).

>>> x, y = Value(2.0), Value(-3.0)
>>> f = x * y + x.exp()       # f = x·y + eˣ
>>> f.backward()
>>> round(x.grad, 6), y.grad  # ∂f/∂x = y + eˣ, ∂f/∂y = x
(4.389056, 2.0)

How an operation is written (the exercises of unit 3 add their own the same way): it computes the
result, creates ``out = Value(result, (inputs...), "op")`` and sets ``out._backward`` to a closure
that **adds** ``local_derivative * out.grad`` to each input's ``grad``. Adding, not assigning: a value
used twice receives one contribution from each use, and the multivariate chain rule sums them.

The module also has finite-difference gradient checking (:func:`numerical_grad`, :func:`gradcheck`)
and drawings of small graphs (:func:`draw_graph`, :func:`draw`).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib is only imported when a graph is drawn
    from matplotlib.axes import Axes

__all__ = ["Value", "numerical_grad", "gradcheck", "GradcheckError", "draw_graph", "draw"]

Number = int | float


def _no_backward() -> None:
    """The ``_backward`` of a leaf: nothing to pass on."""


class Value:
    """A scalar in a computation graph.

    Args:
        data: the number.
        children: the values this one was computed from (empty for an input, a *leaf*).
        op: the operation that produced it (``"+"``, ``"exp"``...), for drawings and ``repr``.
        label: an optional name for drawings.

    Attributes:
        data: the number (a float).
        grad: after ``root.backward()``, the derivative ∂root/∂self. The grads of leaves accumulate
            over several ``backward()`` calls, like ``tensor.grad`` in torch: set them to 0 between
            training steps.
    """

    def __init__(self, data: Number, children: tuple[Value, ...] = (), op: str = "", label: str = "") -> None:
        if not isinstance(data, numbers.Real):
            raise TypeError(f"Value holds a real number, got {type(data).__name__}: {data!r}")
        self.data = float(data)
        self.grad = 0.0
        self.children = tuple(children)
        self.op = op
        self.label = label
        self._backward: Callable[[], None] = _no_backward

    def __repr__(self) -> str:
        name = f"{self.label}, " if self.label else ""
        return f"Value({name}data={self.data:.6g}, grad={self.grad:.6g})"

    # --- the two operations everything else can be built from ---------------------------------

    def __add__(self, other: Value | Number) -> Value:
        other = _lift(other)
        if other is None:
            return NotImplemented
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:  # ∂(a + b)/∂a = ∂(a + b)/∂b = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = _lift(other)
        if other is None:
            return NotImplemented
        out = Value(self.data * other.data, (self, other), "×")

        def _backward() -> None:  # ∂(a·b)/∂a = b, ∂(a·b)/∂b = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    # --- more operations, each with its local derivative ---------------------------------------

    def __truediv__(self, other: Value | Number) -> Value:
        other = _lift(other)
        if other is None:
            return NotImplemented
        if other.data == 0.0:
            raise ZeroDivisionError(f"division by zero: {self!r} / {other!r}")
        out = Value(self.data / other.data, (self, other), "/")

        def _backward() -> None:  # ∂(a/b)/∂a = 1/b, ∂(a/b)/∂b = -a/b²
            self.grad += out.grad / other.data
            other.grad -= out.grad * self.data / other.data**2

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        if isinstance(exponent, Value) or not isinstance(exponent, numbers.Real):
            raise TypeError(
                f"Value ** {type(exponent).__name__}: the exponent must be a constant int or float; "
                "for a Value exponent y write (y * x.log()).exp()"
            )
        c = float(exponent)
        if self.data < 0 and not c.is_integer():
            raise ValueError(f"{self!r} ** {c:g}: a negative number to a non-integer power is not a real number")
        if self.data == 0 and c < 0:
            raise ZeroDivisionError(f"{self!r} ** {c:g}: zero to a negative power")
        out = Value(self.data**c, (self,), f"**{c:g}")

        def _backward() -> None:  # ∂(xᶜ)/∂x = c·xᶜ⁻¹
            self.grad += c * self.data ** (c - 1) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> Value:
        try:
            result = math.exp(self.data)
        except OverflowError:
            raise OverflowError(f"exp({self.data:g}) is too large for a float") from None
        out = Value(result, (self,), "exp")

        def _backward() -> None:  # ∂eˣ/∂x = eˣ, which is the output itself
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log of a non-positive value: log is defined for x > 0, got {self!r}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:  # ∂log(x)/∂x = 1/x
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:  # ∂tanh(x)/∂x = 1 - tanh(x)²: the output again
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward() -> None:  # 1 for x > 0, else 0 (at x = 0 too, as torch does)
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        # 1 / (1 + e⁻ˣ), written so that e^(large) never overflows
        if self.data >= 0:
            s = 1.0 / (1.0 + math.exp(-self.data))
        else:
            e = math.exp(self.data)
            s = e / (1.0 + e)
        out = Value(s, (self,), "σ")

        def _backward() -> None:  # ∂σ(x)/∂x = σ(x)·(1 - σ(x))
            self.grad += out.data * (1.0 - out.data) * out.grad

        out._backward = _backward
        return out

    # --- the rest follows from the operations above ---------------------------------------------

    def __neg__(self) -> Value:
        return self * -1.0

    def __sub__(self, other: Value | Number) -> Value:
        other = _lift(other)
        return NotImplemented if other is None else self + (-other)

    def __radd__(self, other: Number) -> Value:  # 2 + x
        return self + other

    def __rmul__(self, other: Number) -> Value:  # 2 * x
        return self * other

    def __rsub__(self, other: Number) -> Value:  # 2 - x
        return (-self) + other

    def __rtruediv__(self, other: Number) -> Value:  # 2 / x
        lifted = _lift(other)
        return NotImplemented if lifted is None else lifted / self

    def __rpow__(self, base: Number) -> Value:
        raise TypeError(f"{base!r} ** Value: only a constant exponent is supported; write (x * math.log(base)).exp()")

    # --- backpropagation --------------------------------------------------------------------------

    def topological_order(self) -> list[Value]:
        """Every value this one depends on (itself included), each listed after all of its children.

        An explicit stack instead of recursion, so that long chains (a sum of thousands of terms)
        do not hit Python's recursion limit.
        """
        order: list[Value] = []
        visited: set[Value] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                order.append(node)  # all of its children are already in `order`
            elif node not in visited:
                visited.add(node)
                stack.append((node, True))
                stack.extend((child, False) for child in node.children)
        return order

    def backward(self) -> None:
        """Set ``grad`` of every value this one depends on to ∂self/∂value (leaves: add to it)."""
        order = self.topological_order()
        for node in order:
            if node.children:  # intermediate gradients belong to this pass only
                node.grad = 0.0
        self.grad += 1.0  # ∂self/∂self
        for node in reversed(order):  # a node's grad is complete once every user has passed back
            node._backward()


def _lift(x: object) -> Value | None:
    """``x`` as a Value (a number becomes a constant leaf); ``None`` if it is neither."""
    if isinstance(x, Value):
        return x
    if isinstance(x, numbers.Real):
        return Value(x)
    return None


# ---------------------------------------------------------------------------------------------
# gradient checking by finite differences


class GradcheckError(AssertionError):
    """Backpropagated gradients disagree with finite differences."""


def numerical_grad(f: Callable[[list[float]], float], inputs: Sequence[float], eps: float = 1e-6) -> list[float]:
    """Central differences ``(f(x + eps·eᵢ) - f(x - eps·eᵢ)) / (2·eps)`` for every input ``i``.

    ``f`` takes a list of floats and returns a float. The error is O(eps²) from truncation plus
    about (machine epsilon · |f|) / eps from rounding: ``eps`` around 1e-6 balances them in float64.
    """
    x = [float(v) for v in inputs]
    grads = []
    for i in range(len(x)):
        up, down = list(x), list(x)
        up[i] += eps
        down[i] -= eps
        grads.append((f(up) - f(down)) / (2 * eps))
    return grads


def gradcheck(
    f: Callable[..., Value], inputs: Sequence[float], *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3
) -> bool:
    """Check the gradients ``backward()`` gives for ``f(*values)`` against central differences.

    ``f`` takes one :class:`Value` per input and returns a Value. Each gradient must satisfy
    ``|backprop - numerical| <= atol + rtol·|numerical|`` (the rule and defaults of
    ``torch.autograd.gradcheck``). Returns ``True`` or raises :class:`GradcheckError` naming the input.
    """
    values = [Value(x, label=f"x{i}") for i, x in enumerate(inputs)]
    f(*values).backward()
    numerical = numerical_grad(lambda xs: f(*(Value(x) for x in xs)).data, inputs, eps)
    for i, (value, num) in enumerate(zip(values, numerical)):
        if not abs(value.grad - num) <= atol + rtol * abs(num):
            raise GradcheckError(
                f"gradient mismatch for input {i} (x{i} = {value.data:.6g}): backward gives {value.grad:.10g}, "
                f"central differences {num:.10g} (eps={eps:g}, atol={atol:g}, rtol={rtol:g})"
            )
    return True


# ---------------------------------------------------------------------------------------------
# drawing small graphs


def draw_graph(
    nodes: Mapping[str, str],
    edges: Sequence[tuple[str, str, str]],
    *,
    ax: Axes | None = None,
    colors: Mapping[str, str] | None = None,
) -> Axes:
    """Draw a small computation graph from left (inputs) to right (output).

    Args:
        nodes: node name -> the text in its box; the order sets the vertical order of inputs.
        edges: ``(from, to, text)``: an arrow from an input to the node computed from it, with the
            text (e.g. a local derivative) written on the arrow ("" for none).
        ax: where to draw; a new figure when ``None``.
        colors: node name -> box colour (default light grey).
    """
    import matplotlib.pyplot as plt

    names = list(nodes)
    users: dict[str, list[str]] = {n: [] for n in names}
    inputs: dict[str, list[str]] = {n: [] for n in names}
    for src, dst, _ in edges:
        users[src].append(dst)
        inputs[dst].append(src)
    # column: longest path from an input, then each input moved next to its first user
    column = dict.fromkeys(names, 0)
    for _ in names:
        for src, dst, _ in edges:
            column[dst] = max(column[dst], column[src] + 1)
    for n in names:
        if not inputs[n] and users[n]:
            column[n] = min(column[u] for u in users[n]) - 1
    # rows, right to left: each column sorted by where its users sit, centred on them
    row: dict[str, float] = {}
    for c in sorted(set(column.values()), reverse=True):
        members = [n for n in names if column[n] == c]
        target = {n: sum(row[u] for u in users[n]) / len(users[n]) if users[n] else 0.0 for n in members}
        members.sort(key=lambda n: (-target[n], names.index(n)))  # the first member goes on top
        centre = sum(target.values()) / len(members)
        for i, n in enumerate(members):
            row[n] = centre + (len(members) - 1) / 2 - i
    # an arrow that skips columns must not run through a box on its way: move such boxes down
    for src, dst, _ in edges:
        for n in names:
            if column[src] < column[n] < column[dst]:
                t = (column[n] - column[src]) / (column[dst] - column[src])
                if abs(row[n] - (row[src] + t * (row[dst] - row[src]))) < 0.5:
                    row[n] -= 0.7
    if ax is None:
        width = 2.3 * (max(column.values()) + 1)
        _, ax = plt.subplots(figsize=(width, 1.1 * (max(row.values()) - min(row.values())) + 1.6))
    pos = {n: (2.4 * column[n], 1.25 * row[n]) for n in names}
    boxes = {}
    for n in names:
        face = (colors or {}).get(n, "#eeeeee")
        boxes[n] = ax.text(
            *pos[n],
            nodes[n],
            ha="center",
            va="center",
            fontsize=9,
            zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": face, "ec": "0.3"},
        )
    for src, dst, text in edges:
        # drawn after the boxes (higher zorder), so that the arrow is clipped at their final outline
        ax.annotate(
            "",
            xy=pos[dst],
            xytext=pos[src],
            zorder=4,
            arrowprops={
                "arrowstyle": "-|>",
                "color": "0.35",
                "lw": 1.2,
                "shrinkA": 0,
                "shrinkB": 0,
                "patchA": boxes[src].get_bbox_patch(),
                "patchB": boxes[dst].get_bbox_patch(),
            },
        )
        if text:
            (x0, y0), (x1, y1) = pos[src], pos[dst]
            ax.text(
                0.45 * x0 + 0.55 * x1,
                0.45 * y0 + 0.55 * y1,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="tab:red",
                zorder=5,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
            )
    xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    ax.set_xlim(min(xs) - 1.0, max(xs) + 1.0)
    ax.set_ylim(min(ys) - 0.8, max(ys) + 0.8)
    ax.axis("off")
    return ax


def draw(root: Value, *, ax: Axes | None = None, show_grad: bool = True) -> Axes:
    """Draw the graph of ``root``: each box shows a value's label or operation, data and grad."""
    order = root.topological_order()
    ids = {node: f"n{i}" for i, node in enumerate(order)}
    nodes, colors = {}, {}
    for node in order:
        head = " ".join(part for part in (node.label, node.op) if part) or "leaf"
        text = f"{head}\ndata {node.data:.4g}"
        nodes[ids[node]] = text + (f"\ngrad {node.grad:.4g}" if show_grad else "")
        colors[ids[node]] = "#dbe9f6" if not node.children else "#eeeeee"
    edges = [(ids[child], ids[node], "") for node in order for child in dict.fromkeys(node.children)]
    return draw_graph(nodes, edges, ax=ax, colors=colors)
