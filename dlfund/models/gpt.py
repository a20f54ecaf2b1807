"""A small GPT (unit 9): pre-norm transformer blocks, four kinds of positions, sampling and a KV cache.

Shapes follow nanoGPT: tokens ``(B, T)``, activations ``(B, T, D)``, heads ``(B, h, T, d)`` with
``d = D / h``. Positions are ``"learned"`` (a table of ``context_length`` vectors), ``"sinusoidal"``
(the fixed table of *Attention is all you need*), ``"rope"`` (rotary embeddings applied to q and k
in every layer) or ``"none"`` (to show what breaks without them).

The config fields and module names are unit 12's Llama's (``dim``, ``n_layers``, ``embed_tokens``,
``layers``, ``self_attn``, ``o_proj``, ``lm_head`` ...), and the KV cache, RoPE, causal attention,
sampling and generation come from the toolkit both models share, :mod:`dlfund.models.transformer`.
Generation with ``use_cache=True`` keeps each layer's keys and values in a :class:`KVCache`, so each
new token costs one token's forward pass instead of the whole sequence's; it produces the same
logits (to float precision) and therefore the same tokens as recomputing everything.
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
    "GPT",
    "MLP",
    "POSITIONS",
    "GPTBlock",
    "GPTConfig",
    "GPTSelfAttention",
    "sinusoidal_positions",
]

Tensor = torch.Tensor
POSITIONS = ("learned", "sinusoidal", "rope", "none")


@dataclass
class GPTConfig(DecoderConfig):
    """The size of a :class:`GPT`. The defaults are nanoGPT's character-level Shakespeare model.

    The fields shared with Llama are documented on :class:`~dlfund.models.transformer.DecoderConfig`.
    """

    context_length: int = 256
    dim: int = 384
    n_layers: int = 6
    n_heads: int = 6
    hidden_dim: int = None  # type: ignore[assignment]
    """The MLP's inner width; ``None`` (the default) sets GPT-2's ``4 · dim``."""
    rope_base: float = 10000.0
    """Used with ``positions="rope"`` only."""
    dropout: float = 0.2
    """Dropout on the embeddings, the attention weights and each block's two outputs, while training."""
    bias: bool = False
    """Biases in the linear layers and LayerNorms."""
    positions: str = "learned"
    """One of :data:`POSITIONS`."""
    causal: bool = True
    """Causal attention (a decoder: each position sees itself and the positions before it); ``False``
    makes every position see every other (an encoder, trained BERT-style on masked tokens, unit 9
    notebook 06). An encoder cannot use a KV cache: each new token would change every earlier token's vectors."""

    def __post_init__(self) -> None:
        if self.hidden_dim is None:
            self.hidden_dim = 4 * self.dim
        super().__post_init__()
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}")
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of features: the head size {self.head_dim} must be even")


# ----------------------------------------------------------------------------------------- positions


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed sinusoidal table ``(length, dim)``: ``PE[p, 2i] = sin(p / base^(2i/dim))``,
    ``PE[p, 2i+1] = cos(p / base^(2i/dim))``."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dimension, got {dim}")
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    frequency = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


# ---------------------------------------------------------------------------------------- the layers


class GPTSelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection, optional RoPE and KV cache; causal
    unless ``config.causal`` is ``False`` (then every position attends to every position).

    ``(B, T, D) -> (B, T, D)``. With a ``cache`` holding ``P`` earlier positions, the ``T`` new
    queries attend to all ``P + T`` keys, the future among the new ones masked.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_heads, self.dim = config.n_heads, config.dim
        self.qkv = nn.Linear(config.dim, 3 * config.dim, bias=config.bias)
        self.o_proj = nn.Linear(config.dim, config.dim, bias=config.bias)
        self.dropout = config.dropout
        self.causal = config.causal
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None) -> Tensor:
        q, k, v = (split_heads(t, self.n_heads) for t in self.qkv(x).split(self.dim, dim=-1))  # (B, h, T, d)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.append(k, v)  # (B, h, P + T, d)
        dropout_p = self.dropout if self.training else 0.0
        if self.causal:
            out = causal_attention(q, k, v, dropout_p=dropout_p)
        else:  # bidirectional: no mask at all
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return self.resid_dropout(self.o_proj(merge_heads(out)))


class MLP(nn.Module):
    """The position-wise MLP ``D -> hidden_dim -> D`` with GELU: ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.up_proj = nn.Linear(config.dim, config.hidden_dim, bias=config.bias)
        self.down_proj = nn.Linear(config.hidden_dim, config.dim, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.down_proj(F.gelu(self.up_proj(x))))


class GPTBlock(nn.Module):
    """A pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``; ``(B, T, D)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=config.bias)
        self.self_attn = GPTSelfAttention(config)
        self.post_attention_layernorm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, cache)
        return x + self.mlp(self.post_attention_layernorm(x))


# ------------------------------------------------------------------------------------------- the GPT


class GPT(Decoder):
    """A decoder-only transformer: tokens ``(B, T)`` -> next-token logits ``(B, T, V)``.

    With ``causal=False`` in its config, the same stack is an encoder: logits ``(B, T, V)`` for each
    position's own token, read from both sides (masked-token prediction, unit 9 notebook 06).

    Generation (:meth:`stream`, :meth:`generate`) comes from :class:`~dlfund.models.transformer.Decoder`.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.dim)
        if config.positions == "learned":
            self.embed_positions = nn.Embedding(config.context_length, config.dim)
        elif config.positions == "sinusoidal":
            # scaled to the token embeddings' size at initialisation (RMS 0.02; sin and cos have RMS 1/√2):
            # at full size the fixed positions would drown the tokens and slow learning down
            table = sinusoidal_positions(config.context_length, config.dim) * (0.02 * math.sqrt(2))
            self.register_buffer("pos_table", table, persistent=False)
        elif config.positions == "rope":
            cos, sin = rope_tables(config.context_length, config.head_dim, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(GPTBlock(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps, bias=config.bias)
        self.lm_head = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:  # one matrix reads and writes tokens
            self.lm_head.weight = self.embed_tokens.weight
        self.apply(self._init_weights)
        for name, param in self.named_parameters():  # GPT-2: scale the residual projections by depth
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Tokens ``(B, T)`` -> logits ``(B, T, V)``.

        With ``caches`` (one :class:`KVCache` per block, :meth:`new_caches`), ``idx`` holds only the
        *new* tokens: they take the positions after the cached ones, and their keys and values are appended.
        """
        if caches is not None and not self.config.causal:
            raise ValueError(
                "a bidirectional model (causal=False) cannot use a KV cache: each new token changes the "
                "vectors of every earlier token, so nothing cached stays valid"
            )
        start = self.first_new_position(idx, caches)
        positions = slice(start, start + idx.shape[1])
        x = self.embed_tokens(idx)  # (B, T, D)
        rope = None
        if self.config.positions == "learned":
            x = x + self.embed_positions.weight[positions]
        elif self.config.positions == "sinusoidal":
            x = x + self.pos_table[positions]
        elif self.config.positions == "rope":
            rope = (self.rope_cos[positions], self.rope_sin[positions])
        x = self.drop(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, rope, caches[i] if caches is not None else None)
        return self.lm_head(self.norm(x))
