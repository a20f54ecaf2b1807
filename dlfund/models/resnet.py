"""Residual blocks and a small ResNet for 28×28 images (unit 7, notebook 04).

A residual block computes ``relu(x + F(x))``: the layers learn a *correction* ``F`` to their input
instead of a whole new representation, and the gradient has a direct path back through the ``+``.
That is what lets deep networks train. When a block changes the number of channels or halves the
resolution, the shortcut becomes a 1×1 convolution (with the same stride) so that the sum has
matching shapes.

>>> model = ResNet(widths=(16, 32, 64))
>>> model(torch.zeros(8, 1, 28, 28)).shape, model.features(torch.zeros(8, 1, 28, 28)).shape
(torch.Size([8, 10]), torch.Size([8, 64]))
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ResidualBlock", "ResNet"]


class ResidualBlock(nn.Module):
    """The basic ResNet block: ``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

    Args:
        in_channels, out_channels: C_in and C_out.
        stride: 2 halves H and W (in the first convolution and in the shortcut), 1 keeps them.

    Shapes: ``(N, C_in, H, W) -> (N, C_out, ceil(H / stride), ceil(W / stride))``.
    The shortcut is the identity when the shapes already match, else ``1×1 conv (stride) → BatchNorm``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small ResNet: a 3×3 stem, one stage of residual blocks per width, global pooling, a linear head.

    ::

        (N, C, 28, 28) -> stem conv-bn-relu (widths[0])            -> (N, w0, 28, 28)
                       -> stage 0: blocks_per_stage blocks, stride 1 -> (N, w0, 28, 28)
                       -> stage i > 0: first block stride 2        -> (N, wi, 28 / 2^i, 28 / 2^i)
                       -> global average pool -> features (N, widths[-1]) -> head -> (N, num_classes)

    Args:
        in_channels: C of the input images.
        num_classes: outputs of :attr:`head`.
        widths: channels of each stage; each stage after the first halves the resolution.
        blocks_per_stage: residual blocks in each stage.

    Attributes:
        head: the final ``nn.Linear(widths[-1], num_classes)`` (replace it for transfer learning).
        num_features: F = ``widths[-1]``.

    The last BatchNorm of every block starts with weight 0, so every block starts as the identity
    (its shortcut); this "zero-init residual" trick makes the first steps of training calmer.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: Sequence[int] = (32, 64, 128),
        blocks_per_stage: int = 1,
    ) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"widths must be a non-empty sequence of positive ints, got {widths!r}")
        if blocks_per_stage < 1:
            raise ValueError(f"blocks_per_stage must be >= 1, got {blocks_per_stage!r}")
        self.widths, self.num_features = widths, widths[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(inplace=True),
        )
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, width in enumerate(widths):
            for j in range(blocks_per_stage):
                blocks.append(ResidualBlock(c_in, width, stride=2 if i > 0 and j == 0 else 1))
                c_in = width
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(self.num_features, num_classes)
        for module in self.modules():
            if isinstance(module, ResidualBlock):
                nn.init.zeros_(module.bn2.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation before the head: ``(N, C, H, W) -> (N, widths[-1])``."""
        return self.pool(self.stages(self.stem(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        return self.head(self.features(x))
