"""Unit 02, Tensors: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class Unit02(Settings):
    """The settings of unit 02."""

    n_timing: int = doc("length of the random vectors timed, loop against vectorised code")
    fmnist_train: int | None = doc("Fashion-MNIST training images used (None: all 60,000)")
    fmnist_test: int | None = doc("Fashion-MNIST test images used (None: all 10,000)")
    epochs: int = doc("passes of the ten one-vs-rest perceptrons over the training images")


SMOKE = Unit02(
    n_timing=20000,
    fmnist_train=1000,
    fmnist_test=1000,
    epochs=3,
)

FULL = Unit02(
    n_timing=1000000,
    fmnist_train=None,
    fmnist_test=None,
    epochs=10,
)
