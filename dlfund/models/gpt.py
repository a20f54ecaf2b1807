"""A small GPT (unit 9): pre-norm transformer blocks, four kinds of positions, sampling and a KV cache.

Shapes follow nanoGPT: tokens ``(B, T)``, activations ``(B, T, D)``, heads ``(B, h, T, d)`` with
``d = D / h``. Positions are ``"learned"`` (a table of ``block_size`` vectors), ``"sinusoidal"``
(the fixed table of *Attention is all you need*), ``"rope"`` (rotary embeddings applied to q and k
in every layer) or ``"none"`` (to show what breaks without them).

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

__all__ = [
    "GPT",
    "MLP",
    "POSITIONS",
    "Block",
    "GPTConfig",
    "GPTSelfAttention",
    "KVCache",
    "apply_rope",
    "first_new_position",
    "rope_tables",
    "sample_next",
    "sinusoidal_positions",
]

Tensor = torch.Tensor
POSITIONS = ("learned", "sinusoidal", "rope", "none")


@dataclass
class GPTConfig:
    """The size of a :class:`GPT`. The defaults are nanoGPT's character-level Shakespeare model."""

    vocab_size: int
    block_size: int = 256
    """The longest sequence the model reads (its context)."""
    n_layer: int = 6
    n_head: int = 6
    n_embd: int = 384
    dropout: float = 0.2
    bias: bool = False
    """Biases in the linear layers and LayerNorms."""
    positions: str = "learned"
    """One of :data:`POSITIONS`."""
    rope_base: float = 10000.0

    def __post_init__(self) -> None:
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {', '.join(POSITIONS)}, got {self.positions!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.positions == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(f"RoPE rotates pairs of features: the head size {self.n_embd // self.n_head} must be even")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


# ----------------------------------------------------------------------------------------- positions


def sinusoidal_positions(length: int, dim: int, base: float = 10000.0) -> Tensor:
    """The fixed sinusoidal table ``(length, dim)``: ``PE[p, 2i] = sin(p / base^(2i/dim))``, ``PE[p, 2i+1] = cos(...)``."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dimension, got {dim}")
    position = torch.arange(length, dtype=torch.float32)[:, None]                 # (L, 1)
    frequency = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)     # (dim/2,)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency)
    return table


def rope_tables(length: int, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """Rotary embedding tables ``cos, sin``, each ``(length, head_dim)`` (the "rotate half" layout).

    Feature pair ``(i, i + d/2)`` of position ``p`` is rotated by the angle ``p · base^(-2i/d)``.
    """
    # 1 / base^(2i/d), written as Hugging Face and Meta do: base^(-2i/d) rounds differently in float32,
    # enough to move SmolLM2's logits by 1e-4 at position 512
    frequency = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (d/2,)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * frequency            # (L, d/2)
    angles = torch.cat([angles, angles], dim=-1)                                       # (L, d)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate q or k ``(B, h, T, d)`` by the tables ``cos, sin`` ``(T, d)`` of their positions.

    Rotations preserve lengths, and ``rope(q, m) · rope(k, n)`` depends on ``m - n`` only: attention
    scores see relative positions.
    """
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)                   # "rotate half"
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


# ---------------------------------------------------------------------------------------- the layers


class KVCache:
    """One layer's cached keys and values, each ``(B, h, T_cached, d)``; grows by :meth:`append`."""

    def __init__(self) -> None:
        self.k: Tensor | None = None
        self.v: Tensor | None = None

    def __len__(self) -> int:
        """The number of positions cached so far."""
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions' ``k, v`` ``(B, h, T_new, d)``; return all keys and values so far."""
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k = torch.cat([self.k, k], dim=-2)
            self.v = torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class GPTSelfAttention(nn.Module):
    """Causal multi-head self-attention with a fused q/k/v projection, optional RoPE and KV cache.

    ``(B, T, D) -> (B, T, D)``. With a ``cache`` holding ``P`` earlier positions, the ``T`` new
    queries attend to all ``P + T`` keys, the future among the new ones masked.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.heads, self.dim = config.n_head, config.n_embd
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.out_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None) -> Tensor:
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).split(self.dim, dim=-1))  # (B, h, T, d)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k, v = cache.append(k, v)                                                      # (B, h, P + T, d)
        t_q, t_k = q.shape[-2], k.shape[-2]
        dropout = self.dropout if self.training else 0.0
        if t_q == t_k:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        elif t_q == 1:  # one new token: it may see every cached position
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:  # new queries are the last t_q positions: bottom-right aligned causal mask
            allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=x.device).tril(diagonal=t_k - t_q)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout)
        return self.resid_dropout(self.out_proj(merge_heads(out)))


class MLP(nn.Module):
    """The position-wise MLP ``D -> 4D -> D`` with GELU: ``(B, T, D) -> (B, T, D)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """A pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``; ``(B, T, D)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = GPTSelfAttention(config)
        self.norm2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor] | None = None, cache: KVCache | None = None) -> Tensor:
        x = x + self.attn(self.norm1(x), rope, cache)
        return x + self.mlp(self.norm2(x))


# ------------------------------------------------------------------------------------------ sampling


def sample_next(logits: Tensor, *, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Draw the next token from the last position's logits ``(B, V)``; returns ``(B,)``.

    ``temperature`` divides the logits (``< 1`` sharper, ``> 1`` flatter; ``0`` means greedy argmax);
    ``top_k`` keeps only the ``k`` most likely tokens before sampling; ``top_p`` (nucleus sampling)
    keeps the most likely tokens whose probabilities sum to at least ``p`` (always at least one).
    """
    if logits.dim() != 2:
        raise ValueError(f"sample_next expects logits of shape (B, V), got {tuple(logits.shape)}")
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    if top_k is not None and not 1 <= top_k:
        raise ValueError(f"top_k must be a positive number of tokens, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]                         # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs                 # probability mass ranked above each
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))              # keeps the first
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


def first_new_position(model: str, idx: Tensor, caches: list[KVCache] | None, layers: int, context_name: str,
                       context: int) -> int:
    """Check a decoder's input ``idx`` ``(B, T)`` and ``caches``; return the position of its first new token.

    Shared by :class:`GPT` and unit 12's ``Llama``: integer ids of shape ``(B, T)``, one cache per layer,
    and cached plus new tokens within the model's context.
    """
    if idx.dim() != 2:
        raise ValueError(f"{model} expects token ids of shape (B, T), got {tuple(idx.shape)}")
    if idx.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{model} expects integer token ids, got {idx.dtype}")
    if caches is not None and len(caches) != layers:
        raise ValueError(f"expected one KVCache per layer ({layers}), got {len(caches)}")
    start = len(caches[0]) if caches else 0
    if start + idx.shape[1] > context:
        raise ValueError(f"the sequence is {start + idx.shape[1]} tokens long ({start} cached + {idx.shape[1]} new), "
                         f"longer than the model's {context_name}={context}: crop the context")
    return start


# ------------------------------------------------------------------------------------------- the GPT


class GPT(nn.Module):
    """A decoder-only transformer: tokens ``(B, T)`` -> next-token logits ``(B, T, V)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        if config.positions == "learned":
            self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        elif config.positions == "sinusoidal":
            # scaled to the token embeddings' size at initialisation (RMS 0.02; sin and cos have RMS 1/√2):
            # at full size the fixed positions would drown the tokens and slow learning down
            table = sinusoidal_positions(config.block_size, config.n_embd) * (0.02 * math.sqrt(2))
            self.register_buffer("pos_table", table, persistent=False)
        elif config.positions == "rope":
            cos, sin = rope_tables(config.block_size, config.n_embd // config.n_head, config.rope_base)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight           # weight tying: one matrix reads and writes tokens
        self.apply(self._init_weights)
        for name, param in self.named_parameters():      # GPT-2: scale the residual projections by depth
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Parameters, counting the tied embedding/head matrix once."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: Tensor, caches: list[KVCache] | None = None) -> Tensor:
        """Tokens ``(B, T)`` -> logits ``(B, T, V)``.

        With ``caches`` (one :class:`KVCache` per block), ``idx`` holds only the *new* tokens: they
        take the positions after the cached ones, and their keys and values are appended.
        """
        start = first_new_position("GPT", idx, caches, len(self.blocks), "block_size", self.config.block_size)
        t = idx.shape[1]
        x = self.tok_emb(idx)                                                             # (B, T, D)
        positions = slice(start, start + t)
        rope = None
        if self.config.positions == "learned":
            x = x + self.pos_emb.weight[positions]
        elif self.config.positions == "sinusoidal":
            x = x + self.pos_table[positions]
        elif self.config.positions == "rope":
            rope = (self.rope_cos[positions], self.rope_sin[positions])
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, rope, caches[i] if caches is not None else None)
        return self.head(self.norm(x))

    @torch.no_grad()
    def generate(self, idx: Tensor, max_new_tokens: int, *, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True, generator: torch.Generator | None = None,
                 return_logits: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens; returns ``(B, T + n)``.

        Without the cache, every step runs the model on the whole (cropped to ``block_size``) context.
        With it, the prompt is run once and each step feeds only the newest token; the whole
        sequence must then fit in ``block_size``. ``return_logits=True`` also returns each step's
        logits ``(B, n, V)``. Runs in eval mode (no dropout) and restores the training flag after.
        """
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise ValueError(f"generate expects a non-empty prompt of shape (B, T), got {tuple(idx.shape)}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
        if use_cache and idx.shape[1] + max_new_tokens > self.config.block_size:
            raise ValueError(f"with use_cache=True the prompt ({idx.shape[1]}) plus max_new_tokens ({max_new_tokens}) "
                             f"must fit in block_size={self.config.block_size}; use a shorter prompt or "
                             "use_cache=False (which crops the context)")
        was_training = self.training
        self.eval()
        steps = []
        caches = [KVCache() for _ in self.blocks] if use_cache else None
        try:
            for step in range(max_new_tokens):
                if not use_cache:
                    logits = self(idx[:, -self.config.block_size:])[:, -1]
                elif step == 0:
                    logits = self(idx, caches)[:, -1]                 # prefill: the whole prompt at once
                else:
                    logits = self(idx[:, -1:], caches)[:, -1]         # one new token
                steps.append(logits)
                nxt = sample_next(logits, temperature=temperature, top_k=top_k, generator=generator)
                idx = torch.cat([idx, nxt[:, None]], dim=1)
        finally:
            self.train(was_training)
        if return_logits:
            return idx, torch.stack(steps, dim=1) if steps else idx.new_zeros((len(idx), 0, self.config.vocab_size),
                                                                                 dtype=torch.float32)
        return idx
