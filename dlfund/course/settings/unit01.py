"""Unit 01, Machine learning and the perceptron: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class Unit01(Settings):
    """The settings of unit 01."""

    fmnist_train: int | None = doc("training images of the two classes used (None: all 12,000)")
    fmnist_test: int | None = doc("test images of the two classes used (None: all 2,000)")
    epochs: int = doc("passes over the training images (fewer in notebook 03 once an epoch makes no mistake)")


SMOKE = Unit01(
    fmnist_train=1000,
    fmnist_test=500,
    epochs=5,
)

FULL = Unit01(
    fmnist_train=None,
    fmnist_test=None,
    epochs=20,
)
