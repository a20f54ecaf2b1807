"""The plain PyTorch training loop: one epoch of training, one evaluation pass, and ``fit`` around them.

Unit 4 (notebook 05) builds these functions step by step; later units reuse them until unit 5 hands
the loop to Lightning. They work with any ``loader`` that yields ``(inputs, targets)`` batches (a
``DataLoader``, or a plain list of tensor pairs) and any ``loss_fn(outputs, targets)`` that averages
over the batch, such as ``nn.CrossEntropyLoss()`` or ``F.mse_loss``.

>>> model = nn.Linear(4, 3)
>>> batches = [(torch.randn(8, 4), torch.randint(0, 3, (8,))) for _ in range(5)]
>>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
>>> history = fit(model, batches, batches, optimizer, nn.CrossEntropyLoss(), "cpu", epochs=3, verbose=False)
>>> history.epochs, len(history.val_accuracy)
(3, 3)
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from dlfund.utils.timing import synchronize

__all__ = ["History", "train_epoch", "evaluate", "fit"]

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def train_epoch(
    model: nn.Module, loader: Batches, optimizer: torch.optim.Optimizer, loss_fn: LossFn, device: torch.device | str
) -> float:
    """Train ``model`` for one pass over ``loader``; return the mean training loss per example.

    For each batch ``(inputs (B, ...), targets (B,) or (B, K))``: move it to ``device``, clear the
    old gradients, compute the outputs and the loss, backpropagate, and let ``optimizer`` update the
    parameters. ``model`` must already be on ``device`` (:func:`fit` moves it).

    The mean is weighted by batch size, so a smaller last batch counts for what it holds. The losses
    are summed on the device and read once at the end: calling ``.item()`` on every batch would make
    the CPU wait for the GPU after each step.
    """
    model.train()  # dropout (and, later, batch norm) behave as in training
    loss_sum = torch.zeros((), device=device)
    count = 0
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(targets)
        count += len(targets)
    if count == 0:
        raise ValueError(
            "the loader yielded no batches: is the dataset empty, or drop_last=True with too few examples?"
        )
    return loss_sum.item() / count


@torch.no_grad()
def evaluate(model: nn.Module, loader: Batches, loss_fn: LossFn, device: torch.device | str) -> tuple[float, float]:
    """The mean loss per example and the accuracy of ``model`` on ``loader``, without training.

    Accuracy is the share of examples whose largest output (``outputs.argmax(dim=1)``) is the target
    class; it is ``nan`` when the targets are floating point (regression), where it means nothing.
    Gradients are not tracked and the model is put in evaluation mode (dropout off).
    """
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    count, classification = 0, True
    for inputs, targets in loader:
        inputs, targets = inputs.to(device), targets.to(device)
        outputs = model(inputs)
        loss_sum += loss_fn(outputs, targets) * len(targets)
        count += len(targets)
        classification = not targets.dtype.is_floating_point
        if classification:
            correct += (outputs.argmax(dim=1) == targets).sum()
    if count == 0:
        raise ValueError("the loader yielded no batches: nothing to evaluate")
    accuracy = correct.item() / count if classification else math.nan
    return loss_sum.item() / count, accuracy


@dataclass
class History:
    """Per-epoch results of :func:`fit`: lists with one entry per epoch (epoch 1 first)."""

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    """Wall time of each epoch: training plus the validation pass."""

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def total_seconds(self) -> float:
        return sum(self.epoch_seconds)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per epoch (``epoch`` counted from 1), e.g. for a table or ``cfg.record``."""
        return [
            {"epoch": i + 1, "train_loss": t, "val_loss": v, "val_accuracy": a, "seconds": s}
            for i, (t, v, a, s) in enumerate(zip(self.train_loss, self.val_loss, self.val_accuracy, self.epoch_seconds))
        ]


def fit(
    model: nn.Module,
    train_loader: Batches,
    val_loader: Batches | None,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    device: torch.device | str,
    epochs: int,
    *,
    verbose: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` epochs with :func:`train_epoch`, evaluating on ``val_loader`` after each.

    Moves ``model`` to ``device`` first (create the optimizer before or after: ``.to()`` moves the
    parameters in place). With ``val_loader=None`` there is no validation pass and the validation
    entries of the history are ``nan``. With ``verbose`` it prints one line per epoch.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    device = torch.device(device)
    model.to(device)
    history = History()
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        train_loss = train_epoch(model, train_loader, optimizer, loss_fn, device)
        val_loss, val_accuracy = (
            evaluate(model, val_loader, loss_fn, device) if val_loader is not None else (math.nan, math.nan)
        )
        synchronize(device)
        seconds = time.perf_counter() - start
        history.train_loss.append(train_loss)
        history.val_loss.append(val_loss)
        history.val_accuracy.append(val_accuracy)
        history.epoch_seconds.append(seconds)
        if verbose:
            line = f"epoch {epoch:>{len(str(epochs))}}/{epochs}: train loss {train_loss:.4f}"
            if val_loader is not None:
                line += f", val loss {val_loss:.4f}"
                if not math.isnan(val_accuracy):
                    line += f", val accuracy {val_accuracy:.4f}"
            print(f"{line} ({seconds:.1f} s)")
    return history
