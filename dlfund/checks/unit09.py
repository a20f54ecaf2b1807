"""Checks for unit 9 (self-attention): the causal mask, splitting and merging heads, a KV cache,
sliding-window and prefix-LM masks, and BERT's masked-token corruption (:mod:`dlfund.checks._unit09_mlm`).

Each check builds fresh random inputs (a new seed on every call, printed in failure messages so a
failure can be replayed with ``seed=...``), compares the learner's work with a reference, and says
precisely what differs, naming the typical mistake when it recognises one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dlfund.checks._core import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fresh_seed,
    passed,
)
from dlfund.checks._unit09_mlm import mlm_masking
from dlfund.models.attention import load_attention_weights, naive_attention
from dlfund.models.attention import merge_heads as ref_merge
from dlfund.models.attention import split_heads as ref_split
from dlfund.models.gpt import GPT, GPTConfig

__all__ = ["attention_masks", "causal_mask", "kv_cache", "mlm_masking", "multi_head"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _close(a: Tensor, b: Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and bool(torch.allclose(a, b, atol=atol, rtol=0, equal_nan=False))


# ---------------------------------------------------------------------------------------------
# ex01: the causal mask


def _masked_scores(q: Tensor, k: Tensor, diagonal: int, fill: float, scale: bool = True) -> Tensor:
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    t = q.shape[-2]
    allowed = torch.ones(t, t, dtype=torch.bool).tril(diagonal=diagonal)
    return scores.masked_fill(~allowed, fill)


def _wrong_causal(q: Tensor, k: Tensor, v: Tensor) -> dict[str, Tensor]:
    """Outputs of typical wrong causal attentions, with what to say when the learner's matches one."""
    t = q.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    tril = torch.ones(t, t, dtype=torch.bool).tril()
    after = scores.softmax(-1).masked_fill(~tril, 0.0)
    return {
        "no mask was applied: every position attends to all positions, the future included; set the scores "
        "of keys j > i to -inf before the softmax": naive_attention(q, k, v),
        "the mask is off by one and lets position i see position i + 1: allow keys j ≤ i, i.e. "
        "torch.ones(T, T).tril() (diagonal=0)": _masked_scores(q, k, 1, float("-inf")).softmax(-1) @ v,
        "the masked scores were set to 0 instead of -inf: exp(0) = 1, so future keys still get weight; "
        "use float('-inf')": _masked_scores(q, k, 0, 0.0).softmax(-1) @ v,
        "the weights were masked after the softmax: the remaining weights no longer sum to 1; mask the scores "
        "with -inf before the softmax": after @ v,
        "the scores are not scaled: divide q·k by √d (d = q.shape[-1]) before the softmax": _masked_scores(
            q, k, 0, float("-inf"), scale=False
        ).softmax(-1)
        @ v,
        "the mask keeps the future and hides the past (triu instead of tril): position i may attend to keys "
        "j ≤ i": scores.masked_fill(tril & ~torch.eye(t, dtype=torch.bool), float("-inf")).softmax(-1) @ v,
    }


def causal_mask(fn: Callable[[Tensor, Tensor, Tensor], Tensor], *, seed: int | None = None) -> None:
    """Check ``fn(q, k, v)``: causal attention ``softmax(mask(q kᵀ/√d)) v`` for q, k, v ``(..., T, d)``.

    Verified on fresh inputs of shapes ``(B, h, T, d)`` and ``(B, T, d)``: shape and dtype, no NaN,
    no information from the future (changing token j's key and value must not change any output
    before j), and the values of the reference; typical mistakes are named.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    name = _name(fn)
    for shape in ((2, 3, 7, 8), (3, 6, 4)):
        q, k, v = (torch.randn(*shape, generator=gen) for _ in range(3))
        call = f"{name}(q, k, v) with q, k, v of shape {tuple(shape)}"
        out = call_learner(fn, q.clone(), k.clone(), v.clone(), what=call)
        expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
        expect(
            out.shape == v.shape,
            f"{call}: expected shape {tuple(v.shape)} (one d-vector per query), found {tuple(out.shape)}",
        )
        expect(out.dtype == v.dtype, f"{call}: expected dtype {v.dtype}, found {out.dtype}")
        if torch.isnan(out).any():
            rows = sorted({int(i) for i in torch.nonzero(torch.isnan(out))[:, -2]})
            raise CheckFailed(
                f"{call} returned NaN at position(s) {rows} {where}: a row of the mask hides every "
                "key (softmax of all -inf). Position i must see itself: is the diagonal off by one "
                "(tril(diagonal=-1) or triu(diagonal=0))?"
            )
        expected = naive_attention(q, k, v, causal=True)
        if not _close(out, expected):
            for message, wrong in _wrong_causal(q, k, v).items():
                if _close(out, wrong):
                    raise CheckFailed(f"{call} {where}: {message}")
        # no information from the future: change token j's key and value, earlier outputs must stay
        t = shape[-2]
        for j in range(1, t):
            k2, v2 = k.clone(), v.clone()
            k2[..., j, :] += 3.0 * torch.randn(shape[-1], generator=gen)
            v2[..., j, :] += 3.0
            out2 = call_learner(fn, q.clone(), k2, v2, what=call)
            changed = (out2[..., :j, :] - out[..., :j, :]).abs().amax(dim=tuple(range(out.dim() - 2)) + (-1,))
            leaked = [i for i in range(j) if changed[i] > 1e-5]
            expect(
                not leaked,
                f"{call} {where}: information from the future: changing token {j}'s key and value "
                f"changed the output at earlier position(s) {leaked}. Output i may depend on "
                f"tokens 0..i only: set the scores of keys j > i to -inf before the softmax",
            )
        expect_close(out, expected, f"{call} {where}", atol=1e-5, rtol=1e-4)
    passed(f"causal attention: {name} matches softmax(mask(q kᵀ/√d)) v and never reads the future")


# ---------------------------------------------------------------------------------------------
# ex02: splitting and merging heads


def multi_head(
    split_heads: Callable[[Tensor, int], Tensor], merge_heads: Callable[[Tensor], Tensor], *, seed: int | None = None
) -> None:
    """Check ``split_heads(x, heads)`` ``(B, T, D) -> (B, h, T, D/h)`` and ``merge_heads`` (its inverse).

    Head ``i`` must hold features ``i·d .. (i+1)·d`` of each token. The check compares both with the
    reference, requires a ``ValueError`` when ``D`` is not divisible by ``heads``, round-trips, and
    runs multi-head causal attention built with them against ``nn.MultiheadAttention`` (values and
    gradients).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    b, t, heads = 2, int(torch.randint(5, 9, (), generator=gen)), int(torch.randint(2, 5, (), generator=gen))
    d = int(torch.randint(3, 7, (), generator=gen))
    dim = heads * d
    x = torch.randn(b, t, dim, generator=gen)
    call = f"{_name(split_heads)}(x of shape {(b, t, dim)}, heads={heads})"
    out = call_learner(split_heads, x.clone(), heads, what=call)
    expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
    expected = ref_split(x, heads)
    if out.shape == (b, t, heads, d) and (out.shape != expected.shape or torch.equal(out, x.view(b, t, heads, d))):
        raise CheckFailed(
            f"{call} returned shape {tuple(out.shape)} = (B, T, h, d) {where}: the heads must come "
            "before the tokens, (B, h, T, d); transpose(1, 2) after splitting D"
        )
    expect(
        out.shape == expected.shape,
        f"{call}: expected shape (B, h, T, d) = {tuple(expected.shape)}, found {tuple(out.shape)} {where}",
    )
    if not torch.equal(out, expected):
        if torch.equal(out, x.reshape(b, heads, t, d)):
            raise CheckFailed(
                f"{call} {where}: x was reshaped straight to (B, h, T, d), which mixes tokens and "
                "heads (head 0 gets whole tokens). View it as (B, T, h, d) first, then transpose(1, 2)"
            )
        if torch.equal(out, x.view(b, t, d, heads).permute(0, 3, 1, 2)):
            raise CheckFailed(
                f"{call} {where}: head i got features i, i + h, i + 2h, ... (every h-th feature); "
                "it should get the contiguous block i·d .. (i+1)·d: view as (B, T, h, d), not (B, T, d, h)"
            )
        expect_close(out, expected, f"{call} {where}")

    heads_in = torch.randn(b, heads, t, d, generator=gen)
    call_m = f"{_name(merge_heads)}(x of shape {(b, heads, t, d)})"

    def merge(tensor: Tensor) -> Any:
        try:
            return call_learner(merge_heads, tensor, what=call_m)
        except CheckFailed as err:
            if "view" not in str(err):
                raise
            raise CheckFailed(
                f"{err} {where}. After transpose(1, 2) the tensor is not contiguous in memory, so .view "
                "cannot merge the heads: use .reshape (or .contiguous().view)"
            ) from err

    merged = merge(heads_in.clone())
    expect(isinstance(merged, Tensor), f"{call_m} should return a tensor, found {type(merged).__name__}")
    expected_m = ref_merge(heads_in)
    expect(
        merged.shape == expected_m.shape,
        f"{call_m}: expected shape (B, T, h·d) = {tuple(expected_m.shape)}, found {tuple(merged.shape)} {where}",
    )
    if not torch.equal(merged, expected_m):
        if torch.equal(merged, heads_in.reshape(b, t, dim)):
            raise CheckFailed(
                f"{call_m} {where}: reshaped (B, h, T, d) straight to (B, T, h·d) without moving the "
                "heads back next to the features: transpose(1, 2) first, then reshape"
            )
        expect_close(merged, expected_m, f"{call_m} {where}")
    round_trip = merge(call_learner(split_heads, x.clone(), heads, what=call))
    expect(torch.equal(round_trip, x), f"merge_heads(split_heads(x)) is not x {where}")

    bad = torch.randn(b, t, dim + 1, generator=gen)
    try:
        split_heads(bad, heads)
    except ValueError:
        pass
    except NotImplementedError:
        raise CheckFailed(f"{_name(split_heads)} is not implemented yet") from None
    except Exception as err:
        raise CheckFailed(
            f"{_name(split_heads)}(x with D={dim + 1}, heads={heads}) raised {type(err).__name__}: "
            f"{err}; raise a ValueError that says D is not divisible by heads"
        ) from err
    else:
        raise CheckFailed(
            f"{_name(split_heads)}(x with D={dim + 1}, heads={heads}) did not raise: D={dim + 1} is not "
            "divisible by heads, raise a ValueError that says so"
        )

    # In context: causal multi-head attention with the learner's split/merge against nn.MultiheadAttention.
    torch.manual_seed(seed)
    reference = nn.MultiheadAttention(dim, heads, bias=False, batch_first=True)
    wq, wk, wv = (w.detach().clone() for w in reference.in_proj_weight.split(dim))
    wo = reference.out_proj.weight.detach().clone()
    load_attention_weights(reference, wq, wk, wv, wo)
    xa = torch.randn(b, t, dim, generator=gen, requires_grad=True)
    xr = xa.detach().clone().requires_grad_(True)
    q, k, v = (call_learner(split_heads, xa @ w.T, heads, what=call) for w in (wq, wk, wv))
    mine = merge(naive_attention(q, k, v, causal=True)) @ wo.T
    mask = ~torch.ones(t, t, dtype=torch.bool).tril()
    theirs = reference(xr, xr, xr, attn_mask=mask, need_weights=False)[0]
    expect_close(
        mine,
        theirs,
        f"multi-head causal attention built with your functions vs nn.MultiheadAttention {where}",
        atol=1e-5,
    )
    grad = torch.randn(theirs.shape, generator=gen)
    mine.backward(grad)
    theirs.backward(grad)
    expect_close(xa.grad, xr.grad, f"gradient of the input through your multi-head attention {where}", atol=1e-5)
    passed(
        f"multi-head split/merge: {_name(split_heads)} and {_name(merge_heads)} match the reference, and "
        "attention built with them equals nn.MultiheadAttention"
    )


# ---------------------------------------------------------------------------------------------
# ex03: the KV cache


def _tiny_gpt(seed: int, positions: str, prompt: Tensor, n: int) -> GPT:
    """A tiny GPT whose greedy continuation of ``prompt`` never repeats the token before it.

    An untrained GPT predicts almost the same token whatever it reads, so an order bug (feeding the
    previous token again, keeping each step's logits one step late) would go unnoticed. Here the
    token embeddings are large and the output layer reads token ``t`` as ``t + shift`` (a shift that
    is never 0), so every step's greedy token depends on the token fed and differs from the one before;
    among a few such models, the first whose continuation of ``prompt`` never repeats a token is used.
    """
    config = GPTConfig(
        vocab_size=23,
        context_length=48,
        n_layers=2,
        n_heads=2,
        dim=16,
        dropout=0.0,
        positions=positions,
        tie_embeddings=False,
    )
    model = None
    for attempt in range(16):
        torch.manual_seed(seed * 16 + attempt)
        model = GPT(config).eval()
        with torch.no_grad():
            model.embed_tokens.weight.normal_()
            model.lm_head.weight.copy_(model.embed_tokens.weight.roll(1 + (seed + attempt) % 22, dims=0))
            idx = prompt
            for _ in range(n):
                idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
        tail = idx[:, prompt.shape[1] - 1 :]
        if bool((tail[:, 1:] != tail[:, :-1]).all()):
            break
    assert model is not None
    return model


def kv_cache(
    cache_cls: type, generate: Callable[[GPT, Tensor, int], tuple[Tensor, Tensor]], *, seed: int | None = None
) -> None:
    """Check a KV cache class and greedy generation with it.

    ``cache_cls()`` must start empty (``len == 0``); ``append(k, v)`` with ``(B, h, T_new, d)`` tensors
    must return *all* keys and values so far (concatenated along the time axis, dim -2) and grow
    ``len`` by ``T_new``. ``generate(model, idx, max_new_tokens)`` must return ``(tokens (B, T + n),
    logits (B, n, V))``, greedy, running the prompt once and then one new token per step through
    ``model(new_tokens, caches)``; its logits must equal the uncached model's at every step (≤ 1e-5).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    name = _name(cache_cls)

    # 1. The cache on its own.
    cache = call_learner(cache_cls, what=f"{name}()")
    expect(call_learner(len, cache, what=f"len({name}())") == 0, f"a new {name} should be empty: len(cache) == 0")
    k1, v1 = torch.randn(2, 3, 5, 4, generator=gen), torch.randn(2, 3, 5, 4, generator=gen)
    k2, v2 = torch.randn(2, 3, 1, 4, generator=gen), torch.randn(2, 3, 1, 4, generator=gen)
    first = call_learner(cache.append, k1, v1, what=f"{name}.append(k, v) with k, v (2, 3, 5, 4)")
    expect(
        isinstance(first, tuple) and len(first) == 2,
        f"{name}.append should return a tuple (keys, values), found {type(first).__name__}",
    )
    expect_close(first[0], k1, f"{name}.append on an empty cache: the keys returned", atol=0, rtol=0)
    call2 = f"{name}.append(k, v) with k, v (2, 3, 1, 4) after 5 cached positions"
    try:
        keys, values = call_learner(cache.append, k2, v2, what=call2)
    except CheckFailed as err:
        raise CheckFailed(f"{err}: k and v are (B, h, T, d); concatenate along the time axis, dim=-2") from err
    want_k, want_v = torch.cat([k1, k2], dim=-2), torch.cat([v1, v2], dim=-2)
    if keys.shape == k2.shape:
        raise CheckFailed(
            f"{call2} returned only the new keys {tuple(keys.shape)}, expected all 6 positions "
            f"{tuple(want_k.shape)}: the cache was not appended; concatenate the new k, v to the cached "
            "ones (torch.cat(..., dim=-2)) and keep the result"
        )
    if keys.shape == (2, 3, 5, 8) or keys.shape == (4, 3, 1, 4) or keys.shape == (2, 6, 1, 4):
        raise CheckFailed(
            f"{call2} returned keys of shape {tuple(keys.shape)}, expected {tuple(want_k.shape)}: "
            "concatenate along the time axis, dim=-2 (shape (B, h, T, d))"
        )
    expect_close(keys, want_k, f"{call2}: the keys returned", atol=0, rtol=0)
    expect_close(values, want_v, f"{call2}: the values returned", atol=0, rtol=0)
    expect(len(cache) == 6, f"after appending 5 and then 1 position, len(cache) should be 6, found {len(cache)}")

    # 2. Generation with it, against the uncached model at every step.
    for positions in ("learned", "rope"):
        prompt = torch.randint(0, 23, (2, int(torch.randint(3, 8, (), generator=gen))), generator=gen)
        n = 12
        with torch.random.fork_rng():  # leave the learner's random state alone
            model = _tiny_gpt(seed, positions, prompt, n)
        read: list[int] = []
        used: set[str] = set()
        hooks = [
            model.embed_tokens.register_forward_pre_hook(lambda _m, args, read=read: read.append(args[0].shape[1]))
        ]

        owners: dict[int, int] = {}

        def seen(layer: int, cache: Any, used: set[str] = used, owners: dict[int, int] = owners) -> None:
            used.add(type(cache).__name__)
            if cache is None:
                return
            owner = owners.setdefault(id(cache), layer)
            if owner != layer:
                raise CheckFailed(
                    f"the same {type(cache).__name__} object was given to blocks {owner} and {layer}: each block "
                    f"needs its own cache of its own keys and values; create one per block, "
                    f"[{type(cache).__name__}() for _ in model.layers], not [{type(cache).__name__}()] * n_layers"
                )

        hooks += [
            layer.self_attn.register_forward_pre_hook(lambda _m, args, i=i: seen(i, args[2]))
            for i, layer in enumerate(model.layers)
        ]
        call = f"{_name(generate)}(model ({positions} positions), prompt of shape {tuple(prompt.shape)}, {n})"
        try:
            result = call_learner(generate, model, prompt.clone(), n, what=call)
        finally:
            for hook in hooks:
                hook.remove()
        expect(
            isinstance(result, tuple) and len(result) == 2,
            f"{call} should return (tokens, logits), found {type(result).__name__}",
        )
        tokens, logits = result
        t = prompt.shape[1]
        expect(
            isinstance(tokens, Tensor) and tokens.shape == (2, t + n),
            f"{call}: expected tokens of shape {(2, t + n)}, found {getattr(tokens, 'shape', type(tokens))}",
        )
        expect(torch.equal(tokens[:, :t], prompt), f"{call}: the tokens should start with the prompt")
        expect(
            isinstance(logits, Tensor) and logits.shape == (2, n, 23),
            f"{call}: expected logits of shape (B, n, V) = {(2, n, 23)}, found "
            f"{getattr(logits, 'shape', type(logits))}",
        )
        with torch.no_grad():
            for step in range(n):
                expected = model(tokens[:, : t + step])[:, -1]
                if not _close(logits[:, step], expected):
                    diff = (logits[:, step] - expected).abs().max().item()
                    hint = (
                        "the first step should see the whole prompt: run model(idx, caches) once on the prompt"
                        if step == 0
                        else "does append keep the earlier keys and values? is only the newest token fed, once?"
                    )
                    raise CheckFailed(
                        f"{call} {where}: the logits of step {step} differ from the uncached model's "
                        f"(largest difference {diff:.3g}): {hint}"
                    )
                expect(
                    torch.equal(tokens[:, t + step], expected.argmax(-1)),
                    f"{call} {where}: token {step} is not the greedy choice (argmax of that step's logits)",
                )
        expect(
            sum(read) in (t + n - 1, t + n),
            f"{call}: the model read {sum(read)} tokens in all ({read[:4]}...); with a cache it reads the "
            f"prompt once ({t}) and then one token per step: {t + n - 1}",
        )
        expect(
            used == {name},
            f"{call}: the model's attention layers were given caches of type(s) "
            f"{sorted(used)}, expected {name}: create one {name}() per block and pass the list",
        )
    passed(
        f"KV cache: {name} and {_name(generate)} give the uncached model's logits at every step, reading "
        "each token once"
    )


# ---------------------------------------------------------------------------------------------
# ex04: sliding-window and prefix-LM masks


def _band(t: int, low: int, high: int) -> Tensor:
    """``(T, T)`` bool, True where ``low ≤ i - j ≤ high`` (query i, key j)."""
    offset = torch.arange(t)[:, None] - torch.arange(t)[None, :]
    return (offset >= low) & (offset <= high)


def _window(t: int, w: int) -> Tensor:
    return _band(t, 0, w - 1)  # itself and the w - 1 tokens before it


def _prefix(t: int, p: int) -> Tensor:
    return _band(t, 0, t) | (torch.arange(t)[None, :] < p)  # causal, plus every key of the prefix


def _where_wrong(found: Tensor, expected: Tensor) -> str:
    i, j = (int(x) for x in torch.nonzero(found != expected)[0])
    said = "allows" if bool(found[i, j]) else "hides"
    return f"the mask {said} query {i} → key {j}, which should be {'hidden' if said == 'allows' else 'allowed'}"


def _learner_mask(fn: Callable[[int, int], Tensor], t: int, arg: int, what: str, where: str) -> Tensor:
    call = f"{_name(fn)}({t}, {arg})"
    mask = call_learner(fn, t, arg, what=call)
    expect(isinstance(mask, Tensor), f"{call} should return a tensor, found {type(mask).__name__} {where}")
    expect(
        mask.shape == (t, t),
        f"{call} should return a (T, T) = {(t, t)} mask, one row per query and one column per key, "
        f"found shape {tuple(mask.shape)} {where}",
    )
    expect(
        mask.dtype == torch.bool,
        f"{call} should return a bool mask (True where query i may attend to key j), found dtype "
        f"{mask.dtype} {where}: masked_fill needs a bool tensor; build it from comparisons or .bool()",
    )
    return mask


def _check_window(fn: Callable[[int, int], Tensor], t: int, w: int, where: str) -> None:
    call = f"{_name(fn)}({t}, {w})"
    mask = _learner_mask(fn, t, w, call, where)
    expected = _window(t, w)
    if torch.equal(mask, expected):
        return
    if w >= t:
        raise CheckFailed(
            f"{call} {where}: with a window at least as long as the sequence (w = {w} ≥ T = {t}) the mask "
            f"should be the plain causal mask; {_where_wrong(mask, expected)}"
        )
    wrong = {
        "is the plain causal mask: every query sees all earlier tokens; hide the keys more than w - 1 "
        "positions back": _band(t, 0, t),
        "lets each query see w + 1 tokens (itself and w before it): the window holds w tokens, itself and "
        "the w - 1 before it": _band(t, 0, w),
        "lets each query see only w - 1 tokens: the window holds w tokens, itself and the w - 1 before it": _band(
            t, 0, w - 2
        ),
        "looks forward: query i sees keys after i. The window lies behind the query, keys i - w + 1 .. i": _band(
            t, -(w - 1), w - 1
        ),
        "looks only forward (the transpose): query i must see keys i - w + 1 .. i, not i .. i + w - 1": _band(
            t, -(w - 1), 0
        ),
        "is inverted: True must mark the keys a query may attend to, False the hidden ones": ~expected,
    }
    for message, mistake in wrong.items():
        if torch.equal(mask, mistake):
            raise CheckFailed(f"{call} {where}: the mask {message}")
    raise CheckFailed(
        f"{call} {where}: {_where_wrong(mask, expected)} (query i may see keys i - w + 1 .. i, those that exist)"
    )


def _check_prefix(fn: Callable[[int, int], Tensor], t: int, p: int, where: str) -> None:
    call = f"{_name(fn)}({t}, {p})"
    mask = _learner_mask(fn, t, p, call, where)
    expected = _prefix(t, p)
    if torch.equal(mask, expected):
        return
    if p == 0:
        raise CheckFailed(
            f"{call} {where}: with an empty prefix (p = 0) the mask should be the plain causal mask; "
            f"{_where_wrong(mask, expected)}"
        )
    rows = torch.arange(t)[:, None] < p
    wrong = {
        "is the plain causal mask: the prefix tokens should see each other in both directions (every key "
        "j < p), not only the earlier ones": _band(t, 0, t),
        "lets the prefix queries see the whole sequence, the continuation included: a prefix query sees the "
        "prefix only; the continuation is still to be generated": _band(t, 0, t) | rows,
        "makes a prefix of p + 1 tokens: the prefix is positions 0 .. p - 1": _prefix(t, p + 1),
        "makes a prefix of p - 1 tokens: the prefix is positions 0 .. p - 1": _prefix(t, p - 1),
        "is inverted: True must mark the keys a query may attend to, False the hidden ones": ~expected,
        "is transposed: row i is query i, column j is key j; query i sees the prefix and keys j ≤ i": expected.T,
    }
    for message, mistake in wrong.items():
        if torch.equal(mask, mistake):
            raise CheckFailed(f"{call} {where}: the mask {message}")
    raise CheckFailed(f"{call} {where}: {_where_wrong(mask, expected)} (query i may see keys j < p and j ≤ i)")


def _attend(q: Tensor, k: Tensor, v: Tensor, allowed: Tensor, *, fill: float = float("-inf"), scale: bool = True):
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    return scores.masked_fill(~allowed, fill).softmax(-1) @ v


def _check_masked_attention(fn: Callable[..., Tensor], allowed: Tensor, label: str, shape: tuple[int, ...], gen, where):
    q, k, v = (torch.randn(*shape, generator=gen) for _ in range(3))
    call = f"{_name(fn)}(q, k, v, {label}) with q, k, v of shape {shape}"
    out = call_learner(fn, q.clone(), k.clone(), v.clone(), allowed.clone(), what=call)
    expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__} {where}")
    expect(
        out.shape == v.shape,
        f"{call}: expected shape {tuple(v.shape)} (one d-vector per query), found {tuple(out.shape)} {where}",
    )
    expect(out.dtype == v.dtype, f"{call}: expected dtype {v.dtype}, found {out.dtype} {where}")
    expect(
        not bool(torch.isnan(out).any()),
        f"{call} returned NaN {where}: a row hides every key (softmax of all -inf); is the mask read the "
        "wrong way round? masked_fill(~allowed, -inf) hides the keys where allowed is False",
    )
    expected = _attend(q, k, v, allowed)
    if not _close(out, expected):
        scores = q @ k.transpose(-2, -1) / math.sqrt(shape[-1])
        wrong = {
            "the weights were masked after the softmax: the remaining weights no longer sum to 1; fill the "
            "hidden scores with -inf before the softmax": scores.softmax(-1).masked_fill(~allowed, 0.0) @ v,
            "the hidden scores were set to 0 instead of -inf: exp(0) = 1, so hidden keys still get weight; "
            "use float('-inf')": _attend(q, k, v, allowed, fill=0.0),
            "the mask was read the wrong way round: allowed is True where attention is allowed, so hide "
            "~allowed": _attend(q, k, v, ~allowed),
            "the mask was ignored: every query attends to every key": naive_attention(q, k, v),
            "the scores are not scaled: divide q·k by √d (d = q.shape[-1]) before the softmax": _attend(
                q, k, v, allowed, scale=False
            ),
        }
        for message, mistake in wrong.items():
            if _close(out, mistake):
                raise CheckFailed(f"{call} {where}: {message}")
    # Each output may depend only on the keys its row allows, and must depend on all of them.
    t = shape[-2]
    batch_dims = tuple(range(out.dim() - 2))
    for j in range(t):
        k2, v2 = k.clone(), v.clone()
        k2[..., j, :] += 3.0 * torch.randn(shape[-1], generator=gen)
        v2[..., j, :] += 3.0
        out2 = call_learner(fn, q.clone(), k2, v2, allowed.clone(), what=call)
        moved = (out2 - out).abs().amax(dim=batch_dims + (-1,)) > 1e-5  # (T,) per query
        leaked = [i for i in range(t) if bool(moved[i]) and not bool(allowed[i, j])]
        expect(
            not leaked,
            f"{call} {where}: changing token {j}'s key and value moved the output at position(s) {leaked}, "
            f"whose mask hides token {j}: a hidden key must get weight exactly 0 (-inf before the softmax)",
        )
        deaf = [i for i in range(t) if not bool(moved[i]) and bool(allowed[i, j])]
        expect(
            not deaf,
            f"{call} {where}: changing token {j}'s key and value did not move the output at position(s) "
            f"{deaf}, whose mask allows token {j}: every allowed key should count",
        )
    expect_close(out, expected, f"{call} {where}", atol=1e-5, rtol=1e-4)


def attention_masks(
    sliding_window_mask: Callable[[int, int], Tensor],
    prefix_lm_mask: Callable[[int, int], Tensor],
    masked_attention: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor],
    *,
    seed: int | None = None,
) -> None:
    """Check two attention masks and attention that uses them.

    ``sliding_window_mask(T, w)`` and ``prefix_lm_mask(T, p)`` return ``(T, T)`` bool masks, True where
    query ``i`` may attend to key ``j``: the window allows ``i - w < j ≤ i``; the prefix-LM mask allows
    ``j < p`` (the prefix, seen in both directions) or ``j ≤ i`` (causal after it).
    ``masked_attention(q, k, v, allowed)`` with q, k, v ``(..., T, d)`` returns
    ``softmax(q kᵀ/√d with hidden scores -inf) v``.

    The masks are compared cell by cell for random ``T``, ``w`` and ``p`` and at the edges (``w = 1``,
    ``w ≥ T``: causal; ``p = 0``: causal; ``p = T``: full). The attention is compared with an
    independent computation and tested by perturbation: changing token ``j``'s key and value must move
    exactly the outputs whose row allows ``j``.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    t = int(torch.randint(8, 12, (), generator=gen))
    w = int(torch.randint(3, t - 2, (), generator=gen))
    p = int(torch.randint(2, t - 2, (), generator=gen))
    for window in (w, 1, 2, t, t + 3):
        _check_window(sliding_window_mask, t, window, where)
    for prefix in (p, 1, 0, t):
        _check_prefix(prefix_lm_mask, t, prefix, where)
    d = int(torch.randint(3, 7, (), generator=gen))
    _check_masked_attention(masked_attention, _window(t, w), f"window w={w}", (2, 3, t, d), gen, where)
    _check_masked_attention(masked_attention, _prefix(t, p), f"prefix p={p}", (3, t, d), gen, where)
    # The learner's own masks inside the learner's attention, against full attention on the prefix.
    q, k, v = (torch.randn(2, t, d, generator=gen) for _ in range(3))
    mask = call_learner(prefix_lm_mask, t, p, what=f"{_name(prefix_lm_mask)}({t}, {p})")
    out = call_learner(masked_attention, q, k, v, mask, what=f"{_name(masked_attention)}(q, k, v, prefix mask)")
    expect_close(
        out[:, :p],
        naive_attention(q[:, :p], k[:, :p], v[:, :p]),
        f"the outputs of the prefix with your prefix_lm_mask should equal full attention over the prefix {where}",
        atol=1e-5,
        rtol=1e-4,
    )
    passed(
        f"attention masks: the sliding window (w={w}) and the prefix-LM mask (p={p}) are right for T={t} and at "
        "the edges, and masked attention reads exactly the keys each mask allows"
    )
