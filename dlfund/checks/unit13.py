"""Checks for unit 13 (LoRA and LLaMA-Adapter): the LoRA layer with merge/unmerge, the adapter's gate, LoRA
for an embedding table, and four transfer exercises that live in modules of their own: choosing few-shot
examples by similarity (:mod:`dlfund.checks._unit13_shots`), attention with a key/value prefix
(:mod:`dlfund.checks._unit13_prefix`), the IPO preference loss (:mod:`dlfund.checks._unit13_ipo`) and maximal
marginal relevance for retrieved context (:mod:`dlfund.checks._unit13_mmr`).

Each check draws fresh random sizes (the seed is printed in failure messages, so a failure can be
replayed with ``seed=...``), compares with the library's reference (:mod:`dlfund.peft`), and when the
answer differs tries the typical mistakes to say which one was made.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing
from dlfund.models.attention import merge_heads, split_heads
from dlfund.models.llama import GroupedQueryAttention, LlamaConfig, repeat_kv
from dlfund.models.transformer import KVCache, apply_rope, rope_tables
from dlfund.peft.adapter import AdapterAttention
from dlfund.peft.lora import LoRALinear

__all__ = ["adapter_gate", "ipo_loss", "lora_embedding", "lora_layer", "mmr", "prefix_attention", "similar_shots"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _close(a: Tensor, b: Tensor, atol: float = 1e-5) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().float(), b.detach().float(), atol=atol, rtol=1e-4)


# The library's own layers, recognised by the code of the methods that make them what they are (a
# subclass calling them, or the class itself passed in place of the learner's, is refused).
_LORA_REFERENCE = {
    "dlfund.peft.lora.LoRALinear": LoRALinear.__init__,
    "dlfund.peft.lora.LoRALinear.forward": LoRALinear.forward,
    # merge and unmerge are wrapped by torch.no_grad, whose wrapper code every such method shares: the inner ones
    "dlfund.peft.lora.LoRALinear.merge": inspect.unwrap(LoRALinear.merge),
    "dlfund.peft.lora.LoRALinear.unmerge": inspect.unwrap(LoRALinear.unmerge),
    "dlfund.peft.lora.LoRALinear.delta_weight": LoRALinear.delta_weight,
}
# Not its forward: AdapterAttention inherits GroupedQueryAttention.forward, which the learner's class uses too.
_ADAPTER_REFERENCE = {
    "dlfund.peft.adapter.AdapterAttention": AdapterAttention.__init__,
    "dlfund.peft.adapter.AdapterAttention.attend": AdapterAttention.attend,
    "dlfund.peft.adapter.AdapterAttention.prompt_attention": AdapterAttention.prompt_attention,
    "dlfund.peft.adapter.AdapterAttention.reset_adapter": AdapterAttention.reset_adapter,
}


def _adapter_call(fn: Any, *args: Any, what: str) -> Any:
    """Call the learner's adapter code, refusing the library's ``AdapterAttention`` (the check's own
    reference is used outside these calls)."""
    with refusing(_ADAPTER_REFERENCE, "the adapter attention"):
        return call_learner(fn, *args, what=what)


# ---------------------------------------------------------------------------------------------
# ex01: the LoRA layer


def lora_layer(cls: type, *, seed: int | None = None) -> None:
    """Check a LoRA layer class ``cls(in_features, out_features, r=..., alpha=...)`` (an ``nn.Linear``
    subclass with ``lora_A (r, in)``, ``lora_B (out, r)``, ``merge()``, ``unmerge()``, ``merged``).

    Checks: output unchanged at initialisation (``B = 0``) with ``A`` Kaiming-initialised (non-zero);
    the forward pass ``x Wᵀ + (α/r) x Aᵀ Bᵀ`` for random ``B``; gradients reach ``A`` and ``B``;
    ``merge()`` gives the same outputs and sets ``merged``; merging twice changes nothing;
    ``unmerge()`` restores ``W``. The library's own ``LoRALinear`` (or a subclass calling it) is refused.
    """
    with refusing(_LORA_REFERENCE, "the LoRA layer"):
        _lora_layer(cls, seed)


def _lora_layer(cls: type, seed: int | None) -> None:
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    d_in, d_out = int(torch.randint(12, 24, (), generator=gen)), int(torch.randint(6, 12, (), generator=gen))
    r = int(torch.randint(2, 5, (), generator=gen))
    alpha = float(torch.randint(2, 5, (), generator=gen)) * r  # α ≠ r, so α and α/r differ
    call = f"{_name(cls)}({d_in}, {d_out}, r={r}, alpha={alpha:g})"
    torch.manual_seed(seed)
    layer = call_learner(cls, d_in, d_out, r=r, alpha=alpha, what=call)
    expect(isinstance(layer, nn.Linear), f"{call} should be an nn.Linear (subclass it), found {type(layer).__name__}")
    for name, shape in (("lora_A", (r, d_in)), ("lora_B", (d_out, r))):
        p = getattr(layer, name, None)
        expect(
            isinstance(p, nn.Parameter),
            f"{call} needs a parameter {name} of shape {shape}, found {type(p).__name__} {where}",
        )
        expect(
            tuple(p.shape) == shape,
            f"{call}.{name} should have shape {shape} (A: (r, in), B: (out, r)), found {tuple(p.shape)} {where}",
        )
    A, B = layer.lora_A.detach(), layer.lora_B.detach()
    expect(
        bool(B.abs().max() == 0),
        f"{call}: B should start at zero so that ΔW = BA = 0 and the model is the "
        f"pretrained one at step 0, but B was initialised randomly {where}",
    )
    expect(
        bool(A.abs().max() > 0),
        f"{call}: A is all zeros: with B = 0 as well, neither A nor B ever gets a "
        f"gradient; initialise A with nn.init.kaiming_uniform_(A, a=math.sqrt(5)) {where}",
    )
    bound = 1 / math.sqrt(d_in)
    expect(
        bool(A.abs().max() <= bound * 1.001) and float(A.std()) > 0.2 * bound,
        f"{call}: A should be Kaiming-uniform like nn.Linear's weight (nn.init.kaiming_uniform_(A, a=math.sqrt(5)), "
        f"values within ±1/sqrt(in) = ±{bound:.3f}), found values in "
        f"[{float(A.min()):.3f}, {float(A.max()):.3f}] {where}",
    )
    expect(getattr(layer, "merged", None) is False, f"{call}: a new layer should have merged = False {where}")

    with torch.no_grad():
        layer.weight.copy_(torch.randn(d_out, d_in, generator=gen) / math.sqrt(d_in))
    x = torch.randn(4, 3, d_in, generator=gen)
    base = F.linear(x, layer.weight.detach(), None if layer.bias is None else layer.bias.detach())
    layer.eval()
    out = call_learner(layer, x, what=f"{call}(x {tuple(x.shape)})")
    expect(
        isinstance(out, Tensor) and out.shape == base.shape,
        f"{call}(x {tuple(x.shape)}) should return shape {tuple(base.shape)}, found "
        f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} {where}",
    )
    expect(
        _close(out, base),
        f"{call}: at initialisation the output should equal the plain linear layer x Wᵀ "
        f"(ΔW = 0), but it differs by {float((out - base).detach().abs().max()):.3g} {where}",
    )

    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(d_out, r, generator=gen))
    B = layer.lora_B.detach()
    low = x @ A.T @ B.T
    out = call_learner(layer, x, what=f"{call}(x)")
    if not _close(out, base + (alpha / r) * low):
        for scale, message in (
            (alpha, "scaled by α instead of α/r"),
            (1.0, "not scaled: multiply by α/r"),
            (r / alpha, "scaled by r/α instead of α/r"),
            (0.0, "missing: add (α/r)·x Aᵀ Bᵀ"),
        ):
            if _close(out, base + scale * low):
                raise CheckFailed(f"{call}: the low-rank update is {message} {where}")
        raise CheckFailed(
            f"{call}: with a non-zero B the output should be x Wᵀ + (α/r)·x Aᵀ Bᵀ; it differs by "
            f"{float((out - base - alpha / r * low).detach().abs().max()):.3g} {where}"
        )
    layer.zero_grad(set_to_none=True)
    call_learner(layer, x, what=f"{call}(x)").sum().backward()
    expect(
        layer.lora_A.grad is not None and layer.lora_B.grad is not None and bool(layer.lora_A.grad.abs().max() > 0),
        f"{call}: no gradient reached lora_A / lora_B {where}: use torch operations on the parameters",
    )

    for method in ("merge", "unmerge"):
        expect(
            callable(getattr(layer, method, None)),
            f"{call} has no {method}() method: write {method}(self) (merge adds ΔW into the weight, unmerge "
            f"takes it out again) {where}",
        )
    w_before = layer.weight.detach().clone()
    call_learner(layer.merge, what=f"{call}.merge()")
    expect(getattr(layer, "merged", None) is True, f"{call}.merge() should set merged = True {where}")
    expected_w = w_before + (alpha / r) * B @ A
    expect(
        _close(layer.weight, expected_w),
        f"{call}.merge() should add ΔW = (α/r)·B A to the weight; the weight "
        f"differs from W + ΔW by {float((layer.weight - expected_w).detach().abs().max()):.3g} {where}",
    )
    with torch.no_grad():
        merged_out = call_learner(layer, x, what=f"{call}(x) after merge()")
    if _close(merged_out, base + 2 * (alpha / r) * low, 1e-4):
        raise CheckFailed(
            f"{call}: after merge() the forward pass adds ΔW twice (once inside W, once by the low-rank "
            f"path): skip the low-rank path when merged {where}"
        )
    expect(
        _close(merged_out, base + (alpha / r) * low, 1e-4),
        f"{call}: the merged forward differs from the unmerged one by "
        f"{float((merged_out - base - alpha / r * low).detach().abs().max()):.3g} {where}",
    )
    call_learner(layer.merge, what=f"{call}.merge() a second time")
    expect(
        _close(layer.weight, expected_w),
        f"{call}: calling merge() twice added ΔW twice: merge only when not merged yet {where}",
    )
    call_learner(layer.unmerge, what=f"{call}.unmerge()")
    expect(getattr(layer, "merged", None) is False, f"{call}.unmerge() should set merged = False {where}")
    expect(
        _close(layer.weight, w_before, 1e-5),
        f"{call}.unmerge() should restore W; it differs by "
        f"{float((layer.weight - w_before).detach().abs().max()):.3g} {where}",
    )
    call_learner(layer.unmerge, what=f"{call}.unmerge() a second time")
    expect(_close(layer.weight, w_before, 1e-5), f"{call}: calling unmerge() on an unmerged layer changed W {where}")
    passed(f"LoRA layer: identity at initialisation, x Wᵀ + (α/r)·x Aᵀ Bᵀ, merge/unmerge exact ({d_in}→{d_out}, r={r})")


# ---------------------------------------------------------------------------------------------
# ex02: the adapter gate


def _prompt_attention_variant(attn: AdapterAttention, q: Tensor, kind: str, theta: float) -> Tensor:
    """What a typical wrong version adds (before the gate), for the messages."""
    b = q.shape[0]
    prompt = attn.adapter_prompt[None].expand(b, -1, -1)
    k = split_heads(attn.k_proj(prompt), attn.n_kv_heads)
    v = split_heads(attn.v_proj(prompt), attn.n_kv_heads)
    groups = attn.n_heads // attn.n_kv_heads
    if kind == "tiled":
        k, v = k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1)
    else:
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)
    if kind == "rope":
        cos, sin = rope_tables(attn.adapter_prompt.shape[0], attn.head_dim, theta)
        k = apply_rope(k, cos, sin)
    if kind == "causal":
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v)


_JOINT = (
    "the prompts share one softmax with the text, so they take attention away from it even with the gate "
    "at zero; give them their own softmax: F.scaled_dot_product_attention(q, k_P, v_P), then the gate"
)


@torch.no_grad()
def _joint_attention(ref: AdapterAttention, x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """The prompts as extra keys of the same (causal) softmax as the text: a typical mistake."""
    q, k, v = ref.project(x, rope)
    b, t, k_len = x.shape[0], x.shape[1], ref.adapter_prompt.shape[0]
    prompt = ref.adapter_prompt[None].expand(b, -1, -1)
    groups = ref.n_heads // ref.n_kv_heads
    kp = repeat_kv(split_heads(ref.k_proj(prompt), ref.n_kv_heads), groups)
    vp = repeat_kv(split_heads(ref.v_proj(prompt), ref.n_kv_heads), groups)
    kk, vv = torch.cat([kp, repeat_kv(k, groups)], 2), torch.cat([vp, repeat_kv(v, groups)], 2)
    allowed = torch.ones(t, k_len + t, dtype=torch.bool).tril(diagonal=k_len)
    return ref.o_proj(merge_heads(F.scaled_dot_product_attention(q, kk, vv, attn_mask=allowed)))


def adapter_gate(cls: type, *, seed: int | None = None) -> None:
    """Check an adapter attention class ``cls(config, prompt_len)`` (a ``GroupedQueryAttention`` subclass
    with ``adapter_prompt (K, D)`` and ``adapter_gate (h,)``) that adds ``gate_h · softmax(q k_Pᵀ/√d) v_P``
    to the causal attention, before ``o_proj`` (the library's ``AdapterAttention`` overrides ``attend``
    for it; the check runs the whole ``forward(x, rope)``, so overriding ``forward`` works too).

    Checks: the gate starts at zero and the module equals plain attention at initialisation; the
    gate's gradient is non-zero at initialisation; with open gates the output matches the reference
    (prompts not rotated by RoPE, not masked, with their own softmax, one gate per head).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    config = LlamaConfig(
        vocab_size=32,
        dim=48,
        n_layers=1,
        # 6 query heads over 2 or 3 key/value heads: several heads share each key/value head (so that a
        # missing or wrong repeat shows) and the gates of one group differ
        n_heads=6,
        n_kv_heads=int(torch.randint(2, 4, (), generator=gen)),
        hidden_dim=48,
        context_length=32,
    )
    k_len = int(torch.randint(2, 6, (), generator=gen))
    t = int(torch.randint(6, 10, (), generator=gen))  # t ≥ prompt_len
    call = f"{_name(cls)}(config, prompt_len={k_len})"
    torch.manual_seed(seed)
    attn = _adapter_call(cls, config, k_len, what=call)
    expect(
        isinstance(attn, GroupedQueryAttention),
        f"{call} should subclass GroupedQueryAttention, found {type(attn).__name__}",
    )
    gate, prompt = getattr(attn, "adapter_gate", None), getattr(attn, "adapter_prompt", None)
    expect(
        isinstance(prompt, nn.Parameter) and tuple(prompt.shape) == (k_len, config.dim),
        f"{call} needs a parameter adapter_prompt of shape (prompt_len, dim) = {(k_len, config.dim)} {where}",
    )
    expect(isinstance(gate, nn.Parameter), f"{call} needs a parameter adapter_gate (one gate per query head) {where}")
    expect(
        gate.numel() == config.n_heads,
        f"{call}: adapter_gate should hold one gate per query head "
        f"({config.n_heads}), found shape {tuple(gate.shape)} {where}",
    )
    expect(
        tuple(gate.shape) == (config.n_heads,),
        f"{call}: adapter_gate should have shape (n_heads,) = ({config.n_heads},), found {tuple(gate.shape)} "
        f"{where}: keep the parameter flat and reshape it where it multiplies, gate.view(1, -1, 1, 1)",
    )
    expect(
        bool(gate.detach().abs().max() == 0),
        f"{call}: adapter_gate must start at zero (then the model is exactly "
        f"the pretrained one at step 0), found values up to "
        f"{float(gate.detach().abs().max()):.3g} {where}",
    )
    ref = AdapterAttention(config, k_len)
    try:
        ref.load_state_dict({k: v for k, v in attn.state_dict().items() if k in ref.state_dict()}, strict=True)
    except (RuntimeError, KeyError) as err:
        raise CheckFailed(
            f"{call}: its parameters do not fit GroupedQueryAttention's plus adapter_prompt {(k_len, config.dim)} and "
            f"adapter_gate ({config.n_heads},) {where}: {str(err).splitlines()[-1].strip()}"
        ) from None
    plain = GroupedQueryAttention(config)
    plain.load_state_dict({k: v for k, v in ref.state_dict().items() if k in plain.state_dict()})
    cos, sin = rope_tables(config.context_length, config.head_dim, config.rope_base)
    rope = (cos[:t], sin[:t])
    x = torch.randn(2, t, config.dim, generator=gen)
    fwd = f"{call}.forward(x {tuple(x.shape)}, rope)"
    out = _adapter_call(attn, x, rope, what=fwd)
    expect(
        isinstance(out, Tensor) and out.shape == x.shape,
        f"{fwd} should return shape {tuple(x.shape)}, found "
        f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} {where}",
    )
    if not _close(out, plain(x, rope)) and _close(out, _joint_attention(ref, x, rope), 1e-4):
        raise CheckFailed(f"{fwd}: {_JOINT} {where}")
    expect(
        _close(out, plain(x, rope)),
        f"{fwd}: with the gate at zero the output should equal plain causal attention "
        f"(the pretrained layer), but it differs by "
        f"{float((out - plain(x, rope)).detach().abs().max()):.3g} {where}",
    )
    attn.zero_grad(set_to_none=True)
    (out * torch.randn(out.shape, generator=gen)).sum().backward()
    expect(
        attn.adapter_gate.grad is not None and bool(attn.adapter_gate.grad.abs().max() > 0),
        f"{fwd}: the gate got no gradient at initialisation: multiply the prompt attention by the gate parameter "
        f"itself (not a detached copy, not a constant), so that it can open {where}",
    )

    with torch.no_grad():
        for m in (attn, ref):
            m.adapter_gate.copy_(torch.linspace(-0.8, 0.9, config.n_heads))
    out = _adapter_call(attn, x, rope, what=fwd)
    expected = ref(x, rope)
    if not _close(out, expected):
        with torch.no_grad():
            q, k, v = ref.project(x, rope)
            y = plain.attend(q, k, v)  # the text's causal attention alone
            g = ref.adapter_gate.view(1, -1, 1, 1)
            for kind, message in (
                (
                    "rope",
                    "the prompt keys were rotated by RoPE: the prompts are not positions in "
                    "the text, project them with k_proj and v_proj only",
                ),
                ("causal", "the prompts were attended with a causal mask: every query sees every prompt (no mask)"),
                (
                    "tiled",
                    "the prompts' key/value heads were tiled (tensor.repeat: heads 0,1,0,1,...): query head i "
                    "reads key/value head i // (n_heads / n_kv_heads); use repeat_kv (repeat_interleave)",
                ),
            ):
                wrong = ref.o_proj(merge_heads(y + g * _prompt_attention_variant(ref, q, kind, config.rope_base)))
                if _close(out, wrong):
                    raise CheckFailed(f"{fwd}: {message} {where}")
            shared = ref.o_proj(merge_heads(y + ref.adapter_gate.mean() * ref.prompt_attention(q)))
            if _close(out, shared):
                raise CheckFailed(
                    f"{fwd}: one gate was used for all heads; gate head h with adapter_gate[h] "
                    f"(reshape it to (1, h, 1, 1)) {where}"
                )
            tanh = ref.o_proj(merge_heads(y + torch.tanh(g) * ref.prompt_attention(q)))
            if _close(out, tanh):
                raise CheckFailed(
                    f"{fwd}: the gate went through tanh; this exercise multiplies by the gate itself {where}"
                )
            if _close(out, _joint_attention(ref, x, rope), 1e-4):
                raise CheckFailed(f"{fwd}: {_JOINT} {where}")
        raise CheckFailed(
            f"{fwd}: with open gates the output should be o_proj(attend(q, k, v) + gate·softmax(q k_Pᵀ/√d) "
            f"v_P); it differs by {float((out - expected).detach().abs().max()):.3g} {where}"
        )
    # generation: the prompt once, then a token at a time through a KV cache, as the full forward
    t0 = int(torch.randint(2, t - 1, (), generator=gen))
    cache = KVCache()
    with torch.no_grad():
        full = ref(x, rope)
        pieces = [_adapter_call(attn, x[:, :t0], (cos[:t0], sin[:t0]), cache, what=f"{fwd[:-1]}, cache) on the prompt")]
        for j in range(t0, t):
            step = f"{_name(cls)}.forward(one new token at position {j}, rope, cache)"
            pieces.append(_adapter_call(attn, x[:, j : j + 1], (cos[j : j + 1], sin[j : j + 1]), cache, what=step))
    stepped = torch.cat(pieces, dim=1)
    cached = len(cache)
    expect(
        cached == t,
        f"{fwd}: after a {t0}-token prompt and {t - t0} more tokens the cache holds {cached} positions, expected {t} "
        f"{where}: "
        + (
            "the forward ignores its cache argument; append the text's keys and values with "
            "cache.append(k, v), as GroupedQueryAttention.forward does"
            if cached == 0
            else "append only the text's keys and values; the prompts are not positions of the text"
        ),
    )
    expect(
        _close(stepped, full, 1e-4),
        f"{fwd}: token by token through a KV cache the output differs from the whole sequence at once by "
        f"{float((stepped - full).abs().max()):.3g} {where}: with a cache, attend the new queries to all the "
        "cached keys (cache.append returns them) and add the prompts' attention as before",
    )
    passed(
        f"adapter gate: identity at initialisation, the gate gets a gradient, prompts without RoPE or mask, "
        "the same output token by token through a KV cache "
        f"({config.n_heads} heads, {config.n_kv_heads} key/value heads, {k_len} prompts)"
    )


# ---------------------------------------------------------------------------------------------
# ex03: LoRA for an embedding table


def _lookup_delta(idx: Tensor, A: Tensor, B: Tensor) -> Tensor:
    """The low-rank update of the rows ``idx (b, t)`` picks: columns of ``A (r, V)`` times ``Bᵀ``, ``(b, t, D)``."""
    return F.embedding(idx, A.T) @ B.T


def lora_embedding(cls: type, *, seed: int | None = None) -> None:
    """Check a LoRA embedding class ``cls(num_embeddings, embedding_dim, r=..., alpha=..., padding_idx=...)``: an
    ``nn.Embedding`` subclass with a frozen ``weight (V, D)``, ``lora_A (r, V)`` (read column by column, as a
    lookup table), ``lora_B (D, r)``, ``merge()``, ``unmerge()`` and ``merged``.

    Checks: only ``A`` and ``B`` train (``r·(V + D)`` parameters); the output equals the base embedding at
    initialisation and a gradient reaches the adapter; with random ``A``, ``B`` the output is
    ``W[idx] + (α/r)·(A[:, idx])ᵀ Bᵀ``; a few training steps never change the padding token's row; ``merge()``
    adds ``(α/r)·(B A)ᵀ`` to the weight with the same outputs, merging twice changes nothing, ``unmerge()``
    restores the weight. Sizes, rank, ``α`` and the padding index are drawn fresh (never the defaults); the
    table and the embedding size always differ, so that a transposed factor shows.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    vocab, dim = int(torch.randint(20, 40, (), generator=gen)), int(torch.randint(6, 14, (), generator=gen))
    r = int(torch.randint(2, 5, (), generator=gen))
    alpha = float(torch.randint(2, 5, (), generator=gen)) * r  # α/r ∈ {2, 3, 4}: α, α/r, 1 and r/α all differ
    scaling = alpha / r
    pad = int(torch.randint(0, vocab, (), generator=gen))
    call = f"{_name(cls)}({vocab}, {dim}, r={r}, alpha={alpha:g}, padding_idx={pad})"

    def build(init_seed: int) -> nn.Module:
        torch.manual_seed(init_seed)
        layer = call_learner(cls, vocab, dim, r=r, alpha=alpha, padding_idx=pad, what=call)
        expect(
            isinstance(layer, nn.Embedding),
            f"{call} should be an nn.Embedding (subclass it), found {type(layer).__name__}",
        )
        with torch.no_grad():  # a "pretrained" table, the padding row included
            layer.weight.copy_(torch.randn(vocab, dim, generator=gen))
        layer.eval()
        return layer

    layer = build(seed)
    for method in ("merge", "unmerge"):
        expect(callable(getattr(layer, method, None)), f"{call} needs a method {method}() {where}")
    for name, shape, transposed in (("lora_A", (r, vocab), (vocab, r)), ("lora_B", (dim, r), (r, dim))):
        p = getattr(layer, name, None)
        expect(
            isinstance(p, nn.Parameter),
            f"{call} needs a parameter {name} of shape {shape}, found {type(p).__name__} {where}",
        )
        expect(
            tuple(p.shape) != transposed,
            f"{call}.{name} has shape {transposed}, the transpose of {shape}: A is (r, num_embeddings), one column "
            f"per token, so that B A has the shape of the weight transposed, as for a linear layer {where}",
        )
        expect(
            tuple(p.shape) == shape,
            f"{call}.{name} should have shape {shape} (A: (r, num_embeddings), B: (embedding_dim, r)), found "
            f"{tuple(p.shape)} {where}",
        )
    expect(getattr(layer, "merged", None) is False, f"{call}: a new layer should have merged = False {where}")
    trainable = {n: p.numel() for n, p in layer.named_parameters() if p.requires_grad}
    expect(
        not layer.weight.requires_grad,
        f"{call}: the base weight is not frozen (requires_grad is True), so training would change all "
        f"{vocab * dim} numbers of the table; freeze it: self.weight.requires_grad_(False) {where}",
    )
    expect(
        sum(trainable.values()) == r * (vocab + dim),
        f"{call}: only lora_A and lora_B should train, r·(num_embeddings + embedding_dim) = {r * (vocab + dim)} "
        f"numbers; found trainable {trainable} {where}",
    )

    b, t = 3, 7
    idx = torch.randint(0, vocab, (b, t), generator=gen)
    idx[:, 0] = pad  # every row holds the padding token
    base = F.embedding(idx, layer.weight.detach())
    swapped = (
        f"batch and position axes swapped: A[:, idx] has shape (r, {b}, {t}) and .T reverses all three axes; look "
        f"the columns up with F.embedding(idx, A.T), which gives ({b}, {t}, r) {where}"
    )
    try:
        out = call_learner(layer, idx, what=f"{call}(idx {tuple(idx.shape)})")
    except CheckFailed as err:
        if isinstance(err.__cause__, RuntimeError) and {f"({b})", f"({t})"} <= set(str(err.__cause__).split()):
            raise CheckFailed(f"{err}: {swapped}") from None
        raise
    if isinstance(out, Tensor) and tuple(out.shape) == (t, b, dim):
        raise CheckFailed(f"{call}(idx {tuple(idx.shape)}) returned shape {(t, b, dim)}, {swapped}")
    expect(
        isinstance(out, Tensor) and tuple(out.shape) == tuple(base.shape),
        f"{call}(idx {tuple(idx.shape)}) should return shape {tuple(base.shape)}, found "
        f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__} {where}",
    )

    def forward(module: nn.Module, what: str) -> Tensor:
        result = call_learner(module, idx, what=what)
        expect(
            isinstance(result, Tensor) and tuple(result.shape) == (b, t, dim),
            f"{what} should return shape {(b, t, dim)}, found "
            f"{tuple(result.shape) if isinstance(result, Tensor) else type(result).__name__} {where}",
        )
        return result

    A0, B0 = layer.lora_A.detach().clone(), layer.lora_B.detach().clone()
    if not _close(out, base):
        if bool(A0.abs().max() > 0) and bool(B0.abs().max() > 0):
            raise CheckFailed(
                f"{call}: both A and B start random, so ΔW = (α/r)·B A ≠ 0 and the layer is not the pretrained "
                f"embedding at step 0 (it differs by {float((out - base).detach().abs().max()):.3g}); start one "
                f"of them at zero {where}"
            )
        raise CheckFailed(
            f"{call}: at initialisation the output should equal the base embedding weight[idx], but it differs by "
            f"{float((out - base).detach().abs().max()):.3g} {where}"
        )
    layer.zero_grad(set_to_none=True)
    (out * torch.randn(out.shape, generator=gen)).sum().backward()
    grads = [getattr(layer, n).grad for n in ("lora_A", "lora_B")]
    expect(
        any(g is not None and bool(g.abs().max() > 0) for g in grads),
        f"{call}: neither A nor B gets a gradient at initialisation "
        + (
            "(both start at zero, and the gradient of each is proportional to the other): start one of them random"
            if not bool(A0.abs().max() > 0) and not bool(B0.abs().max() > 0)
            else "(use torch operations on the parameters)"
        )
        + f" {where}",
    )

    # the forward pass with random factors (the padding token's column of A at zero, as training keeps it)
    A = torch.randn(r, vocab, generator=gen)
    A[:, pad] = 0
    B = torch.randn(dim, r, generator=gen)
    with torch.no_grad():
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    low = _lookup_delta(idx, A, B)
    out = forward(layer, f"{call}(idx)")
    if not _close(out, base + scaling * low, 1e-4):
        for scale, message in (
            (alpha, "scaled by α instead of α/r"),
            (1.0, "not scaled: multiply by α/r"),
            (r / alpha, "scaled by r/α instead of α/r"),
            (0.0, "missing: add (α/r)·(A[:, idx])ᵀ Bᵀ"),
        ):
            if _close(out, base + scale * low, 1e-4):
                raise CheckFailed(f"{call}: the low-rank update is {message} {where}")
        raise CheckFailed(
            f"{call}: with random A and B the output should be weight[idx] + (α/r)·(A[:, idx])ᵀ Bᵀ; it differs by "
            f"{float((out - base - scaling * low).detach().abs().max()):.3g} {where}"
        )
    layer.zero_grad(set_to_none=True)
    (out * torch.randn(out.shape, generator=gen)).sum().backward()
    expect(
        all(g is not None and bool(g.abs().max() > 0) for g in (layer.lora_A.grad, layer.lora_B.grad)),
        f"{call}: with random A and B, no gradient reached "
        + " and ".join(n for n in ("lora_A", "lora_B") if getattr(layer, n).grad is None)
        + f" {where}",
    )

    # training never moves the padding token's row
    fresh = build(seed + 1)
    w_fresh = fresh.weight.detach().clone()
    optimizer = torch.optim.SGD([p for p in fresh.parameters() if p.requires_grad], lr=0.1)
    for step in range(3):
        optimizer.zero_grad()
        y = forward(fresh, f"{call}(idx) in training step {step + 1}")
        (y * torch.randn(y.shape, generator=gen)).sum().backward()
        optimizer.step()
    with torch.no_grad():
        trained = forward(fresh, f"{call}(idx) after training")
    moved = float((trained[:, 0] - w_fresh[pad]).abs().max())
    expect(
        moved < 1e-6,
        f"{call}: three training steps changed the padding token's embedding by {moved:.3g}; its row must stay the "
        "base's: the update (α/r)·B A[:, padding_idx] has to stay zero, so the padding column of A must start at "
        "zero and never get a gradient (pass padding_idx to the lookup, as nn.Embedding does) " + where,
    )
    expect(
        not _close(trained[:, 1:], F.embedding(idx[:, 1:], w_fresh), 1e-6),
        f"{call}: three training steps changed no output: the adapter does not train {where}",
    )

    # merge and unmerge
    w_before = layer.weight.detach().clone()
    try:
        call_learner(layer.merge, what=f"{call}.merge()")
    except CheckFailed as err:
        if isinstance(err.__cause__, RuntimeError) and "size" in str(err.__cause__):
            raise CheckFailed(
                f"{err}: B A has shape (embedding_dim, num_embeddings) = {(dim, vocab)}, the weight "
                f"{(vocab, dim)}: add its transpose {where}"
            ) from None
        raise
    expect(getattr(layer, "merged", None) is True, f"{call}.merge() should set merged = True {where}")
    expected_w = w_before + scaling * (B @ A).T
    expect(
        _close(layer.weight, expected_w, 1e-4),
        f"{call}.merge() should add ΔW = (α/r)·(B A)ᵀ to the weight; it differs from W + ΔW by "
        f"{float((layer.weight - expected_w).detach().abs().max()):.3g} {where}",
    )
    with torch.no_grad():
        merged_out = forward(layer, f"{call}(idx) after merge()")
    if _close(merged_out, base + 2 * scaling * low, 1e-4):
        raise CheckFailed(
            f"{call}: after merge() the forward pass adds ΔW twice (once inside the weight, once by the low-rank "
            f"path): skip the low-rank path when merged {where}"
        )
    expect(
        _close(merged_out, base + scaling * low, 1e-4),
        f"{call}: the merged forward differs from the unmerged one by "
        f"{float((merged_out - base - scaling * low).detach().abs().max()):.3g} {where}",
    )
    call_learner(layer.merge, what=f"{call}.merge() a second time")
    expect(
        _close(layer.weight, expected_w, 1e-4),
        f"{call}: calling merge() twice added ΔW twice: merge only when not merged yet {where}",
    )
    call_learner(layer.unmerge, what=f"{call}.unmerge()")
    expect(getattr(layer, "merged", None) is False, f"{call}.unmerge() should set merged = False {where}")
    expect(
        _close(layer.weight, w_before, 1e-5),
        f"{call}.unmerge() should restore the weight; it differs by "
        f"{float((layer.weight - w_before).detach().abs().max()):.3g} {where}",
    )
    call_learner(layer.unmerge, what=f"{call}.unmerge() a second time")
    expect(
        _close(layer.weight, w_before, 1e-5),
        f"{call}: calling unmerge() on an unmerged layer changed the weight {where}",
    )
    passed(
        f"LoRA embedding: only A and B train, the base embedding at initialisation, (α/r)·B A looked up by column, "
        f"the padding row never moves, merge/unmerge exact ({vocab} tokens × {dim}, r={r}, padding_idx={pad})"
    )


# exercises 4 to 7 live in modules of their own, like unit 14's conformal check
from dlfund.checks._unit13_ipo import ipo_loss  # noqa: E402
from dlfund.checks._unit13_mmr import mmr  # noqa: E402
from dlfund.checks._unit13_prefix import prefix_attention  # noqa: E402
from dlfund.checks._unit13_shots import similar_shots  # noqa: E402
