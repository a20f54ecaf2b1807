"""Unit 05, Organising training with Lightning: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class Unit05(Settings):
    """The settings of unit 05."""

    n_train: int | None = doc("training images, drawn by class from those not held out for validation (None: all)")
    n_val: int = doc("Fashion-MNIST training images held out, by class, for validation")
    n_test: int | None = doc("Fashion-MNIST test images, drawn by class (None: all 10,000)")
    batch_size: int = doc("images per training batch")
    epochs: int = doc("passes over the training images in notebooks 01, 02, 03 and 05")
    repro_epochs: int = doc("epochs of each seeded run in the reproducibility check (notebook 04)")
    reg_epochs: int = doc("epochs of the Lightning regressor on the diabetes data (exercise 1)")
    target_acc: float = doc("validation accuracy at which the custom callback stops training (exercise 2)")
    max_epochs: int = doc("most epochs when a callback may stop training sooner (notebook 04, exercise 2)")
    fabric_epochs: int = doc("epochs of the plain, the Fabric and the resumed runs in notebook 06")
    fabric_stop_epoch: int = doc("epochs after which notebook 06's interrupted run stops and resumes")
    fabric_ddp_steps: int = doc("optimizer steps of the two-process DDP and FSDP runs in notebook 06")
    accum_k: int = doc("micro-batches per optimizer step in exercise 4 (each a batch_size / accum_k share of a batch)")
    accum_epochs: int = doc("passes over the training images in exercise 4")


SMOKE = Unit05(
    n_train=2000,
    n_val=500,
    n_test=1000,
    batch_size=128,
    epochs=3,
    repro_epochs=2,
    reg_epochs=60,
    target_acc=0.75,
    max_epochs=6,
    fabric_epochs=3,
    fabric_stop_epoch=1,
    fabric_ddp_steps=4,
    accum_k=4,
    accum_epochs=1,
)

FULL = Unit05(
    n_train=None,
    n_val=5000,
    n_test=None,
    batch_size=128,
    epochs=15,
    repro_epochs=2,
    reg_epochs=200,
    target_acc=0.88,
    max_epochs=30,
    fabric_epochs=4,
    fabric_stop_epoch=2,
    fabric_ddp_steps=8,
    accum_k=4,
    accum_epochs=2,
)
