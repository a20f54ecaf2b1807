"""Self-attention built in visible steps (unit 9), each step a small module.

1. :class:`RawSelfAttention` — three raw weight matrices: ``softmax(q kᵀ / √d) v``.
2. :class:`LinearSelfAttention` — the same with ``nn.Linear`` projections.
3. :class:`CausalSelfAttention` — plus a causal mask: token ``t`` sees tokens ``0..t`` only.
4. :class:`MultiHeadAttention` — ``h`` heads of size ``D/h`` (split, attend, merge) and an output projection.
5. :class:`FusedMultiHeadAttention` — one ``Linear(D, 3D)`` for q, k, v and ``F.scaled_dot_product_attention``.

Steps 1–3 are single-head maps ``(B, T, D) -> (B, T, D)`` without an output projection; a
:class:`MultiHeadAttention` with one head and an identity output projection computes the same.
:func:`attention_weights` and :func:`load_attention_weights` read and write every step's weights in
one convention (``nn.Linear``'s ``(out, in)``), so tests and notebooks can copy weights across steps.

Step 5 becomes the attention of unit 9's GPT, :class:`~dlfund.models.gpt.GPTSelfAttention` (same
parameter names), which adds RoPE and a KV cache; with a cache the queries are the last positions of
the keys and need the mask of :func:`~dlfund.models.transformer.causal_attention`. Step 5 itself keeps
the one kernel call with ``is_causal``, as the lesson shows it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CausalSelfAttention",
    "FusedMultiHeadAttention",
    "LinearSelfAttention",
    "MultiHeadAttention",
    "RawSelfAttention",
    "attention_weights",
    "causal_mask",
    "load_attention_weights",
    "merge_heads",
    "naive_attention",
    "split_heads",
]

Tensor = torch.Tensor


def _check_input(x: Tensor, dim: int, name: str) -> None:
    if x.dim() != 3 or x.shape[-1] != dim:
        raise ValueError(f"{name} expects input of shape (B, T, {dim}), got {tuple(x.shape)}")


def causal_mask(t: int, device: torch.device | str | None = None) -> Tensor:
    """The ``(T, T)`` boolean mask that is ``True`` where attention is *allowed*: key ``j ≤`` query ``i``."""
    return torch.ones(t, t, dtype=torch.bool, device=device).tril()


def naive_attention(q: Tensor, k: Tensor, v: Tensor, *, causal: bool = False) -> Tensor:
    """``softmax(q kᵀ / √d) v`` written out: q, k, v ``(..., T, d)`` -> ``(..., T, d)``.

    Materialises the ``(..., T, T)`` score matrix (what :func:`F.scaled_dot_product_attention`
    avoids on a GPU). With ``causal=True`` the future keys get a score of ``-inf`` before the softmax.
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., T, T)
    if causal:
        t_q, t_k = scores.shape[-2:]
        # queries are the last t_q positions of the t_k keys (t_q < t_k with a KV cache)
        allowed = torch.ones(t_q, t_k, dtype=torch.bool, device=q.device).tril(diagonal=t_k - t_q)
        scores = scores.masked_fill(~allowed, float("-inf"))
    return scores.softmax(dim=-1) @ v


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(B, T, D)`` -> ``(B, h, T, D/h)``: head ``i`` gets features ``i·D/h .. (i+1)·D/h``."""
    b, t, d = x.shape
    if d % heads:
        raise ValueError(f"the model dimension {d} is not divisible by heads={heads}")
    return x.view(b, t, heads, d // heads).transpose(1, 2)


def merge_heads(x: Tensor) -> Tensor:
    """``(B, h, T, d)`` -> ``(B, T, h·d)``, the inverse of :func:`split_heads`."""
    b, h, t, d = x.shape
    return x.transpose(1, 2).reshape(b, t, h * d)


class RawSelfAttention(nn.Module):
    """Step 1. Self-attention from three raw ``(D, D)`` parameters: ``(B, T, D) -> (B, T, D)``.

    ``q = x @ W_query`` (likewise k, v), then ``softmax(q kᵀ / √D) v``. ``causal=True`` hides the future.
    """

    def __init__(self, dim: int, *, causal: bool = False) -> None:
        super().__init__()
        self.dim, self.causal = dim, causal
        self.W_query = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))
        self.W_key = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))
        self.W_value = nn.Parameter(torch.randn(dim, dim) / math.sqrt(dim))

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.dim, type(self).__name__)
        q, k, v = x @ self.W_query, x @ self.W_key, x @ self.W_value  # each (B, T, D)
        return naive_attention(q, k, v, causal=self.causal)


class LinearSelfAttention(nn.Module):
    """Step 2. The same with ``nn.Linear`` projections (weights stored transposed, optional bias)."""

    def __init__(self, dim: int, *, bias: bool = False, causal: bool = False) -> None:
        super().__init__()
        self.dim, self.causal = dim, causal
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.dim, type(self).__name__)
        return naive_attention(self.q_proj(x), self.k_proj(x), self.v_proj(x), causal=self.causal)


class CausalSelfAttention(LinearSelfAttention):
    """Step 3. Causal single-head attention: output ``t`` depends on inputs ``0..t`` only.

    The future keys' scores are set to ``-inf`` before the softmax, so their weights are exactly 0
    and each row still sums to 1. ``dropout`` drops attention weights while training.
    """

    def __init__(self, dim: int, *, bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__(dim, bias=bias, causal=True)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.dim, type(self).__name__)
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        t = x.shape[1]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.dim)  # (B, T, T)
        scores = scores.masked_fill(~causal_mask(t, x.device), float("-inf"))
        return self.dropout(scores.softmax(dim=-1)) @ v


class MultiHeadAttention(nn.Module):
    """Step 4. Multi-head attention: ``(B, T, D) -> (B, T, D)`` with ``heads`` heads of size ``D/heads``.

    q, k, v are split into heads ``(B, h, T, d)``, each head attends on its own, the heads are merged
    back side by side ``(B, T, D)`` and mixed by the output projection ``o_proj``.
    """

    def __init__(self, dim: int, heads: int, *, bias: bool = False, causal: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.causal = dim, heads, causal
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.o_proj = nn.Linear(dim, dim, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.dim, type(self).__name__)
        q = split_heads(self.q_proj(x), self.heads)  # (B, h, T, d)
        k = split_heads(self.k_proj(x), self.heads)
        v = split_heads(self.v_proj(x), self.heads)
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, T, T)
        if self.causal:
            scores = scores.masked_fill(~causal_mask(x.shape[1], x.device), float("-inf"))
        out = self.dropout(scores.softmax(dim=-1)) @ v  # (B, h, T, d)
        return self.o_proj(merge_heads(out))


class FusedMultiHeadAttention(nn.Module):
    """Step 5. Multi-head attention with one ``Linear(D, 3D)`` for q, k, v and PyTorch's fused kernel.

    ``F.scaled_dot_product_attention`` computes ``softmax(q kᵀ/√d) v`` without storing the
    ``(B, h, T, T)`` weights where a fused kernel exists (flash / memory-efficient attention on GPUs).
    """

    def __init__(self, dim: int, heads: int, *, bias: bool = False, causal: bool = True, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} is not divisible by heads={heads}")
        self.dim, self.heads, self.causal, self.dropout = dim, heads, causal, dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.o_proj = nn.Linear(dim, dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        _check_input(x, self.dim, type(self).__name__)
        q, k, v = self.qkv(x).split(self.dim, dim=-1)  # each (B, T, D)
        q, k, v = (split_heads(t, self.heads) for t in (q, k, v))  # each (B, h, T, d)
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0
        )
        return self.o_proj(merge_heads(out))


def attention_weights(module: nn.Module) -> dict[str, Tensor | None]:
    """The q, k, v (and output) projection weights of any step, as ``(out, in)`` matrices.

    Returns ``{"q": ..., "k": ..., "v": ..., "out": ... or None}`` (``out`` is ``None`` for the
    single-head steps 1–3, which have no output projection). Biases are not included: the copies
    are exact only for ``bias=False`` modules, which is what :func:`load_attention_weights` checks.
    """
    if isinstance(module, RawSelfAttention):
        return {"q": module.W_query.T, "k": module.W_key.T, "v": module.W_value.T, "out": None}
    if isinstance(module, LinearSelfAttention):
        return {"q": module.q_proj.weight, "k": module.k_proj.weight, "v": module.v_proj.weight, "out": None}
    if isinstance(module, MultiHeadAttention):
        return {
            "q": module.q_proj.weight,
            "k": module.k_proj.weight,
            "v": module.v_proj.weight,
            "out": module.o_proj.weight,
        }
    if isinstance(module, FusedMultiHeadAttention):
        q, k, v = module.qkv.weight.split(module.dim, dim=0)
        return {"q": q, "k": k, "v": v, "out": module.o_proj.weight}
    if isinstance(module, nn.MultiheadAttention):
        q, k, v = module.in_proj_weight.split(module.embed_dim, dim=0)
        return {"q": q, "k": k, "v": v, "out": module.out_proj.weight}
    raise TypeError(f"no attention weights known for {type(module).__name__}")


@torch.no_grad()
def load_attention_weights(module: nn.Module, q: Tensor, k: Tensor, v: Tensor, out: Tensor | None = None) -> None:
    """Copy ``(out, in)`` projection matrices into any step (or ``nn.MultiheadAttention``), in place.

    For a step without an output projection ``out`` must be ``None`` (or the identity); for one
    with it, ``out=None`` loads the identity. Modules with biases are rejected: their biases would
    not be copied, and the results would differ silently.
    """
    if (
        any(getattr(m, "bias", None) is not None for m in module.modules() if isinstance(m, nn.Linear))
        or getattr(module, "in_proj_bias", None) is not None
    ):
        raise ValueError(f"{type(module).__name__} has biases: build it with bias=False to copy weights exactly")
    if isinstance(module, RawSelfAttention | LinearSelfAttention):
        if out is not None and not torch.equal(out, torch.eye(len(out), dtype=out.dtype, device=out.device)):
            raise ValueError(f"{type(module).__name__} has no output projection: pass out=None")
        if isinstance(module, RawSelfAttention):  # raw parameters multiply from the right: (in, out)
            module.W_query.copy_(q.T)
            module.W_key.copy_(k.T)
            module.W_value.copy_(v.T)
        else:
            module.q_proj.weight.copy_(q)
            module.k_proj.weight.copy_(k)
            module.v_proj.weight.copy_(v)
        return
    out = torch.eye(len(q), dtype=q.dtype, device=q.device) if out is None else out
    if isinstance(module, MultiHeadAttention):
        module.q_proj.weight.copy_(q)
        module.k_proj.weight.copy_(k)
        module.v_proj.weight.copy_(v)
        module.o_proj.weight.copy_(out)
    elif isinstance(module, FusedMultiHeadAttention):
        module.qkv.weight.copy_(torch.cat([q, k, v]))
        module.o_proj.weight.copy_(out)
    elif isinstance(module, nn.MultiheadAttention):
        module.in_proj_weight.copy_(torch.cat([q, k, v]))
        module.out_proj.weight.copy_(out)
    else:
        raise TypeError(f"cannot load attention weights into {type(module).__name__}")
