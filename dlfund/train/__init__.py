"""Training code shared by the units: the plain PyTorch loop of unit 4 (:mod:`dlfund.train.loops`) and the
LightningModules of unit 5 on (:mod:`dlfund.train.lightning`)."""

from __future__ import annotations

from dlfund.train.loops import History, evaluate, fit, train_epoch
from dlfund.train.vision import (
    TensorBatches,
    VisionHistory,
    evaluate_accuracy,
    images_per_second,
    train_classifier,
)

__all__ = [
    "History",
    "evaluate",
    "fit",
    "train_epoch",
    "LitClassifier",
    "TensorBatches",
    "VisionHistory",
    "train_classifier",
    "evaluate_accuracy",
    "images_per_second",
]


def __getattr__(name: str) -> object:
    # Lightning is imported on first use: it takes seconds, and the plain loops do not need it.
    if name == "LitClassifier":
        from dlfund.train.lightning import LitClassifier

        return LitClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
