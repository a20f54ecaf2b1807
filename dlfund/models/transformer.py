"""The transformer toolkit shared by the course's decoders: unit 9's GPT, unit 12's Llama, unit 13's adapters.

What every decoder-only transformer here needs, in one module, read top to bottom:

1. :class:`DecoderConfig` — the sizes, under one vocabulary (``context_length``, ``dim``, ``n_layers``,
   ``n_heads``, ``hidden_dim``, ``rope_base`` ...) that :class:`~dlfund.models.gpt.GPTConfig` and
   :class:`~dlfund.models.llama.LlamaConfig` both use.
2. Rotary positions: :func:`rope_tables` and :func:`apply_rope`.
3. Attention: one layer's :class:`KVCache` and :func:`causal_attention`, the one call to PyTorch's
   fused kernel, with the causal mask a KV cache needs.
4. Sampling: :func:`sample_next` (greedy, temperature, top-k, top-p).
5. :class:`Decoder`, the base class of both models: the input check of their forward pass and
   generation (:meth:`~Decoder.stream`, :meth:`~Decoder.generate`), written once.

Shapes: tokens ``(B, T)``, activations ``(B, T, D)``, heads ``(B, h, T, d)`` with ``d = D / h``,
logits ``(B, T, V)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Decoder",
    "DecoderConfig",
    "KVCache",
    "Step",
    "apply_rope",
    "causal_attention",
    "check_sampling",
    "rope_tables",
    "sample_next",
]

Tensor = torch.Tensor


# -------------------------------------------------------------------------------------------- config


@dataclass
class DecoderConfig:
    """The sizes of a decoder-only transformer, named the same way for every model of the course.

    :class:`~dlfund.models.gpt.GPTConfig` and :class:`~dlfund.models.llama.LlamaConfig` give these
    fields their defaults and add their own (GPT: ``dropout``, ``bias``, ``positions``; Llama:
    ``n_kv_heads``).
    """

    vocab_size: int
    """The tokens the model reads and predicts: ``V``, the rows of the embedding and the outputs of the head."""
    context_length: int
    """The longest sequence the model reads, cached and new tokens together (its position tables' length)."""
    dim: int
    """The width ``D`` of the residual stream: one vector of this size per token."""
    n_layers: int
    """The number of transformer blocks."""
    n_heads: int
    """The number of (query) attention heads; each has ``head_dim = dim / n_heads`` features."""
    hidden_dim: int
    """The inner width of each block's MLP."""
    rope_base: float
    """RoPE's base ``θ``: feature pair ``i`` of a head turns by ``p · θ^(-2i/d)`` at position ``p``."""
    norm_eps: float = 1e-5
    """The ``eps`` added inside the norms' square roots."""
    tie_embeddings: bool = True
    """One matrix for the token embeddings and the output head."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "dim", "n_layers", "n_heads", "hidden_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be positive, got {getattr(self, name)}")
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------------- rotary positions


def rope_tables(length: int, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """Rotary embedding tables ``cos, sin``, each ``(length, head_dim)`` (the "rotate half" layout).

    Feature pair ``(i, i + d/2)`` of position ``p`` is rotated by the angle ``p · base^(-2i/d)``.
    """
    # 1 / base^(2i/d), written as Hugging Face and Meta do: base^(-2i/d) rounds differently in float32,
    # enough to move SmolLM2's logits by 1e-4 at position 512
    frequency = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (d/2,)
    angles = torch.arange(length, dtype=torch.float32)[:, None] * frequency  # (L, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (L, d)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate q or k ``(B, h, T, d)`` by the tables ``cos, sin`` ``(T, d)`` of their positions.

    Rotations preserve lengths, and ``rope(q, m) · rope(k, n)`` depends on ``m - n`` only: attention
    scores see relative positions.
    """
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # "rotate half"
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


# ----------------------------------------------------------------------------------------- attention


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


def causal_attention(q: Tensor, k: Tensor, v: Tensor, *, dropout_p: float = 0.0) -> Tensor:
    """Causal ``softmax(q kᵀ / √d) v`` of ``q (B, h, T_q, d)`` over ``k, v (B, h, T_k, d)`` -> ``(B, h, T_q, d)``.

    The queries are the *last* ``T_q`` of the ``T_k`` positions: with a KV cache holding ``T_k - T_q``
    earlier positions, query ``i`` may see keys ``0 .. T_k - T_q + i``. ``dropout_p`` drops attention
    weights (pass 0 outside training).
    """
    t_q, t_k = q.shape[-2], k.shape[-2]
    if t_q == t_k:  # no cache (or an empty one): the usual triangle, which the fused kernels know
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout_p)
    if t_q == 1:  # one new token after the cache: it may see every position, no mask at all
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    if t_q > t_k:
        raise ValueError(
            f"causal attention of {t_q} queries over {t_k} keys: the queries must be among the keys' "
            "positions (append the new keys and values to the cache first)"
        )
    # several new tokens after the cache: is_causal would align the triangle top-left, we need bottom-right
    allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(diagonal=t_k - t_q)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=dropout_p)


# ------------------------------------------------------------------------------------------ sampling


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise a ``ValueError`` for sampling settings :func:`sample_next` cannot use."""
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    if top_k is not None and not top_k >= 1:
        raise ValueError(f"top_k must be a positive number of tokens, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def sample_next(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw the next token from the last position's logits ``(B, V)``; returns ``(B,)``.

    ``temperature`` divides the logits (``< 1`` sharper, ``> 1`` flatter; ``0`` means greedy argmax);
    ``top_k`` keeps only the ``k`` most likely tokens before sampling; ``top_p`` (nucleus sampling)
    keeps the most likely tokens whose probabilities sum to at least ``p`` (always at least one).
    """
    if logits.dim() != 2:
        raise ValueError(f"sample_next expects logits of shape (B, V), got {tuple(logits.shape)}")
    check_sampling(temperature, top_k, top_p)
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(dim=-1)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # probability mass ranked above each
        sorted_logits = sorted_logits.masked_fill(before >= top_p, float("-inf"))  # keeps the first
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


# ------------------------------------------------------------------------------------------ decoders


class Step(NamedTuple):
    """One generated position: the chosen ``token`` ``(B,)`` and the ``logits`` ``(B, V)`` it was drawn from."""

    token: Tensor
    logits: Tensor


class Decoder(nn.Module):
    """A decoder-only language model: tokens ``(B, T)`` -> next-token logits ``(B, T, V)``, and generation.

    A subclass sets ``self.config`` (a :class:`DecoderConfig`) and ``self.layers`` (its blocks, each
    taking one :class:`KVCache`), and implements ``forward(idx, caches=None)``: with ``caches`` holding
    earlier positions, ``idx`` holds only the new tokens, which take the positions after the cached
    ones (:meth:`first_new_position`). Generation is written here once, on top of that forward pass.
    """

    config: DecoderConfig
    layers: nn.ModuleList

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Parameters (a tied embedding/head matrix counted once); ``trainable_only``: those that require grad."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def new_caches(self) -> list[KVCache]:
        """One empty :class:`KVCache` per layer, for ``forward(idx, caches)``."""
        return [KVCache() for _ in self.layers]

    def first_new_position(self, idx: Tensor, caches: list[KVCache] | None) -> int:
        """The decoders' input check: ``forward``'s ``idx`` ``(B, T)`` and ``caches``; returns the position of
        ``idx``'s first token (the number of cached positions).

        ``idx`` holds integer ids; ``caches``, if given, one :class:`KVCache` per layer; cached and new
        tokens together must fit in ``context_length``.
        """
        model = type(self).__name__
        if idx.dim() != 2:
            raise ValueError(f"{model} expects token ids of shape (B, T), got {tuple(idx.shape)}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{model} expects integer token ids, got {idx.dtype}")
        if caches is not None and len(caches) != len(self.layers):
            raise ValueError(f"expected one KVCache per layer ({len(self.layers)}), got {len(caches)}")
        start = len(caches[0]) if caches else 0
        context = self.config.context_length
        if start + idx.shape[1] > context:
            raise ValueError(
                f"the sequence is {start + idx.shape[1]} tokens long ({start} cached + {idx.shape[1]} "
                f"new), longer than the model's context_length={context}: crop the context"
            )
        return start

    def stream(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_tokens: Sequence[int] = (),
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Iterator[Step]:
        """Generate up to ``max_new_tokens`` tokens after the prompts ``idx`` ``(B, T)``, one :class:`Step` each.

        With ``use_cache`` the prompts run through the model once (the *prefill*, which fills one
        :class:`KVCache` per layer) and every later step feeds only the newest token; prompt and new
        tokens must then fit in ``context_length``. Without it every step reruns the model on the
        whole sequence, cropped to its last ``context_length`` tokens: slower, and the same logits (to
        float precision) while the sequence fits.

        ``temperature=0`` (the default) is greedy; ``temperature``, ``top_k``, ``top_p`` and ``generator``
        are :func:`sample_next`'s. A row that draws one of ``stop_tokens`` has finished: its later
        tokens repeat that stop token, and the stream ends when every row has finished. Runs without
        gradients in eval mode (no dropout) and restores the training flag afterwards. The arguments
        are checked when ``stream`` is called, before the first step.
        """
        if idx.dim() != 2 or idx.shape[1] == 0:
            raise ValueError(f"generation needs a non-empty prompt of shape (B, T), got {tuple(idx.shape)}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{type(self).__name__} expects integer token ids, got {idx.dtype}")
        if max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be ≥ 0, got {max_new_tokens}")
        context = self.config.context_length
        if use_cache and idx.shape[1] + max_new_tokens > context:
            raise ValueError(
                f"with use_cache=True the prompt ({idx.shape[1]}) plus max_new_tokens ({max_new_tokens}) "
                f"must fit in context_length={context}; use a shorter prompt, fewer new tokens, or "
                "use_cache=False (which crops the context)"
            )
        check_sampling(temperature, top_k, top_p)
        stop = torch.tensor(sorted({int(s) for s in stop_tokens}), dtype=idx.dtype, device=idx.device)
        return self._stream(
            idx,
            max_new_tokens,
            stop=stop,
            use_cache=use_cache,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            generator=generator,
        )

    @torch.no_grad()
    def _stream(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        stop: Tensor,
        use_cache: bool,
        temperature: float,
        top_k: int | None,
        top_p: float | None,
        generator: torch.Generator | None,
    ) -> Iterator[Step]:
        was_training = self.training
        self.eval()
        try:
            caches = self.new_caches() if use_cache else None
            seq = idx
            finished = torch.zeros(idx.shape[0], dtype=torch.bool, device=idx.device)
            for step in range(max_new_tokens):
                if caches is None:
                    logits = self(seq[:, -self.config.context_length :])[:, -1]  # (B, V)
                else:  # prefill: the whole prompt once; then only the newest token
                    logits = self(seq if step == 0 else seq[:, -1:], caches)[:, -1]
                token = sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator).to(
                    seq.dtype
                )
                if len(stop):
                    token = torch.where(finished, seq[:, -1], token)  # a finished row repeats its stop token
                    finished |= torch.isin(token, stop)
                seq = torch.cat([seq, token[:, None]], dim=1)
                yield Step(token, logits)
                if len(stop) and bool(finished.all()):  # reading the flags waits for the device: only if needed
                    return
        finally:
            self.train(was_training)

    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_k: int | None = None,
        top_p: float | None = None,
        stop_tokens: Sequence[int] = (),
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The prompts ``idx`` ``(B, T)`` followed by the new tokens, ``(B, T + n)``; arguments as :meth:`stream`.

        ``n`` is ``max_new_tokens``, or fewer when every row has drawn a stop token; a row that stopped
        earlier is filled with its stop token. The new tokens are ``out[:, T:]``. For each step's
        logits, iterate over :meth:`stream` instead.
        """
        steps = self.stream(
            idx,
            max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            stop_tokens=stop_tokens,
            use_cache=use_cache,
            generator=generator,
        )
        return torch.cat([idx, *(step.token[:, None] for step in steps)], dim=1)
