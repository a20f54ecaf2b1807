"""Check for unit 13's exercise 5: one layer's attention with a learned key/value prefix (prefix tuning).

The learner writes ``prefix_attention(q, k, v, prefix_k, prefix_v, cos, sin)``: queries ``q (B, h, T, d)``
and the text's keys and values ``k, v (B, h_kv, T, d)`` (q and k not yet rotated), the prefix
``prefix_k, prefix_v (h_kv, P, d)`` (one per key/value head, shared by every row of the batch), and the
RoPE tables ``cos, sin (T, d)`` of the text positions ``0 .. T-1``. The result ``(B, h, T, d)`` is one
softmax over ``[prefix; text]``: every query sees every prefix position and the text causally, the
prefix carries no rotation, each key/value head serves ``h / h_kv`` adjacent query heads.

The reference here is written out independently (scores, an explicit mask, a softmax); when the
learner's answer differs, the typical mistakes are computed the same way and the one matched is named.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing
from dlfund.models.transformer import apply_rope
from dlfund.peft.prompt import PrefixAttention

__all__ = ["prefix_attention"]

Tensor = torch.Tensor

# the library's prefix attention overrides GroupedQueryAttention.attend: calling it is refused
_REFERENCE = {"dlfund.peft.prompt.PrefixAttention.attend": PrefixAttention.attend}

# sizes all different, so that a transposed or mixed-up axis cannot pass: B, h, h_kv, groups, T, P, d
B, H, H_KV, T, P, D = 3, 8, 2, 7, 5, 6

MISTAKES: dict[str, str] = {
    "masked": "the prefix is under the causal mask: query i sees only the first i + 1 of [prefix; text] — every "
    "query must see every prefix position (the triangle applies to the text only)",
    "no_prefix": "the prefix is not attended to at all: the result is plain causal attention over the text",
    "rope_prefix": "the prefix keys were rotated by RoPE as if at positions 0 .. P-1: the prefix carries no "
    "position (rotate the text's q and k only)",
    "no_rope": "RoPE is missing: the text's q and k must be rotated by their positions (cos, sin)",
    "appended": "the prefix is put after the text while the mask still treats the last keys as the queries' own "
    "positions: prepend it (keys = [prefix; text])",
    "separate": "the prefix has its own softmax, added to the text's attention (that is LLaMA-Adapter without a "
    "gate): prefix tuning uses one softmax over [prefix; text]",
    "tiled": "key/value heads are repeated as a tile (head i reads key/value head i % h_kv): query head i must "
    "read key/value head i // (h / h_kv), adjacent heads sharing one (repeat_interleave)",
    "batch_mixed": "the prefix was copied to the batch in the wrong order: every row must see the same prefix "
    "(prefix[None].expand(B, ...), not repeat_interleave over the flat heads)",
    "scale_dim": "the scores are divided by √(h·d), the model width: divide by √d, the head size",
    "no_scale": "the scores are not divided by √d",
}


def _rot(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    return apply_rope(x, cos, sin)


def _heads(x: Tensor, groups: int, tiled: bool) -> Tensor:
    """``(B, h_kv, L, d) -> (B, h, L, d)`` by explicit indexing (query head i reads i // groups)."""
    h = x.shape[1] * groups
    index = torch.arange(h) % x.shape[1] if tiled else torch.arange(h) // groups
    return x[:, index]


def _attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    pk: Tensor,
    pv: Tensor,
    cos: Tensor,
    sin: Tensor,
    mistake: str | None = None,
) -> Tensor:
    """The written-out answer (``mistake=None``) or one typical mistake; shapes as the learner's function."""
    b, h, t, d = q.shape
    h_kv, p = pk.shape[0], pk.shape[1]
    groups = h // h_kv
    if mistake != "no_rope":
        q, k = _rot(q, cos, sin), _rot(k, cos, sin)
    if mistake == "rope_prefix":
        pk = _rot(pk, cos[:p], sin[:p])
    if mistake == "batch_mixed":
        pk = pk.repeat_interleave(b, dim=0).reshape(b, h_kv, p, d)
        pv = pv.repeat_interleave(b, dim=0).reshape(b, h_kv, p, d)
    else:
        pk, pv = pk[None].expand(b, -1, -1, -1), pv[None].expand(b, -1, -1, -1)
    tiled = mistake == "tiled"
    k, v, pk, pv = (_heads(x, groups, tiled) for x in (k, v, pk, pv))
    scale = {"scale_dim": math.sqrt(h * d), "no_scale": 1.0}.get(mistake or "", math.sqrt(d))
    text_ok = torch.ones(t, t, dtype=torch.bool).tril()
    if mistake == "no_prefix":
        p = 0
        keys, values, allowed = k, v, text_ok
    elif mistake == "appended":
        keys, values = torch.cat([k, pk], 2), torch.cat([v, pv], 2)
        allowed = torch.ones(t, t + p, dtype=torch.bool).tril(diagonal=p)
    elif mistake == "masked":
        keys, values = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        allowed = torch.ones(t, p + t, dtype=torch.bool).tril()
    elif mistake == "separate":
        text = ((q @ k.transpose(-1, -2)) / scale).masked_fill(~text_ok, float("-inf")).softmax(-1) @ v
        return text + ((q @ pk.transpose(-1, -2)) / scale).softmax(-1) @ pv
    else:
        keys, values = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        allowed = torch.cat([torch.ones(t, p, dtype=torch.bool), text_ok], 1)
    scores = (q @ keys.transpose(-1, -2)) / scale
    return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ values


def _inputs(gen: torch.Generator, b: int, p: int) -> tuple[Tensor, ...]:
    q = torch.randn(b, H, T, D, generator=gen)
    k = torch.randn(b, H_KV, T, D, generator=gen)
    v = torch.randn(b, H_KV, T, D, generator=gen)
    # a prefix with larger keys than the text's: the share of attention it takes is far from negligible
    pk = 2 * torch.randn(H_KV, p, D, generator=gen)
    pv = torch.randn(H_KV, p, D, generator=gen)
    angles = torch.arange(T, dtype=torch.float32)[:, None] * (1.0 / 100.0 ** (torch.arange(0, D, 2) / D))
    angles = torch.cat([angles, angles], -1)
    return q, k, v, pk, pv, angles.cos(), angles.sin()


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-4))


def _call(fn: Callable[..., Any], args: tuple[Tensor, ...], what: str) -> Any:
    with refusing(_REFERENCE, "prefix attention"):
        return call_learner(fn, *(a.clone() for a in args), what=what)


def prefix_attention(fn: Callable[..., Tensor], *, seed: int | None = None) -> None:
    """Check ``fn(q, k, v, prefix_k, prefix_v, cos, sin) -> (B, h, T, d)`` (see the module's docstring)."""
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    args = _inputs(gen, B, P)
    q, k, v, pk, pv, cos, sin = args
    what = (
        f"prefix_attention(q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}, prefix_k {tuple(pk.shape)}, "
        f"prefix_v {tuple(pv.shape)}, cos {tuple(cos.shape)}, sin {tuple(sin.shape)})"
    )
    copies = tuple(a.clone() for a in args)
    try:
        with refusing(_REFERENCE, "prefix attention"):
            out = call_learner(fn, *args, what=what)
    except CheckFailed as err:
        if "raised" in str(err) and "library" not in str(err):
            one = tuple(a[:1] if a.dim() == 4 else a for a in args)
            try:
                fn(*(a.clone() for a in one))
            except Exception:  # it fails for one row too: the original message says where
                raise err from None
            raise CheckFailed(
                f"{what} fails for a batch of {B} rows but works for one: expand the prefix to the batch, "
                f"(h_kv, P, d) -> (B, h_kv, P, d), before concatenating it to the keys and values {where} "
                f"({str(err).split(' raised ', 1)[-1]})"
            ) from None
        raise
    names = ("q", "k", "v", "prefix_k", "prefix_v", "cos", "sin")
    for name, before, after in zip(names, copies, args):
        expect(
            torch.equal(before, after),
            f"{what} changed its input {name} in place: compute new tensors (x = f(x), not x.mul_() or x[...] = ...) "
            f"{where}",
        )
    expect(
        isinstance(out, Tensor),
        f"{what} should return a tensor of shape {(B, H, T, D)}, found {type(out).__name__} {where}",
    )
    expect(
        tuple(out.shape) == (B, H, T, D),
        f"{what} should return shape (B, h, T, d) = {(B, H, T, D)}, found {tuple(out.shape)} {where}",
    )
    expect(
        bool(torch.isfinite(out).all()),
        f"{what} returned inf or nan: a fully masked row? every query sees the prefix and its own position {where}",
    )
    expected = _attention(*args)
    if not _close(out, expected):
        for mistake, message in MISTAKES.items():
            if _close(out, _attention(*args, mistake=mistake)):
                raise CheckFailed(f"{what}: {message} {where}")
        diff = (out.detach().float() - expected).abs()
        row = int(diff.amax(dim=(1, 3)).amax(0).argmax())
        raise CheckFailed(
            f"{what}: differs from one softmax over [prefix; text] (prefix visible to every query, not rotated; "
            f"the text causal and rotated; scores / √d) by up to {diff.max().item():.3g}, worst at query "
            f"position {row} {where}"
        )
    empty = _inputs(gen, B, 0)
    out_empty = _call(fn, empty, what=f"prefix_attention with an empty prefix (P = 0) {where}")
    expect(
        isinstance(out_empty, Tensor) and _close(out_empty, _attention(*empty)),
        f"prefix_attention with an empty prefix (P = 0) should be plain causal attention over the text, "
        f"and it is not {where}",
    )
    passed(
        f"prefix attention: one softmax over {P} prefix and {T} text positions, batch {B}, {H} query heads on "
        f"{H_KV} key/value heads, and an empty prefix {where}"
    )
