"""LightningModules of the course: the training loop of unit 4, organised by Lightning.

:class:`LitClassifier` wraps any classifier ``nn.Module`` (inputs ``(N, ...)`` → logits ``(N, C)``)
and supplies what :func:`dlfund.train.loops.fit` did by hand: the loss (cross-entropy), the metric
(torchmetrics' multiclass accuracy), the optimizer (Adam) and the logging. The ``Trainer`` runs the
loop, moves batches to the device, switches train/eval mode and gradients on and off, and calls the
hooks of callbacks and loggers.

>>> import lightning as L
>>> from dlfund.models.mlp import MLP
>>> lit = LitClassifier(MLP(784, [256, 128], 10), num_classes=10, lr=1e-3)
>>> trainer = L.Trainer(max_epochs=15, default_root_dir=cfg.run_dir)     # doctest: +SKIP
>>> trainer.fit(lit, datamodule=dm)                                         # doctest: +SKIP

The wrapped network is *not* stored among the hyperparameters (it is a module, not a setting), so a
checkpoint is reloaded by passing a freshly built network of the same shape:

>>> lit = LitClassifier.load_from_checkpoint(path, model=MLP(784, [256, 128], 10))   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

__all__ = ["LitClassifier"]

Batch = tuple[torch.Tensor, torch.Tensor]


class LitClassifier(L.LightningModule):
    """A classifier trained with cross-entropy and Adam, logging loss and accuracy for each stage.

    Args:
        model: the network, ``(N, ...)`` inputs → ``(N, num_classes)`` logits.
        num_classes: C, the number of classes (for the accuracy metrics).
        lr: Adam's learning rate.

    Logged once per epoch (averaged over the epoch's batches, weighted by batch size):
    ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``, ``test_loss``, ``test_acc``. Accuracy
    is the share of examples whose largest logit is the target class (micro-averaged).
    ``predict_step`` returns class probabilities ``(N, C)``; a batch may be ``(inputs, targets)`` or
    just ``inputs``.

    Reload a checkpoint with ``LitClassifier.load_from_checkpoint(path, model=<same architecture>)``:
    ``num_classes`` and ``lr`` come from the checkpoint's saved hyperparameters, the weights from its
    state dict.
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float = 1e-3) -> None:
        super().__init__()
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if not lr > 0:
            raise ValueError(f"lr must be positive, got {lr!r}")
        self.model = model
        # Saves num_classes and lr into self.hparams and into every checkpoint; the model is a module,
        # not a setting, so it is left out (and must be passed again to load_from_checkpoint).
        self.save_hyperparameters(ignore=["model"])
        # One metric object per stage: each accumulates its own counts over an epoch. average="micro"
        # is the plain share of correct predictions (unit 4's hand count); torchmetrics' default,
        # "macro", would average the per-class accuracies instead.
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (N, ...)`` → logits ``(N, C)``."""
        return self.model(x)

    def _shared_step(self, batch: Batch, stage: str) -> torch.Tensor:
        inputs, targets = batch
        logits = self(inputs)
        loss = F.cross_entropy(logits, targets)
        metric: MulticlassAccuracy = getattr(self, f"{stage}_acc")
        metric(logits, targets)  # updates the metric's running counts for this epoch
        # Logging the metric object (not a number) lets Lightning compute and reset it at epoch end.
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=stage != "train")
        self.log(f"{stage}_acc", metric, on_step=False, on_epoch=True, prog_bar=stage != "train")
        return loss

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch: Batch | torch.Tensor, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
        """Class probabilities ``(N, C)`` (softmax of the logits) for the inputs of ``batch``."""
        inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
        return torch.softmax(self(inputs), dim=1)

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
