"""Rosenblatt's perceptron (1957), the model of unit 1.

The perceptron computes a *net input* ``z = X @ w + b`` and predicts class 1 where ``z > 0``, else
class 0. It learns one example at a time: after each example it adds ``lr * error * x`` to the
weights and ``lr * error`` to the bias, where ``error = target - prediction`` is -1, 0 or +1. So it
only changes when it makes a mistake.

The weights are learned by this rule, not by gradients, so they are buffers (moved by ``.to()``,
saved by ``state_dict()``) rather than ``nn.Parameter``s.

>>> model = Perceptron(num_features=2)
>>> X = torch.tensor([[2.0, 1.0], [-1.0, -2.0]]); y = torch.tensor([1, 0])
>>> model.fit(X, y, epochs=10).mistakes
[1, 0]
>>> model.predict(X)
tensor([1, 0])
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

__all__ = ["Perceptron", "History"]


@dataclass
class History:
    """What :meth:`Perceptron.fit` saw: the number of mistakes made during each epoch."""

    mistakes: list[int] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        """How many epochs ran (fewer than asked when training converged early)."""
        return len(self.mistakes)

    @property
    def converged(self) -> bool:
        """Whether the last epoch made no mistake (the training data are then separated)."""
        return bool(self.mistakes) and self.mistakes[-1] == 0


class Perceptron(nn.Module):
    """A binary perceptron with ``num_features`` inputs and labels 0/1.

    Args:
        num_features: D, the number of features of each example.
        init: ``"zeros"`` (Rosenblatt's choice: weights and bias start at 0) or ``"random"``
            (weights drawn from a normal distribution with standard deviation ``scale``, bias 0).
        generator: the random generator for ``init="random"``; seed it for reproducible weights.
        scale: the standard deviation of the random initial weights.
        dtype: the floating-point type of the weights; inputs are cast to it.

    Attributes:
        weight: ``(D,)`` the weight vector ``w``.
        bias: ``()`` the bias ``b``.
    """

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(
        self,
        num_features: int,
        *,
        init: Literal["zeros", "random"] = "zeros",
        generator: torch.Generator | None = None,
        scale: float = 0.01,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        num_features = int(num_features)
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        if init == "zeros":
            if generator is not None:
                raise ValueError("a generator is only used with init='random'; drop it or ask for init='random'")
            weight = torch.zeros(num_features, dtype=dtype)
        elif init == "random":
            weight = scale * torch.randn(num_features, generator=generator, dtype=dtype)
        else:
            raise ValueError(f"init must be 'zeros' or 'random', got {init!r}")
        self.num_features = num_features
        self.register_buffer("weight", weight)
        self.register_buffer("bias", torch.zeros((), dtype=dtype))

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, dtype={self.weight.dtype}"

    # -- input checks: a wrong shape should say what was expected, not fail deep inside a matmul --

    def _check_X(self, X: torch.Tensor) -> torch.Tensor:
        if not isinstance(X, torch.Tensor):
            raise TypeError(
                f"X must be a torch.Tensor of shape (N, {self.num_features}), got {type(X).__name__}"
                " (convert with torch.as_tensor)"
            )
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise ValueError(
                f"X must have shape (N, {self.num_features}) (N examples, {self.num_features} features),"
                f" got {tuple(X.shape)}"
            )
        if not X.dtype.is_floating_point:
            raise TypeError(f"X must be floating point, got {X.dtype} (convert with X.float(); scale images to [0, 1])")
        return X.to(self.weight.dtype)

    def _check_y(self, y: torch.Tensor, n: int) -> list[int]:
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor of shape ({n},), got {type(y).__name__}")
        if y.shape != (n,):
            raise ValueError(f"y must have shape ({n},), one label per row of X, got {tuple(y.shape)}")
        labels = [int(v) for v in y.tolist()]
        bad = sorted(set(labels) - {0, 1})
        if bad or (y.dtype.is_floating_point and not torch.all((y == 0) | (y == 1))):
            raise ValueError(f"y must contain only the labels 0 and 1, found {bad or 'non-integer values'}")
        return labels

    # -- the model --

    def net_input(self, X: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N,)``: the weighted sum ``X @ w + b``, positive on the class-1 side."""
        return self._check_X(X) @ self.weight + self.bias

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """``(N, D) -> (N,)`` int64 labels: 1 where the net input is positive, else 0."""
        return (self.net_input(X) > 0).long()

    def predict(self, X: torch.Tensor) -> torch.Tensor:
        """Same as calling the model: ``(N, D) -> (N,)`` int64 labels 0/1."""
        return self(X)

    @torch.no_grad()
    def train_epoch(self, X: torch.Tensor, y: torch.Tensor, lr: float = 1.0) -> int:
        """One pass over ``X (N, D)`` and ``y (N,)`` in the given order; returns the number of mistakes.

        The rule is sequential (each update changes the next prediction), so this loops over the
        examples; only the work *inside* one example is vectorised.
        """
        X = self._check_X(X)
        targets = self._check_y(y, X.shape[0])
        mistakes = 0
        for x_i, target in zip(X, targets):
            prediction = 1 if float(x_i @ self.weight + self.bias) > 0 else 0
            error = target - prediction  # -1, 0 or +1
            if error != 0:
                self.weight += (lr * error) * x_i
                self.bias += lr * error
                mistakes += 1
        return mistakes

    def fit(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        epochs: int,
        lr: float = 1.0,
        *,
        stop_when_converged: bool = True,
    ) -> History:
        """Train for up to ``epochs`` passes over ``X (N, D)``, ``y (N,)``; return the mistakes per epoch.

        With ``stop_when_converged`` training stops after the first epoch without a mistake: from then
        on the weights could not change any more.
        """
        if epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        history = History()
        for _ in range(epochs):
            history.mistakes.append(self.train_epoch(X, y, lr))
            if stop_when_converged and history.mistakes[-1] == 0:
                break
        return history
