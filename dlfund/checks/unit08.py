"""Checks for unit 8 (RNNs and attention): additive and Luong attention with a padding mask, and a GRU cell.

Each check draws fresh random sizes and inputs (the seed is printed in failure messages, so a
failure can be replayed with ``seed=...``), compares values and gradients with a reference, and
when they differ tries the typical mistakes to say which one was made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.checks._core import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fresh_seed,
    passed,
)
from dlfund.checks._library_use import refusing
from dlfund.models.seq2seq import AdditiveAttention

__all__ = ["additive_attention", "gru_cell", "luong_attention"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


# ---------------------------------------------------------------------------------------------
# ex01: additive (Bahdanau) attention


def reference_attention(
    query: Tensor,
    keys: Tensor,
    mask: Tensor,
    W_q: Tensor,
    W_k: Tensor,
    v: Tensor,
    *,
    use_mask: bool = True,
    dim: int = -1,
    tanh: bool = True,
    mask_after: bool = False,
) -> tuple[Tensor, Tensor]:
    """The reference (all switches at their defaults), or one of the typical mistakes (a switch changed)."""
    hidden = (query @ W_q.T)[:, None, :] + keys @ W_k.T  # (B, S, A)
    scores = (torch.tanh(hidden) if tanh else hidden) @ v  # (B, S)
    if use_mask and not mask_after:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=dim)
    if mask_after:
        weights = weights * mask
    context = torch.einsum("bs,bsd->bd", weights, keys)
    return context, weights


def _matches(found: Tensor, expected: Tensor) -> bool:
    return found.shape == expected.shape and torch.allclose(found.detach(), expected.detach(), atol=1e-5, rtol=1e-4)


_NO_GRAPH = "compute with torch operations on the inputs (no .detach(), .item() or numpy)"


def _expect_rows_sum_to_one(call: str, where: str, weights: Tensor, wrong_weights: Callable[..., Tensor]) -> None:
    """Each row of ``weights (B, S)`` must sum to 1; if not, name the mistake by recomputing it with
    ``wrong_weights(dim=0)`` (softmax over the batch) or ``wrong_weights(mask_after=True)``."""
    b, s = weights.shape
    sums = weights.detach().sum(-1)
    if torch.allclose(sums, torch.ones(b), atol=1e-5):
        return
    if _matches(weights, wrong_weights(dim=0)) or torch.allclose(weights.detach().sum(0), torch.ones(s), atol=1e-5):
        raise CheckFailed(
            f"{call}: the softmax ran over the batch dimension (dim=0): each row of weights should "
            f"sum to 1 over the source positions, use softmax(dim=-1) {where}"
        )
    if _matches(weights, wrong_weights(mask_after=True)):
        raise CheckFailed(
            f"{call}: the weights were zeroed on padding after the softmax, so rows sum to "
            f"{sums.min():.3f}..{sums.max():.3f}, not 1 {where}: mask the scores with -inf "
            "before the softmax, which renormalises over the real positions"
        )
    raise CheckFailed(
        f"{call}: each row of weights should sum to 1 over the source positions (softmax(dim=-1) on scores of "
        f"shape (B, S)), found sums {[round(x, 3) for x in sums.tolist()]} {where}"
    )


def _expect_reference_gradients(
    call: str,
    where: str,
    outputs: tuple[Tensor, Tensor],
    inputs: dict[str, Tensor],
    leaves: dict[str, Tensor],
    originals: dict[str, Tensor],
    reference: Callable[[dict[str, Tensor]], tuple[Tensor, Tensor]],
    gen: torch.Generator,
    *,
    atol: float,
) -> None:
    """Backpropagate the same random gradients of (context, weights) through the learner's ``outputs`` (made
    from ``leaves``) and through ``reference`` (on fresh copies of ``inputs``): every input's gradient must
    agree, and no input may have been changed in place (``originals``)."""
    context, weights = outputs
    g_context, g_weights = torch.randn(context.shape, generator=gen), torch.randn(weights.shape, generator=gen)
    total = (context * g_context).sum() + (weights * g_weights).sum()
    expect(
        total.requires_grad,
        f"{call}: neither context nor weights require grad, so nothing can be learned through them {where}: "
        + _NO_GRAPH,
    )
    total.backward()
    ref_leaves = {k: t.clone().requires_grad_(True) for k, t in inputs.items()}
    rc, rw = reference(ref_leaves)
    ((rc * g_context).sum() + (rw * g_weights).sum()).backward()
    for k in inputs:
        expect(leaves[k].grad is not None, f"{call}: no gradient reached {k} {where}: " + _NO_GRAPH)
        expect_close(leaves[k].grad, ref_leaves[k].grad, f"{call}: gradient of {k} {where}", atol=atol, rtol=1e-4)
    for k in inputs:
        expect(torch.equal(inputs[k], originals[k]), f"{call} changed its input {k} in place {where}")


def additive_attention(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(query, keys, mask, W_q, W_k, v) -> (context, weights)``.

    Shapes: ``query (B, Dq)``, ``keys (B, S, Dk)``, ``mask (B, S)`` bool (``True`` at real tokens,
    ``False`` at padding; every row has at least one real token), ``W_q (A, Dq)``, ``W_k (A, Dk)``,
    ``v (A,)``. Expected: ``scores[b, j] = v · tanh(W_q query[b] + W_k keys[b, j])``, padded scores
    excluded, a softmax over the source positions ``j`` giving ``weights (B, S)``, and
    ``context[b] = Σ_j weights[b, j] keys[b, j]`` of shape ``(B, Dk)``. Values, gradients (with
    respect to all six inputs but the mask), zero weight on padding, rows summing to 1, and that
    the keys at padded positions do not matter are all checked.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    b, s = int(torch.randint(3, 6, (), generator=gen)), int(torch.randint(5, 9, (), generator=gen))
    dq, dk, a = 5, 6, 7  # all different: a transposed matrix fails loudly
    lengths = torch.randint(1, s, (b,), generator=gen)
    lengths[0] = s  # one row without padding, the others padded
    mask = torch.arange(s)[None, :] < lengths[:, None]
    inputs = {
        "query": torch.randn(b, dq, generator=gen),
        "keys": torch.randn(b, s, dk, generator=gen),
        "W_q": torch.randn(a, dq, generator=gen) / dq**0.5,
        "W_k": torch.randn(a, dk, generator=gen) / dk**0.5,
        "v": torch.randn(a, generator=gen),
    }
    call = (
        f"{_name(fn)}(query {tuple(inputs['query'].shape)}, keys {tuple(inputs['keys'].shape)}, "
        f"mask {tuple(mask.shape)}, ...)"
    )

    def run(values: dict[str, Tensor], m: Tensor) -> tuple[Tensor, Tensor]:
        with refusing({"AdditiveAttention": AdditiveAttention}, "scoring, masking and weighting yourself"):
            out = call_learner(
                fn, values["query"], values["keys"], m, values["W_q"], values["W_k"], values["v"], what=call
            )
        expect(
            isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out),
            f"{call} should return a tuple (context, weights) of two tensors, found {type(out).__name__}"
            + (f" of length {len(out)}" if isinstance(out, tuple) else ""),
        )
        return out

    leaves = {k: t.clone().requires_grad_(True) for k, t in inputs.items()}
    originals = {k: t.clone() for k, t in inputs.items()}
    context, weights = run(leaves, mask.clone())
    expect(
        weights.shape == (b, s),
        f"{call}: weights should have shape (B, S) = {(b, s)}, one weight per source "
        f"position, found {tuple(weights.shape)} {where}",
    )
    expect(
        context.shape == (b, dk),
        f"{call}: context should have shape (B, Dk) = {(b, dk)}, a weighted sum of the "
        f"keys, found {tuple(context.shape)} {where}"
        + (": sum the keys, not their projections W_k·keys" if context.shape == (b, a) else ""),
    )
    expect(
        bool(torch.isfinite(weights).all()) and bool(torch.isfinite(context).all()),
        f"{call} returned NaN or inf {where}: use masked_fill(~mask, float('-inf')) on the scores (not a product "
        "with the mask: 0 · inf is NaN), and take the softmax over the source positions",
    )

    ref_context, ref_weights = reference_attention(
        *(inputs[k] for k in ("query", "keys")), mask, *(inputs[k] for k in ("W_q", "W_k", "v"))
    )
    args = [inputs[k] for k in ("query", "keys")] + [mask] + [inputs[k] for k in ("W_q", "W_k", "v")]
    on_padding = weights.detach().masked_select(~mask)
    if on_padding.numel() and on_padding.abs().max() > 1e-6:
        row = int((~mask).nonzero()[on_padding.abs().argmax()][0])
        unmasked = _matches(weights, reference_attention(*args, use_mask=False)[1])
        raise CheckFailed(
            f"{call}: padded positions got weight (up to {on_padding.abs().max():.3g}, e.g. in row {row}, whose "
            f"real length is {int(lengths[row])} of {s}) {where}. "
            + ("The weights equal a softmax without any mask: " if unmasked else "")
            + "set the scores where mask is False to float('-inf') before the softmax, so padding gets weight 0"
        )
    _expect_rows_sum_to_one(call, where, weights, lambda **wrong: reference_attention(*args, **wrong)[1])
    if not _matches(weights, ref_weights) and _matches(weights, reference_attention(*args, tanh=False)[1]):
        raise CheckFailed(
            f"{call}: the weights match scores without the tanh {where}: score = v · tanh(W_q query + W_k key)"
        )
    expect_close(weights, ref_weights, f"{call}: weights {where}", atol=1e-5, rtol=1e-4)
    expect_close(context, ref_context, f"{call}: context {where}", atol=1e-5, rtol=1e-4)

    # Gradients, through both outputs.
    _expect_reference_gradients(
        call,
        where,
        (context, weights),
        inputs,
        leaves,
        originals,
        lambda r: reference_attention(r["query"], r["keys"], mask, r["W_q"], r["W_k"], r["v"]),
        gen,
        atol=1e-5,
    )

    # Keys at padded positions must not matter.
    noisy = dict(inputs)
    noisy["keys"] = inputs["keys"].masked_fill(~mask[..., None], 0.0) + 100 * torch.randn(b, s, dk, generator=gen) * (
        ~mask[..., None]
    )
    c2, w2 = run(noisy, mask.clone())
    expect(
        _matches(c2, context) and _matches(w2, weights),
        f"{call}: changing the keys at padded positions changed the output {where}: padding must not influence "
        "the context",
    )
    passed(
        f"additive attention: weights, context and gradients match the reference on {b} sequences of up to {s} "
        f"positions; padding gets weight 0 and does not change the output"
    )


# ---------------------------------------------------------------------------------------------
# ex02: a GRU cell


def reference_gru(
    x: Tensor,
    h: Tensor,
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
    *,
    order: str = "rzn",
    reset_after: bool = True,
    swap_mix: bool = False,
) -> Tensor:
    """``nn.GRUCell``'s update (defaults), or a typical mistake: gates read in another ``order``, the
    reset gate applied before ``W_hn`` (``reset_after=False``), or ``z`` and ``1 - z`` swapped."""
    gi, gh = x @ weight_ih.T + bias_ih, h @ weight_hh.T + bias_hh
    hs = weight_hh.shape[0] // 3
    parts_i = dict(zip(order, gi.split(hs, dim=-1)))
    parts_h = dict(zip(order, gh.split(hs, dim=-1)))
    r = torch.sigmoid(parts_i["r"] + parts_h["r"])
    z = torch.sigmoid(parts_i["z"] + parts_h["z"])
    if reset_after:
        n = torch.tanh(parts_i["n"] + r * parts_h["n"])
    else:
        w_hn = dict(zip(order, weight_hh.split(hs, dim=0)))["n"]
        b_hn = dict(zip(order, bias_hh.split(hs, dim=0)))["n"]
        n = torch.tanh(parts_i["n"] + (r * h) @ w_hn.T + b_hn)
    return z * n + (1 - z) * h if swap_mix else (1 - z) * n + z * h


_MISTAKES = (
    (
        {"order": "zrn"},
        "the reset and update gates are swapped: nn.GRUCell stacks the rows of weight_ih and "
        "weight_hh as (r, z, n), reset gate first",
    ),
    ({"order": "nrz"}, "the gates are read in the order (n, r, z): nn.GRUCell stacks the rows as (r, z, n)"),
    ({"order": "nzr"}, "the gates are read in the wrong order: nn.GRUCell stacks the rows as (r, z, n)"),
    ({"order": "rnz"}, "the gates are read in the wrong order: nn.GRUCell stacks the rows as (r, z, n)"),
    ({"order": "znr"}, "the gates are read in the wrong order: nn.GRUCell stacks the rows as (r, z, n)"),
    (
        {"reset_after": False},
        "the reset gate multiplies h before W_hn: nn.GRUCell computes "
        "n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), r applied after the matrix product "
        "and its bias",
    ),
    (
        {"swap_mix": True},
        "z and 1 - z are swapped: nn.GRUCell keeps the old state with weight z, h' = (1 - z) ⊙ n + z ⊙ h",
    ),
)

_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _check_init(make: str, params: dict[str, Tensor], n_h: int) -> None:
    """The fresh cell's parameters are drawn like ``nn.GRUCell``'s: uniform in ±1/√hidden_size."""
    k = 1 / n_h**0.5
    values = torch.cat([params[n].detach().float().flatten() for n in _PARAMS])
    expect(
        bool(torch.isfinite(values).all()),
        f"{make}: the fresh parameters hold NaN or inf (torch.empty leaves memory uninitialised): draw them "
        f"uniformly from [-1/√hidden_size, 1/√hidden_size] = ±{k:.3f}",
    )
    spread = float(values.std())
    expect(
        spread > 1e-6,
        f"{make}: every fresh parameter has the same value ({float(values[0]):.3g}): a cell whose weights "
        f"start equal cannot break the symmetry between units; draw them uniformly from ±1/√hidden_size = ±{k:.3f}",
    )
    for name in _PARAMS:
        largest = float(params[name].detach().abs().max())
        expect(
            largest <= k * (1 + 1e-4),
            f"{make}.{name} starts with values up to {largest:.3g}, outside ±1/√hidden_size = ±{k:.3f}: "
            "initialise every parameter like nn.GRUCell, uniform in [-1/√hidden_size, 1/√hidden_size] "
            "(the scale uses hidden_size, not input_size, and is not a standard normal)",
        )
    mean = float(values.mean())
    expect(
        abs(mean) < 0.25 * k,
        f"{make}: the fresh parameters average {mean:.3g}, not about 0: draw them uniformly from "
        f"[-1/√hidden_size, +1/√hidden_size] = ±{k:.3f}, centred on zero",
    )
    expect(
        0.6 * k / 3**0.5 < spread < 1.4 * k / 3**0.5,
        f"{make}: the fresh parameters have standard deviation {spread:.3g}; uniform in ±1/√hidden_size "
        f"(= ±{k:.3f}) gives {k / 3**0.5:.3g}: initialise like nn.GRUCell",
    )


def gru_cell(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check a GRU cell ``cls(input_size, hidden_size)`` against ``nn.GRUCell`` with the same weights.

    The module must hold parameters named and shaped like ``nn.GRUCell``'s: ``weight_ih (3H, I)``,
    ``weight_hh (3H, H)``, ``bias_ih (3H,)``, ``bias_hh (3H,)``, rows in gate order (r, z, n), drawn
    like ``nn.GRUCell``'s (uniform in ±1/√hidden_size); and
    ``forward(x (B, I), h (B, H) or None) -> h' (B, H)`` (``None`` means a zero state). The check
    copies ``nn.GRUCell``'s random weights into yours and compares outputs and gradients (inputs,
    state and all four parameters); it names the typical mistakes (gate order, where the reset gate
    applies, z and 1 − z swapped).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    n_in, n_h, b = int(torch.randint(3, 7, (), generator=gen)), int(torch.randint(7, 11, (), generator=gen)), 4
    make = f"{_name(cls)}({n_in}, {n_h})"
    cell = call_learner(cls, n_in, n_h, what=make)
    expect(isinstance(cell, nn.Module), f"{make} should be an nn.Module, found {type(cell).__name__}")
    params = dict(cell.named_parameters())
    shapes = {"weight_ih": (3 * n_h, n_in), "weight_hh": (3 * n_h, n_h), "bias_ih": (3 * n_h,), "bias_hh": (3 * n_h,)}
    for name, shape in shapes.items():
        expect(
            name in params,
            f"{make} has no parameter {name!r} (found {sorted(params) or 'no parameters'}): create it "
            f"as nn.Parameter of shape {shape} so an optimiser trains it",
        )
        expect(
            tuple(params[name].shape) == shape,
            f"{make}.{name} should have shape {shape} (three gates stacked: "
            f"3·hidden_size rows), found {tuple(params[name].shape)}",
        )
    expect(
        not isinstance(cell, nn.RNNCellBase),
        f"{make} is PyTorch's own nn.GRUCell (or built on it): this is the library's own cell, write yours "
        "from nn.Module with the four parameters",
    )
    _check_init(make, params, n_h)
    with torch.random.fork_rng():  # leave the learner's random state alone
        torch.manual_seed(seed)
        ref = nn.GRUCell(n_in, n_h)
    with torch.no_grad():
        for name in _PARAMS:
            params[name].copy_(getattr(ref, name))
    x, h = torch.randn(b, n_in, generator=gen), torch.randn(b, n_h, generator=gen)
    call = f"{make}(x {tuple(x.shape)}, h {tuple(h.shape)})"

    xl, hl = x.clone().requires_grad_(True), h.clone().requires_grad_(True)
    out = call_learner(cell, xl, hl, what=call)
    expect(isinstance(out, Tensor), f"{call} should return the new state as a tensor, found {type(out).__name__}")
    expect(
        out.shape == (b, n_h),
        f"{call}: expected the new state of shape (B, H) = {(b, n_h)}, found {tuple(out.shape)}"
        + (" (return h' only, not a tuple or the gates)" if out.dim() != 2 else ""),
    )
    expected = ref(x, h)
    if not _matches(out, expected):
        weights = [getattr(ref, n).detach() for n in _PARAMS]
        for switches, why in _MISTAKES:
            if _matches(out, reference_gru(x, h, *weights, **switches)):
                raise CheckFailed(f"{call}: {why} {where}")
        expect_close(
            out,
            expected,
            f"{call}: the new state (compared with nn.GRUCell, same weights) {where}",
            atol=1e-5,
            rtol=1e-4,
        )

    # Gradients with respect to the input, the state and the four parameters.
    g = torch.randn(b, n_h, generator=gen)
    for p in cell.parameters():
        p.grad = None
    (out * g).sum().backward()
    xr, hr = x.clone().requires_grad_(True), h.clone().requires_grad_(True)
    (ref(xr, hr) * g).sum().backward()
    for name, mine, theirs in (
        ("x", xl.grad, xr.grad),
        ("h", hl.grad, hr.grad),
        *((n, params[n].grad, getattr(ref, n).grad) for n in _PARAMS),
    ):
        expect(
            mine is not None,
            f"{call}: no gradient reached {name} {where}: compute with torch operations on the "
            "inputs and self's parameters (no .detach(), .data or new tensors made from them)",
        )
        expect_close(mine, theirs, f"{call}: gradient of {name} {where}", atol=1e-5, rtol=1e-4)

    # A missing state means zeros.
    with torch.no_grad():
        first = call_learner(cell, x, None, what=f"{make}(x, None)")
        expect(isinstance(first, Tensor), f"{make}(x, None) should return a tensor, found {type(first).__name__}")
        expect_close(
            first, ref(x), f"{make}(x, None): with no state given, start from zeros {where}", atol=1e-5, rtol=1e-4
        )
    passed(
        f"GRU cell: {make} matches nn.GRUCell with the same weights (new state, gradients of x, h and all four "
        f"parameters, and a zero initial state)"
    )


# ---------------------------------------------------------------------------------------------
# ex03: Luong (multiplicative) attention


def reference_luong(
    query: Tensor,
    keys: Tensor,
    mask: Tensor,
    W: Tensor | None = None,
    *,
    use_mask: bool = True,
    mask_after: bool = False,
    dim: int = -1,
    transpose: bool = False,
    scaled: bool = False,
    projected_context: bool = False,
) -> tuple[Tensor, Tensor]:
    """The reference (all switches at their defaults), or one of the typical mistakes (a switch changed).

    ``query (B, Dq)``, ``keys (B, S, Dk)``, ``mask (B, S)``; ``W (Dq, Dk)`` or ``None`` (dot score, Dq = Dk).
    """
    projected = query if W is None else query @ (W.T if transpose else W)  # (B, Dk)
    scores = torch.einsum("bd,bsd->bs", projected, keys)  # (B, S)
    if scaled:
        scores = scores / keys.shape[-1] ** 0.5
    if use_mask and not mask_after:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=dim)
    if mask_after:
        weights = weights * mask
    values = keys @ W.T if projected_context and W is not None else keys
    return torch.einsum("bs,bsd->bd", weights, values), weights


_LUONG_MISTAKES = (
    (
        {"transpose": True},
        "W is used transposed: W has shape (Dq, Dk), and the general score is query · W · key = (query @ W) · key",
    ),
    (
        {"scaled": True},
        "the scores were divided by √d: Luong's scores are not scaled (the Transformer's scaled dot-product "
        "attention of unit 9 is; here it was not asked for)",
    ),
    (
        {"projected_context": True},
        "the context was built from the projected keys (keys @ W.T): the context is a weighted sum of the keys "
        "themselves; W only enters the score",
    ),
)


@contextlib.contextmanager
def _no_builtin_attention() -> Iterator[None]:
    """Make PyTorch's fused attention raise while the learner's function runs: writing it is the exercise."""
    saved = F.scaled_dot_product_attention

    def refuse(*args: Any, **kwargs: Any) -> Tensor:
        raise CheckFailed(
            "luong_attention called F.scaled_dot_product_attention, PyTorch's own attention: write the scores, "
            "the mask and the softmax yourself"
        )

    F.scaled_dot_product_attention = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        F.scaled_dot_product_attention = saved  # type: ignore[assignment]


def luong_attention(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(query, keys, mask, W=None) -> (context, weights)``: Luong's dot and general scores.

    Shapes: ``query (B, Dq)``, ``keys (B, S, Dk)``, ``mask (B, S)`` bool (``True`` at real tokens; every
    row has one at least), ``W (Dq, Dk)`` or ``None``. Scores: ``query[b] · keys[b, j]`` without ``W``
    (then ``Dq = Dk``), ``query[b] · W · keys[b, j]`` with it; no scaling. Padded scores are excluded, a
    softmax over the source positions gives ``weights (B, S)``, and ``context[b] = Σ_j weights[b, j]
    keys[b, j]`` of shape ``(B, Dk)``. Three cases: the dot score, a square ``W`` (not symmetric) and a
    rectangular ``W``; values, gradients (query, keys, W), padding weight 0, rows summing to 1, inputs
    unchanged, and padded keys not mattering are all checked; ``F.scaled_dot_product_attention`` is
    switched off while ``fn`` runs.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    for case, (dq, dk, general) in enumerate(((6, 6, False), (7, 7, True), (5, 8, True))):
        b, s = int(torch.randint(3, 6, (), generator=gen)), int(torch.randint(5, 9, (), generator=gen))
        lengths = torch.randint(1, s, (b,), generator=gen)
        lengths[case % b] = s  # one row without padding, the others padded
        mask = torch.arange(s)[None, :] < lengths[:, None]
        inputs = {"query": torch.randn(b, dq, generator=gen), "keys": torch.randn(b, s, dk, generator=gen)}
        if general:
            inputs["W"] = torch.randn(dq, dk, generator=gen)
        call = f"{_name(fn)}(query {(b, dq)}, keys {(b, s, dk)}, mask {(b, s)}" + (
            f", W {(dq, dk)})" if general else ")"
        )

        def run(values: dict[str, Tensor], m: Tensor, call: str = call) -> tuple[Tensor, Tensor]:
            args = [values["query"], values["keys"], m] + ([values["W"]] if "W" in values else [])
            with _no_builtin_attention():
                out = call_learner(fn, *args, what=call)
            expect(
                isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out),
                f"{call} should return a tuple (context, weights) of two tensors, found {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, tuple) else ""),
            )
            return out

        leaves = {k: t.clone().requires_grad_(True) for k, t in inputs.items()}
        originals = {k: t.clone() for k, t in inputs.items()}
        try:
            context, weights = run(leaves, mask.clone())
        except CheckFailed as err:
            if general and dq != dk and isinstance(err.__cause__, RuntimeError):
                raise CheckFailed(
                    f"{err} {where}. W has shape (Dq, Dk) = {(dq, dk)}: the general score is query · W · key, "
                    "so project the query with query @ W (shape (B, Dk)) and take its dot product with each key"
                ) from err.__cause__
            raise
        args = (inputs["query"], inputs["keys"], mask, inputs.get("W"))
        ref_context, ref_weights = reference_luong(*args)
        expect(
            weights.shape == (b, s),
            f"{call}: weights should have shape (B, S) = {(b, s)}, one weight per source position, found "
            f"{tuple(weights.shape)} {where}",
        )
        expect(
            context.shape == (b, dk),
            f"{call}: context should have shape (B, Dk) = {(b, dk)}, a weighted sum of the keys, found "
            f"{tuple(context.shape)} {where}"
            + (": sum the keys, not their projections keys @ W.T" if general and context.shape == (b, dq) else ""),
        )
        expect(
            bool(torch.isfinite(weights).all()) and bool(torch.isfinite(context).all()),
            f"{call} returned NaN or inf {where}: use masked_fill(~mask, float('-inf')) on the scores (not a product "
            "with the mask: 0 · inf is NaN), and take the softmax over the source positions",
        )
        on_padding = weights.detach().masked_select(~mask)
        if on_padding.numel() and on_padding.abs().max() > 1e-6:
            unmasked = _matches(weights, reference_luong(*args, use_mask=False)[1])
            raise CheckFailed(
                f"{call}: padded positions got weight (up to {on_padding.abs().max():.3g}) {where}. "
                + ("The weights equal a softmax without any mask: " if unmasked else "")
                + "set the scores where mask is False to float('-inf') before the softmax, so padding gets weight 0"
            )
        _expect_rows_sum_to_one(call, where, weights, lambda args=args, **wrong: reference_luong(*args, **wrong)[1])
        if not (_matches(weights, ref_weights) and _matches(context, ref_context)):
            for switches, why in _LUONG_MISTAKES:
                if all(_matches(f, r) for f, r in zip((context, weights), reference_luong(*args, **switches))):
                    raise CheckFailed(f"{call}: {why} {where}")
        expect_close(weights, ref_weights, f"{call}: weights {where}", atol=1e-5, rtol=1e-4)
        expect_close(context, ref_context, f"{call}: context {where}", atol=1e-5, rtol=1e-4)

        # Gradients, through both outputs.
        _expect_reference_gradients(
            call,
            where,
            (context, weights),
            inputs,
            leaves,
            originals,
            lambda r, mask=mask: reference_luong(r["query"], r["keys"], mask, r.get("W")),
            gen,
            atol=1e-4,
        )

        # Keys at padded positions must not matter.
        noisy = dict(inputs)
        noise = 100 * torch.randn(b, s, dk, generator=gen) * (~mask[..., None])
        noisy["keys"] = inputs["keys"].masked_fill(~mask[..., None], 0.0) + noise
        c2, w2 = run(noisy, mask.clone())
        expect(
            _matches(c2, context) and _matches(w2, weights),
            f"{call}: changing the keys at padded positions changed the output {where}: padding must not "
            "influence the context",
        )
    passed(
        "Luong attention: dot and general scores (square and rectangular W), weights, context and gradients match "
        "the reference; padding gets weight 0 and does not change the output"
    )
