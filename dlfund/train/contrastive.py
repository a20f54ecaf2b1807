"""Contrastive self-supervised pretraining (SimCLR): the NT-Xent loss, a pretraining loop, frozen features.

SimCLR (Chen et al., 2020) learns from unlabelled images. Every image of a batch is augmented twice;
an encoder and a small projection head map the ``2N`` views to vectors ``z``, and the loss asks each
view to pick out its partner (the other view of the same image) among the other ``2N - 1`` views:

    z = cat(z1, z2)                          (2N, D)   view i and view i + N come from image i
    u = z / |z|                              unit rows: similarity is the cosine
    s = u @ u.T / temperature                (2N, 2N)  with the diagonal (a view with itself) removed
    loss = cross_entropy(s, partner)         partner(i) = i + N for i < N, i - N otherwise

the normalised-temperature cross-entropy, NT-Xent. Unit 7, notebook 08 builds it step by step and
compares it with :func:`nt_xent_loss`; :func:`pretrain_contrastive` is the loop (any loss of the two
views' projections and the batch's labels, which SimCLR ignores), and :func:`encode` gives the frozen
features a linear probe is trained on.

>>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
>>> loss = nt_xent_loss(z1, z2, temperature=0.5)
>>> loss.shape, bool(nt_xent_loss(z1, z1, 0.5) < loss)
(torch.Size([]), True)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.train.optim import param_groups
from dlfund.train.vision import TensorBatches
from dlfund.utils.device import autocast_bf16, resolve_bf16
from dlfund.utils.timing import synchronize

__all__ = ["nt_xent_loss", "pretrain_contrastive", "encode", "PairLoss"]

Tensor = torch.Tensor
PairLoss = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``loss(z1 (N, D), z2 (N, D), labels (N,)) -> scalar``: a loss of the two views' projections."""


def nt_xent_loss(z1: Tensor, z2: Tensor, temperature: float = 0.5) -> Tensor:
    """The NT-Xent loss of SimCLR for two views of the same ``N`` images.

    Args:
        z1, z2: ``(N, D)`` projections of the first and second view; row ``i`` of both comes from
            image ``i``. They need not be normalised: the loss compares directions (cosines).
        temperature: tau > 0; the cosines are divided by it before the softmax (small tau: sharp).

    Returns:
        a scalar: the mean over all ``2N`` views of ``-log softmax(s_i)[partner(i)]``, where ``s_i``
        holds view i's cosines with the other ``2N - 1`` views, divided by tau.
    """
    if z1.dim() != 2 or z1.shape != z2.shape or z1.shape[0] < 2:
        raise ValueError(f"z1 and z2 must both be (N, D) with N >= 2, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    n = z1.shape[0]
    u = F.normalize(torch.cat([z1, z2]), dim=1)  # (2N, D), unit rows
    logits = u @ u.T / temperature  # (2N, 2N) cosines / tau
    self_mask = torch.eye(2 * n, dtype=torch.bool, device=u.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # a view is not a candidate for itself
    partner = torch.arange(2 * n, device=u.device).roll(n)  # [N, ..., 2N-1, 0, ..., N-1]
    return F.cross_entropy(logits, partner)


def pretrain_contrastive(
    encoder: nn.Module,
    head: nn.Module,
    batches: TensorBatches,
    views: Callable[[Tensor], Tensor],
    loss: PairLoss,
    *,
    epochs: int,
    lr: float,
    device: torch.device | str,
    weight_decay: float = 1e-4,
    bf16: bool | None = None,
    verbose: bool = True,
) -> list[float]:
    """Train ``encoder`` and ``head`` together on ``loss`` of two augmented views of every batch.

    Args:
        encoder: has ``features(x (B, C, H, W)) -> (B, F)`` (e.g. :class:`dlfund.models.SmallCNN`).
        head: the projection head, ``(B, F) -> (B, D)``; thrown away after pretraining.
        batches: the images (their labels reach ``loss``; SimCLR's loss ignores them).
        views: a random augmentation of a batch; it is applied twice, independently.
        loss: ``loss(z1, z2, labels) -> scalar``, e.g. ``lambda z1, z2, y: nt_xent_loss(z1, z2, 0.5)``.
        epochs, lr, weight_decay: AdamW with a cosine schedule over all steps; no decay on biases and norms.
        bf16: bf16 autocast (``None``: where supported); the loss is computed in float32.

    Returns:
        the mean loss of every epoch, first epoch first.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = torch.device(device)
    use_bf16 = resolve_bf16(bf16, device)
    encoder.to(device), head.to(device)
    model = nn.ModuleDict({"encoder": encoder, "head": head})
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(batches))
    losses: list[float] = []
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        total, count = torch.zeros((), device=device), 0
        for x, y in batches:
            x, y = x.to(device), y.to(device)
            with autocast_bf16(device, use_bf16):
                z = head(encoder.features(torch.cat([views(x), views(x)])))  # (2B, D): both views in one pass
            z1, z2 = z.float().chunk(2)
            value = loss(z1, z2, y)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
            sched.step()
            total += value.detach()
            count += 1
        losses.append(total.item() / count)
        if verbose:
            synchronize(device)
            print(f"epoch {epoch}/{epochs}: contrastive loss {losses[-1]:.4f}, {time.perf_counter() - start:.1f} s")
    return losses


@torch.no_grad()
def encode(encoder: nn.Module, batches: TensorBatches, device: torch.device | str) -> tuple[Tensor, Tensor]:
    """The frozen features of every image in ``batches`` (no augmentation: pass unaugmented batches).

    Returns ``(features (N, F) float32, labels (N,))`` on ``device``; the encoder is put in eval mode,
    so BatchNorm uses its running statistics and the features do not depend on the batch."""
    encoder.to(device).eval()
    feats, labels = [], []
    for x, y in batches:
        feats.append(encoder.features(x.to(device)).float())
        labels.append(y.to(device))
    return torch.cat(feats), torch.cat(labels)
