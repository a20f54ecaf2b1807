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
class BatchStudy(Settings):
    """The batch-size study of notebook 07 and the noise-scale measurement of exercise 4."""

    n_train: int | None = doc("training images of the study, drawn by class (None: all not held out)")
    n_val: int = doc("Fashion-MNIST training images held out, by class, for validation in the study")
    hidden: int = doc("width of the MLP's one hidden layer")
    epochs: int = doc("epochs of every run: the same number of examples seen at every batch size")
    batch_sizes: tuple[int, ...] = doc("batch sizes compared; the first is the reference the rules scale from")
    base_lr: float = doc("learning rate at the reference (smallest) batch size, for SGD with momentum 0.9")
    warmup: float = doc("share of the steps spent on the linear warm-up, in the runs with warm-up")
    seeds: tuple[int, ...] = doc("seeds of each setting (weights and shuffling); their spread is shown")
    noise_points: tuple[int, ...] = doc("training steps after which exercise 4 measures the noise scale")
    noise_batches: tuple[int, int] = doc("the small and the big batch size of the noise-scale estimate")
    noise_repeats: int = doc("independent pairs of batches averaged at each point of the noise-scale estimate")


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
    batch_study: BatchStudy = doc("The batch-size study of notebook 07 and the noise scale of exercise 4.")


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
    batch_study=BatchStudy(
        n_train=2000,
        n_val=1000,
        hidden=128,
        epochs=1,
        batch_sizes=(16, 64, 256),
        base_lr=0.02,
        warmup=0.1,
        seeds=(0,),
        noise_points=(0, 30, 150),
        noise_batches=(16, 256),
        noise_repeats=10,
    ),
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
    batch_study=BatchStudy(
        n_train=None,
        n_val=5000,
        hidden=256,
        epochs=5,
        batch_sizes=(16, 32, 64, 128, 256, 512, 1024),
        base_lr=0.02,
        warmup=0.1,
        seeds=(0, 1, 2),
        noise_points=(0, 100, 1000, 5000),
        noise_batches=(32, 1024),
        noise_repeats=20,
    ),
)
