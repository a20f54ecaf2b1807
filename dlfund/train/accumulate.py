"""Gradient accumulation (unit 11): the step of a large batch, computed a few micro-batches at a time.

A batch of ``B`` examples with a mean loss has the gradient ``(1/B) Σ ∇ℓ_i``. Split it into ``k``
micro-batches of ``B/k`` examples, each with its own mean loss ``L_j``; then
``∇L = (1/k) Σ_j ∇L_j``. So: divide each micro-batch's loss by ``k``, call ``backward()`` on each
(PyTorch *adds* into ``.grad``), and step and zero the gradients once per ``k`` micro-batches. Memory
for activations is that of one micro-batch; the result is the large batch's step (up to float rounding)
for any model without batch statistics — BatchNorm sees micro-batches, not the large batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

__all__ = ["accumulation_step", "split_batch"]

Batch = tuple[torch.Tensor, torch.Tensor]


def split_batch(x: torch.Tensor, y: torch.Tensor, micro_batches: int) -> list[Batch]:
    """Split a batch ``(B, ...)``, ``(B, ...)`` into ``micro_batches`` equal parts along dim 0."""
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be >= 1, got {micro_batches}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y hold different numbers of examples: {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] % micro_batches:
        raise ValueError(
            f"a batch of {x.shape[0]} does not split into {micro_batches} equal micro-batches: with "
            "unequal parts the mean of the means is not the mean of the batch"
        )
    return list(zip(x.chunk(micro_batches), y.chunk(micro_batches)))


def accumulation_step(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[Batch],
) -> float:
    """One optimizer step on the union of ``micro_batches`` (equal sizes), one backward pass per
    micro-batch; returns the mean loss. ``loss_fn(model(x), y)`` must be a mean over examples."""
    if not micro_batches:
        raise ValueError("need at least one micro-batch")
    k = len(micro_batches)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for x, y in micro_batches:
        loss = loss_fn(model(x), y) / k  # the mean of k means is the mean of the whole batch
        loss.backward()  # adds into .grad
        total += loss.item()
    optimizer.step()
    return total
