"""The unit-07 checks (part 1) accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import unit07
from dlfund.data.augment import RandomCrop

# --- ex02: random crop with padding -------------------------------------------------------------


def crop_variant(*, pad: str = "right", offsets: str = "right", rng: str = "generator", inplace: bool = False):
    """A learner's MyRandomCrop with one typical mistake switched on."""

    class Variant:
        def __init__(self, padding, fill=0.0, generator=None):
            self.padding, self.fill, self.generator = padding, fill, generator
            self.fixed = torch.randint(0, 2 * padding + 1, (2,), generator=generator).tolist()

        def __call__(self, image):
            _, h, w = image.shape
            p = self.padding
            if inplace:
                image.mul_(1.0)
                image[0, 0, 0] += 0.5
            if pad == "none":  # crop without padding: smaller image
                dy, dx = torch.randint(0, 2 * p + 1, (2,), generator=self.generator).tolist()
                return image[:, dy // 2 : dy // 2 + h - 2 * p, dx // 2 : dx // 2 + w - 2 * p]
            value = 0.0 if pad == "zeros" else self.fill
            extra = 2 * p if pad == "double" else p
            padded = F.pad(image, (extra,) * 4, value=value)
            high = {"right": 2 * extra + 1, "exclusive": 2 * extra, "one way": extra + 1}.get(offsets, 2 * extra + 1)
            gen = self.generator if rng == "generator" else None
            if offsets == "fixed":
                dy, dx = self.fixed
            elif offsets == "one draw":  # the same random number for both axes
                dy = dx = int(torch.randint(0, high, (), generator=gen))
            elif offsets == "mirrored":  # dx follows from dy
                dy = int(torch.randint(0, high, (), generator=gen))
                dx = 2 * extra - dy
            else:
                dy, dx = torch.randint(0, high, (2,), generator=gen).tolist()
            return padded[:, dy : dy + h, dx : dx + w]

    Variant.__name__ = "MyRandomCrop"
    return Variant


@pytest.mark.parametrize("seed", [0, 1])
def test_augmentation_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit07.augmentation(solution(7, "ex02-augmentation", "MyRandomCrop"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ random crop")


def test_augmentation_accepts_reference_and_rejects_the_library() -> None:
    unit07.augmentation(crop_variant(), seed=3)
    rejects(unit07.augmentation, RandomCrop, match=r"library's own RandomCrop.*write yours")

    class Wrapped:
        def __init__(self, padding, fill=0.0, generator=None):
            self.crop = RandomCrop(padding, fill, generator=generator)

        def __call__(self, image):
            return self.crop(image)

    rejects(unit07.augmentation, Wrapped, match=r"library's own RandomCrop")
    rejects(unit07.augmentation, lambda *a, **k: RandomCrop(*a, **k), match=r"library's own RandomCrop")


def test_augmentation_rejects_stub() -> None:
    class Stub:
        def __init__(self, padding, fill=0.0, generator=None):
            pass

        def __call__(self, image):
            return stub()

    rejects(unit07.augmentation, Stub, match=r"Stub\(padding=\d.*is not implemented yet.*hint: write this function")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"pad": "none"},
            r"expected shape \(\d, \d+, 12\) \(the same as the input\), found .*pad first, then crop back",
        ),
        ({"pad": "zeros"}, r"padded with 0, but fill=-\d\.\d+ was asked for: pass value=self.fill to F.pad"),
        ({"pad": "double"}, r"shifted the image by more than padding=\d pixels"),
        ({"offsets": "exclusive"}, r"never took the value \d = 2·padding .*torch.randint\(low, high\) excludes high"),
        ({"offsets": "one way"}, r"only ever moved one way along dy"),
        (
            {"offsets": "fixed"},
            r"moved the image by the same offset .* on all 300 calls .*draw a new random offset in __call__",
        ),
        ({"rng": "global"}, r"generators seeded alike gave different outputs .*generator=self.generator"),
        ({"inplace": True}, r"(changed its input in place|is not a shifted copy)"),
    ],
)
def test_augmentation_rejects_typical_mistakes(kwargs: dict, match: str) -> None:
    message = rejects(unit07.augmentation, crop_variant(**kwargs), match=match)
    assert "seed 0" in message or "ImageDataset" in message or "in place" in message or "copy" in message


def test_augmentation_rejects_wrong_dtype_and_flip() -> None:
    class Double(crop_variant()):
        def __call__(self, image):
            return super().__call__(image).double()

    rejects(unit07.augmentation, Double, match=r"expected dtype torch.float32 \(the input's\), found torch.float64")

    class Flipping(crop_variant()):
        def __call__(self, image):
            return super().__call__(image).flip(-1)

    rejects(unit07.augmentation, Flipping, match="returned a flipped or transposed crop")


# --- ex03: convolution with unfold --------------------------------------------------------------


def conv_variant(mistake: str):
    """conv2d_unfold with one typical mistake."""

    def conv(x, weight, bias=None, stride=1, padding=0):
        n, c_in, h, w = x.shape
        c_out, _, kh, kw = weight.shape
        pad = 0 if mistake == "padding ignored" else padding
        step = 1 if mistake == "stride ignored" else stride
        h_out, w_out = (h + 2 * pad - kh) // step + 1, (w + 2 * pad - kw) // step + 1
        kernel = (kw, kh) if mistake == "kernel swapped" else (kh, kw)
        cols = F.unfold(x, kernel, padding=pad, stride=step)
        if mistake == "channels last weight":
            wm = weight.permute(0, 2, 3, 1).reshape(c_out, -1)
        elif mistake == "not transposed":
            wm = weight.reshape(-1, c_out).t()
        elif mistake == "flipped":
            wm = weight.flip(-1, -2).reshape(c_out, -1)
        else:
            wm = weight.reshape(c_out, -1)
        if mistake == "reshape without transpose":
            out = (cols.transpose(1, 2) @ wm.t()).reshape(n, c_out, h_out, w_out)
        else:
            out = wm @ cols
            if bias is not None and mistake != "bias missing":
                out = out + bias.view(1, -1, 1)
            out = out.reshape(n, c_out, w_out, h_out) if mistake == "hw swapped" else out.view(n, c_out, h_out, w_out)
        if mistake == "reshape without transpose" and bias is not None:
            out = out + bias.view(1, -1, 1, 1)
        if mistake == "detached":
            out = out.detach()
        if mistake == "builtin":
            out = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        return out

    return conv


def test_conv_unfold_accepts_solution(capsys: pytest.CaptureFixture[str]) -> None:
    fn = solution(7, "ex03-conv-unfold", "conv2d_unfold")
    for seed in (0, 1, 2):
        unit07.conv_unfold(fn, seed=seed)
    assert capsys.readouterr().out.startswith("✓ conv2d_unfold matches F.conv2d")


def test_conv_unfold_accepts_reference_variant_and_rejects_the_library() -> None:
    from dlfund.models.cnn import conv2d_unfold

    unit07.conv_unfold(conv_variant("right"), seed=6)
    rejects(unit07.conv_unfold, conv2d_unfold, match=r"library's own conv2d_unfold: write yours", seed=5)
    rejects(
        unit07.conv_unfold,
        lambda x, w, b=None, stride=1, padding=0: conv2d_unfold(x, w, b, stride, padding) + 0,
        match=r"library's own conv2d_unfold",
    )


def test_conv_unfold_rejects_stub() -> None:
    rejects(unit07.conv_unfold, stub, match=r"conv2d_unfold\(x .*is not implemented yet.*hint: write this function")


@pytest.mark.parametrize(
    ("mistake", "match"),
    [
        ("bias missing", r"values differ from F.conv2d's .*: the bias is missing; add bias.view\(1, C_out, 1\)"),
        ("padding ignored", r"expected shape .*: that is the shape without padding; pass padding=\d to F.unfold"),
        ("stride ignored", r"expected shape .*: that is the shape with stride 1; pass stride=\d to F.unfold"),
        ("channels last weight", r"the weight was flattened channels-last"),
        ("not transposed", r"the weight was reshaped to \(C_in·kH·kW, C_out\) and transposed"),
        ("flipped", r"the kernel is flipped: PyTorch's conv2d is a cross-correlation"),
        ("reshape without transpose", r"the product was \(N, L, C_out\) and was reshaped straight to"),
        ("detached", r"the output does not require grad"),
        ("builtin", r"conv2d_unfold called F.conv2d \(or nn.Conv2d\): write it with F.unfold"),
    ],
)
def test_conv_unfold_rejects_typical_mistakes(mistake: str, match: str) -> None:
    rejects(unit07.conv_unfold, conv_variant(mistake), match=match)


def test_conv_unfold_restores_conv2d_after_a_failure() -> None:
    rejects(unit07.conv_unfold, conv_variant("builtin"), match="called F.conv2d")
    assert torch.equal(F.conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3)), torch.full((1, 1, 1, 1), 9.0))


def test_conv_unfold_rejects_non_tensor() -> None:
    rejects(unit07.conv_unfold, lambda *a, **k: [1.0], match="should return a tensor, found list")


# --- named typical mistakes, each rejected on every seed ----------------------------------------

CROP_MISTAKES = {
    "no padding (smaller image)": ({"pad": "none"}, r"expected shape"),
    "padded with zeros, not fill": ({"pad": "zeros"}, r"padded with 0, but fill="),
    "padded twice as much": ({"pad": "double"}, r"more than padding="),
    "offset range excludes 2·padding": ({"offsets": "exclusive"}, r"never took the value \d = 2·padding"),
    "offsets only one way": ({"offsets": "one way"}, r"only ever moved one way"),
    "offset drawn once in __init__": ({"offsets": "fixed"}, r"same offset .* on all"),
    "global RNG instead of the generator": ({"rng": "global"}, r"generators seeded alike gave different outputs"),
    "input changed in place": ({"inplace": True}, r"(changed its input in place|is not a shifted copy)"),
    "one draw for both axes": ({"offsets": "one draw"}, r"one random draw was used for both axes"),
    "dx follows from dy": ({"offsets": "mirrored"}, r"not drawn independently"),
}


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("name", list(CROP_MISTAKES))
def test_crop_named_mistake_rejected(name: str, seed: int) -> None:
    kwargs, match = CROP_MISTAKES[name]
    rejects(unit07.augmentation, crop_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(100, 150))
@pytest.mark.parametrize("name", list(CROP_MISTAKES))
def test_crop_named_mistake_rejected_on_many_seeds(name: str, seed: int) -> None:
    kwargs, match = CROP_MISTAKES[name]
    rejects(unit07.augmentation, crop_variant(**kwargs), match=match, seed=seed)


CONV_MISTAKES = {
    "bias forgotten": ("bias missing", r"values differ from F.conv2d's .*: the bias is missing"),
    "padding not passed to unfold": ("padding ignored", r"that is the shape without padding; pass padding="),
    "stride not passed to unfold": ("stride ignored", r"that is the shape with stride 1; pass stride="),
    "weight flattened channels-last": ("channels last weight", r"the weight was flattened channels-last"),
    "weight reshaped (K, C_out) and transposed": ("not transposed", r"reshaped to \(C_in·kH·kW, C_out\)"),
    "kernel flipped (true convolution)": ("flipped", r"the kernel is flipped: PyTorch's conv2d is a cross-correlation"),
    "(N, L, C_out) reshaped without a transpose": ("reshape without transpose", r"the product was \(N, L, C_out\)"),
    "output detached": ("detached", r"the output does not require grad"),
    "F.conv2d called": ("builtin", r"called F.conv2d \(or nn.Conv2d\): write it with F.unfold"),
    "kernel passed to unfold as (kW, kH)": (
        "kernel swapped",
        r"takes the kernel as \(kH, kW\) = \(\d, \d\) \(height first\)",
    ),
    "H_out and W_out swapped": ("hw swapped", r"H_out and W_out are swapped"),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(CONV_MISTAKES))
def test_conv_named_mistake_rejected(name: str, seed: int) -> None:
    mistake, match = CONV_MISTAKES[name]
    rejects(unit07.conv_unfold, conv_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("name", list(CONV_MISTAKES))
def test_conv_named_mistake_rejected_on_every_seed(name: str) -> None:
    mistake, match = CONV_MISTAKES[name]
    for seed in range(50):
        rejects(unit07.conv_unfold, conv_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(200))
def test_unit07_solutions_pass_on_many_seeds(seed: int) -> None:
    unit07.augmentation(solution(7, "ex02-augmentation", "MyRandomCrop"), seed=seed)
    unit07.patch_embedding(solution(7, "ex01-patch-embedding", "MyPatchEmbedding"), seed=seed)
    unit07.conv_unfold(solution(7, "ex03-conv-unfold", "conv2d_unfold"), seed=seed)


# --- ex04: a depthwise-separable convolution ------------------------------------------------------


def separable_variant(
    *,
    groups: str = "in",
    pointwise_groups: bool = False,
    multiplier: bool = True,
    padding: bool = True,
    stride: bool = True,
    depthwise_bias: bool = False,
    bias_flag: bool = True,
    pointwise_kernel: int = 1,
    detach: bool = False,
):
    """A learner's DepthwiseSeparableConv2d with one typical mistake switched on."""

    class DepthwiseSeparableConv2d(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, multiplier=1, bias=True):
            super().__init__()
            maps = in_channels * (multiplier if use_multiplier else 1)
            self.depthwise = nn.Conv2d(
                in_channels,
                maps,
                kernel_size,
                stride=stride if use_stride else 1,
                padding=padding if use_padding else 0,
                groups=in_channels if groups == "in" else 1,
                bias=depthwise_bias,
            )
            self.pointwise = nn.Conv2d(
                maps,
                out_channels,
                pointwise_kernel,
                padding=pointwise_kernel // 2,
                groups=maps if pointwise_groups else 1,
                bias=bias if bias_flag else True,
            )

        def forward(self, x):
            out = self.pointwise(self.depthwise(x))
            return out.detach() if detach else out

    use_multiplier, use_padding, use_stride = multiplier, padding, stride
    return DepthwiseSeparableConv2d


def test_separable_accepts_solution(capsys: pytest.CaptureFixture[str]) -> None:
    cls = solution(7, "ex04-depthwise-separable", "DepthwiseSeparableConv2d")
    for seed in (0, 1, 2):
        unit07.depthwise_separable(cls, seed=seed)
    assert capsys.readouterr().out.startswith("✓ depthwise-separable convolution")


def test_separable_accepts_reference_variant() -> None:
    unit07.depthwise_separable(separable_variant(), seed=4)


def test_separable_rejects_stub() -> None:
    class Stub(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            stub()

    rejects(unit07.depthwise_separable, Stub, match=r"Stub\(in_channels=\d.*is not implemented yet.*hint: write")


def test_separable_rejects_a_full_convolution() -> None:
    class Full(nn.Module):
        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, multiplier=1, bias=True):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)

        def forward(self, x):
            return self.conv(x)

    rejects(unit07.depthwise_separable, Full, match=r"should hold its two layers as self.depthwise and self.pointwise")


SEPARABLE_MISTAKES = {
    "groups=1 on the depthwise layer": ({"groups": "one"}, r"groups=1 makes every depthwise filter see all"),
    "groups on the pointwise layer": ({"pointwise_groups": True}, r"the pointwise layer has groups"),
    "channel multiplier ignored": ({"multiplier": False}, r"makes in_channels maps, not in_channels · multiplier"),
    "padding forgotten": ({"padding": False}, r"that is the shape without padding; pass padding=\d"),
    "stride forgotten": ({"stride": False}, r"that is the shape with stride 1; pass stride=2"),
    "a bias on both layers": ({"depthwise_bias": True}, r"the depthwise layer has a bias too: give it bias=False"),
    "bias=False ignored": ({"bias_flag": False}, r"bias=False was asked for: pass it to the pointwise layer"),
    "3×3 pointwise kernel": ({"pointwise_kernel": 3}, r"the pointwise layer has a 3×3 kernel: it is a 1×1 convolution"),
    "output detached": ({"detach": True}, r"the output does not require grad"),
}


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", list(SEPARABLE_MISTAKES))
def test_separable_named_mistake_rejected(name: str, seed: int) -> None:
    kwargs, match = SEPARABLE_MISTAKES[name]
    rejects(unit07.depthwise_separable, separable_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("name", list(SEPARABLE_MISTAKES))
def test_separable_named_mistake_rejected_on_every_seed(name: str) -> None:
    kwargs, match = SEPARABLE_MISTAKES[name]
    for seed in range(50):
        rejects(unit07.depthwise_separable, separable_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_separable_solution_passes_on_every_seed() -> None:
    cls = solution(7, "ex04-depthwise-separable", "DepthwiseSeparableConv2d")
    for seed in range(200):
        unit07.depthwise_separable(cls, seed=seed)
