"""dlfund.train.recipe: RecipeClassifier's optimizers and schedules, and the EpochHistory callback."""

from __future__ import annotations

import doctest
import warnings

import lightning as L
import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR, ReduceLROnPlateau, StepLR
from torch.utils.data import DataLoader, TensorDataset

from dlfund.models.mlp import MLP
from dlfund.train import recipe
from dlfund.train.recipe import EpochHistory, RecipeClassifier


def loaders() -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(96, 5, generator=gen)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x[:64], y[:64]), batch_size=16), DataLoader(
        TensorDataset(x[64:], y[64:]), batch_size=32
    )


def fit(lit: RecipeClassifier, epochs: int = 3) -> tuple[L.Trainer, EpochHistory]:
    history = EpochHistory()
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[history],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(lit, *loaders())
    return trainer, history


@pytest.mark.parametrize(
    ("scheduler", "kind", "interval"),
    [("step", StepLR, "epoch"), ("plateau", ReduceLROnPlateau, "epoch"), ("cosine", LambdaLR, "step")],
)
def test_schedulers_are_configured_and_stepped(scheduler: str, kind: type, interval: str) -> None:
    torch.manual_seed(0)
    lit = RecipeClassifier(
        MLP(5, [8], 2, batchnorm=True),
        num_classes=2,
        lr=0.01,
        optimizer="adamw",
        weight_decay=0.1,
        scheduler=scheduler,
        step_size=1,
        gamma=0.5,
        patience=0,
        warmup_ratio=0.25,
    )
    trainer, history = fit(lit)
    config = trainer.lr_scheduler_configs[0]
    assert isinstance(config.scheduler, kind) and config.interval == interval
    opt = trainer.optimizers[0]
    assert isinstance(opt, torch.optim.AdamW) and [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    if scheduler == "step":
        assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**3)
    if scheduler == "cosine":
        assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # 12 steps: the floor at the end
    assert len(history) == 3 and history["train_loss"][-1] < history["train_loss"][0]
    assert set(history.rows[0]) >= {"epoch", "train_loss", "train_acc", "val_loss", "val_acc"}


def test_plain_optimizers_and_hparams() -> None:
    for name, cls in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)):
        lit = RecipeClassifier(MLP(5, [4], 2), num_classes=2, optimizer=name, scheduler="none")
        trainer, _ = fit(lit, epochs=1)
        assert type(trainer.optimizers[0]) is cls and not trainer.lr_scheduler_configs
        assert lit.hparams.optimizer == name and "model" not in lit.hparams


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"optimizer": "rmsprop"}, "optimizer must be one of sgd, adam, adamw"),
        ({"scheduler": "linear"}, "scheduler must be one of none, step, plateau, cosine"),
        ({"warmup_ratio": 1.0}, r"warmup_ratio must be in \[0, 1\)"),
    ],
)
def test_bad_settings(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RecipeClassifier(MLP(5, [4], 2), num_classes=2, **kwargs)


def test_doctest() -> None:
    assert doctest.testmod(recipe, raise_on_error=True).failed == 0
