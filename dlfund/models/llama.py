"""LLaMA from scratch (unit 12): RMSNorm, rotary positions, a SwiGLU MLP and grouped-query attention.

The same code is SmolLM2-135M when loaded with its weights (:mod:`dlfund.models.llama_weights`) and a
tiny LLaMA when built from a small :class:`LlamaConfig` and trained on Shakespeare. Parameter names
follow the Hugging Face layout (``layers.3.self_attn.q_proj.weight`` ...) so that a downloaded
``model.safetensors`` loads by name, without a translation table.

Shapes: tokens ``(B, T)``, activations ``(B, T, D)``, query heads ``(B, h, T, d)`` and key/value
heads ``(B, h_kv, T, d)`` with ``d = D / h``. Grouped-query attention (GQA) keeps only ``h_kv < h``
key/value heads, each shared by ``h / h_kv`` query heads: the KV cache is ``h / h_kv`` times smaller.

What differs from unit 9's GPT, and why:
- RMSNorm instead of LayerNorm: no mean subtraction and no bias, computed in float32.
- Rotary position embeddings (RoPE) on q and k in every layer instead of a learned position table.
- A gated MLP, ``down_proj(silu(gate_proj(x)) * up_proj(x))`` (SwiGLU), instead of GPT's
  ``down_proj(gelu(up_proj(x)))``.
- No biases anywhere, no dropout (pretraining at scale rarely needs it).

What stays the same: the config's field names and the module names (``embed_tokens``, ``layers``,
``self_attn``, ``mlp``, ``o_proj``, ``norm``, ``lm_head``), and the KV cache, RoPE tables, causal
attention, sampling and generation, which both models take from :mod:`dlfund.models.transformer`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.models.attention import merge_heads, split_heads
from dlfund.models.transformer import (
    Decoder,
    DecoderConfig,
    KVCache,
    apply_rope,
    causal_attention,
    rope_tables,
)

__all__ = [
    "FeedForward",
    "GroupedQueryAttention",
    "Llama",
    "LlamaBlock",
    "LlamaConfig",
    "RMSNorm",
    "repeat_kv",
]

Tensor = torch.Tensor


@dataclass
class LlamaConfig(DecoderConfig):
    """The size of a :class:`Llama`. The defaults are SmolLM2-135M's (see :meth:`smollm2_135m`).

    The fields shared with unit 9's GPT are documented on :class:`~dlfund.models.transformer.DecoderConfig`.
    """

    vocab_size: int = 49152
    context_length: int = 8192
    dim: int = 576
    n_layers: int = 30
    n_heads: int = 9
    hidden_dim: int = 1536
    """The SwiGLU MLP's inner width."""
    rope_base: float = 100000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    """SmolLM2 ties its embeddings and output head."""
    n_kv_heads: int = 3
    """Key/value heads; ``n_heads`` must be a multiple (``== n_heads`` is plain multi-head attention)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_kv_heads < 1:
            raise ValueError(f"LlamaConfig.n_kv_heads must be positive, got {self.n_kv_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads} "
                "(each key/value head serves a whole group of query heads)"
            )
        if self.head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of features: the head size {self.head_dim} must be even")

    @classmethod
    def smollm2_135m(cls) -> LlamaConfig:
        """SmolLM2-135M: 30 layers, d=576, 9 query heads, 3 key/value heads, FFN 1536, tied embeddings."""
        return cls()


# -------------------------------------------------------------------------------------------- layers


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) * weight`` over the last dimension; ``(..., D) -> (..., D)``.

    Computed in float32 whatever the input dtype (squares of bf16 activations lose too much), then
    cast back, as the reference implementation does.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def repeat_kv(x: Tensor, groups: int) -> Tensor:
    """Share each key/value head with ``groups`` query heads: ``(B, h_kv, T, d) -> (B, h_kv·groups, T, d)``.

    Query head ``i`` reads key/value head ``i // groups`` (heads of one group are adjacent).
    """
    return x if groups == 1 else x.repeat_interleave(groups, dim=1)


class GroupedQueryAttention(nn.Module):
    """Causal self-attention with ``n_heads`` query heads sharing ``n_kv_heads`` key/value heads.

    ``(B, T, D) -> (B, T, D)``. RoPE rotates q and k by their positions; with a ``cache`` holding
    ``P`` earlier positions the ``T`` new queries attend to all ``P + T`` keys. The forward pass is
    :meth:`project`, the cache, :meth:`attend`, then ``o_proj``: a subclass overrides one of them
    (LLaMA-Adapter, unit 13, overrides :meth:`attend` to add attention to its prompts).
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.q_proj = nn.Linear(config.dim, config.n_heads * config.head_dim, bias=False)
        self.k_proj = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.v_proj = nn.Linear(config.dim, config.n_kv_heads * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_heads * config.head_dim, config.dim, bias=False)

    def project(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B, T, D)`` -> ``q (B, h, T, d)``, ``k, v (B, h_kv, T, d)``, with q and k rotated."""
        q = split_heads(self.q_proj(x), self.n_heads)
        k = split_heads(self.k_proj(x), self.n_kv_heads)
        v = split_heads(self.v_proj(x), self.n_kv_heads)
        return apply_rope(q, *rope), apply_rope(k, *rope), v

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Causal attention of ``q (B, h, T_q, d)`` over ``k, v (B, h_kv, T_k, d)`` -> ``(B, h, T_q, d)``.

        Each key/value head serves its group of query heads; the ``T_q`` queries are the last
        positions of the ``T_k`` keys (see :func:`~dlfund.models.transformer.causal_attention`).
        """
        groups = self.n_heads // self.n_kv_heads
        return causal_attention(q, repeat_kv(k, groups), repeat_kv(v, groups))

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], cache: KVCache | None = None) -> Tensor:
        """``(B, T, D) -> (B, T, D)``: project, append to the cache, attend, project out."""
        q, k, v = self.project(x, rope)
        if cache is not None:
            k, v = cache.append(k, v)  # the cache keeps h_kv heads: GQA's memory saving
        return self.o_proj(merge_heads(self.attend(q, k, v)))


class FeedForward(nn.Module):
    """The SwiGLU MLP ``down(silu(gate(x)) * up(x))``: ``(B, T, D) -> (B, T, D)`` through width ``hidden_dim``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.up_proj = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.down_proj = nn.Linear(config.hidden_dim, config.dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class LlamaBlock(nn.Module):
    """A pre-norm block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``; ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.self_attn = GroupedQueryAttention(config)
        self.post_attention_layernorm = RMSNorm(config.dim, config.norm_eps)
        self.mlp = FeedForward(config)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], cache: KVCache | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


# ------------------------------------------------------------------------------------------- the model


class Llama(Decoder):
    """A LLaMA-style decoder: tokens ``(B, T)`` -> next-token logits ``(B, T, V)``.

    Generation (:meth:`stream`, :meth:`generate`) comes from :class:`~dlfund.models.transformer.Decoder`.
    """

    def __init__(self, config: LlamaConfig, *, init: bool = True) -> None:
        """``init=False`` skips the random initialisation (seconds for 135M parameters) before loading weights."""
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(LlamaBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        cos, sin = rope_tables(config.context_length, config.head_dim, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)  # (context_length, d)
        self.register_buffer("rope_sin", sin, persistent=False)
        if init:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialisation for training from scratch: N(0, 0.02), residual projections scaled by depth."""
        for name, param in self.named_parameters():
            if name.endswith("layernorm.weight") or name == "norm.weight":
                nn.init.ones_(param)
            elif name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layers))
            else:
                nn.init.normal_(param, mean=0.0, std=0.02)

    def forward(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Tokens ``(B, T)`` -> logits ``(B, T, V)``.

        With ``caches`` (from :meth:`new_caches`), ``idx`` holds only the *new* tokens: they take the
        positions after the cached ones, and their keys and values are appended.
        """
        return self.lm_head(self.hidden_states(idx, caches))

    def hidden_states(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """The final norm's output ``(B, T, D)``: :meth:`forward` without the output head (a loss on a few
        positions runs the head on those only; unit 13's prompt tuning overrides this one method)."""
        start = self.first_new_position(idx, caches)
        t = idx.shape[1]
        rope = (self.rope_cos[start : start + t], self.rope_sin[start : start + t])
        x = self.embed_tokens(idx)  # (B, T, D)
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, caches[i] if caches is not None else None)
        return self.norm(x)
