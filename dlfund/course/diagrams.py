"""The course's diagrams, drawn by code: a roadmap per unit and the concept diagrams the lectures show.

Each diagram is one function that returns a matplotlib :class:`~matplotlib.figure.Figure`, registered in
:data:`DIAGRAMS` under the name of its file ``book/figures/<name>.svg``. ``dlfund generate`` writes the files
(:func:`write_all`); the unit READMEs show the roadmaps and the lecture notebooks the concept diagrams by
relative path, so they render on GitHub, in JupyterLab and in the book.

The figures are drawn in inches: every canvas has one axes covering it with data coordinates equal to
inches, so a box ``1.5`` wide is 1.5 inches wide and a 10-point label fits the same way in every diagram.
They are diagrams, not plots of data: nothing here reads a measurement.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Arc, Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

from dlfund.course import manifest
from dlfund.utils.io import atomic_open

FIGURES_DIR = manifest.BOOK_DIR / "figures"
"""Where the SVG files live (committed; ``dlfund generate`` rewrites them)."""

SVG_SETTINGS = {"svg.hashsalt": "dlfund", "svg.fonttype": "none", "font.family": "DejaVu Sans"}
"""Fixed ids (same bytes on every run) and text kept as text (small, searchable files)."""

# colours: one meaning each, in every diagram
INK = "#1a202c"
GREY = ("#edf2f7", "#4a5568")  # inputs, earlier units, context
BLUE = ("#dbeafe", "#1d4ed8")  # computation
GREEN = ("#dcfce7", "#15803d")  # outputs, what is kept
ORANGE = ("#ffedd5", "#c2410c")  # exercises, what trains
PURPLE = ("#ede9fe", "#6d28d9")  # attention, communication
RED = "#b91c1c"  # gradients, the backward pass, masked


def _canvas(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure ``width`` × ``height`` inches whose data coordinates are inches."""
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    return fig, ax


def _box(
    ax: Axes,
    x: float,
    y: float,
    w: float,
    h: float,
    text: str = "",
    colors: tuple[str, str] = BLUE,
    *,
    size: float = 11,
    weight: str = "normal",
    dashed: bool = False,
    round_: bool = True,
    align: str = "center",
) -> None:
    """A box centred at ``(x, y)``, ``w`` × ``h`` inches, with ``text`` in it."""
    style = "round,pad=0,rounding_size=0.08" if round_ else "square,pad=0"
    ax.add_patch(
        FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle=style,
            facecolor=colors[0],
            edgecolor=colors[1],
            linewidth=1.4,
            linestyle="--" if dashed else "-",
            zorder=2.5,  # above connecting lines
        )
    )
    if text:
        tx = x if align == "center" else x - w / 2 + 0.12
        ax.text(tx, y, text, ha=align, va="center", fontsize=size, color=INK, weight=weight, linespacing=1.25, zorder=3)


def _arrow(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    color: str = INK,
    *,
    dashed: bool = False,
    rad: float = 0.0,
    width: float = 1.4,
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=14,
            color=color,
            linewidth=width,
            linestyle="--" if dashed else "-",
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=0,
            shrinkB=0,
        )
    )


def _text(ax: Axes, x: float, y: float, text: str, size: float = 11, **kw: object) -> None:
    kw.setdefault("ha", "center")
    kw.setdefault("va", "center")
    kw.setdefault("color", INK)
    ax.text(x, y, text, fontsize=size, linespacing=1.25, **kw)  # type: ignore[arg-type]


def _title(ax: Axes, width: float, height: float, text: str) -> None:
    _text(ax, width / 2, height - 0.3, text, size=14, weight="bold")


def _wrap(text: str, chars: int, indent: str = "") -> str:
    return "\n".join(textwrap.wrap(text, chars, break_on_hyphens=False, subsequent_indent=indent))


def _grid(
    ax: Axes,
    x: float,
    y: float,
    rows: int,
    cols: int,
    cell: float,
    colors: tuple[str, str] = GREY,
    fills: dict[tuple[int, int], str] | None = None,
) -> None:
    """A ``rows`` × ``cols`` grid of squares with its top-left corner at ``(x, y)``."""
    fills = fills or {}
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(
                Rectangle(
                    (x + c * cell, y - (r + 1) * cell),
                    cell,
                    cell,
                    facecolor=fills.get((r, c), colors[0]),
                    edgecolor=colors[1],
                    linewidth=0.8,
                )
            )


# ---------------------------------------------------------------------------------------------------------
# roadmaps


def roadmap(unit: manifest.Unit) -> Figure:
    """What ``unit`` builds, in order: where it starts from, its lecture notebooks, its exercises, what's next."""
    width = 10.0
    left_x, left_w = 3.05, 5.7  # the column of notebooks
    right_x, right_w = 8.15, 3.3  # the exercises
    line = 0.2  # inches per line of 11-point text

    previous = next((u for u in manifest.UNITS if u.number == unit.number - 1), None)
    following = next((u for u in manifest.UNITS if u.number == unit.number + 1), None)
    start_head = f"from unit {previous.number:02d} · {previous.title}" if previous else "before unit 01"
    start_text = _wrap(unit.builds_on, 70)
    start_h = 0.3 + line * (1 + start_text.count("\n") + 1)
    labels = [_wrap(f"{i}. {nb.title}", 72) for i, nb in enumerate(unit.notebooks, 1)]
    heights = [0.26 + line * (label.count("\n") + 1) for label in labels]
    gap = 0.32
    height = 0.75 + start_h + gap + sum(heights) + gap * (len(heights) - 1) + 0.75

    fig, ax = _canvas(width, height)
    _title(ax, width, height, f"Unit {unit.number:02d} · {unit.title}")

    y = height - 0.7 - start_h / 2
    _box(ax, left_x, y, left_w, start_h, "", GREY, dashed=True)
    _text(ax, left_x, y + start_h / 2 - 0.24, start_head, size=11, weight="bold")
    _text(ax, left_x, y - 0.12, start_text, size=10.5, style="italic")
    bottom = y - start_h / 2
    centres = []
    for label, h in zip(labels, heights, strict=True):
        top = bottom - gap
        _arrow(ax, (left_x, bottom), (left_x, top))
        centre = top - h / 2
        _box(ax, left_x, centre, left_w, h, label, BLUE, align="left")
        centres.append(centre)
        bottom = top - h

    if unit.exercises:
        items = [_wrap(f"ex{i:02d} · {ex.title}", 36, indent="       ") for i, ex in enumerate(unit.exercises, 1)]
        body = "\n".join(items)
        ex_h = 0.45 + line * (body.count("\n") + 1)
        ex_y = centres[-1] - 0.3 + ex_h / 2  # beside the last notebook: the exercises come after it
        _box(ax, right_x, ex_y, right_w, ex_h, "", ORANGE, dashed=True)
        _text(ax, right_x, ex_y + ex_h / 2 - 0.2, "Exercises (after the lectures)", size=11, weight="bold")
        _text(ax, right_x - right_w / 2 + 0.14, ex_y - 0.1, body, size=10.5, ha="left")
        _arrow(ax, (left_x + left_w / 2, centres[-1]), (right_x - right_w / 2, centres[-1]), ORANGE[1], dashed=True)

    nxt = f"next: unit {following.number:02d} · {following.title}" if following else "next: the final exam"
    _arrow(ax, (left_x, bottom), (left_x, bottom - 0.3), GREY[1])
    _text(ax, left_x, bottom - 0.45, nxt, size=10.5, color=GREY[1], style="italic")
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 03


def computation_graph() -> Figure:
    """The neuron of unit 3, notebook 01, as a computation graph: the forward pass left to right, each
    node's gradient (red) computed right to left by the chain rule."""
    fig, ax = _canvas(10, 5.2)
    _title(ax, 10, 5.2, "A computation graph: values flow forward →, gradients flow back ←")
    for name, (x, y) in {"x₁": (0.55, 4.2), "w₁": (0.55, 3.5), "x₂": (0.55, 2.2), "w₂": (0.55, 1.5)}.items():
        _box(ax, x, y, 0.6, 0.42, name, GREY if name.startswith("x") else ORANGE)
    _box(ax, 3.3, 0.7, 0.6, 0.42, "b", ORANGE)
    nodes = {
        "u₁ = w₁x₁": (2.3, 3.85),
        "u₂ = w₂x₂": (2.3, 1.85),
        "s = u₁ + u₂": (3.9, 2.85),
        "z = s + b": (5.6, 2.1),
        "p = σ(z)": (7.2, 2.1),
        "L = −log p": (8.8, 2.1),
    }
    for name, (x, y) in nodes.items():
        _box(ax, x, y, 1.3 if x < 8 else 1.25, 0.5, name, GREEN if name.startswith("L") else BLUE, size=10.5)
    edges = [
        ((0.85, 4.2), (1.65, 3.95)),
        ((0.85, 3.5), (1.65, 3.75)),
        ((0.85, 2.2), (1.65, 1.95)),
        ((0.85, 1.5), (1.65, 1.75)),
        ((2.95, 3.7), (3.4, 3.1)),
        ((2.95, 2.0), (3.4, 2.6)),
        ((4.55, 2.65), (4.95, 2.3)),
        ((3.6, 0.8), (4.95, 1.9)),
        ((6.25, 2.1), (6.55, 2.1)),
        ((7.85, 2.1), (8.17, 2.1)),
    ]
    for start, end in edges:
        _arrow(ax, start, end)
    grads = [
        (8.8, 2.6, "∂L/∂L = 1", "center"),
        (7.2, 2.6, "∂L/∂p = −1/p", "center"),
        (5.6, 2.6, "∂L/∂z = ∂L/∂p · p(1−p)", "center"),
        (3.9, 3.35, "∂L/∂s = ∂L/∂z · 1", "center"),
        (2.3, 4.35, "∂L/∂u₁ = ∂L/∂s · 1", "center"),
        (2.3, 1.35, "∂L/∂u₂ = ∂L/∂s · 1", "center"),
        (0.25, 3.08, "∂L/∂w₁ = ∂L/∂u₁ · x₁", "left"),
        (0.25, 1.08, "∂L/∂w₂ = ∂L/∂u₂ · x₂", "left"),
        (3.7, 0.45, "∂L/∂b = ∂L/∂z · 1", "left"),
    ]
    for x, y, text, ha in grads:
        _text(ax, x, y, text, size=10, color=RED, ha=ha)
    _arrow(ax, (9.4, 1.45), (6.2, 1.45), RED, dashed=True, width=1.2)
    _text(
        ax,
        7.8,
        0.95,
        "backward pass: one sweep from L, right to left;\neach gradient = the one after it × a local derivative",
        size=10,
        color=RED,
    )
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 04


def mlp_xor() -> Figure:
    """XOR by hand: two ReLU units move the four corners to where one straight line separates them."""
    fig, ax = _canvas(10, 4.4)
    _title(ax, 10, 4.4, "A hidden layer moves the points until a line separates them (XOR)")

    def corners(x0: float, y0: float, size: float, points: dict[str, tuple[float, float, int]], axis: str) -> None:
        ax.add_patch(Rectangle((x0, y0), size, size, facecolor="white", edgecolor=GREY[1], linewidth=1))
        scale = size / 2.4
        for label, (px, py, cls) in points.items():
            cx, cy = x0 + 0.2 + px * scale, y0 + 0.2 + py * scale
            colour = ORANGE[1] if cls else BLUE[1]
            ax.plot([cx], [cy], marker="o" if cls else "s", markersize=11, color=colour)
            _text(ax, cx + 0.1, cy + 0.2, label, size=9.5, ha="left")
        _text(ax, x0 + size / 2, y0 - 0.22, axis, size=10.5)

    # input space: XOR corners, no line separates them
    points_in = {"(0,0)": (0, 0, 0), "(0,1)": (0, 1, 1), "(1,0)": (1, 0, 1), "(1,1)": (1, 1, 0)}
    corners(0.4, 0.9, 2.6, points_in, "input space (x₁, x₂)")
    _text(ax, 1.7, 3.75, "no straight line separates\nclass 0 (■) from class 1 (●)", size=10.5)

    # the network
    _box(ax, 4.1, 2.75, 1.5, 0.5, "x (2)", GREY)
    _box(ax, 4.1, 1.85, 1.9, 0.62, "h₁ = relu(x₁ + x₂)\nh₂ = relu(x₁ + x₂ − 1)", BLUE, size=9.5)
    _box(ax, 4.1, 0.95, 1.5, 0.5, "y = h₁ − 2h₂", GREEN, size=10)
    _arrow(ax, (4.1, 2.5), (4.1, 2.16))
    _arrow(ax, (4.1, 1.54), (4.1, 1.2))
    _text(ax, 4.1, 3.4, "hidden layer\n(2 ReLU units)", size=10.5, weight="bold")

    # hidden space: now a line separates them
    points_h = {"(0,0)": (0, 0, 0), "(0,1) and (1,0)": (1, 0, 1), "(1,1)": (2, 1, 0)}
    corners(5.4, 0.9, 2.6, points_h, "hidden space (h₁, h₂)")
    scale = 2.6 / 2.4
    # the output's boundary h1 - 2 h2 = 0.5, drawn across the hidden plane
    xs = [5.4 + 0.2 + h1 * scale for h1 in (0.5, 2.0)]
    ys = [0.9 + 0.2 + ((h1 - 0.5) / 2) * scale for h1 in (0.5, 2.0)]
    ax.plot(xs, ys, color=GREEN[1], linewidth=2)
    _text(ax, 9.1, 2.6, "the output's\nline\nh₁ − 2h₂ = ½", size=10.5, color=GREEN[1])
    _text(ax, 6.7, 3.75, "one line now separates them", size=10.5)
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 07


def convolution() -> Figure:
    """One output value of a convolution: the kernel's dot product with one patch of the padded input."""
    fig, ax = _canvas(10, 4.6)
    _title(ax, 10, 4.6, "Convolution: one dot product per output position")
    cell = 0.42
    # input 5x5 padded to 7x7 (padding 1): the patch of output (0, 1) highlighted
    patch = {(r, c): "#bfdbfe" for r in range(3) for c in range(1, 4)}
    pad = {(r, c): "white" for r in range(7) for c in range(7) if r in (0, 6) or c in (0, 6)}
    _grid(ax, 0.4, 3.75, 7, 7, cell, ("#e2e8f0", GREY[1]), {**pad, **patch})
    ax.add_patch(Rectangle((0.4 + cell, 3.75 - 3 * cell), 3 * cell, 3 * cell, fill=False, ec=BLUE[1], lw=2.4))
    _text(ax, 0.4 + 3.5 * cell, 0.55, "input H × W = 5 × 5 (grey)\npadded by 1 (white border)", size=10.5)
    _text(ax, 3.9, 2.75, "×", size=22)
    _grid(ax, 4.25, 3.1, 3, 3, cell, BLUE, {(r, c): "#bfdbfe" for r in range(3) for c in range(3)})
    _text(ax, 4.25 + 1.5 * cell, 1.45, "kernel k × k = 3 × 3\n(one per C_in, C_out pair)", size=10.5)
    _text(ax, 6.3, 2.75, "→", size=22)
    _grid(ax, 6.9, 3.3, 5, 5, cell, GREEN, {(0, 1): "#86efac"})
    ax.add_patch(Rectangle((6.9 + cell, 3.3 - cell), cell, cell, fill=False, ec=GREEN[1], lw=2.4))
    _text(ax, 6.9 + 2.5 * cell, 0.75, "output H′ × W′ = 5 × 5\nH′ = (H + 2·padding − k) // stride + 1", size=10.5)
    _text(
        ax,
        5.0,
        4.0,
        "(N, C_in, H, W)  →  (N, C_out, H′, W′): each output = Σ over C_in × k × k of kernel × patch, + bias",
        size=10.5,
        color=BLUE[1],
    )
    return fig


def residual_block() -> Figure:
    """The residual block of unit 7: two 3×3 convolutions with batch norm, and the input added back."""
    fig, ax = _canvas(8, 5.6)
    _title(ax, 8, 5.6, "A residual block: relu(F(x) + shortcut(x))")
    x0 = 3.0
    steps = [
        (4.55, "x   (N, C_in, H, W)", GREY),
        (3.75, "conv 3×3 (stride s) → BatchNorm → ReLU", BLUE),
        (2.95, "conv 3×3 → BatchNorm", BLUE),
        (1.55, "ReLU", BLUE),
        (0.75, "out   (N, C_out, H/s, W/s)", GREEN),
    ]
    for y, label, colors in steps:
        _box(ax, x0, y, 3.9, 0.5, label, colors, size=10.5)
    for a, b in ((4.3, 4.0), (3.5, 3.2), (2.7, 2.5), (1.95, 1.8), (1.3, 1.0)):
        _arrow(ax, (x0, a), (x0, b))
    ax.add_patch(FancyBboxPatch((x0 - 0.25, 1.97), 0.5, 0.5, boxstyle="circle,pad=0", fc="white", ec=INK, lw=1.4))
    _text(ax, x0, 2.22, "+", size=16, weight="bold")
    _text(ax, 0.55, 3.35, "F(x):\nthe residual", size=10.5, color=BLUE[1])
    # the shortcut
    ax.plot([x0 + 1.95, 6.6, 6.6], [4.55, 4.55, 2.22], color=GREEN[1], lw=2)
    _arrow(ax, (6.6, 2.22), (x0 + 0.27, 2.22), GREEN[1], width=2)
    _box(ax, 6.6, 3.35, 2.3, 0.95, "shortcut: identity,\nor 1×1 conv + BN\nwhen the shape changes", GREEN, size=10)
    _text(ax, 6.3, 1.5, "gradients flow straight\nback through the +", size=10.5, color=RED)
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 08


def encoder_decoder_attention() -> Figure:
    """Unit 8's encoder–decoder: at every decoder step, additive attention over all encoder states."""
    fig, ax = _canvas(10, 5.4)
    _title(ax, 10, 5.4, "Encoder–decoder with additive attention (one decoder step)")
    words = ["four", "hundred", "two", "<eos>"]
    xs = [1.0, 2.3, 3.6, 4.9]
    for x, w in zip(xs, words, strict=True):
        _box(ax, x, 0.55, 1.1, 0.42, w, GREY, size=10.5)
        _box(ax, x, 1.55, 1.1, 0.5, f"h{'₁₂₃₄'[xs.index(x)]}", BLUE)
        _arrow(ax, (x, 0.76), (x, 1.3))
    for a, b in zip(xs, xs[1:], strict=False):
        ax.annotate("", (b - 0.56, 1.55), (a + 0.56, 1.55), arrowprops={"arrowstyle": "<|-|>", "color": INK})
    _text(ax, 2.95, 0.12, "encoder: a bidirectional GRU, one state h_j per source word", size=10.5, color=BLUE[1])
    ax.plot([0.5, 5.4], [2.6, 2.6], color=PURPLE[1], lw=0.8)
    # scores and weights
    weights = [0.08, 0.15, 0.7, 0.07]
    for x, a in zip(xs, weights, strict=True):
        ax.add_patch(Rectangle((x - 0.25, 2.6), 0.5, 1.1 * a, fc=PURPLE[1], ec=PURPLE[1], alpha=0.8))
        _arrow(ax, (x, 1.82), (x, 2.55), PURPLE[1], width=1.0)
    _text(ax, 2.95, 3.75, "weights a_j = softmax_j(vᵀ tanh(W_q s + W_k h_j)), padding masked", 10.5, color=PURPLE[1])
    _box(ax, 2.95, 4.35, 3.1, 0.5, "context = Σ_j a_j h_j", PURPLE)
    # decoder
    _box(ax, 7.6, 2.0, 2.4, 0.55, "previous state s", ORANGE, size=10.5)
    _box(ax, 7.6, 3.3, 2.4, 0.55, "GRUCell → new state s", ORANGE)
    _box(ax, 7.6, 4.5, 2.4, 0.5, "next digit", GREEN)
    _box(ax, 7.6, 0.75, 2.4, 0.5, "previous digit", GREY, size=10.5)
    _arrow(ax, (7.6, 1.0), (7.6, 1.72))
    _arrow(ax, (7.6, 2.28), (7.6, 3.02))
    _arrow(ax, (7.6, 3.58), (7.6, 4.25))
    _arrow(ax, (4.5, 4.35), (6.38, 3.4), PURPLE[1])
    _arrow(ax, (6.38, 2.0), (5.45, 2.9), PURPLE[1], dashed=True)
    _text(ax, 5.95, 2.25, "s queries\nthe h_j", size=10, color=PURPLE[1])
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 09


def self_attention() -> Figure:
    """Scaled dot-product self-attention with its shapes."""
    fig, ax = _canvas(10, 4.3)
    _title(ax, 10, 4.3, "Self-attention: every token scores every token, then averages their values")
    _box(ax, 0.9, 2.0, 1.3, 0.55, "x (B, T, C)", GREY)
    ys = {"q": 3.0, "k": 2.0, "v": 1.0}
    for name, y in ys.items():
        _box(ax, 2.9, y, 1.9, 0.5, f"{name} = x W_{name}  (B, T, d)", BLUE, size=10)
        _arrow(ax, (1.55, 2.0), (1.95, y), rad=0)
    _box(ax, 5.35, 2.5, 1.9, 0.6, "scores q kᵀ / √d\n(B, T, T)", PURPLE, size=10.5)
    _arrow(ax, (3.85, 3.0), (4.4, 2.6))
    _arrow(ax, (3.85, 2.0), (4.4, 2.4))
    _box(ax, 7.2, 2.5, 1.5, 0.6, "softmax over\neach row", PURPLE, size=10.5)
    _arrow(ax, (6.3, 2.5), (6.45, 2.5))
    _box(ax, 7.2, 1.0, 1.5, 0.6, "weights @ v", BLUE, size=10.5)
    _arrow(ax, (7.2, 2.2), (7.2, 1.3))
    _arrow(ax, (3.85, 1.0), (6.45, 1.0))
    _box(ax, 9.2, 1.0, 1.25, 0.55, "(B, T, d)", GREEN, size=10.5)
    _arrow(ax, (7.95, 1.0), (8.57, 1.0))
    _text(ax, 6.3, 3.55, "row i of the weights: how much token i takes from each token j", size=10.5, color=PURPLE[1])
    return fig


def causal_mask() -> Figure:
    """The causal mask: query i may read keys j ≤ i; the scores above the diagonal become −∞."""
    fig, ax = _canvas(8.6, 5.6)
    _title(ax, 8.6, 5.6, "The causal mask: token i reads only tokens j ≤ i")
    tokens = ["To", "be", "or", "not", "to"]
    n, cell, x0, y0 = len(tokens), 0.62, 1.5, 4.3
    fills = {(r, c): ("#fecaca" if c > r else "#c4b5fd") for r in range(n) for c in range(n)}
    _grid(ax, x0, y0, n, n, cell, PURPLE, fills)
    for i, t in enumerate(tokens):
        _text(ax, x0 - 0.35, y0 - (i + 0.5) * cell, t, size=10.5, ha="right")
        _text(ax, x0 + (i + 0.5) * cell, y0 + 0.2, t, size=10.5)
        for j in range(n):
            if j > i:
                _text(ax, x0 + (j + 0.5) * cell, y0 - (i + 0.5) * cell, "−∞", size=10, color=RED)
    _text(ax, x0 + n * cell / 2, y0 + 0.5, "keys j (what can be read) →", size=10.5)
    _text(ax, 0.75, y0 + 0.2, "queries i ↓", size=10.5)
    right = x0 + n * cell + 0.5
    _box(ax, right + 1.55, 3.5, 3.0, 0.9, "allowed: j ≤ i\nscore q_i · k_j / √d", PURPLE, size=10.5)
    _box(ax, right + 1.55, 2.35, 3.0, 0.9, "masked: j > i\nscore set to −∞", ("#fee2e2", RED), size=10.5)
    _text(
        ax,
        right + 1.55,
        1.15,
        "after the softmax the masked weights\nare exactly 0 and each row still\nsums to 1 (mask before, not after)",
        size=10.5,
    )
    _text(ax, 4.3, 0.45, "scores (B, h, T, T) + mask (T, T), broadcast over batch and heads", size=10.5)
    return fig


def multi_head() -> Figure:
    """Multi-head attention: split the features into heads, attend per head, merge back."""
    fig, ax = _canvas(10, 4.6)
    _title(ax, 10, 4.6, "Multi-head attention: split into h heads, attend, merge")
    colours = ["#bfdbfe", "#c4b5fd", "#fde68a", "#bbf7d0"]

    def striped(x: float, y: float, w: float, h: float, vertical: bool) -> None:
        for i, c in enumerate(colours):
            if vertical:
                ax.add_patch(Rectangle((x + i * w / 4, y), w / 4, h, fc=c, ec=INK, lw=0.8))
            else:
                ax.add_patch(Rectangle((x, y + (3 - i) * h / 4), w, h / 4, fc=c, ec=INK, lw=0.8))

    striped(0.4, 1.4, 1.6, 1.6, vertical=True)
    _text(ax, 1.2, 1.1, "q, k or v\n(B, T, C)", size=10.5)
    _text(ax, 1.2, 3.3, "C = h · d", size=10.5)
    _arrow(ax, (2.15, 2.2), (3.05, 2.2))
    _text(ax, 2.6, 2.75, "view\n(B, T, h, d)\ntranspose", size=9.5)
    for i, c in enumerate(colours):
        ax.add_patch(Rectangle((3.2 + i * 0.18, 1.2 + i * 0.22), 1.2, 1.2, fc=c, ec=INK, lw=0.8))
    _text(ax, 4.1, 0.8, "(B, h, T, d): one\n(T, d) matrix per head", size=10.5)
    _arrow(ax, (5.05, 2.2), (5.75, 2.2))
    _box(ax, 6.5, 2.2, 1.4, 1.0, "attention\nin each\nhead", PURPLE, size=10.5)
    _arrow(ax, (7.25, 2.2), (7.85, 2.2))
    _text(ax, 7.55, 2.75, "merge", size=9.5)
    striped(8.0, 1.4, 1.6, 1.6, vertical=True)
    _text(ax, 8.8, 1.1, "(B, T, C)\n→ output projection", size=10.5)
    _text(ax, 5.0, 3.9, "same cost as one big head; each head can look at other tokens", size=10.5, color=PURPLE[1])
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 11


def float_formats() -> Figure:
    """The bits of fp32, tf32, fp16 and bf16: exponent bits set the range, mantissa bits the resolution."""
    fig, ax = _canvas(10, 3.6)
    _title(ax, 10, 3.6, "Floating-point formats: sign | exponent (range) | mantissa (resolution)")
    formats = [("float32", 8, 23), ("tf32 (matmul inputs)", 8, 10), ("float16", 5, 10), ("bfloat16", 8, 7)]
    bit = 0.2
    for row, (name, e, m) in enumerate(formats):
        y = 2.75 - row * 0.65
        _text(ax, 1.9, y, name, size=11, ha="right")
        x = 2.1
        for width, colour in ((1, "#e5e7eb"), (e, "#bfdbfe"), (m, "#fed7aa")):
            ax.add_patch(Rectangle((x, y - 0.18), width * bit, 0.36, fc=colour, ec=INK, lw=0.8))
            x += width * bit
        _text(ax, x + 0.12, y, f"1 + {e} + {m} bits", size=10.5, ha="left")
    _text(ax, 5.0, 0.3, "bf16 keeps fp32's range with less resolution; fp16 needs a loss scaler", size=10.5)
    return fig


def mixed_precision() -> Figure:
    """A mixed-precision training step: fp32 master weights, 16-bit compute under autocast."""
    fig, ax = _canvas(10, 4.4)
    _title(ax, 10, 4.4, "Mixed precision: float32 weights, 16-bit compute (autocast)")
    _box(ax, 1.3, 2.2, 2.0, 0.85, "weights,\nAdamW state\nfloat32", GREEN, size=10.5)
    _box(ax, 3.95, 3.1, 2.3, 0.7, "forward under autocast:\nmatmuls in bf16 / fp16", BLUE, size=10.5)
    _box(ax, 6.6, 3.1, 1.9, 0.7, "loss (float32)\n× scale (fp16 only)", ORANGE, size=10.5)
    _box(ax, 6.6, 1.3, 1.9, 0.7, "backward:\n16-bit gradients", BLUE, size=10.5)
    _box(ax, 3.95, 1.3, 2.3, 0.7, "float32 grads ÷ scale,\nskip step on inf/NaN", ORANGE, size=10.5)
    _arrow(ax, (2.3, 2.5), (2.8, 3.0))
    _text(ax, 2.1, 3.05, "cast", size=10)
    _arrow(ax, (5.1, 3.1), (5.65, 3.1))
    _arrow(ax, (6.6, 2.75), (6.6, 1.65))
    _arrow(ax, (5.65, 1.3), (5.1, 1.3))
    _arrow(ax, (2.8, 1.4), (2.3, 1.9))
    _text(ax, 2.0, 1.35, "optimizer\nstep", size=10)
    _box(ax, 8.95, 2.2, 1.8, 1.5, "instead, bf16-true:\nweights, grads\nand AdamW state\nall in bf16", GREY, size=10)
    _text(ax, 5.0, 0.4, "the scaler keeps small fp16 gradients from underflowing to 0; bf16 needs no scaler", 10.5)
    return fig


def ddp_vs_fsdp() -> Figure:
    """What each of N ranks holds: DDP replicates everything, FSDP shards it and gathers on demand."""
    fig, ax = _canvas(10, 5.0)
    _title(ax, 10, 5.0, "Data parallelism: what each rank keeps (2 ranks shown)")
    parts = [
        ("parameters", "params", BLUE[0]),
        ("gradients", "grads", ORANGE[0]),
        ("optimizer state", "optim.", GREEN[0]),
    ]

    def rank(x: float, y: float, label: str, shard: int | None) -> None:
        ax.add_patch(FancyBboxPatch((x, y), 1.9, 2.35, boxstyle="round,pad=0.05", fc="white", ec=GREY[1], lw=1.3))
        _text(ax, x + 0.95, y + 2.15, label, size=10.5, weight="bold")
        for i, (name, short, colour) in enumerate(parts):
            yy = y + 1.55 - i * 0.6
            if shard is None:
                ax.add_patch(Rectangle((x + 0.15, yy), 1.6, 0.42, fc=colour, ec=INK, lw=0.8))
                _text(ax, x + 0.95, yy + 0.21, name, size=9.5)
            else:
                for half in range(2):
                    on = half == shard
                    ax.add_patch(
                        Rectangle(
                            (x + 0.15 + half * 0.8, yy),
                            0.8,
                            0.42,
                            fc=colour if on else "white",
                            ec=INK,
                            lw=0.8,
                            ls="-" if on else ":",
                        )
                    )
                _text(ax, x + 0.55 + shard * 0.8, yy + 0.21, f"{short} ½", size=9)
        _text(ax, x + 0.95, y - 0.2, "its share of every batch", size=9.5, color=GREY[1])

    _text(ax, 2.45, 4.25, "DDP: a full copy on every rank", size=11.5, weight="bold", color=BLUE[1])
    rank(0.3, 1.3, "rank 0", None)
    rank(2.7, 1.3, "rank 1", None)
    _arrow(ax, (2.3, 2.2), (2.6, 2.2), PURPLE[1])
    _arrow(ax, (2.6, 2.0), (2.3, 2.0), PURPLE[1])
    _text(ax, 2.45, 0.55, "after backward: all-reduce (average) the gradients\nevery rank takes the same step", 10)
    _text(ax, 7.45, 4.25, "FSDP: each rank keeps 1/N of everything", size=11.5, weight="bold", color=GREEN[1])
    rank(5.3, 1.3, "rank 0", 0)
    rank(7.7, 1.3, "rank 1", 1)
    _arrow(ax, (7.3, 2.2), (7.6, 2.2), PURPLE[1])
    _arrow(ax, (7.6, 2.0), (7.3, 2.0), PURPLE[1])
    _text(
        ax,
        7.45,
        0.55,
        "all-gather a block's parameters just before it runs;\nreduce-scatter gradients; step on the own shard",
        10,
    )
    ax.plot([4.95, 4.95], [0.3, 4.4], color=GREY[1], lw=1, ls=":")
    return fig


def sequence_parallel() -> Figure:
    """Sequence parallelism: per-token layers need only the own tokens; attention needs every rank's keys/values."""
    fig, ax = _canvas(10, 5.4)
    _title(ax, 10, 5.4, "Sequence parallelism: each rank keeps a slice of the tokens (2 ranks, 8 tokens)")
    ranks = ((0, BLUE), (1, ORANGE))

    def tokens(x0: float, y: float, rank: int, colors: tuple[str, str], label: str) -> None:
        for i in range(4):
            _box(ax, x0 + i * 0.5, y, 0.42, 0.38, f"{label}{rank * 4 + i + 1}", colors, size=8.5)

    # left: LayerNorm, dropout, the MLP act on each token alone
    _text(ax, 2.45, 4.6, "LayerNorm, dropout, MLP: token by token", size=11.5, weight="bold", color=BLUE[1])
    for rank, colors in ranks:
        x0 = 0.45 + rank * 2.25
        tokens(x0, 3.85, rank, colors, "x")
        _box(ax, x0 + 0.75, 2.85, 1.9, 0.5, "LN · dropout · MLP", colors, size=9.5)
        for i in range(4):
            _arrow(ax, (x0 + i * 0.5, 3.64), (x0 + i * 0.5, 3.12))
            _arrow(ax, (x0 + i * 0.5, 2.58), (x0 + i * 0.5, 2.08))
        tokens(x0, 1.85, rank, colors, "y")
        _text(ax, x0 + 0.75, 1.35, f"rank {rank}", size=10, weight="bold")
    _text(ax, 2.45, 0.75, "no communication: splitting the tokens\ngives the same numbers", size=10)

    # right: attention, the queries of rank 1 read the keys and values of rank 0 too
    _text(ax, 7.45, 4.6, "Attention: a query reads every (earlier) token", size=11.5, weight="bold", color=PURPLE[1])
    for rank, colors in ranks:
        x0 = 5.45 + rank * 2.25
        tokens(x0, 3.85, rank, colors, "k,v ")
        tokens(x0, 1.85, rank, colors, "q")
        _text(ax, x0 + 0.75, 1.35, f"rank {rank}", size=10, weight="bold")
    for i in range(4):  # rank 1's queries need rank 0's keys and values: they must travel
        _arrow(ax, (5.45 + i * 0.5, 3.64), (7.7 + 0.5 * 1.5 - 0.6 + i * 0.3, 2.08), PURPLE[1], width=1.0)
    for i in range(4):  # and their own
        _arrow(ax, (7.7 + i * 0.5, 3.64), (7.7 + i * 0.5, 2.08), GREY[1], width=1.0)
    _box(ax, 6.2, 2.85, 1.5, 0.42, "all-gather k, v", PURPLE, size=9.5)
    _text(ax, 7.45, 0.75, "communication: gather the keys and values\n(or pass them round a ring)", size=10)
    ax.plot([4.95, 4.95], [0.4, 4.8], color=GREY[1], lw=1, ls=":")
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 12


def llama_block() -> Figure:
    """The LLaMA model and one of its blocks, with SmolLM2-135M's sizes."""
    fig, ax = _canvas(10, 6.4)
    _title(ax, 10, 6.4, "LLaMA: pre-norm blocks of RMSNorm, GQA with RoPE, SwiGLU")
    # the model, left
    model = [
        (0.6, "token ids (B, T)", GREY),
        (1.4, "embedding (49,152 × 576)", BLUE),
        (2.9, "30 × LLaMA block", PURPLE),
        (4.4, "RMSNorm", BLUE),
        (5.2, "lm_head: tied to the embedding\n→ logits (B, T, 49,152)", GREEN),
    ]
    for y, text, colors in model:
        _box(ax, 2.0, y, 3.2, 0.55 if "\n" not in text else 0.7, text, colors, size=10.5)
    for a, b in ((0.88, 1.12), (1.68, 2.62), (3.18, 4.12), (4.68, 4.85)):
        _arrow(ax, (2.0, a), (2.0, b))
    # the block, right
    bx = 7.0
    ax.add_patch(FancyBboxPatch((4.55, 0.35), 5.1, 5.45, boxstyle="round,pad=0.05", fc="white", ec=PURPLE[1], lw=1.4))
    _text(ax, bx, 5.6, "one block: x (B, T, 576)", size=11, weight="bold", color=PURPLE[1])
    block = [
        (0.75, "x", GREY),
        (1.45, "RMSNorm", BLUE),
        (2.25, "grouped-query attention\n9 query heads, 3 KV heads, RoPE on q, k", PURPLE),
        (3.55, "RMSNorm", BLUE),
        (4.35, "SwiGLU MLP: down(silu(gate x) ⊙ up x)\n576 → 1536 → 576", ORANGE),
    ]
    for y, text, colors in block:
        _box(ax, bx - 0.3, y, 3.6, 0.7 if "\n" in text else 0.45, text, colors, size=10)
    _arrow(ax, (bx - 0.3, 0.98), (bx - 0.3, 1.22))
    _arrow(ax, (bx - 0.3, 1.68), (bx - 0.3, 1.9))
    _arrow(ax, (bx - 0.3, 2.6), (bx - 0.3, 3.32))
    _arrow(ax, (bx - 0.3, 3.78), (bx - 0.3, 4.0))
    _arrow(ax, (bx - 0.3, 4.7), (bx - 0.3, 5.35))
    for y_from, y_to in ((0.75, 2.95), (2.95, 5.05)):  # the residual connections
        ax.plot([bx - 0.3 + 1.8, 9.35, 9.35], [y_from, y_from, y_to], color=GREEN[1], lw=1.8)
        _arrow(ax, (9.35, y_to), (bx - 0.3 + 0.16, y_to), GREEN[1], width=1.8)
        ax.add_patch(Circle((bx - 0.3, y_to), 0.16, fc="white", ec=GREEN[1], lw=1.4, zorder=3))
        _text(ax, bx - 0.3, y_to, "+", size=13, weight="bold", color=GREEN[1], zorder=4)
    _text(ax, 9.1, 1.9, "residual", size=9.5, color=GREEN[1], rotation=90)
    ax.plot([3.6, 4.55], [2.9, 2.9], color=PURPLE[1], lw=1, ls=":")
    return fig


def rope() -> Figure:
    """RoPE: a query at position m and a key at position n are turned by m·θ and n·θ; their dot product
    depends on m − n only."""
    fig, ax = _canvas(10, 4.6)
    _title(ax, 10, 4.6, "Rotary position embeddings: positions as rotations of q and k")
    cx, cy, r = 2.3, 2.0, 1.5
    ax.add_patch(Circle((cx, cy), r, fill=False, ec=GREY[1], lw=1, ls=":"))
    ax.plot([cx - r - 0.2, cx + r + 0.2], [cy, cy], color=GREY[1], lw=0.8)
    ax.plot([cx, cx], [cy - r - 0.2, cy + r + 0.2], color=GREY[1], lw=0.8)
    for angle, label, colour in ((0.35, "q at position 0", BLUE[1]), (1.25, "q at position m", BLUE[1])):
        end = (cx + r * math.cos(angle), cy + r * math.sin(angle))
        _arrow(ax, (cx, cy), end, colour, width=2 if "m" in label else 1.2, dashed="0" in label)
        _text(ax, end[0] + 0.1, end[1] + 0.12, label, size=10, ha="left", color=colour)
    key = 2.3
    end = (cx + r * math.cos(key), cy + r * math.sin(key))
    _arrow(ax, (cx, cy), end, ORANGE[1], width=2)
    _text(ax, end[0] - 0.1, end[1] + 0.12, "k at position n", size=10, ha="right", color=ORANGE[1])
    ax.add_patch(Arc((cx, cy), 0.9, 0.9, theta1=20, theta2=72, color=BLUE[1], lw=1.2))
    _text(ax, cx + 0.62, cy + 0.5, "m·θᵢ", size=10, color=BLUE[1])
    _text(ax, cx, 0.2, "one feature pair (i, i + d/2) of a head", size=10.5)
    notes = [
        "each pair of q's (and k's) features is a point in a plane,",
        "turned by the angle position × θᵢ, θᵢ = base^(−2i/d)",
        "",
        "q_m · k_n then depends on the angle between them:",
        "(m − n)·θᵢ, the relative position only",
        "",
        "early pairs turn fast (local order), late pairs slowly",
        "(long range); no position vector is added to x",
        "",
        "x·cos + rotate_half(x)·sin, in every layer, q and k only",
    ]
    _text(ax, 4.6, 2.2, "\n".join(notes), size=10.5, ha="left")
    return fig


def gqa() -> Figure:
    """Multi-head, grouped-query and multi-query attention: how many key/value heads the queries share."""
    fig, ax = _canvas(10, 4.4)
    _title(ax, 10, 4.4, "Grouped-query attention: query heads share key/value heads")
    panels = [
        ("multi-head: 9 KV heads", 9, 0.15),
        ("grouped-query: 3 KV heads (SmolLM2)", 3, 3.35),
        ("multi-query: 1 KV head", 1, 6.55),
    ]
    for title, kv, x0 in panels:
        _text(ax, x0 + 1.45, 3.6, title, size=10.5, weight="bold")
        group = 9 // kv
        for i in range(9):
            ax.add_patch(Rectangle((x0 + i * 0.32, 2.6), 0.26, 0.5, fc=BLUE[0], ec=BLUE[1], lw=1))
        width = 2.88 / kv
        for j in range(kv):
            kx = x0 + j * width + width / 2 - 0.13
            ax.add_patch(Rectangle((kx, 1.1), 0.26, 0.5, fc=ORANGE[0], ec=ORANGE[1], lw=1))
            for i in range(j * group, (j + 1) * group):
                _arrow(ax, (x0 + i * 0.32 + 0.13, 2.58), (kx + 0.13, 1.63), GREY[1], width=0.8)
        _text(ax, x0 + 1.45, 0.75, f"KV cache per token per layer: {kv} × 2 × d", size=10)
    _text(ax, 9.55, 2.85, "q", size=11, color=BLUE[1], ha="left")
    _text(ax, 9.55, 1.35, "k, v", size=11, color=ORANGE[1], ha="left")
    _text(ax, 5.0, 0.25, "query head i reads key/value head i // g, g = h / h_kv = 3", size=10.5)
    return fig


# ---------------------------------------------------------------------------------------------------------
# unit 13


def lora() -> Figure:
    """A LoRA layer: the frozen weight beside a trainable low-rank path, and the merge."""
    fig, ax = _canvas(10, 4.8)
    _title(ax, 10, 4.8, "LoRA: y = x Wᵀ + (α/r) · x Aᵀ Bᵀ")
    _box(ax, 1.0, 2.3, 1.3, 0.55, "x (…, in)", GREY)
    _box(ax, 3.6, 3.4, 2.6, 0.9, "W (out, in)\nfrozen, pretrained", GREY, size=10.5)
    _box(ax, 3.0, 1.2, 1.3, 0.9, "A (r, in)\ntrains; random", ORANGE, size=10.5)
    _box(ax, 4.9, 1.2, 1.5, 0.9, "B (out, r)\ntrains; starts at 0", ORANGE, size=10.5)
    _arrow(ax, (1.65, 2.45), (2.3, 3.3))
    _arrow(ax, (1.65, 2.15), (2.35, 1.4))
    _arrow(ax, (3.65, 1.2), (4.15, 1.2))
    _text(ax, 3.9, 1.55, "r", size=10)
    _box(ax, 6.7, 1.2, 0.9, 0.55, "× α/r", ORANGE, size=10.5)
    _arrow(ax, (5.65, 1.2), (6.25, 1.2))
    ax.add_patch(FancyBboxPatch((7.4, 2.05), 0.5, 0.5, boxstyle="circle,pad=0", fc="white", ec=INK, lw=1.4))
    _text(ax, 7.65, 2.3, "+", size=16, weight="bold")
    _arrow(ax, (4.9, 3.4), (7.5, 2.5))
    _arrow(ax, (7.15, 1.2), (7.55, 2.02))
    _box(ax, 9.1, 2.3, 1.3, 0.55, "y (…, out)", GREEN)
    _arrow(ax, (7.9, 2.3), (8.45, 2.3))
    _text(ax, 5.0, 0.3, "trains r·(in + out) numbers instead of in·out;  merge(): W ← W + (α/r)·B A", size=10.5)
    _text(ax, 8.3, 3.9, "step 0: B = 0,\nso y is the\npretrained output", size=10, color=ORANGE[1])
    return fig


def adapter_gate() -> Figure:
    """LLaMA-Adapter v1: the queries also attend to K learned prompts, through a zero-initialised gate."""
    fig, ax = _canvas(10, 4.8)
    _title(ax, 10, 4.8, "LLaMA-Adapter v1: learned prompts behind a gate that starts at 0")
    _box(ax, 1.1, 3.3, 1.7, 0.6, "text tokens\nq, k, v (RoPE)", GREY, size=10.5)
    _box(ax, 1.1, 1.3, 1.7, 0.6, "prompt P (K, D)\ntrainable", ORANGE, size=10.5)
    _box(ax, 3.7, 1.3, 2.1, 0.6, "k_P, v_P = frozen\nk_proj(P), v_proj(P)", GREY, size=10.5)
    _box(ax, 3.7, 3.3, 2.1, 0.6, "causal attention\nover the text", PURPLE, size=10.5)
    _box(ax, 6.3, 1.3, 2.0, 0.6, "softmax(q k_Pᵀ/√d) v_P\nown softmax, no RoPE", PURPLE, size=10)
    _box(ax, 6.3, 2.3, 1.3, 0.5, "× gate[h]", ORANGE, size=10.5)
    ax.add_patch(FancyBboxPatch((7.75, 3.05), 0.5, 0.5, boxstyle="circle,pad=0", fc="white", ec=INK, lw=1.4))
    _text(ax, 8.0, 3.3, "+", size=16, weight="bold")
    _box(ax, 9.3, 3.3, 1.1, 0.55, "o_proj", BLUE)
    _arrow(ax, (1.95, 3.3), (2.65, 3.3))
    _arrow(ax, (1.95, 1.3), (2.65, 1.3))
    _arrow(ax, (4.75, 1.3), (5.3, 1.3))
    _arrow(ax, (4.75, 3.3), (7.72, 3.3))
    _arrow(ax, (6.3, 1.6), (6.3, 2.05))
    _arrow(ax, (6.95, 2.4), (7.85, 3.08))
    _arrow(ax, (8.25, 3.3), (8.75, 3.3))
    _arrow(ax, (1.6, 3.0), (5.3, 1.45), GREY[1], dashed=True, width=1.0)
    _text(ax, 2.3, 2.65, "text queries q", size=10, color=GREY[1])
    _text(
        ax,
        5.0,
        0.35,
        "gate = 0 at step 0: the model is exactly the pretrained one; the gates open as training goes",
        size=10.5,
        color=ORANGE[1],
    )
    return fig


# ---------------------------------------------------------------------------------------------------------
# the registry


def _roadmaps() -> dict[str, Callable[[], Figure]]:
    return {f"unit{u.number:02d}-roadmap": (lambda u=u: roadmap(u)) for u in manifest.UNITS}


DIAGRAMS: dict[str, Callable[[], Figure]] = {
    **_roadmaps(),
    "unit03-computation-graph": computation_graph,
    "unit04-mlp-xor": mlp_xor,
    "unit07-convolution": convolution,
    "unit07-residual-block": residual_block,
    "unit08-encoder-decoder-attention": encoder_decoder_attention,
    "unit09-self-attention": self_attention,
    "unit09-causal-mask": causal_mask,
    "unit09-multi-head": multi_head,
    "unit11-float-formats": float_formats,
    "unit11-mixed-precision": mixed_precision,
    "unit11-ddp-vs-fsdp": ddp_vs_fsdp,
    "unit11-sequence-parallel": sequence_parallel,
    "unit12-llama-block": llama_block,
    "unit12-rope": rope,
    "unit12-gqa": gqa,
    "unit13-lora": lora,
    "unit13-adapter-gate": adapter_gate,
}
"""Every diagram by the name of its file ``book/figures/<name>.svg``."""


def path(name: str) -> Path:
    return FIGURES_DIR / f"{name}.svg"


def svg(fig: Figure) -> bytes:
    """The figure as SVG bytes, the same on every run with the same matplotlib."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(SVG_SETTINGS):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def write_all(names: Sequence[str] | None = None, directory: Path | None = None) -> list[Path]:
    """Draw the diagrams (all, or ``names``) into ``directory`` (default :data:`FIGURES_DIR`); return the
    files whose bytes changed."""
    directory = directory or FIGURES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name in names or list(DIAGRAMS):
        data = svg(DIAGRAMS[name]())
        target = directory / f"{name}.svg"
        if not target.exists() or target.read_bytes() != data:
            with atomic_open(target, "wb") as out:
                out.write(data)
            changed.append(target)
    return changed


def problems() -> list[str]:
    """What ``dlfund generate --check`` reports about the figures: a registered diagram without its file, or a
    file no diagram draws. The bytes are not compared: another matplotlib version writes other bytes."""
    found = []
    for name in DIAGRAMS:
        if not path(name).exists():
            found.append(f"{manifest.display_path(path(name))} is missing (run `dlfund generate`)")
    for file in sorted(FIGURES_DIR.glob("*")):
        if file.stem not in DIAGRAMS or file.suffix != ".svg":
            found.append(f"{manifest.display_path(file)} is drawn by no diagram in dlfund.course.diagrams")
    return found
