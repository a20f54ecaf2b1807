"""Training code shared by the units: the plain PyTorch loop of unit 4 (:mod:`dlfund.train.loops`)."""

from __future__ import annotations

from .loops import History, evaluate, fit, train_epoch

__all__ = ["History", "evaluate", "fit", "train_epoch"]
