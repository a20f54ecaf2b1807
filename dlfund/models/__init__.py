"""The course's models, one module per family; each is introduced step by step in a unit first."""

from __future__ import annotations

from .perceptron import History, Perceptron

__all__ = ["History", "Perceptron"]
