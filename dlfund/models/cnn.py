"""Convolution written with ``unfold`` + matrix multiplication, and the small CNN of unit 7.

A 2-D convolution slides a ``(C_in, kH, kW)`` filter over the image and takes a dot product at every
position. ``F.unfold`` cuts out every patch the filter would see and lays each one out as a column:

    x (N, C_in, H, W) --unfold--> cols (N, C_in·kH·kW, L)            L = H_out·W_out positions
    weight (C_out, C_in, kH, kW) --reshape--> (C_out, C_in·kH·kW)
    weight @ cols -> (N, C_out, L) --reshape--> (N, C_out, H_out, W_out)

so the whole convolution is one batched matrix multiplication (this is how many libraries compute
it). Unit 7, notebook 02 builds it with loops first; :func:`conv2d_unfold` is the vectorised version,
tested against ``F.conv2d`` (values and gradients).

>>> x, w = torch.randn(2, 3, 8, 8), torch.randn(4, 3, 3, 3)
>>> conv2d_unfold(x, w, stride=2, padding=1).shape
torch.Size([2, 4, 4, 4])
>>> torch.allclose(conv2d_unfold(x, w, padding=1), F.conv2d(x, w, padding=1), atol=1e-5)
True
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["conv2d_unfold", "conv_output_size", "SmallCNN"]

IntPair = int | tuple[int, int]


def _pair(value: IntPair, name: str) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if (
        isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return value[0], value[1]
    raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """The output length of a convolution along one axis: ``(size + 2·padding - kernel) // stride + 1``."""
    return (size + 2 * padding - kernel) // stride + 1


def conv2d_unfold(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: IntPair = 1, padding: IntPair = 0
) -> torch.Tensor:
    """A 2-D convolution (cross-correlation, as ``F.conv2d``) computed with ``F.unfold`` and a matmul.

    Args:
        x: ``(N, C_in, H, W)`` input.
        weight: ``(C_out, C_in, kH, kW)`` filters.
        bias: ``(C_out,)`` or ``None``.
        stride, padding: an int or an ``(along H, along W)`` pair; zero padding, as ``F.conv2d``.

    Returns:
        ``(N, C_out, H_out, W_out)`` with ``H_out = (H + 2·pH - kH) // sH + 1`` (likewise ``W_out``).
        Differentiable in ``x``, ``weight`` and ``bias`` (autograd goes through unfold and matmul).
    """
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(
            f"expected x (N, C_in, H, W) and weight (C_out, C_in, kH, kW), "
            f"got x {tuple(x.shape)} and weight {tuple(weight.shape)}"
        )
    n, c_in, h, w = x.shape
    c_out, c_w, kh, kw = weight.shape
    if c_w != c_in:
        raise ValueError(f"weight expects {c_w} input channels but x has {c_in}")
    if bias is not None and bias.shape != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")
    sh, sw = _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    h_out, w_out = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"a {kh}×{kw} kernel does not fit a {h}×{w} input with padding {(ph, pw)}")
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (N, C_in·kH·kW, L)
    out = weight.reshape(c_out, -1) @ cols  # (C_out, C_in·kH·kW) @ (N, C_in·kH·kW, L) -> (N, C_out, L)
    if bias is not None:
        out = out + bias.view(1, c_out, 1)
    return out.view(n, c_out, h_out, w_out)


def _conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3×3 convolution (no bias: the batch norm after it has one) → BatchNorm → ReLU; keeps H×W."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallCNN(nn.Module):
    """A small VGG-style CNN for 28×28 images: two conv stages with pooling, one more conv, global pooling.

    ::

        (N, C, 28, 28) -> [conv-bn-relu ×2, w]   -> maxpool -> (N, w, 14, 14)
                       -> [conv-bn-relu ×2, 2w]  -> maxpool -> (N, 2w, 7, 7)
                       -> conv-bn-relu, 4w -> global average pool -> features (N, 4w)
                       -> dropout -> head Linear(4w, num_classes) -> logits (N, num_classes)

    Args:
        in_channels: C of the input images (1 for greyscale).
        num_classes: the number of outputs of :attr:`head`.
        width: w, the channels of the first stage (the later stages have 2w and 4w).
        dropout: dropout probability before the head (0 = none).

    Attributes:
        head: the final ``nn.Linear(4w, num_classes)``; transfer learning replaces it and freezes the
            rest (:meth:`features` is everything before it).
        num_features: F = 4w, the size of :meth:`features`.

    Any input of at least 4×4 pixels works: global average pooling removes the spatial size.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        if width < 1 or in_channels < 1 or num_classes < 1:
            raise ValueError(
                f"in_channels, num_classes and width must be positive, got {in_channels}, {num_classes}, {width}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {dropout!r}")
        self.num_features = 4 * width
        self.body = nn.Sequential(
            _conv_bn_relu(in_channels, width),
            _conv_bn_relu(width, width),
            nn.MaxPool2d(2),
            _conv_bn_relu(width, 2 * width),
            _conv_bn_relu(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn_relu(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The representation before the head: ``(N, C, H, W) -> (N, 4·width)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for images ``(N, C, H, W)``."""
        return self.head(self.dropout(self.features(x)))
