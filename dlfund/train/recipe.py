"""The training recipe of unit 6: :class:`LitClassifier` with a choice of optimizer and LR schedule.

Everything but the optimizer is unit 5's ``LitClassifier`` (cross-entropy, accuracy metrics,
logging); :class:`RecipeClassifier` only overrides ``configure_optimizers``. All its settings are
plain values, saved as hyperparameters (and so in every checkpoint), and can be set from a
LightningCLI YAML file.

>>> from dlfund.models.mlp import MLP
>>> lit = RecipeClassifier(MLP(784, [256, 128], 10, batchnorm=True, dropout=0.2), num_classes=10,
...                        lr=2e-3, optimizer="adamw", weight_decay=0.05, scheduler="cosine")
>>> lit.hparams.scheduler, lit.hparams.warmup_ratio
('cosine', 0.05)
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau, StepLR

from dlfund.train.lightning import LitClassifier
from dlfund.train.optim import OPTIMIZERS, make_optimizer
from dlfund.train.schedules import warmup_cosine_scheduler

__all__ = ["EpochHistory", "RecipeClassifier", "SCHEDULERS"]

SCHEDULERS = ("none", "step", "plateau", "cosine")


class RecipeClassifier(LitClassifier):
    """A classifier whose optimizer and learning-rate schedule are settings.

    Args:
        model, num_classes, lr: as for :class:`~dlfund.train.lightning.LitClassifier` (``lr`` is the
            base, i.e. peak, learning rate).
        optimizer: ``"sgd"`` (with ``momentum``), ``"adam"`` or ``"adamw"``
            (:func:`dlfund.train.optim.make_optimizer`); weight decay goes to weight matrices
            only, never to biases or norm parameters (:func:`dlfund.train.optim.param_groups`).
        weight_decay: decoupled for AdamW, L2 added to the gradient for SGD and Adam.
        scheduler: ``"none"`` (constant), ``"step"`` (``StepLR``: multiply by ``gamma`` every
            ``step_size`` epochs), ``"plateau"`` (``ReduceLROnPlateau`` on ``val_loss``: multiply by
            ``gamma`` after ``patience`` epochs without improvement), or ``"cosine"``
            (:func:`dlfund.train.schedules.warmup_cosine_scheduler`, stepped every optimizer step;
            the warmup is ``warmup_ratio`` of the run's steps, the floor ``min_lr_ratio``).
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        lr: float = 1e-3,
        optimizer: str = "adamw",
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        scheduler: str = "none",
        warmup_ratio: float = 0.05,
        min_lr_ratio: float = 0.0,
        step_size: int = 5,
        gamma: float = 0.1,
        patience: int = 2,
    ) -> None:
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
        if not 0.0 <= warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {warmup_ratio!r}")
        super().__init__(model, num_classes, lr)  # saves every argument above but `model` as hparams

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = make_optimizer(hp.optimizer, self.model, hp.lr, weight_decay=hp.weight_decay, momentum=hp.momentum)
        if hp.scheduler == "none":
            return opt
        if hp.scheduler == "step":
            return {
                "optimizer": opt,
                "lr_scheduler": {"scheduler": StepLR(opt, hp.step_size, hp.gamma), "interval": "epoch"},
            }
        if hp.scheduler == "plateau":
            sched = ReduceLROnPlateau(opt, mode="min", factor=hp.gamma, patience=hp.patience)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch", "monitor": "val_loss"}}
        total = int(self.trainer.estimated_stepping_batches)  # optimizer steps of the whole fit
        warmup = min(round(hp.warmup_ratio * total), total - 1)
        sched = warmup_cosine_scheduler(opt, warmup_steps=warmup, total_steps=total, min_lr_ratio=hp.min_lr_ratio)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class EpochHistory(L.Callback):
    """Keeps the epoch-level metrics of a fit (``train_loss``, ``val_acc``...), one row per epoch.

    >>> history = EpochHistory()
    >>> trainer = L.Trainer(callbacks=[history], ...)          # doctest: +SKIP
    >>> trainer.fit(lit, datamodule=dm)                         # doctest: +SKIP
    >>> history["val_acc"]                                      # one float per epoch   # doctest: +SKIP

    It reads ``trainer.callback_metrics`` at the end of each training epoch, after that epoch's
    validation: a metric not logged in some epoch is ``nan`` there.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row = {"epoch": float(trainer.current_epoch)}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1})
        self.rows.append(row)

    def __getitem__(self, key: str) -> list[float]:
        return [row.get(key, math.nan) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)
