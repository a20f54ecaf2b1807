"""Logistic regression with hand-derived gradients, trained by (minibatch) gradient descent (unit 3).

The model gives each example ``x`` the probability ``p = σ(x·w + b)`` of class 1. Training
minimises the mean binary cross-entropy over ``N`` examples,

    L(w, b) = -(1/N) Σᵢ [yᵢ log pᵢ + (1 - yᵢ) log(1 - pᵢ)],

whose gradients (derived in unit 3, notebook 03) are

    ∂L/∂w = Xᵀ(p - y) / N,    ∂L/∂b = mean(p - y).

No autograd is involved: :func:`gradients` is that formula. Notebook 03 checks it against
``torch.autograd``; notebook 04 compares full-batch, minibatch and per-example updates with :func:`fit`.

>>> X = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64); y = torch.tensor([0, 0, 1, 1])
>>> result = fit(X, y, lr=1.0, epochs=200)
>>> predict(result.w, result.b, X)
tensor([0, 0, 1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

__all__ = ["logits", "predict_proba", "predict", "loss", "gradients", "accuracy", "Fit", "fit"]

Tensor = torch.Tensor


def _check(w: Tensor, b: Tensor, X: Tensor, y: Tensor | None = None) -> None:
    if X.ndim != 2 or not X.dtype.is_floating_point:
        raise ValueError(f"X must be a floating-point tensor of shape (N, D), got {X.dtype} {tuple(X.shape)}")
    if w.shape != (X.shape[1],) or b.ndim != 0:
        raise ValueError(
            f"w must have shape (D,) = ({X.shape[1]},) and b shape (), got {tuple(w.shape)} and {tuple(b.shape)}"
        )
    if y is not None and y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape (N,) = ({X.shape[0]},), got {tuple(y.shape)}")


def logits(w: Tensor, b: Tensor, X: Tensor) -> Tensor:
    """The net inputs ``z = X @ w + b``: ``w (D,)``, ``b ()``, ``X (N, D)`` -> ``(N,)``."""
    _check(w, b, X)
    return X @ w + b


def predict_proba(w: Tensor, b: Tensor, X: Tensor) -> Tensor:
    """``(N,)`` probabilities of class 1, ``σ(X @ w + b)``."""
    return torch.sigmoid(logits(w, b, X))


def predict(w: Tensor, b: Tensor, X: Tensor) -> Tensor:
    """``(N,)`` int64 labels: 1 where the probability of class 1 exceeds 1/2 (that is, where z > 0)."""
    return (logits(w, b, X) > 0).long()


def loss(w: Tensor, b: Tensor, X: Tensor, y: Tensor) -> Tensor:
    """The mean binary cross-entropy, a 0-dimensional tensor.

    Computed from the logits as ``mean(log(1 + eᶻ) - y·z)``, which equals the formula with
    ``log p`` and ``log(1 - p)`` but never takes the log of a probability that rounded to 0.
    """
    _check(w, b, X, y)
    z = logits(w, b, X)
    return (F.softplus(z) - y.to(z.dtype) * z).mean()


def gradients(w: Tensor, b: Tensor, X: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """The hand-derived gradients of :func:`loss`: ``(∂L/∂w (D,), ∂L/∂b ())``."""
    _check(w, b, X, y)
    error = predict_proba(w, b, X) - y.to(X.dtype)  # (N,): pᵢ - yᵢ = ∂(loss of example i)/∂zᵢ
    return X.T @ error / len(y), error.mean()


def accuracy(w: Tensor, b: Tensor, X: Tensor, y: Tensor) -> float:
    """The share of examples whose predicted label equals ``y``."""
    return (predict(w, b, X) == y).double().mean().item()


@dataclass
class Fit:
    """What :func:`fit` returns: the final parameters and the training loss after each epoch."""

    w: Tensor
    b: Tensor
    losses: list[float] = field(default_factory=list)
    """``losses[0]`` is the loss before training, ``losses[k]`` the loss after epoch ``k``."""


def fit(
    X: Tensor,
    y: Tensor,
    *,
    lr: float,
    epochs: int,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
    w: Tensor | None = None,
    b: Tensor | None = None,
) -> Fit:
    """Train logistic regression by gradient descent with the hand-derived :func:`gradients`.

    Args:
        X: ``(N, D)`` features; y: ``(N,)`` labels 0/1.
        lr: the learning rate.
        epochs: passes over the data.
        batch_size: ``None`` for full-batch gradient descent (one update per epoch, examples in
            order); otherwise minibatch SGD: every epoch visits the examples in a new random order
            (drawn from ``generator``, or from torch's global generator when ``None``) in batches
            of ``batch_size`` (the last one may be smaller), one update per batch.
        w, b: the starting point (default zeros); they are copied, not changed.
    """
    if epochs < 0 or (batch_size is not None and batch_size < 1):
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1 (or None), got {epochs} and {batch_size}")
    n, d = X.shape
    w = torch.zeros(d, dtype=X.dtype) if w is None else w.detach().clone()
    b = torch.zeros((), dtype=X.dtype) if b is None else b.detach().clone()
    losses = [loss(w, b, X, y).item()]
    for _ in range(epochs):
        batches: list[Tensor | slice]
        if batch_size is None:
            batches = [slice(None)]  # all examples, in order
        else:
            order = torch.randperm(n, generator=generator)
            batches = list(order.split(batch_size))
        for idx in batches:
            grad_w, grad_b = gradients(w, b, X[idx], y[idx])
            w -= lr * grad_w
            b -= lr * grad_b
        losses.append(loss(w, b, X, y).item())
    return Fit(w, b, losses)
