"""Resumable training: a run killed part-way resumes from its last checkpoint and ends exactly like an
uninterrupted run; checkpoint writes are atomic; checkpoints load with ``weights_only=True``."""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from dlfund.models.mlp import MLP
from dlfund.train import checkpoint as ckpt_module
from dlfund.train.checkpoint import (
    AtomicCheckpointIO,
    StepSeed,
    epoch_shuffled_loader,
    step_seed,
)
from dlfund.train.recipe import RecipeClassifier

EPOCHS, KILL_AFTER = 5, 2


class Crash(RuntimeError):
    pass


class CrashAfterEpoch(L.Callback):
    """Simulates the process dying part-way through the epoch after ``epoch`` (0-based): the last
    checkpoint is the one written at the end of ``epoch``, and two training steps after it are lost."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        if trainer.current_epoch == self.epoch + 1 and batch_idx == 1:
            raise Crash(f"killed during epoch {self.epoch + 1}")


def data() -> tuple[TensorDataset, TensorDataset]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(192, 6, generator=gen)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()
    return TensorDataset(x[:128], y[:128]), TensorDataset(x[128:], y[128:])


def module() -> RecipeClassifier:
    torch.manual_seed(1)
    # dropout and batchnorm: randomness and running statistics must both be restored
    net = MLP(6, [16], 3, dropout=0.3, batchnorm=True)
    return RecipeClassifier(
        net, num_classes=3, lr=0.02, optimizer="adamw", weight_decay=0.05, scheduler="cosine", warmup_ratio=0.2
    )


def run(root: Path, *, crash_after: int | None = None, ckpt_path: str | None = None) -> tuple[dict, RecipeClassifier]:
    train, val = data()
    callbacks: list[L.Callback] = [ModelCheckpoint(dirpath=root / "checkpoints", save_last=True), StepSeed(seed=7)]
    if crash_after is not None:
        callbacks.append(CrashAfterEpoch(crash_after))
    trainer = L.Trainer(
        max_epochs=EPOCHS,
        default_root_dir=root,
        plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    lit = module()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few batches, no workers: Lightning's advice does not apply here
        trainer.fit(
            lit,
            epoch_shuffled_loader(train, batch_size=32, seed=3),
            DataLoader(val, batch_size=64),
            ckpt_path=ckpt_path,
        )
    return {k: float(v) for k, v in trainer.callback_metrics.items()}, lit


def test_killed_run_resumes_to_identical_metrics(tmp_path: Path) -> None:
    straight, straight_model = run(tmp_path / "straight")

    with pytest.raises(Crash):
        run(tmp_path / "crashed", crash_after=KILL_AFTER)
    last = tmp_path / "crashed" / "checkpoints" / "last.ckpt"
    assert last.exists()
    saved = torch.load(last, weights_only=True)  # a full Lightning checkpoint, loadable without unpickling code
    assert saved["epoch"] == KILL_AFTER and saved["lr_schedulers"] and saved["optimizer_states"]

    resumed, resumed_model = run(tmp_path / "crashed", ckpt_path="last")  # a fresh process would do the same

    assert set(resumed) == set(straight) >= {"train_loss", "val_loss", "val_acc"}
    assert resumed == straight  # identical, not merely close
    for a, b in zip(straight_model.state_dict().values(), resumed_model.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.load(last, weights_only=True)["epoch"] == EPOCHS - 1


def test_step_seed_reseeds_from_seed_and_step() -> None:
    seeded = StepSeed(seed=7)
    torch.manual_seed(step_seed(7, 5))
    a = torch.rand(3)
    torch.manual_seed(123)
    seeded.on_train_batch_start(type("T", (), {"global_step": 5})(), None, None, 0)  # type: ignore[arg-type]
    assert torch.equal(torch.rand(3), a)
    assert step_seed(7, 5) != step_seed(7, 6) and step_seed(7, 5) != step_seed(8, 5)


def test_epoch_shuffled_loader_depends_on_seed_and_epoch_only() -> None:
    train, _ = data()
    first = epoch_shuffled_loader(train, batch_size=128, seed=3)
    again = epoch_shuffled_loader(train, batch_size=128, seed=3)
    first.sampler.set_epoch(2)
    torch.rand(10)  # global RNG use does not matter
    again.sampler.set_epoch(2)
    assert torch.equal(next(iter(first))[1], next(iter(again))[1])
    again.sampler.set_epoch(1)
    assert not torch.equal(next(iter(first))[1], next(iter(again))[1])
    with pytest.raises(TypeError, match="chooses the shuffling itself"):
        epoch_shuffled_loader(train, batch_size=8, seed=0, shuffle=True)


def test_crash_during_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "ck" / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    real_save = torch.save

    def half_then_die(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(len(before) // 2)  # half a file on disk, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_module.torch, "save", half_then_die)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()

    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left behind
    loaded = io.load_checkpoint(path)
    assert loaded["epoch"] == 1 and torch.equal(loaded["w"], torch.ones(3))


def test_loads_are_weights_only_unless_asked(tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    path = tmp_path / "odd.ckpt"
    io.save_checkpoint({"hyper_parameters": {"where": Path("somewhere")}}, path)  # a Path is a general object
    with pytest.raises(Exception, match="[Ww]eights only load failed"):
        io.load_checkpoint(path)
    assert io.load_checkpoint(path, weights_only=False)["hyper_parameters"]["where"] == Path("somewhere")
    with pytest.raises(ValueError, match="local files only"):
        io.save_checkpoint({}, "s3://bucket/x.ckpt")
