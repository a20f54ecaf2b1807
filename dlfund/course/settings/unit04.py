"""Unit 04, Multilayer networks: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class DepthWidthStudy(Settings):
    """The depth and width study of exercise 1."""

    train: int = doc("Fashion-MNIST training images each network learns from")
    epochs: int = doc("passes over those images for each network")
    depths: tuple[int, ...] = doc("numbers of hidden layers compared")
    widths: tuple[int, ...] = doc("hidden-layer widths compared (units per layer)")


@dataclass(frozen=True)
class Unit04(Settings):
    """The settings of unit 04."""

    fmnist_train: int | None = doc("Fashion-MNIST training images used (None: all 60,000)")
    fmnist_test: int | None = doc("Fashion-MNIST test images used (None: all 10,000)")
    batch_size: int = doc("examples per minibatch in training")
    epochs: int = doc("epochs of the MLP on Fashion-MNIST (notebook 05)")
    mnist_epochs: int = doc("epochs of the MLP and the linear model on the MNIST digits (notebook 05)")
    softmax_epochs: int = doc("epochs of softmax regression on Fashion-MNIST (notebook 01)")
    init_epochs: int = doc("epochs of each network in the initialisation experiments (notebook 03)")
    reg_epochs: int = doc("epochs of the regression MLP on the diabetes data (notebook 06)")
    study: DepthWidthStudy = doc("The depth and width study of exercise 1.")


SMOKE = Unit04(
    fmnist_train=2000,
    fmnist_test=1000,
    batch_size=128,
    epochs=3,
    mnist_epochs=5,
    softmax_epochs=3,
    init_epochs=2,
    reg_epochs=100,
    study=DepthWidthStudy(train=2000, epochs=5, depths=(1, 2), widths=(16, 64)),
)

FULL = Unit04(
    fmnist_train=None,
    fmnist_test=None,
    batch_size=128,
    epochs=15,
    mnist_epochs=30,
    softmax_epochs=10,
    init_epochs=10,
    reg_epochs=300,
    study=DepthWidthStudy(train=10000, epochs=10, depths=(1, 2, 3, 4), widths=(16, 64, 256)),
)
