"""The unit-07 patch-embedding check accepts the solution and the library, and rejects stubs and typical mistakes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution
from torch import nn

from dlfund.checks._unit07_vit import patch_embedding, reference_patches
from dlfund.models.vit import PatchEmbedding


def variant(mistake: str = "none"):
    """A learner's patch embedding with one typical mistake switched on."""

    class Variant(nn.Module):
        def __init__(self, image_size, patch_size, in_channels, dim):
            super().__init__()
            if image_size % patch_size and mistake != "no size check":
                raise ValueError(f"image_size {image_size} is not divisible by patch_size {patch_size}")
            self.p, self.c = patch_size, in_channels
            if mistake != "no num_patches":
                self.num_patches = (image_size // patch_size) ** 2
            if mistake != "no proj attribute":
                self.proj = nn.Linear(in_channels * patch_size**2, dim)
            else:
                self.linear = nn.Linear(in_channels * patch_size**2, dim)

        def forward(self, x):
            n, c, h, w = x.shape
            p = self.p
            grid = x[:, :, : h - h % p, : w - w % p].reshape(n, c, h // p, p, w // p, p)
            order = {
                "column-major": (0, 4, 2, 1, 3, 5),
                "channels last": (0, 2, 4, 3, 5, 1),
                "pixel columns first": (0, 2, 4, 1, 5, 3),
            }.get(mistake, (0, 2, 4, 1, 3, 5))
            patches = grid.permute(*order).reshape(n, -1, c * p * p)
            if mistake == "plain reshape":
                patches = x.reshape(n, -1, c * p * p)
            if mistake == "no projection":
                return patches
            if mistake == "no proj attribute":
                return self.linear(patches)
            if mistake == "transposed output":
                return self.proj(patches).transpose(1, 2)
            if mistake == "no bias":
                return patches @ self.proj.weight.T
            if mistake == "detached":
                return self.proj(patches).detach()
            return self.proj(patches)

    return Variant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    patch_embedding(solution(7, "ex01-patch-embedding", "MyPatchEmbedding"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ patch embedding")


def test_accepts_a_correct_variant_and_rejects_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    patch_embedding(variant(), seed=5)
    assert capsys.readouterr().out.count("✓ patch embedding") == 1
    rejects(patch_embedding, PatchEmbedding, match=r"library's own PatchEmbedding.*write yours")

    class Wrapped(nn.Module):
        def __init__(self, image_size, patch_size, in_channels, dim):
            super().__init__()
            self.inner = PatchEmbedding(image_size, patch_size, in_channels, dim)
            self.proj, self.num_patches = self.inner.proj, self.inner.num_patches

        def forward(self, x):
            return self.inner(x)

    rejects(patch_embedding, Wrapped, match=r"library's own PatchEmbedding")


def test_rejects_the_stub() -> None:
    class Stub(nn.Module):
        def __init__(self, image_size, patch_size, in_channels, dim):
            super().__init__()
            raise NotImplementedError("create self.proj")

    rejects(patch_embedding, Stub, match=r"Stub\(image_size=\d+, .*is not implemented yet.*hint: create self.proj")

    class ForwardStub(nn.Module):
        def __init__(self, image_size, patch_size, in_channels, dim):
            super().__init__()
            self.num_patches = (image_size // patch_size) ** 2
            self.proj = nn.Linear(in_channels * patch_size**2, dim)

        def forward(self, x):
            raise NotImplementedError("cut the patches")

    rejects(patch_embedding, ForwardStub, match=r"on x of shape .*is not implemented yet.*hint: cut the patches")


PATCH_MISTAKES = [
    ("column-major", r"numbered column by column; number them row by row \(row-major\)"),
    ("channels last", r"channels innermost, \(p, p, C\); flatten it channel first, \(C, p, p\)"),
    ("pixel columns first", r"pixels inside each patch are flattened column by column"),
    ("plain reshape", r"does not cut the image into p × p squares"),
    ("no projection", r"the last dimension is C·p·p = \d+, the raw patch; project each patch"),
    ("no proj attribute", r"found no attribute `proj`; .*self.proj = nn.Linear\(\d+, \d+\)"),
    ("transposed output", r"that is \(N, dim, num_patches\); transpose"),
    ("no bias", r"the bias of self.proj is missing"),
    ("detached", r"the output does not require a gradient"),
    ("no num_patches", r"set self.num_patches"),
    (
        "no size check",
        r"returned an output without complaint.*raise a ValueError that says H and W \(\d+\) must be "
        r"divisible by patch_size",
    ),
]


@pytest.mark.parametrize(
    ("mistake", "match"),
    PATCH_MISTAKES,
)
def test_rejects_typical_mistakes(mistake: str, match: str) -> None:
    message = rejects(patch_embedding, variant(mistake), match=match)
    assert "(seed 0)" in message


def test_rejects_a_crash_instead_of_a_value_error() -> None:
    class Crashes(variant("no size check")):
        def forward(self, x):
            n, c, h, w = x.shape
            return self.proj(
                x.reshape(n, c, h // self.p, self.p, w // self.p, self.p)
                .permute(0, 2, 4, 1, 3, 5)
                .reshape(n, -1, c * self.p**2)
            )

    rejects(patch_embedding, Crashes, match=r"raised RuntimeError: .*; raise a ValueError that says H and W")


def test_reference_patches_match_the_conv_layout() -> None:
    x = torch.randn(2, 3, 8, 8)
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4)
    out = F.linear(reference_patches(x, 4), conv.weight.reshape(5, -1), conv.bias)
    torch.testing.assert_close(out, conv(x).flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", [1])
@pytest.mark.parametrize(("mistake", "match"), PATCH_MISTAKES)
def test_named_mistake_rejected_on_other_seeds(mistake: str, match: str, seed: int) -> None:
    rejects(patch_embedding, variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(100, 150))
@pytest.mark.parametrize(("mistake", "match"), PATCH_MISTAKES)
def test_named_mistake_rejected_on_many_seeds(mistake: str, match: str, seed: int) -> None:
    rejects(patch_embedding, variant(mistake), match=match, seed=seed)
