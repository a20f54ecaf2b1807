"""Checks for unit 12 (LLaMA from scratch): rotary embeddings, RMSNorm, grouped-query attention, and
rotary embeddings interpolated for a longer context.

Each check draws fresh random sizes (the seed is printed in failure messages, so a failure can be
replayed with ``seed=...``), compares with the library's reference, and when the answer differs
tries the typical mistakes to say which one was made.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from dlfund.checks._core import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fresh_seed,
    passed,
)
from dlfund.checks._library_use import refusing
from dlfund.models.llama import GroupedQueryAttention, LlamaConfig, RMSNorm, repeat_kv
from dlfund.models.transformer import apply_rope, rope_tables

__all__ = ["grouped_attention", "interpolated_rope", "rms_norm", "rope"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _close(a: Any, b: Tensor, atol: float = 1e-5) -> bool:
    return (
        isinstance(a, Tensor)
        and a.shape == b.shape
        and a.dtype == b.dtype
        and torch.allclose(a.detach().float(), b.detach().float(), atol=atol, rtol=1e-4)
    )


# ---------------------------------------------------------------------------------------------
# ex01: rotary position embeddings


def reference_rope(x: Tensor, positions: Tensor, theta: float = 10000.0) -> Tensor:
    """RoPE of ``x (B, h, T, d)`` at integer ``positions (T,)``, rotate-half layout (the library's tables)."""
    cos, sin = rope_tables(int(positions.max()) + 1, x.shape[-1], theta)
    return apply_rope(x, cos[positions], sin[positions])


def _rope_adjacent(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    d = x.shape[-1]
    freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = positions.float()[:, None] * freq  # (T, d/2)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * ang.cos() - x2 * ang.sin(), x1 * ang.sin() + x2 * ang.cos()], dim=-1)
    return out.flatten(-2)


def _rope_backwards(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    cos, sin = rope_tables(int(positions.max()) + 1, x.shape[-1], theta)
    return apply_rope(x, cos[positions], -sin[positions])


def _rope_freq(x: Tensor, positions: Tensor, theta: float, exponent_scale: float) -> Tensor:
    d = x.shape[-1]
    freq = theta ** (-exponent_scale * torch.arange(0, d // 2, dtype=torch.float32) / d)
    ang = positions.float()[:, None] * freq
    ang = torch.cat([ang, ang], dim=-1)
    return apply_rope(x, ang.cos(), ang.sin())


def rope(fn: Callable[[Tensor, Tensor, float], Tensor], *, seed: int | None = None) -> None:
    """Check ``fn(x, positions, theta) -> rotated``: ``x (B, h, T, d)``, ``positions (T,)`` int64.

    Feature pair ``(i, i + d/2)`` at position ``p`` turns by the angle ``p · theta^(-2i/d)``
    (the rotate-half layout of Hugging Face's and SmolLM2's weights). Also checked: lengths are
    preserved and ``rope(q, m) · rope(k, n)`` depends on ``m - n`` only.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    b, h, t = 2, int(torch.randint(2, 4, (), generator=gen)), int(torch.randint(5, 9, (), generator=gen))
    d = 2 * int(torch.randint(3, 7, (), generator=gen))
    # never 10000 (the usual default, so that ignoring theta shows) nor 100 or 10^8 (whose powers 2 and
    # 1/2 are 10000, so that a doubled or halved exponent is not mistaken for an ignored theta)
    theta = float([500.0, 2000.0, 50000.0, 200000.0][int(torch.randint(0, 4, (), generator=gen))])
    x = torch.randn(b, h, t, d, generator=gen)
    positions = torch.randperm(40, generator=gen)[:t] + 3  # not 0..T-1: positions must be read
    call = f"{_name(fn)}(x {tuple(x.shape)}, positions {tuple(positions.shape)}, theta={theta:g})"
    with refusing({"apply_rope": apply_rope, "rope_tables": rope_tables}, "rotating the features yourself"):
        out = call_learner(fn, x.clone(), positions.clone(), theta, what=call)
    expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
    expect(
        out.shape == x.shape, f"{call} should return the shape of x {tuple(x.shape)}, found {tuple(out.shape)} {where}"
    )
    expect(out.dtype == x.dtype, f"{call} should return {x.dtype}, found {out.dtype} {where}")
    ref = reference_rope(x, positions, theta)
    if not _close(out, ref):
        mistakes = [
            (
                _rope_adjacent(x, positions, theta),
                "rotates adjacent pairs (0, 1), (2, 3), ...: this course (and the "
                "Hugging Face weights) pair feature i with i + d/2 (rotate half)",
            ),
            (
                _rope_backwards(x, positions, theta),
                "rotates the wrong way (sin with the opposite sign): rotated half is (-x2, x1), added times sin",
            ),
            (
                _rope_freq(x, positions, theta, 1.0),
                "uses the frequencies theta^(-i/d): the exponent is -2i/d for pair i",
            ),
            (
                _rope_freq(x, positions, theta, 4.0),
                "uses the frequencies theta^(-4i/d) (the 2 counted twice, e.g. arange(0, d, 2) times 2/d): "
                "the exponent is -2i/d for pair i = 0 .. d/2 - 1",
            ),
            (
                _rope_freq(x, positions, theta, -2.0),
                "uses the frequencies theta^(+2i/d): the exponent is negative, -2i/d, so the frequencies fall",
            ),
            (
                reference_rope(x, torch.arange(t), theta),
                "ignores `positions` and uses 0..T-1: rotate each row by the angle of its own position",
            ),
            (
                reference_rope(x, positions, 10000.0) if theta != 10000.0 else None,
                "ignores `theta` (uses 10000): the frequencies are theta^(-2i/d)",
            ),
        ]
        for wrong, message in mistakes:
            if wrong is not None and _close(out, wrong):
                raise CheckFailed(f"{call} {message} {where}")
    expect_close(
        out.norm(dim=-1),
        x.norm(dim=-1),
        f"{call}: vector lengths (a rotation keeps them) {where}",
        atol=1e-4,
        rtol=1e-4,
    )
    # the relative-position property: shift both positions by s, the scores stay the same
    q, k = torch.randn(1, 1, 1, d, generator=gen), torch.randn(1, 1, 1, d, generator=gen)
    m, n, s = 7, 2, int(torch.randint(5, 30, (), generator=gen))
    score = lambda pm, pn: (
        call_learner(fn, q, torch.tensor([pm]), theta, what=call)
        * call_learner(fn, k, torch.tensor([pn]), theta, what=call)
    ).sum()
    a, c = score(m, n), score(m + s, n + s)
    expect(
        abs(float(a) - float(c)) < 1e-3 * max(1.0, abs(float(a))),
        f"{call}: rope(q, {m})·rope(k, {n}) = {float(a):.5f} but rope(q, {m + s})·rope(k, {n + s}) = {float(c):.5f} "
        f"{where}: scores must depend on the distance m - n only",
    )
    expect_close(out, ref, f"{call}: rotated features {where}", atol=1e-5, rtol=1e-4)
    passed(f"rope: equals the reference on shape {tuple(x.shape)}, keeps lengths, and scores depend on m - n only")


# ---------------------------------------------------------------------------------------------
# ex02: RMSNorm


def rms_norm(cls: Callable[..., torch.nn.Module], *, seed: int | None = None) -> None:
    """Check ``cls(dim, eps=...)``: a module with a ``weight`` of ones ``(dim,)`` whose forward is
    ``x / sqrt(mean(x², -1) + eps) * weight``, ``(..., dim) -> (..., dim)``, computed in float32 and
    returned in the input's dtype. Values and gradients are compared with :class:`dlfund.models.llama.RMSNorm`.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    dim = int(torch.randint(6, 13, (), generator=gen))
    eps = 1e-3
    call = f"{_name(cls)}({dim}, eps={eps:g})"
    library = {"RMSNorm": RMSNorm, "torch.nn.RMSNorm": torch.nn.RMSNorm, "torch.nn.functional.rms_norm": F.rms_norm}
    with refusing(library, "computing the RMSNorm yourself"):
        module = call_learner(cls, dim, eps=eps, what=call)
        expect(isinstance(module, torch.nn.Module), f"{call} should build an nn.Module, found {type(module).__name__}")
        call_learner(module, torch.randn(2, dim, generator=gen), what=f"{call}(x (2, {dim}))")
    expect(isinstance(module, torch.nn.Module), f"{call} should build an nn.Module, found {type(module).__name__}")
    params = dict(module.named_parameters())
    expect(
        set(params) == {"weight"},
        f"{call} should have exactly one parameter, `weight` (no bias: RMSNorm does not shift), found {sorted(params)}",
    )
    expect(
        params["weight"].shape == (dim,),
        f"{call}.weight should have shape ({dim},), found {tuple(params['weight'].shape)}",
    )
    expect(bool((params["weight"] == 1).all()), f"{call}.weight should start as ones (the identity scale)")
    ref = RMSNorm(dim, eps=eps)
    with torch.no_grad():
        w = torch.rand(dim, generator=gen) + 0.5
        module.weight.copy_(w)
        ref.weight.copy_(w)
    # small values so that eps matters, and a non-zero mean so that LayerNorm differs
    x = (torch.randn(3, 4, dim, generator=gen) + 2.0) * torch.tensor([1.0, 0.02, 5.0])[:, None, None]
    leaf = x.clone().requires_grad_(True)
    out = call_learner(module, leaf, what=f"{call}(x {tuple(x.shape)})")
    expect(
        isinstance(out, Tensor) and out.shape == x.shape,
        f"{call}(x) should return the shape of x {tuple(x.shape)}, found "
        f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} {where}",
    )
    expected = ref(x)
    if not _close(out, expected):
        ms = x.pow(2).mean(-1, keepdim=True)
        mistakes = [
            (x * torch.rsqrt(ms) * w, "forgets eps: x / sqrt(mean(x²) + eps), eps inside the square root"),
            (x / (ms.sqrt() + eps) * w, "adds eps outside the square root: x / sqrt(mean(x²) + eps)"),
            (
                F.layer_norm(x, (dim,), eps=eps) * w,
                "subtracts the mean like LayerNorm: RMSNorm only divides by the root mean square, no centring",
            ),
            (
                x / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps) * w,
                "divides by the standard deviation (mean subtracted inside): use mean(x²), not var(x)",
            ),
            (x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + eps) * w, "uses the sum of squares: take their mean"),
            (x * torch.rsqrt(ms + eps), "forgets to multiply by weight"),
            (
                x * torch.rsqrt(ms + 1e-5) * w,
                f"ignores the eps argument (uses 1e-5, not the eps={eps:g} it was given): keep eps in __init__ "
                "and use self.eps",
            ),
            (
                x * torch.rsqrt(ms + 1e-6) * w,
                f"ignores the eps argument (uses 1e-6, not the eps={eps:g} it was given): keep eps in __init__ "
                "and use self.eps",
            ),
            (
                x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + eps) * w,
                "averages over the wrong dimension: the mean is over the last one, the features",
            ),
        ]
        for wrong, message in mistakes:
            if _close(out, wrong, atol=1e-4):
                raise CheckFailed(f"{call} {message} {where}")
    expect_close(out, expected, f"{call}(x): normalised values {where}", atol=1e-5, rtol=1e-4)
    expect(out.requires_grad, f"{call}: no gradient reached x {where}: use torch operations, no .detach()")
    out.pow(2).sum().backward()
    expect(leaf.grad is not None, f"{call}: no gradient reached x {where}: use torch operations only")
    expect(module.weight.grad is not None, f"{call}: no gradient reached weight {where}")
    # a bf16 model: bf16 in, bf16 out (computed in float32 inside)
    xb = torch.randn(2, dim, generator=gen).bfloat16() * 3
    with torch.no_grad():
        outb = call_learner(copy.deepcopy(module).to(torch.bfloat16), xb, what=f"{call}(bf16 x)")
    expect(
        outb.dtype == torch.bfloat16,
        f"{call}(x) should return the input's dtype bfloat16, found {outb.dtype} "
        f"{where}: compute in float32, then .to(x.dtype)",
    )
    # the upcast: a bf16 module computes mean(x²) and the division in float32; in bf16 throughout, each
    # row's normaliser is rounded to 8 bits, a shared error of up to 0.4% per row that float32 avoids
    wide = 256
    big = call_learner(cls, wide, eps=eps, what=f"{_name(cls)}({wide}, eps={eps:g})")
    wb = (torch.rand(wide, generator=gen) + 0.5).bfloat16()
    with torch.no_grad():
        big = big.to(torch.bfloat16)
        big.weight.copy_(wb)
        xw = (torch.randn(64, wide, generator=gen) * 3).bfloat16()
        outw = call_learner(big, xw, what=f"{_name(cls)}({wide}, eps={eps:g})(bf16 x (64, {wide}))")
    x64 = xw.double()
    truth = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * wb.double()
    row_error = float(((outw.double() / truth).mean(-1) - 1).pow(2).mean().sqrt())
    expect(
        row_error < 6e-4,
        f"{call} on bfloat16 input: each row is off by {row_error:.2%} on average (float32 inside gives about "
        f"0.02%) {where}: the mean of squares and the division were computed in bfloat16; upcast first, "
        "x.float(), and cast the result back with .to(x.dtype)",
    )
    passed(f"RMSNorm: values, gradients and bf16 handling match the reference (dim {dim}, eps {eps:g})")


# ---------------------------------------------------------------------------------------------
# ex03: grouped-query attention


def _attn(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = True, scale: float | None = None) -> Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)


def grouped_attention(fn: Callable[[Tensor, Tensor, Tensor], Tensor], *, seed: int | None = None) -> None:
    """Check ``fn(q, k, v) -> out``: causal attention of ``q (B, h, T, d)`` over ``k, v (B, h_kv, T, d)``,
    query head ``i`` reading key/value head ``i // (h / h_kv)``; returns ``(B, h, T, d)``.

    Then the function replaces the attention inside :class:`dlfund.models.llama.GroupedQueryAttention`
    with weights copied from a reference module: the whole layer must give the same output.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    # groups != h_kv (so that repeating by the wrong count shows), several of each (so that tiling and
    # interleaving differ), and T, d, h all different (so that a swapped axis changes the shape)
    h_kv, groups = [(2, 3), (2, 4), (3, 2), (3, 4)][int(torch.randint(0, 4, (), generator=gen))]
    h, d, t, b = h_kv * groups, 10, int(torch.randint(13, 16, (), generator=gen)), 2
    q = torch.randn(b, h, t, d, generator=gen)
    k, v = torch.randn(b, h_kv, t, d, generator=gen), torch.randn(b, h_kv, t, d, generator=gen)
    call = f"{_name(fn)}(q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)})"
    leaf = q.clone().requires_grad_(True)
    out = call_learner(fn, leaf, k.clone(), v.clone(), what=call)
    expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
    expect(
        out.shape == q.shape,
        f"{call} should return (B, h, T, d) = {tuple(q.shape)}, one output per query head, "
        f"found {tuple(out.shape)} {where}",
    )
    ref = _attn(q, repeat_kv(k, groups), repeat_kv(v, groups))
    if not _close(out, ref):
        tiled_k, tiled_v = k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1)
        mistakes = [
            (
                _attn(q, tiled_k, tiled_v),
                "gives query head i the key/value head i % h_kv (tensor.repeat tiles the heads "
                "0,1,2,0,1,2): heads of one group are adjacent, use repeat_interleave "
                "(0,0,1,1,2,2)",
            ),
            (
                _attn(q, repeat_kv(k, groups), repeat_kv(v, groups), causal=False),
                "lets positions attend to the future: the attention must be causal",
            ),
            (
                _attn(q, repeat_kv(k, groups), repeat_kv(v, groups), scale=1.0),
                "forgets to scale the scores by 1/sqrt(d)",
            ),
            (
                _attn(q, repeat_kv(k, groups), repeat_kv(v, groups), scale=1 / d),
                "scales the scores by 1/d: the scale is 1/sqrt(d)",
            ),
        ]
        for wrong, message in mistakes:
            if _close(out, wrong):
                raise CheckFailed(f"{call} {message} {where}")
    expect_close(out, ref, f"{call}: attention output {where}", atol=1e-5, rtol=1e-4)
    expect(out.requires_grad, f"{call}: no gradient reached q {where}: use torch operations, no .detach()")
    out.sum().backward()
    expect(leaf.grad is not None and bool(leaf.grad.abs().sum() > 0), f"{call}: no gradient reached q {where}")

    # the whole layer, with weights copied from a reference
    config = LlamaConfig(
        vocab_size=16, dim=h * d, n_layers=1, n_heads=h, n_kv_heads=h_kv, hidden_dim=16, context_length=32
    )
    torch.manual_seed(seed)
    reference = GroupedQueryAttention(config)

    class LearnerGQA(GroupedQueryAttention):
        def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
            return call_learner(fn, q, k, v, what=f"{call} inside GroupedQueryAttention")

    mine = LearnerGQA(config)
    mine.load_state_dict(reference.state_dict())
    x = torch.randn(b, t, config.dim, generator=gen)
    cos, sin = rope_tables(t, d, config.rope_base)
    with torch.no_grad():
        expect_close(
            mine(x, (cos, sin)),
            reference(x, (cos, sin)),
            f"GroupedQueryAttention with your attention and copied weights {where}",
            atol=1e-5,
            rtol=1e-4,
        )
    saved = (h - h_kv) / h
    passed(
        f"grouped-query attention: {h} query heads share {h_kv} key/value heads ({groups} each), as the reference; "
        f"the KV cache is {saved:.0%} smaller than with {h} key/value heads"
    )


# ---------------------------------------------------------------------------------------------
# ex04: RoPE interpolated for a longer context


def _rope_angles(positions: Tensor, head_dim: int, base: float, *, adjacent: bool = False) -> Tensor:
    """Angles ``(T, head_dim)`` of (possibly fractional) ``positions (T,)``, computed in float64:
    pair ``i`` turns by ``position · base^(-2i/d)``; rotate-half layout, or adjacent pairs."""
    frequency = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = positions.double()[:, None] * frequency
    return angles.repeat_interleave(2, dim=-1) if adjacent else torch.cat([angles, angles], dim=-1)


def _tables(angles: Tensor) -> tuple[Tensor, Tensor]:
    return angles.cos().float(), angles.sin().float()


def _tables_close(found: tuple[Tensor, Tensor], wanted: tuple[Tensor, Tensor], atol: float = 2e-4) -> bool:
    return all(torch.allclose(f, w, atol=atol, rtol=0) for f, w in zip(found, wanted))


def _learner_tables(
    fn: Callable[..., Any], length: int, head_dim: int, base: float, trained: int, where: str
) -> tuple[str, tuple[Tensor, Tensor]]:
    call = f"{_name(fn)}(length={length}, head_dim={head_dim}, base={base:g}, trained_context={trained})"
    out = call_learner(fn, length, head_dim, base, trained, what=call)
    expect(
        isinstance(out, (tuple, list)) and len(out) == 2 and all(isinstance(t, Tensor) for t in out),
        f"{call} should return two tensors (cos, sin), found {type(out).__name__} {where}",
    )
    for name, t in zip(("cos", "sin"), out):
        expect(
            t.shape == (length, head_dim),
            f"{call}: {name} should have shape ({length}, {head_dim}), one row per position, found {tuple(t.shape)} "
            f"{where}",
        )
        expect(
            t.dtype == torch.float32,
            f"{call}: {name} should be float32 (the model's tables), found {t.dtype}"
            + (": angles in 16 bits lose the position" if t.dtype in (torch.float16, torch.bfloat16) else "")
            + f" {where}",
        )
        expect(bool(torch.isfinite(t).all()), f"{call}: {name} holds inf or NaN {where}")
    return call, (out[0].detach(), out[1].detach())


def interpolated_rope(fn: Callable[[int, int, float, int], tuple[Tensor, Tensor]], *, seed: int | None = None) -> None:
    """Check ``fn(length, head_dim, base, trained_context) -> (cos, sin)``, each ``(length, head_dim)``
    float32: the rotary tables (rotate-half layout, as :func:`dlfund.models.transformer.rope_tables`) of a
    model trained on ``trained_context`` positions and run on ``length``. Up to ``trained_context`` they
    are the plain tables; beyond, linear position interpolation: position ``p`` gets the angles of
    position ``p · trained_context / length``, so every angle stays within the range seen in training.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    if getattr(fn, "__code__", None) is rope_tables.__code__:
        raise CheckFailed(
            "this is the library's own rope_tables: it has no trained context and cannot interpolate; write "
            "the interpolated tables yourself (the library's version is there to compare with at length <= "
            "trained_context)"
        )
    d = 2 * int(torch.randint(4, 9, (), generator=gen))
    # never 10000, the usual default, so that a hard-coded base shows
    base = float([500.0, 2000.0, 50000.0, 200000.0][int(torch.randint(0, 4, (), generator=gen))])
    trained = 2 * int(torch.randint(6, 16, (), generator=gen))  # even, so that length = 2.5 or 3.5 × it is whole
    ratio = [2.5, 3.5][int(torch.randint(0, 2, (), generator=gen))]  # never whole: integer division shows
    length = int(trained * ratio)
    scale = length / trained

    # a length the model was trained on: the plain tables, nothing compressed
    short = trained - int(torch.randint(1, trained // 2, (), generator=gen))
    call, found = _learner_tables(fn, short, d, base, trained, where)
    plain_short = _tables(_rope_angles(torch.arange(short), d, base))
    if not _tables_close(found, plain_short):
        squeezed = _tables(_rope_angles(torch.arange(short) * trained / short, d, base))
        stretched = _tables(_rope_angles(torch.arange(short) * short / trained, d, base))
        if _tables_close(found, squeezed) or _tables_close(found, stretched):
            raise CheckFailed(
                f"{call} rescales the positions although {short} positions fit in the trained context of "
                f"{trained}: interpolate only when length > trained_context; below, return the plain tables {where}"
            )
        _name_rope_mistake(call, found, short, d, base, trained, where)
        worst = max(float((f - w).abs().max()) for f, w in zip(found, plain_short))
        raise CheckFailed(
            f"{call}: at a length within the trained context the tables should equal plain RoPE "
            f"(as rope_tables), largest difference {worst:.3g} {where}"
        )

    call, found = _learner_tables(fn, length, d, base, trained, where)
    positions = torch.arange(length, dtype=torch.float64) * trained / length
    wanted = _tables(_rope_angles(positions, d, base))
    if not _tables_close(found, wanted):
        plain = _tables(_rope_angles(torch.arange(length), d, base))
        if _tables_close(found, plain):
            raise CheckFailed(
                f"{call} returns the plain tables (rope_tables cannot interpolate): positions up to {length - 1} "
                f"turn the slow pairs further than training ever did; scale every position by "
                f"trained_context / length ({trained}/{length}) {where}"
            )
        _name_rope_mistake(call, found, length, d, base, trained, where)
        worst = [(f - w).abs() for f, w in zip(found, wanted)]
        row = int(torch.maximum(worst[0], worst[1]).amax(-1).argmax())
        raise CheckFailed(
            f"{call}: row {row} should hold plain RoPE at position {row} × {trained}/{length} = "
            f"{float(positions[row]):.4g}; largest difference {max(float(w.max()) for w in worst):.3g} {where}"
        )
    # the properties that make interpolation work, on the learner's own tables
    half = d // 2
    expect(
        torch.equal(found[0][:, :half], found[0][:, half:]),
        f"{call}: cos should repeat its first half (rotate-half layout) {where}",
    )
    q, k = torch.randn(1, 1, 1, d, generator=gen), torch.randn(1, 1, 1, d, generator=gen)

    def score(m: int, n: int) -> float:
        return float((apply_rope(q, found[0][m], found[1][m]) * apply_rope(k, found[0][n], found[1][n])).sum())

    m, n, shift = length - 1, length - 1 - trained // 2, int(torch.randint(1, length // 2, (), generator=gen))
    expect(
        abs(score(m, n) - score(m - shift, n - shift)) < 1e-3 * max(1.0, abs(score(m, n))),
        f"{call}: the score of positions ({m}, {n}) differs from that of ({m - shift}, {n - shift}): scores must "
        f"depend on the distance only {where}",
    )
    passed(
        f"interpolated RoPE: plain up to the trained context ({trained}), and at length {length} position p "
        f"gets the angles of p / {scale:g}, all within the trained range"
    )


def _name_rope_mistake(
    call: str, found: tuple[Tensor, Tensor], length: int, d: int, base: float, trained: int, where: str
) -> None:
    """Raise the message of the typical mistake whose tables equal ``found``; return if none does."""
    p = torch.arange(length, dtype=torch.float64)
    s = max(1.0, length / trained)
    mistakes = [
        (
            _rope_angles(p * s, d, base),
            f"multiplies the positions by length / trained_context ({s:g}): divide "
            "them, so that the longest new position lands inside the trained range",
        ),
        (
            _rope_angles(p / (length // trained), d, base) if length // trained else None,
            f"divides the positions by a whole number ({length // trained}, from length // trained_context): the "
            f"factor {length}/{trained} = {s:g} is fractional; use true division",
        ),
        (
            _rope_angles(torch.floor(p / s), d, base),
            "rounds the scaled positions down to whole numbers: "
            "interpolation needs the fractional positions p · trained_context / length",
        ),
        (
            _rope_angles(p, d, base * s),
            f"multiplies the base by {s:g} instead of scaling the positions: that "
            "changes the frequencies (an NTK-style rescaling, another method); keep the base, scale the positions",
        ),
        (
            _rope_angles(p, d, base * s ** (d / (d - 2))),
            "rescales the base (NTK-aware scaling) instead of the "
            "positions: keep the base, scale the positions by trained_context / length",
        ),
        (
            _rope_angles(p / s, d, base, adjacent=True),
            "lays the angles out for adjacent pairs (0, 1), (2, 3), ...: "
            "this course pairs feature i with i + d/2, so the d/2 angles are repeated as [a, a], not interleaved",
        ),
        (
            _rope_angles((p / s).half().double(), d, base),
            "computes the scaled positions in float16 (about 3 significant digits): the angles move visibly; "
            "compute in float32",
        ),
        (
            _rope_angles(p / s, d, base).half().double(),
            "computes the angles in float16 (about 3 significant digits): cos and sin move visibly; compute the "
            "angles in float32",
        ),
        (_rope_angles(p / s, d, 10000.0) if base != 10000.0 else None, "ignores `base` (uses 10000)"),
    ]
    for angles, message in mistakes:
        if angles is not None and _tables_close(found, _tables(angles)):
            raise CheckFailed(f"{call} {message} {where}")
