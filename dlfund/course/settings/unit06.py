"""Unit 06, The training craft: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class Sweep(Settings):
    """The small learning-rate and weight-decay sweep of notebook 05."""

    epochs: int = doc("epochs of each run in the sweep")
    lrs: tuple[float, ...] = doc("learning rates swept")
    wds: tuple[float, ...] = doc("weight-decay strengths swept (every pair with the learning rates is run)")


@dataclass(frozen=True)
class Unit06(Settings):
    """The settings of unit 06."""

    n_train: int | None = doc("training images, drawn by class from those not held out for validation (None: all)")
    n_val: int = doc("Fashion-MNIST training images held out, by class, for validation")
    n_test: int | None = doc("Fashion-MNIST test images, drawn by class (None: all 10,000)")
    batch_size: int = doc("images per training batch")
    ckpt_epochs: int = doc("epochs of the checkpointing and crash-and-resume runs (notebook 01)")
    max_epochs: int = doc("most epochs of the early-stopping run (notebook 01)")
    patience: int = doc("epochs without a lower validation loss before early stopping ends training")
    lr_find_steps: int = doc("training steps the learning-rate finder takes while raising the rate")
    compare_epochs: int = doc("epochs of each run compared in notebooks 02, 03 and 04")
    epochs: int = doc("epochs of the final recipe, trained through the Lightning CLI (notebook 05)")
    base_epochs: int = doc("epochs of the unit-4 baseline the final recipe is compared with (notebook 05)")
    overfit_steps: int = doc("training steps spent overfitting a single batch, the debugging check (notebook 06)")
    sweep: Sweep = doc("The small learning-rate and weight-decay sweep of notebook 05.")


SMOKE = Unit06(
    n_train=2000,
    n_val=500,
    n_test=1000,
    batch_size=128,
    ckpt_epochs=2,
    max_epochs=8,
    patience=2,
    lr_find_steps=40,
    compare_epochs=2,
    epochs=3,
    base_epochs=3,
    overfit_steps=60,
    sweep=Sweep(epochs=2, lrs=(0.002,), wds=(0.0, 0.05)),
)

FULL = Unit06(
    n_train=None,
    n_val=5000,
    n_test=None,
    batch_size=128,
    ckpt_epochs=10,
    max_epochs=40,
    patience=4,
    lr_find_steps=100,
    compare_epochs=15,
    epochs=20,
    base_epochs=15,
    overfit_steps=150,
    sweep=Sweep(epochs=8, lrs=(0.001, 0.002, 0.004), wds=(0.01, 0.1)),
)
