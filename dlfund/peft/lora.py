"""LoRA (Hu et al., 2021) from scratch: a frozen weight plus a trainable low-rank update.

A pretrained ``nn.Linear`` computes ``y = x W^T`` with ``W`` of shape ``(out, in)``. LoRA freezes ``W``
and learns ``ΔW = (α / r) · B A`` with ``A (r, in)`` and ``B (out, r)``, ``r ≪ min(in, out)``:

    y = x W^T + (α / r) · dropout(x) A^T B^T

- ``A`` starts random (Kaiming uniform) and ``B`` starts at zero, so ``ΔW = 0``: the model is exactly
  the pretrained one at step 0, and ``B`` receives a gradient at once (``A`` receives one after ``B``
  has moved).
- ``α / r`` keeps the size of the update roughly independent of the rank, so a learning rate tuned for
  one rank still works for another.
- After training, :meth:`LoRALinear.merge` folds ``ΔW`` into ``W``: inference then costs exactly what
  the base model costs. :meth:`LoRALinear.unmerge` subtracts it again.

:class:`LoRALinear` is an ``nn.Linear`` subclass that *shares* the wrapped layer's weight, so parameter
names stay ``layers.3.self_attn.q_proj.weight`` and only ``...q_proj.lora_A`` / ``...lora_B`` are new:
a base checkpoint still loads by name, and :func:`save_lora` writes only the new tensors.
"""

from __future__ import annotations

import fnmatch
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.peft.trainable import state_dict_of, train_only

__all__ = [
    "LORA_NAMES",
    "LoRALinear",
    "inject_lora",
    "load_lora",
    "lora_layers",
    "lora_parameter_names",
    "lora_state_dict",
    "mark_only_lora_trainable",
    "merge_lora",
    "parameter_report",
    "ParameterReport",
    "save_lora",
    "unmerge_lora",
]

Tensor = torch.Tensor

LORA_NAMES = ("lora_A", "lora_B")
"""The names of the two low-rank matrices inside a :class:`LoRALinear`."""


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus a low-rank update: ``(..., in) -> (..., out)``.

    Args:
        in_features, out_features, bias: as for ``nn.Linear``.
        r: the rank of the update (``A`` is ``(r, in)``, ``B`` is ``(out, r)``).
        alpha: the update is scaled by ``alpha / r``.
        dropout: dropout on the input of the low-rank path only (the frozen path sees ``x`` unchanged).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        r: int,
        alpha: float = 1.0,
        dropout: float = 0.0,
        bias: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if r < 1:
            raise ValueError(f"LoRA rank r must be at least 1, got {r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.r, self.alpha = r, alpha
        self.scaling = alpha / r
        # The adapter is kept in float32 even when the frozen weight is stored in bf16.
        self.lora_A = nn.Parameter(torch.empty(r, in_features, device=device, dtype=torch.float32))
        self.lora_B = nn.Parameter(torch.empty(out_features, r, device=device, dtype=torch.float32))
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """``A`` Kaiming-uniform (as ``nn.Linear`` initialises its weight), ``B`` zero: ``ΔW = 0``."""
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    @classmethod
    def from_linear(cls, linear: nn.Linear, *, r: int, alpha: float = 1.0, dropout: float = 0.0) -> LoRALinear:
        """Wrap an existing layer: its weight (and bias) are *shared*, not copied."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"LoRA wraps nn.Linear layers, got {type(linear).__name__}")
        w = linear.weight
        layer = cls(
            linear.in_features,
            linear.out_features,
            r=r,
            alpha=alpha,
            dropout=dropout,
            bias=False,
            device=w.device,
            dtype=w.dtype,
        )
        layer.weight = w
        layer.bias = linear.bias
        return layer

    def delta_weight(self) -> Tensor:
        """``ΔW = (α / r) · B A``, shape ``(out, in)``, in float32."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.merged:  # ΔW is inside W already
            return y
        a, b = self.lora_A, self.lora_B
        if not torch.is_autocast_enabled(x.device.type):
            a, b = a.to(x.dtype), b.to(x.dtype)
        return y + F.linear(F.linear(self.lora_dropout(x), a), b) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """``W ← W + ΔW``; forward then skips the low-rank path. Calling it twice changes nothing."""
        if not self.merged:
            self.weight.add_(self.delta_weight().to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """``W ← W - ΔW`` (undo :meth:`merge`, e.g. to train further); a no-op when not merged."""
        if self.merged:
            self.weight.sub_(self.delta_weight().to(self.weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r={self.r}, alpha={self.alpha:g}, merged={self.merged}"


def _matches(name: str, patterns: Sequence[str]) -> bool:
    """``name`` (``layers.3.self_attn.q_proj``) matches a pattern by its last part (``q_proj``) or in full
    (``layers.*.self_attn.q_proj``), with shell wildcards."""
    last = name.rsplit(".", 1)[-1]
    return any(fnmatch.fnmatchcase(last, p) or fnmatch.fnmatchcase(name, p) for p in patterns)


def inject_lora(
    model: nn.Module,
    targets: Sequence[str] = ("q_proj", "v_proj"),
    *,
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    freeze: bool = True,
) -> list[str]:
    """Replace every ``nn.Linear`` whose name matches one of ``targets`` by a :class:`LoRALinear`.

    ``targets`` are shell patterns matched against a module's last name (``"q_proj"``, ``"*_proj"``) or
    its full dotted name (``"layers.2[0-9].*"``). With ``freeze`` (default) everything except the LoRA
    matrices is frozen (:func:`mark_only_lora_trainable`). Returns the replaced modules' names; a
    pattern that matches nothing is an error (a typo would otherwise train nothing).
    """
    if isinstance(targets, str):
        targets = (targets,)
    chosen = [
        (name, m)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and not isinstance(m, LoRALinear) and _matches(name, targets)
    ]
    if not chosen:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ValueError(f"no nn.Linear matches {list(targets)}; the model's linear layers are named {linears}")
    embedding = getattr(getattr(model, "embed_tokens", None), "weight", None)
    for name, linear in chosen:
        if linear.weight is embedding:
            raise ValueError(
                f"{name} shares its weight with the token embeddings: merging LoRA into it would "
                "change both; leave it out of the targets"
            )
    for name, linear in chosen:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear.from_linear(linear, r=r, alpha=alpha, dropout=dropout))
    if freeze:
        mark_only_lora_trainable(model)
    return [name for name, _ in chosen]


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def lora_parameter_names(model: nn.Module) -> set[str]:
    """The LoRA matrices of ``model`` by name (``...lora_A``, ``...lora_B``): what trains and what is saved."""
    return {n for n, _ in model.named_parameters(remove_duplicate=False) if n.rsplit(".", 1)[-1] in LORA_NAMES}


def mark_only_lora_trainable(model: nn.Module) -> None:
    """``requires_grad`` off everywhere except the LoRA matrices (:func:`lora_parameter_names`)."""
    if not lora_layers(model):
        raise ValueError("the model has no LoRALinear layers: call inject_lora first")
    train_only(model, lora_parameter_names(model))


def merge_lora(model: nn.Module) -> int:
    """Merge every :class:`LoRALinear` of ``model``; returns how many layers were merged."""
    layers = lora_layers(model)
    for layer in layers:
        layer.merge()
    return len(layers)


def unmerge_lora(model: nn.Module) -> int:
    """Unmerge every :class:`LoRALinear` of ``model``; returns how many layers were unmerged."""
    layers = lora_layers(model)
    for layer in layers:
        layer.unmerge()
    return len(layers)


def lora_state_dict(model: nn.Module) -> dict[str, Tensor]:
    """Only the LoRA tensors (:func:`lora_parameter_names`), by their names in ``model``."""
    return state_dict_of(model, lora_parameter_names(model))


def save_lora(model: nn.Module, path: str | os.PathLike[str], metadata: dict[str, str] | None = None) -> int:
    """Write only the adapter weights to a safetensors file; returns its size in bytes.

    Refuses a merged model: its LoRA tensors are also inside ``W``, and loading them into an unmerged
    base would be fine, but into a merged one would apply them twice.
    """
    from safetensors.torch import save_file

    if any(layer.merged for layer in lora_layers(model)):
        raise ValueError("unmerge the model before saving its LoRA weights (merged layers hold ΔW inside W)")
    tensors = {k: v.detach().contiguous().cpu() for k, v in lora_state_dict(model).items()}
    if not tensors:
        raise ValueError("the model has no LoRA weights to save: call inject_lora first")
    save_file(tensors, os.fspath(path), metadata=metadata)
    return os.path.getsize(path)


def load_lora(model: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load adapter weights saved by :func:`save_lora` into a model with the same LoRA layers.

    Every LoRA tensor of the model must be in the file and vice versa, with equal shapes.
    """
    from safetensors.torch import load_file

    saved = load_file(os.fspath(path))
    own = lora_state_dict(model)
    missing, unexpected = sorted(set(own) - set(saved)), sorted(set(saved) - set(own))
    if missing or unexpected:
        raise KeyError(
            f"LoRA weights do not fit this model: missing {missing[:4]}, unexpected {unexpected[:4]} "
            "(inject LoRA with the same targets first)"
        )
    for k, v in saved.items():
        if v.shape != own[k].shape:
            raise ValueError(
                f"{k}: the file has shape {tuple(v.shape)}, the model {tuple(own[k].shape)} (a different rank?)"
            )
    if any(layer.merged for layer in lora_layers(model)):
        raise ValueError("unmerge the model before loading LoRA weights into it")
    model.load_state_dict(saved, strict=False)
    return sorted(saved)


@dataclass
class ParameterReport:
    """Trainable and total parameter counts (shared tensors counted once)."""

    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({self.percent:.3f}%)"


def parameter_report(model: nn.Module | Iterable[nn.Parameter]) -> ParameterReport:
    """How many parameters train, of how many (``model.parameters()`` already skips tied duplicates)."""
    params = list(model.parameters()) if isinstance(model, nn.Module) else list(model)
    return ParameterReport(
        trainable=sum(p.numel() for p in params if p.requires_grad), total=sum(p.numel() for p in params)
    )
