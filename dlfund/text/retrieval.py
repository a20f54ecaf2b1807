"""A small vector index for retrieval-augmented generation (unit 13): plain tensors, cosine top-k.

No vector database is needed for a few tens of thousands of passages: the index is one ``(N, D)``
tensor of unit-length rows, and a batch of queries is scored against all of it with one matrix
product (cosine similarity of unit vectors is their dot product).

- :func:`normalize_rows` scales each row to length 1;
- :func:`build_index` checks and normalises embeddings once, at indexing time;
- :func:`search` returns the ``k`` best rows per query, best first, ties broken by the lower row
  index (so a result never depends on how the sort happens to order equal scores);
- :func:`recall_at_k` is the share of queries whose true row is among their first ``k`` results;
- :func:`drop_words` makes a query that is *not* a verbatim copy of its passage, so that retrieval
  is measured on a fair task instead of an exact lookup.
"""

from __future__ import annotations

import random

import torch
from torch import Tensor

__all__ = ["build_index", "drop_words", "normalize_rows", "recall_at_k", "search"]


def normalize_rows(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``x (N, D)`` (or ``(D,)``) scaled so every row has Euclidean length 1, as float32.

    Raises ``ValueError`` for a row of zeros (it has no direction, so no cosine similarity).
    """
    x = x.float()
    norms = x.norm(dim=-1, keepdim=True)
    if bool((norms <= eps).any()):
        raise ValueError("cannot normalise a zero vector: every embedding needs a non-zero length")
    return x / norms


def build_index(embeddings: Tensor) -> Tensor:
    """The index of ``embeddings (N, D)``: the same rows at unit length (float32, a new tensor)."""
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise ValueError(f"an index needs embeddings of shape (N, D) with N ≥ 1, got {tuple(embeddings.shape)}")
    if not bool(torch.isfinite(embeddings).all()):
        raise ValueError("embeddings contain NaN or infinity")
    return normalize_rows(embeddings).contiguous()


def search(index: Tensor, queries: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The ``k`` rows of ``index (N, D)`` most similar (cosine) to each of ``queries (Q, D)``.

    Returns ``scores (Q, k)`` (cosine similarities, descending) and ``indices (Q, k)`` (row numbers
    into the index). A single query ``(D,)`` gives ``(k,)`` and ``(k,)``. Queries are normalised here;
    the index must already be (:func:`build_index`). Equal scores keep the lower row index first.
    """
    single = queries.ndim == 1
    q = queries[None] if single else queries
    if q.ndim != 2 or q.shape[1] != index.shape[1]:
        raise ValueError(f"queries must be (Q, {index.shape[1]}) or ({index.shape[1]},), got {tuple(queries.shape)}")
    if not 1 <= k <= index.shape[0]:
        raise ValueError(f"k must be between 1 and the {index.shape[0]} rows of the index, got k={k}")
    scores = normalize_rows(q) @ index.T  # (Q, N)
    # A stable sort keeps equal scores in row order; topk makes no such promise.
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    top = scores.gather(1, order)
    return (top[0], order[0]) if single else (top, order)


def recall_at_k(indices: Tensor, true: Tensor, k: int) -> float:
    """The share of queries whose true row ``true (Q,)`` is among their first ``k`` results ``indices (Q, K)``."""
    if indices.ndim != 2 or true.shape != (indices.shape[0],) or indices.shape[0] == 0:
        raise ValueError(f"indices must be (Q, K) and true (Q,), got {tuple(indices.shape)} and {tuple(true.shape)}")
    if not 1 <= k <= indices.shape[1]:
        raise ValueError(f"k must be between 1 and the {indices.shape[1]} results per query, got k={k}")
    return (indices[:, :k] == true[:, None]).any(dim=1).float().mean().item()


def drop_words(text: str, n: int, rng: random.Random) -> str:
    """``text`` with ``n`` of its words removed at random positions (at least one word always stays)."""
    words = text.split()
    if not 0 <= n < len(words):
        raise ValueError(f"can drop 0 to {len(words) - 1} of the {len(words)} words of {text!r}, not {n}")
    gone = set(rng.sample(range(len(words)), n))
    return " ".join(w for i, w in enumerate(words) if i not in gone)
