"""The multilayer perceptron (MLP) of unit 4: fully connected layers with a nonlinearity between them.

An MLP with ``hidden=[256, 128]`` maps an input of ``in_features`` numbers through

    Linear(in_features, 256) → activation → Linear(256, 128) → activation → Linear(128, out_features)

and returns raw scores (*logits*) for classification, or the predicted values for regression: the
last layer has no activation, because the loss (``F.cross_entropy``, ``F.mse_loss``) expects raw
outputs. Inputs with more than one feature dimension, such as images ``(N, 1, 28, 28)``, are
flattened to ``(N, in_features)`` first.

>>> model = MLP(784, [256, 128], 10)
>>> model(torch.zeros(32, 1, 28, 28)).shape
torch.Size([32, 10])
>>> sum(p.numel() for p in model.parameters())  # (784·256 + 256) + (256·128 + 128) + (128·10 + 10)
235146
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}
"""The activation functions :class:`MLP` accepts by name (unit 4, notebook 03 compares them)."""


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


class MLP(nn.Module):
    """A multilayer perceptron: ``Linear (→ BatchNorm) → activation (→ Dropout)`` per hidden layer, then ``Linear``.

    Args:
        in_features: D, the number of input features (784 for a flattened 28×28 image).
        hidden: the width of each hidden layer, e.g. ``[256, 128]``; ``[]`` gives a linear model
            (softmax regression when trained with cross-entropy).
        out_features: C, the number of outputs (classes, or 1 for regression of one value).
        activation: a name from :data:`ACTIVATIONS` (``"relu"``, ``"gelu"``, ``"tanh"``,
            ``"sigmoid"``, ``"identity"``) or a callable returning a fresh module (``nn.LeakyReLU``).
        dropout: the probability of zeroing each hidden activation during training (0 = no dropout
            layers at all).
        batchnorm: put a ``BatchNorm1d`` between each hidden ``Linear`` and its activation (unit 6):
            it standardises each hidden unit over the batch during training, and uses running
            averages of the batch statistics in ``eval()`` mode.

    Attributes:
        layers: the ``nn.Sequential`` of all layers, in order; ``layers[0]`` is the first ``Linear``.

    The weights keep PyTorch's default initialisation of ``nn.Linear``; notebook 03 of unit 4 shows
    what other choices do.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        activation: str | Callable[[], nn.Module] = "relu",
        dropout: float = 0.0,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int(in_features, "in_features")
        self.out_features = _positive_int(out_features, "out_features")
        if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence):
            raise TypeError(f"hidden must be a sequence of layer widths such as [256, 128], got {hidden!r}")
        self.hidden = [_positive_int(h, "every hidden width") for h in hidden]
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        if isinstance(activation, str):
            if activation not in ACTIVATIONS:
                raise ValueError(
                    f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)} "
                    "or pass a callable that returns an nn.Module"
                )
            make_activation = ACTIVATIONS[activation]
        elif callable(activation):
            make_activation = activation
        else:
            raise TypeError(f"activation must be a name or a callable returning an nn.Module, got {activation!r}")

        layers: list[nn.Module] = []
        width = self.in_features
        for h in self.hidden:
            layers.append(nn.Linear(width, h))
            if batchnorm:
                layers.append(nn.BatchNorm1d(h))
            layers.append(make_activation())  # a fresh activation module per layer
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        layers.append(nn.Linear(width, self.out_features))  # no activation: the loss takes raw outputs
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, in_features)`` or ``(N, *)`` with ``in_features`` numbers per example → ``(N, out_features)``."""
        x = x.flatten(start_dim=1)  # (N, 1, 28, 28) -> (N, 784); a no-op for (N, D)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"MLP expects {self.in_features} features per example, got input of "
                f"{x.shape[1]} per example (after flattening to (N, {x.shape[1]}))"
            )
        return self.layers(x)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, hidden={self.hidden}, out_features={self.out_features}"
