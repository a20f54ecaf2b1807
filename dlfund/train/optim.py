"""Optimizers of unit 6: SGD with momentum, Adam, AdamW, and which parameters get weight decay.

Weight decay shrinks weights towards zero at every step. It is meant for the weights that *mix*
features (the matrices of ``Linear`` layers, the kernels of convolutions): shrinking them keeps
the function smooth. It does not belong on

- **biases**: they shift a unit's output; shrinking them to zero does not make the model simpler;
- **normalisation parameters** (the scale and shift of BatchNorm, LayerNorm, GroupNorm, RMSNorm):
  decaying the scale towards 0 fights the very normalisation the layer performs;
- **embeddings** (our choice, documented here): each row is a lookup table entry that is only
  updated when its token appears, so decoupled decay would shrink rare tokens' vectors at every
  step while they receive almost no gradient.

:func:`param_groups` splits a model's trainable parameters into these two groups, each parameter in
exactly one group (parameters shared between modules, such as tied embeddings, count once).

>>> from dlfund.models.mlp import MLP
>>> groups = param_groups(MLP(4, [8], 3, batchnorm=True), weight_decay=0.05)
>>> [(g["weight_decay"], [tuple(p.shape) for p in g["params"]]) for g in groups]
[(0.05, [(8, 4), (3, 8)]), (0.0, [(8,), (8,), (8,), (3,)])]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["NO_DECAY_MODULES", "OPTIMIZERS", "param_groups", "make_optimizer"]

NO_DECAY_MODULES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm1d/2d/3d, SyncBatchNorm, InstanceNorm (affine)
    nn.LayerNorm,
    nn.GroupNorm,
    nn.RMSNorm,
    nn.LocalResponseNorm,
    nn.Embedding,
    nn.EmbeddingBag,
)
"""Modules none of whose own parameters are decayed."""

OPTIMIZERS = ("sgd", "adam", "adamw")

ParamsT = nn.Module | Iterable[torch.Tensor] | Iterable[dict[str, Any]]


def _is_norm_like(module: nn.Module) -> bool:
    # A norm layer written by hand (e.g. the RMSNorm of the LLaMA unit) is recognised by its name.
    return isinstance(module, NO_DECAY_MODULES) or type(module).__name__.lower().endswith("norm")


def param_groups(model: nn.Module, weight_decay: float, *, decay_embeddings: bool = False) -> list[dict[str, Any]]:
    """Two optimizer parameter groups: ``[{"params": decay, "weight_decay": weight_decay},
    {"params": no_decay, "weight_decay": 0.0}]``.

    ``decay``: trainable parameters with 2 or more dimensions (``Linear`` weights ``(out, in)``,
    convolution kernels ``(out, in, kh, kw)``, attention projections) that do not belong to a
    normalisation or embedding module. ``no_decay``: everything else that is trainable: biases and
    other 1-d or 0-d parameters (gates, scales), and all parameters of norm and embedding modules.
    Frozen parameters (``requires_grad=False``) are left out. Empty groups are dropped. Within each
    group the order is ``model.named_parameters()``'s.

    ``decay_embeddings=True`` decays embedding tables too, as nanoGPT does for a language model whose
    embedding is tied to its output head (the head is a weight matrix like any other).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"param_groups needs an nn.Module, got {type(model).__name__}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    exempt: set[int] = set()
    for module in model.modules():
        if _is_norm_like(module) and not (decay_embeddings and isinstance(module, nn.Embedding | nn.EmbeddingBag)):
            exempt.update(id(p) for p in module.parameters(recurse=False))
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for _, p in model.named_parameters():  # yields each shared parameter once
        if not p.requires_grad:
            continue
        (decay if p.ndim >= 2 and id(p) not in exempt else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": float(weight_decay)}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters")
    return groups


def make_optimizer(
    name: str,
    params: ParamsT,
    lr: float,
    *,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    betas: tuple[float, float] = (0.9, 0.999),
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"`` over ``params``.

    ``params`` is a model, or anything a torch optimizer accepts (parameters or parameter groups).
    For a model and ``weight_decay > 0``, the decay goes only to :func:`param_groups`' decay group.

    Note what ``weight_decay`` means for each: SGD and Adam add ``weight_decay * w`` to the gradient
    (L2 regularisation; inside Adam it is then divided by the adaptive scale, so weights with large
    gradients are barely decayed), AdamW subtracts ``lr * weight_decay * w`` from the weights
    directly, *decoupled* from the gradient (Loshchilov & Hutter, 2019).
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: expected one of {', '.join(OPTIMIZERS)}")
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr!r}")
    if isinstance(params, nn.Module):
        params = (
            param_groups(params, weight_decay)
            if weight_decay > 0
            else [p for p in params.parameters() if p.requires_grad]
        )
    if key == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if key == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
