"""dlfund.models.cnn and dlfund.models.resnet: convolution by unfold vs F.conv2d, the models' shapes,
parameter counts and gradients, and parity with the versions unit 7's notebooks build step by step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models.cnn import SmallCNN, conv2d_unfold, conv_output_size
from dlfund.models.resnet import ResidualBlock, ResNet

UNIT = manifest.get_unit(7)


@pytest.mark.parametrize(
    ("shape", "kernel", "stride", "padding", "bias"),
    [
        ((2, 3, 8, 8), (4, 3, 3, 3), 1, 0, False),
        ((2, 3, 8, 8), (4, 3, 3, 3), 1, 1, True),
        ((1, 2, 9, 7), (5, 2, 3, 2), 2, 1, True),
        ((3, 1, 10, 11), (2, 1, 5, 5), 3, 2, False),
        ((2, 4, 6, 5), (3, 4, 1, 1), (2, 1), (0, 1), True),
        ((1, 1, 4, 4), (1, 1, 4, 4), 1, 0, True),
    ],
)
def test_conv2d_unfold_matches_conv2d_values_and_gradients(shape, kernel, stride, padding, bias) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(*kernel, generator=gen, dtype=torch.float64, requires_grad=True)
    b = torch.randn(kernel[0], generator=gen, dtype=torch.float64, requires_grad=True) if bias else None
    found = conv2d_unfold(x, w, b, stride=stride, padding=padding)
    expected = F.conv2d(x, w, b, stride=stride, padding=padding)
    assert found.shape == expected.shape
    torch.testing.assert_close(found, expected)
    grad_out = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
    inputs = [t for t in (x, w, b) if t is not None]
    for g, r in zip(torch.autograd.grad(found, inputs, grad_out), torch.autograd.grad(expected, inputs, grad_out)):
        torch.testing.assert_close(g, r)


def test_conv2d_unfold_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match=r"weight expects 2 input channels but x has 3"):
        conv2d_unfold(torch.zeros(1, 3, 5, 5), torch.zeros(4, 2, 3, 3))
    with pytest.raises(ValueError, match=r"expected x \(N, C_in, H, W\)"):
        conv2d_unfold(torch.zeros(3, 5, 5), torch.zeros(4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        conv2d_unfold(torch.zeros(1, 3, 5, 5), torch.zeros(4, 3, 3, 3), torch.zeros(3))
    with pytest.raises(ValueError, match="does not fit"):
        conv2d_unfold(torch.zeros(1, 3, 2, 2), torch.zeros(4, 3, 3, 3))
    with pytest.raises(TypeError, match="stride must be an int or a pair"):
        conv2d_unfold(torch.zeros(1, 3, 5, 5), torch.zeros(4, 3, 3, 3), stride=1.5)  # type: ignore[arg-type]
    assert conv_output_size(28, 3, 2, 1) == 14


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_small_cnn_shapes_parameters_and_gradients() -> None:
    torch.manual_seed(0)
    model = SmallCNN(width=8, dropout=0.1)
    x = torch.randn(4, 1, 28, 28)
    assert model.features(x).shape == (4, 32) and model.num_features == 32
    logits = model(x)
    assert logits.shape == (4, 10)
    # conv weights (no bias, BN has one) + BN (2 per channel) per layer, then the head
    convs = [(1, 8), (8, 8), (8, 16), (16, 16), (16, 32)]
    expected = sum(9 * a * b + 2 * b for a, b in convs) + 32 * 10 + 10
    assert _params(model) == expected
    F.cross_entropy(logits, torch.arange(4)).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert SmallCNN(in_channels=3, num_classes=5)(torch.randn(2, 3, 16, 20)).shape == (2, 5)
    assert isinstance(model.head, nn.Linear)
    with pytest.raises(ValueError, match="dropout"):
        SmallCNN(dropout=1.0)


def test_residual_block_shapes_and_shortcut() -> None:
    same = ResidualBlock(8, 8)
    assert isinstance(same.shortcut, nn.Identity)
    assert same(torch.randn(2, 8, 14, 14)).shape == (2, 8, 14, 14)
    down = ResidualBlock(8, 16, stride=2)
    assert down(torch.randn(2, 8, 7, 7)).shape == (2, 16, 4, 4)
    with pytest.raises(ValueError, match="stride must be 1 or 2"):
        ResidualBlock(8, 8, stride=3)


def test_resnet_shapes_parameters_zero_init_and_gradients() -> None:
    torch.manual_seed(0)
    model = ResNet(widths=(8, 16, 32), blocks_per_stage=2)
    x = torch.randn(3, 1, 28, 28)
    assert model.features(x).shape == (3, 32) and model(x).shape == (3, 10)
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 6 and all(torch.all(b.bn2.weight == 0) for b in blocks)

    def block_params(a: int, b: int, stride: int) -> int:
        n = 9 * a * b + 9 * b * b + 4 * b
        return n + (a * b + 2 * b if stride != 1 or a != b else 0)

    expected = (9 * 8 + 16) + sum(
        block_params(a, b, s) for a, b, s in [(8, 8, 1), (8, 8, 1), (8, 16, 2), (16, 16, 1), (16, 32, 2), (32, 32, 1)]
    )
    assert _params(model) == expected + 32 * 10 + 10
    F.cross_entropy(model(x), torch.arange(3)).backward()
    # at zero init the second conv of each block gets no gradient through bn2 (weight 0) but bn2 itself does
    assert all(p.grad is not None for p in model.parameters())
    assert all(b.bn2.weight.grad.abs().sum() > 0 for b in blocks)
    assert model.head.weight.grad.abs().sum() > 0 and model.stem[0].weight.grad.abs().sum() > 0


def test_conv_notebook_matches_library() -> None:
    """Notebook 02 builds convolution with loops (the general unfold version is exercise 3): it equals the library's."""
    found = definitions(UNIT.notebook_path("02-convolution-by-hand"), names=("conv2d_loops",))
    gen = torch.Generator().manual_seed(1)
    x, w, b = (
        torch.randn(2, 2, 7, 6, generator=gen),
        torch.randn(3, 2, 3, 3, generator=gen),
        torch.randn(3, generator=gen),
    )
    expected = conv2d_unfold(x, w, b, stride=2, padding=1)
    torch.testing.assert_close(found["conv2d_loops"](x, w, b, stride=2, padding=1), expected, atol=1e-5, rtol=1e-5)


def test_residual_block_notebook_matches_library() -> None:
    """Notebook 04 writes the residual block step by step; with the same weights it equals the library's."""
    Block = definitions(UNIT.notebook_path("04-resnet-and-augmentation"), names=("ResidualBlock",))["ResidualBlock"]
    for c_in, c_out, stride in [(8, 8, 1), (8, 16, 2)]:
        torch.manual_seed(0)
        mine, lib = Block(c_in, c_out, stride), ResidualBlock(c_in, c_out, stride)
        lib.load_state_dict(mine.state_dict())
        x = torch.randn(2, c_in, 10, 10)
        mine.train(), lib.train()
        torch.testing.assert_close(mine(x), lib(x))
