"""Unit 03, Backpropagation and autograd: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class Unit03(Settings):
    """The settings of unit 03."""

    epochs: int = doc("full-batch gradient-descent epochs of the logistic regression")
    batch_size: int = doc("examples per minibatch in the full-batch, minibatch and single-example comparison")
    sgd_epochs: int = doc("epochs of each run in that comparison (the same for all three)")


SMOKE = Unit03(
    epochs=200,
    batch_size=32,
    sgd_epochs=10,
)

FULL = Unit03(
    epochs=2000,
    batch_size=32,
    sgd_epochs=100,
)
