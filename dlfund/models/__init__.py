"""The course's models, one module per family; each is introduced step by step in a unit first."""

from __future__ import annotations

from .cnn import SmallCNN, conv2d_unfold
from .perceptron import History, Perceptron
from .resnet import ResidualBlock, ResNet

__all__ = ["History", "Perceptron", "SmallCNN", "conv2d_unfold", "ResidualBlock", "ResNet"]
