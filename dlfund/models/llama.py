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
- A gated MLP, ``down(silu(gate(x)) * up(x))`` (SwiGLU), instead of ``proj(gelu(fc(x)))``.
- No biases anywhere, no dropout (pretraining at scale rarely needs it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.models.attention import merge_heads, split_heads
from dlfund.models.gpt import (
    KVCache,
    apply_rope,
    first_new_position,
    rope_tables,
    sample_next,
)

__all__ = [
    "FeedForward",
    "GroupedQueryAttention",
    "KVCache",
    "Llama",
    "LlamaBlock",
    "LlamaConfig",
    "RMSNorm",
    "repeat_kv",
]

Tensor = torch.Tensor


@dataclass
class LlamaConfig:
    """The size of a :class:`Llama`. The defaults are SmolLM2-135M's (see :meth:`smollm2_135m`)."""

    vocab_size: int = 49152
    dim: int = 576
    n_layers: int = 30
    n_heads: int = 9
    n_kv_heads: int = 3
    """Key/value heads; ``n_heads`` must be a multiple (``== n_heads`` is plain multi-head attention)."""
    hidden_dim: int = 1536
    """The SwiGLU MLP's inner width."""
    max_seq_len: int = 8192
    """The longest sequence the rotary tables cover (the model's context)."""
    rope_theta: float = 100000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    """One matrix for the token embeddings and the output head (SmolLM2 does this)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"LlamaConfig.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} must be a multiple of n_kv_heads={self.n_kv_heads} "
                             "(each key/value head serves a whole group of query heads)")
        if self.head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of features: the head size {self.head_dim} must be even")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @classmethod
    def smollm2_135m(cls) -> LlamaConfig:
        """SmolLM2-135M: 30 layers, d=576, 9 query heads, 3 key/value heads, FFN 1536, tied embeddings."""
        return cls()

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


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
    split into :meth:`project` and :meth:`attend` so that a subclass (LLaMA-Adapter, unit 13) can
    add attention to extra keys without copying the rest.
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

        The ``T_q`` queries are the last positions of the ``T_k`` keys (bottom-right aligned mask).
        """
        groups = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)
        t_q, t_k = q.shape[-2], k.shape[-2]
        if t_q == t_k:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)
        if t_q == 1:  # one new token sees every cached position
            return F.scaled_dot_product_attention(q, k, v)
        allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(diagonal=t_k - t_q)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], cache: KVCache | None = None) -> Tensor:
        q, k, v = self.project(x, rope)
        if cache is not None:
            k, v = cache.append(k, v)          # the cache keeps h_kv heads: GQA's memory saving
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


class Llama(nn.Module):
    """A LLaMA-style decoder: tokens ``(B, T)`` -> next-token logits ``(B, T, V)``."""

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
        cos, sin = rope_tables(config.max_seq_len, config.head_dim, config.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)       # (max_seq_len, d)
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

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameters (the tied embedding/head matrix counted once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def new_caches(self) -> list[KVCache]:
        """One empty :class:`KVCache` per layer, for :meth:`forward` and :meth:`stream`."""
        return [KVCache() for _ in self.layers]

    def forward(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Tokens ``(B, T)`` -> logits ``(B, T, V)``.

        With ``caches`` (from :meth:`new_caches`), ``idx`` holds only the *new* tokens: they take the
        positions after the cached ones, and their keys and values are appended.
        """
        start = first_new_position("Llama", idx, caches, len(self.layers), "max_seq_len", self.config.max_seq_len)
        t = idx.shape[1]
        rope = (self.rope_cos[start:start + t], self.rope_sin[start:start + t])
        x = self.embed_tokens(idx)                                                      # (B, T, D)
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, caches[i] if caches is not None else None)
        return self.lm_head(self.norm(x))

    @torch.no_grad()
    def stream(self, idx: Tensor, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
               top_p: float | None = None, stop_tokens: Sequence[int] = (),
               generator: torch.Generator | None = None) -> Iterator[int]:
        """Yield up to ``max_new_tokens`` new token ids for one prompt ``idx`` ``(1, T)``, one at a time.

        The prompt is run once (prefill) into a KV cache, then each step feeds only the newest token.
        ``temperature=0`` is greedy. Stops after yielding a token in ``stop_tokens``. Eval mode inside;
        the training flag is restored afterwards.
        """
        if idx.dim() != 2 or idx.shape[0] != 1 or idx.shape[1] == 0:
            raise ValueError(f"stream expects one non-empty prompt of shape (1, T), got {tuple(idx.shape)}")
        if idx.shape[1] + max_new_tokens > self.config.max_seq_len:
            raise ValueError(f"the prompt ({idx.shape[1]}) plus max_new_tokens ({max_new_tokens}) exceeds "
                             f"max_seq_len={self.config.max_seq_len}")
        stop = set(int(s) for s in stop_tokens)
        was_training = self.training
        self.eval()
        caches = self.new_caches()
        try:
            logits = self(idx, caches)[:, -1]                                          # prefill
            for _ in range(max_new_tokens):
                nxt = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator)
                token = int(nxt[0])
                yield token
                if token in stop:
                    return
                logits = self(nxt[:, None], caches)[:, -1]
        finally:
            self.train(was_training)

    def generate(self, idx: Tensor, max_new_tokens: int, *, temperature: float = 0.0, top_k: int | None = None,
                 top_p: float | None = None, stop_tokens: Sequence[int] = (), generator: torch.Generator | None = None,
                 on_token: Callable[[int], None] | None = None) -> list[int]:
        """The new token ids for one prompt ``idx`` ``(1, T)`` (see :meth:`stream`); ``on_token`` sees each as it comes."""
        out = []
        for token in self.stream(idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                                 stop_tokens=stop_tokens, generator=generator):
            out.append(token)
            if on_token is not None:
                on_token(token)
        return out
