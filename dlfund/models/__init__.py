"""The course's models, one module per family; each is introduced step by step in a unit first."""

from __future__ import annotations

from dlfund.models.cnn import SmallCNN, conv2d_unfold
from dlfund.models.perceptron import History, Perceptron
from dlfund.models.resnet import ResidualBlock, ResNet

__all__ = ["History", "Perceptron", "SmallCNN", "conv2d_unfold", "ResidualBlock", "ResNet"]
