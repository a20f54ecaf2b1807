"""One rule for what trains and what is saved.

A finetuning method names the parameters it adds or unfreezes with one function (for LoRA
:func:`dlfund.peft.lora.lora_parameter_names`, for LLaMA-Adapter
:func:`dlfund.peft.adapter.adapter_parameter_names`). :func:`train_only` makes exactly those trainable
and :func:`state_dict_of` saves exactly those, so an adapter checkpoint holds what trained and nothing
else, whatever was frozen or unfrozen by hand in between.

>>> from torch import nn
>>> model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
>>> train_only(model, {"1.weight", "1.bias"})
>>> sorted(state_dict_of(model, {"1.weight", "1.bias"}))
['1.bias', '1.weight']
>>> model[0].weight.requires_grad
False
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from torch import nn

__all__ = ["cast_frozen", "state_dict_of", "train_only"]


def train_only(model: nn.Module, names: Collection[str]) -> None:
    """``requires_grad`` on for the parameters called ``names`` and off for every other parameter.

    A parameter shared under several names (tied weights) trains if any of its names is listed.
    """
    named = dict(model.named_parameters(remove_duplicate=False))
    unknown = sorted(set(names) - set(named))
    if unknown:
        raise KeyError(f"{type(model).__name__} has no parameters {', '.join(unknown[:5])}")
    if not names:
        raise ValueError(f"nothing to train: the method found no parameters of its own in {type(model).__name__}")
    chosen = {id(named[n]) for n in names}
    for p in model.parameters():
        p.requires_grad_(id(p) in chosen)


def state_dict_of(model: nn.Module, names: Collection[str]) -> dict[str, torch.Tensor]:
    """The tensors of the parameters called ``names``, by name, detached: what a checkpoint of them holds."""
    return {n: p.detach() for n, p in model.named_parameters(remove_duplicate=False) if n in names}


def cast_frozen(model: nn.Module, dtype: torch.dtype) -> int:
    """Store every frozen parameter in ``dtype`` (say bf16) in place; the trainable ones stay as they are.

    A frozen weight needs no float32 master copy. The parameter objects are kept (their storage is swapped
    with :func:`torch.utils.swap_tensors`), so tied weights stay tied and references stay valid.
    Returns the number of parameters cast.
    """
    cast = 0
    for p in model.parameters():
        if not p.requires_grad and p.dtype != dtype:
            torch.utils.swap_tensors(p, nn.Parameter(p.detach().to(dtype), requires_grad=False))
            cast += 1
    return cast
