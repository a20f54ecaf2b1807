"""Prompt tuning (Lester et al., 2021) and prefix tuning (Li & Liang, 2021) on :class:`dlfund.models.llama.Llama`.

**Prompt tuning: learned input embeddings.** ``n`` trainable vectors ``P (n, D)`` are read before every
input, as if they were the embeddings of ``n`` extra tokens at positions ``0 .. n-1``; the text moves
to positions ``n ..``. Nothing else trains. Causal attention means the prompt never sees the text, so
what the prompt contributes to each layer (its keys and values) does not depend on the input:
:class:`PromptTunedLlama` runs the prompt through the frozen model into the KV cache (batch 1,
expanded to the batch) and then reads the text after it, with the cache's own position bookkeeping.

**Prefix tuning: learned keys and values in every layer.** Each chosen layer gets ``n`` trainable
keys and values per *key/value* head, ``(h_kv, n, d)`` each (grouped-query attention: a prefix
belongs to a key/value head and serves its whole group of query heads, as the text's keys do). Every
query sees every prefix position (no causal mask on them). The prefixes carry no rotary position and
the text keeps positions ``0 .. T-1``: a prefix key is a free parameter, and rotating a free vector by
a fixed angle only renames it, so nothing is lost; the text's positions, the KV cache (it holds the
text only) and the model with an empty prefix are exactly the pretrained ones. (Hugging Face's
``peft`` stores the prefix as cached keys and shifts the text by ``n`` positions instead; since RoPE
scores depend on relative positions only, the two differ by a fixed rotation of each prefix key.)
Li & Liang trained the prefix through a small MLP for stability and kept only its output; this
module trains the prefix directly, as ``peft`` does by default.

LLaMA-Adapter v1 (:mod:`dlfund.peft.adapter`) is prefix tuning with three changes: its prefixes are
projected from ``K`` vectors by the layer's frozen ``k_proj``/``v_proj``, they get their own softmax
added behind a zero-initialised gate (so the model starts as the pretrained one), and only the top
layers have them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from dlfund.models.llama import GroupedQueryAttention, Llama, LlamaConfig
from dlfund.models.transformer import KVCache
from dlfund.peft.trainable import state_dict_of, train_only

__all__ = [
    "PrefixAttention",
    "PromptTunedLlama",
    "add_prefix",
    "add_soft_prompt",
    "prefix_parameter_names",
    "prompt_parameter_names",
    "prompt_state_dict",
]

Tensor = torch.Tensor

PROMPT_NAMES = ("soft_prompt",)
PREFIX_NAMES = ("prefix_key", "prefix_value")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


# ------------------------------------------------------------------------------------- prompt tuning


class PromptTunedLlama(Llama):
    """A :class:`Llama` that reads ``prompt_len`` learned embeddings ``soft_prompt (n, D)`` before its input.

    Only :meth:`hidden_states` changes: when no position is cached yet, the prompt is run through the
    layers into the KV caches first (temporary ones when the caller passes none), so the text takes
    positions ``n ..`` and attends to the prompt in every layer. Generation with a cache therefore
    reads the prompt once, at the prefill. Logits are returned for the text positions only.
    """

    def __init__(self, config: LlamaConfig, prompt_len: int, *, init: bool = True) -> None:
        if prompt_len < 0:
            raise ValueError(f"prompt_len must be ≥ 0, got {prompt_len}")
        super().__init__(config, init=init)
        self.prompt_len = prompt_len
        self.soft_prompt = nn.Parameter(torch.zeros(prompt_len, config.dim))

    @classmethod
    def from_llama(cls, model: Llama, prompt_len: int) -> PromptTunedLlama:
        """A prompt-tuned model that *shares* ``model``'s modules (no copy of its weights); the prompt
        starts as zeros on the model's device, in float32 (set it with :func:`add_soft_prompt`)."""
        with torch.device("meta"):  # shapes only: every module built here is replaced at once
            new = cls(model.config, prompt_len, init=False)
        for name in ("embed_tokens", "layers", "norm", "lm_head"):
            setattr(new, name, getattr(model, name))
        new.rope_cos, new.rope_sin = model.rope_cos, model.rope_sin
        new.soft_prompt = nn.Parameter(torch.zeros(prompt_len, model.config.dim, device=model.rope_cos.device))
        new.train(model.training)
        return new

    def prefill_prompt(self, caches: list[KVCache], batch: int) -> None:
        """Run the soft prompt through the layers into the empty ``caches`` (positions ``0 .. n-1``).

        The prompt is the same for every row: it runs once, at batch 1, and the cached keys and values
        ``(1, h_kv, n, d)`` are expanded (not copied) to ``(batch, h_kv, n, d)``.
        """
        n = self.prompt_len
        x = self.soft_prompt.to(self.embed_tokens.weight.dtype)[None]  # (1, n, D)
        rope = (self.rope_cos[:n], self.rope_sin[:n])
        for layer, cache in zip(self.layers, caches):
            x = layer(x, rope, cache)
            cache.k, cache.v = cache.k.expand(batch, -1, -1, -1), cache.v.expand(batch, -1, -1, -1)

    def hidden_states(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """``(B, T) -> (B, T, D)`` for the text positions, after the soft prompt."""
        if self.prompt_len and (caches is None or len(caches[0]) == 0):
            if caches is not None and len(caches) != len(self.layers):
                raise ValueError(f"expected one KVCache per layer ({len(self.layers)}), got {len(caches)}")
            caches = self.new_caches() if caches is None else caches
            self.prefill_prompt(caches, idx.shape[0])
        return super().hidden_states(idx, caches)


def add_soft_prompt(
    model: Llama, *, prompt_len: int = 20, init_ids: Sequence[int] | None = None, freeze: bool = True
) -> PromptTunedLlama:
    """A :class:`PromptTunedLlama` sharing ``model``'s weights, with ``prompt_len`` learned input embeddings.

    The prompt starts as the embeddings of ``init_ids`` (real tokens, repeated to ``prompt_len``: Lester
    et al. found a start from real words far better than a random one), or of random tokens if
    ``None``. With ``freeze`` (default) only the prompt trains.
    """
    if not isinstance(model, Llama) or isinstance(model, PromptTunedLlama):
        raise TypeError(f"add_soft_prompt expects a plain dlfund Llama, got {type(model).__name__}")
    if prompt_len < 0:
        raise ValueError(f"prompt_len must be ≥ 0, got {prompt_len}")
    new = PromptTunedLlama.from_llama(model, prompt_len)
    with torch.no_grad():
        new.soft_prompt.copy_(model.embed_tokens(_init_tokens(model, prompt_len, init_ids)).float())
    if freeze:
        train_only(new, prompt_parameter_names(new))
    return new


def prompt_parameter_names(model: nn.Module) -> set[str]:
    """What prompt tuning trains and saves, by name: the soft prompt."""
    return {n for n, _ in model.named_parameters() if n.rsplit(".", 1)[-1] in PROMPT_NAMES}


# ------------------------------------------------------------------------------------- prefix tuning


class PrefixAttention(GroupedQueryAttention):
    """:class:`GroupedQueryAttention` whose keys and values start with ``prefix_len`` learned positions.

    ``prefix_key``, ``prefix_value`` are ``(h_kv, n, d)``: one prefix per key/value head, shared by its
    group of query heads. Only :meth:`attend` changes (projections, RoPE, the KV cache, which holds the
    text only, and ``o_proj`` are the parent's): the prefix is put in front of the keys and values,
    without rotation, and every query sees all of it.
    """

    def __init__(self, config: LlamaConfig, prefix_len: int) -> None:
        if prefix_len < 0:
            raise ValueError(f"prefix_len must be ≥ 0, got {prefix_len}")
        super().__init__(config)
        self.prefix_len = prefix_len
        shape = (config.n_kv_heads, prefix_len, config.head_dim)
        self.prefix_key = nn.Parameter(torch.zeros(shape))
        self.prefix_value = nn.Parameter(torch.zeros(shape))

    @classmethod
    def from_attention(cls, attn: GroupedQueryAttention, config: LlamaConfig, prefix_len: int) -> PrefixAttention:
        """A prefix attention that *shares* ``attn``'s projections; the prefix (zeros, float32) is created on
        ``attn``'s device (set it with :func:`add_prefix`)."""
        with torch.device("meta"):
            new = cls(config, prefix_len)
        for name in PROJECTIONS:
            setattr(new, name, getattr(attn, name))
        new.to_empty(device=attn.q_proj.weight.device, recurse=False)
        with torch.no_grad():
            new.prefix_key.zero_(), new.prefix_value.zero_()
        return new

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``q (B, h, T_q, d)`` over the prefix and ``k, v (B, h_kv, T_k, d)`` -> ``(B, h, T_q, d)``.

        With the prefix in front, the queries are still the last ``T_q`` of the keys: the parent's causal
        attention (its mask aligned bottom-right) lets each query see every prefix position.
        """
        if not self.prefix_len:
            return super().attend(q, k, v)
        b = q.shape[0]
        pk = self.prefix_key.to(k.dtype)[None].expand(b, -1, -1, -1)  # (B, h_kv, n, d), no copy
        pv = self.prefix_value.to(v.dtype)[None].expand(b, -1, -1, -1)
        return super().attend(q, torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2))


def add_prefix(
    model: Llama,
    *,
    prefix_len: int = 10,
    n_layers: int | None = None,
    init_ids: Sequence[int] | None = None,
    freeze: bool = True,
) -> list[int]:
    """Turn ``model``'s top ``n_layers`` attention layers (``None``: all) into :class:`PrefixAttention`
    in place; returns the indices of those layers.

    Each layer's prefix starts as the keys and values the model itself computes for the tokens
    ``init_ids`` (repeated to ``prefix_len``; random tokens if ``None``) — Li & Liang's "activations
    of real words", read from the KV cache of one forward pass. With ``freeze`` only the prefixes train.
    """
    if not isinstance(model, Llama):
        raise TypeError(f"add_prefix expects a dlfund Llama, got {type(model).__name__}")
    if prefix_len < 0:
        raise ValueError(f"prefix_len must be ≥ 0, got {prefix_len}")
    if any(isinstance(layer.self_attn, PrefixAttention) for layer in model.layers):
        raise ValueError("the model already has a prefix")
    total = len(model.layers)
    n = total if n_layers is None else n_layers
    if not 1 <= n <= total:
        raise ValueError(f"n_layers must be between 1 and the model's {total} layers, got {n_layers}")
    caches = model.new_caches()
    if prefix_len:
        with torch.no_grad():
            model(_init_tokens(model, prefix_len, init_ids)[None], caches)
    chosen = list(range(total - n, total))
    for i in chosen:
        block = model.layers[i]
        block.self_attn = PrefixAttention.from_attention(block.self_attn, model.config, prefix_len)
        if prefix_len:
            with torch.no_grad():
                block.self_attn.prefix_key.copy_(caches[i].k[0])
                block.self_attn.prefix_value.copy_(caches[i].v[0])
    if freeze:
        train_only(model, prefix_parameter_names(model))
    return chosen


def prefix_parameter_names(model: nn.Module) -> set[str]:
    """What prefix tuning trains and saves, by name: every layer's prefix keys and values."""
    return {n for n, _ in model.named_parameters() if n.rsplit(".", 1)[-1] in PREFIX_NAMES}


def prompt_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """The soft prompt or the prefixes, by name: what a prompt- or prefix-tuning checkpoint stores."""
    return state_dict_of(model, prompt_parameter_names(model) | prefix_parameter_names(model))


def _init_tokens(model: Llama, n: int, init_ids: Sequence[int] | None) -> Tensor:
    """``n`` token ids ``(n,)`` on the model's device: ``init_ids`` repeated and cut, or random tokens."""
    device = model.rope_cos.device
    if init_ids is None:
        return torch.randint(0, model.config.vocab_size, (n,), device=device)
    ids = list(init_ids)
    if not ids and n:
        raise ValueError("init_ids is empty: give at least one token id, or None for random tokens")
    return torch.tensor((ids * (n // max(len(ids), 1) + 1))[:n], dtype=torch.long, device=device)
