"""The unit-07 check for the Vision Transformer part: the patch embedding (exercise 1).

Imported by :mod:`dlfund.checks.unit07`, so learners call ``dlfund.checks.unit07.patch_embedding``.

The convention checked (the same as :class:`dlfund.models.vit.PatchEmbedding`): an image
``(N, C, H, W)`` is cut into non-overlapping ``p × p`` patches, numbered row by row (patch
``r · (W / p) + c`` is the one in patch row ``r`` and patch column ``c``); each patch is flattened
channel first, then pixel rows, then pixel columns — the order of ``x[n, :, rows, cols].reshape(-1)``
and of a ``Conv2d`` weight ``(dim, C, p, p)`` — and projected by ``self.proj = nn.Linear(C·p·p, dim)``.
The result ``(N, (H/p)·(W/p), dim)`` equals a strided convolution
``nn.Conv2d(C, dim, kernel_size=p, stride=p)`` whose weight is ``proj.weight.reshape(dim, C, p, p)``
and whose bias is ``proj.bias``, flattened and transposed: ``conv(x).flatten(2).transpose(1, 2)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.models.vit import PatchEmbedding

__all__ = ["patch_embedding", "reference_patches"]

Tensor = torch.Tensor


def reference_patches(x: Tensor, patch_size: int) -> Tensor:
    """``(N, C, H, W)`` → ``(N, (H/p)·(W/p), C·p·p)``: row-major patches, each flattened as (C, p, p)."""
    return F.unfold(x, kernel_size=patch_size, stride=patch_size).transpose(1, 2)


def _wrong_patches(x: Tensor, p: int) -> dict[str, Tensor]:
    """The patch tensors of typical mistakes, to name the one a wrong answer made."""
    n, c, h, w = x.shape
    grid = x.reshape(n, c, h // p, p, w // p, p)  # (N, C, rows, p, cols, p)
    return {
        "column-major": grid.permute(0, 4, 2, 1, 3, 5).reshape(n, -1, c * p * p),
        "channels last": grid.permute(0, 2, 4, 3, 5, 1).reshape(n, -1, c * p * p),
        "pixel columns first": grid.permute(0, 2, 4, 1, 5, 3).reshape(n, -1, c * p * p),
        "plain reshape": x.reshape(n, -1, c * p * p),
    }


_DIAGNOSES = {
    "column-major": (
        "the patches are numbered column by column; number them row by row (row-major): patch "
        "r·(W/p) + c is the one in patch row r, patch column c, as conv(x).flatten(2) orders them"
    ),
    "channels last": (
        "each patch is flattened pixel by pixel with the channels innermost, (p, p, C); flatten "
        "it channel first, (C, p, p), the layout of a Conv2d weight (dim, C, p, p)"
    ),
    "pixel columns first": (
        "the pixels inside each patch are flattened column by column; flatten each "
        "channel's p × p block row by row, as x[n, :, rows, cols].reshape(-1) does"
    ),
    "plain reshape": (
        "x.reshape(N, -1, C·p·p) does not cut the image into p × p squares: it takes runs of "
        "consecutive pixels (parts of rows); split H and W into (H/p, p) and (W/p, p) first, "
        "then move the two patch-grid dimensions in front"
    ),
}


def _describe(cls: Any) -> str:
    return getattr(cls, "__name__", type(cls).__name__)


def _build(cls: Any, image_size: int, patch_size: int, in_channels: int, dim: int) -> tuple[nn.Module, str]:
    call = f"{_describe(cls)}(image_size={image_size}, patch_size={patch_size}, in_channels={in_channels}, dim={dim})"
    module = call_learner(
        cls, image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim, what=call
    )
    expect(isinstance(module, nn.Module), f"{call}: expected an nn.Module, found {type(module).__name__}")
    _refuse_library(module, call)
    return module, call


def _projection(module: nn.Module, call: str, in_features: int, dim: int) -> nn.Linear:
    proj = getattr(module, "proj", None)
    expect(
        proj is not None,
        f"{call}: found no attribute `proj`; each flattened patch of C·p·p = {in_features} numbers is projected "
        f"to dim = {dim} numbers by self.proj = nn.Linear({in_features}, {dim})",
    )
    expect(isinstance(proj, nn.Linear), f"{call}: self.proj should be an nn.Linear, found {type(proj).__name__}")
    expect(
        proj.in_features == in_features and proj.out_features == dim,
        f"{call}: self.proj should be nn.Linear({in_features}, {dim}) (C·p·p inputs, dim outputs), found "
        f"nn.Linear({proj.in_features}, {proj.out_features})",
    )
    return proj


def _as_conv(proj: nn.Linear, in_channels: int, patch_size: int) -> nn.Conv2d:
    """The strided convolution equal to the patch embedding: the documented way of copying weights."""
    dim = proj.out_features
    conv = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size, bias=proj.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(proj.weight.reshape(dim, in_channels, patch_size, patch_size))
        if proj.bias is not None:
            conv.bias.copy_(proj.bias)
    return conv


def _check_one(
    cls: Any, gen: torch.Generator, where: str, *, image_size: int, patch_size: int, in_channels: int, dim: int
) -> None:
    p, c, s = patch_size, in_channels, image_size
    module, call = _build(cls, s, p, c, dim)
    call = f"{call} {where}"
    proj = _projection(module, call, c * p * p, dim)
    n_patches = (s // p) ** 2
    found_n = getattr(module, "num_patches", None)
    expect(
        found_n is not None,
        f"{call}: set self.num_patches (the ViT sizes its positional embedding with it): "
        f"(image_size / patch_size)² = {n_patches}",
    )
    expect(
        isinstance(found_n, int) and not isinstance(found_n, bool) and found_n == n_patches,
        f"{call}: self.num_patches should be the int (image_size / patch_size)² = ({s} / {p})² = {n_patches}, "
        f"found {found_n!r}",
    )

    n = int(torch.randint(2, 5, (), generator=gen))
    x = torch.randn(n, c, s, s, generator=gen).requires_grad_(True)
    out = call_learner(module, x, what=f"{call} on x of shape {tuple(x.shape)}")
    expect(isinstance(out, torch.Tensor), f"{call}: forward should return a tensor, found {type(out).__name__}")
    expected_shape = (n, n_patches, dim)
    if tuple(out.shape) != expected_shape:
        hint = ""
        if tuple(out.shape) == (n, n_patches, c * p * p):
            hint = (
                f": the last dimension is C·p·p = {c * p * p}, the raw patch; project each patch to dim = {dim} "
                "numbers with self.proj"
            )
        elif tuple(out.shape) == (n, dim, n_patches):
            hint = ": that is (N, dim, num_patches); transpose to put the patches before the features"
        elif tuple(out.shape) == (n, dim, s // p, s // p):
            hint = ": that is the convolution's grid (N, dim, H/p, W/p); flatten the grid and transpose"
        raise CheckFailed(
            f"{call}: on x of shape {tuple(x.shape)} expected output shape (N, (H/p)·(W/p), dim) = "
            f"{expected_shape}, found {tuple(out.shape)}{hint}"
        )
    expect(out.dtype == torch.float32, f"{call}: expected a float32 output, found {out.dtype}")

    with torch.no_grad():
        expected = F.linear(reference_patches(x, p), proj.weight, proj.bias)
        conv = _as_conv(proj, c, p)
        by_conv = conv(x).flatten(2).transpose(1, 2)
    assert torch.allclose(expected, by_conv, atol=1e-5)  # the documented equivalence holds for the reference
    if not torch.allclose(out, by_conv, atol=1e-5, rtol=1e-4):
        with torch.no_grad():
            for mistake, patches in _wrong_patches(x, p).items():
                if patches.shape == reference_patches(x, p).shape and torch.allclose(
                    out, F.linear(patches, proj.weight, proj.bias), atol=1e-5, rtol=1e-4
                ):
                    raise CheckFailed(f"{call}: {_DIAGNOSES[mistake]}")
            if proj.bias is not None and torch.allclose(
                out, F.linear(reference_patches(x, p), proj.weight), atol=1e-5, rtol=1e-4
            ):
                raise CheckFailed(
                    f"{call}: the bias of self.proj is missing from the output; apply self.proj "
                    "(weight and bias) to the patches"
                )
        diff = (out.detach() - by_conv).abs()
        raise CheckFailed(
            f"{call}: the output differs from the strided convolution Conv2d({c}, {dim}, kernel_size={p}, "
            f"stride={p}) with weight proj.weight.reshape({dim}, {c}, {p}, {p}) and bias proj.bias, flattened "
            f"and transposed (largest difference {diff.max().item():.3g}); cut row-major p × p patches, flatten "
            "each as (C, p, p), and apply self.proj"
        )

    # Gradients: the embedding must be differentiable all the way to the image and to proj.
    expect(
        out.requires_grad,
        f"{call}: the output does not require a gradient; compute it with self.proj outside "
        "torch.no_grad() and without .detach()",
    )
    g = torch.randn(out.shape, generator=gen)
    grads = torch.autograd.grad((out * g).sum(), [x, proj.weight], allow_unused=True)
    x_ref = x.detach().clone().requires_grad_(True)
    ref_grads = torch.autograd.grad((conv(x_ref).flatten(2).transpose(1, 2) * g).sum(), [x_ref, conv.weight])
    expect(grads[0] is not None, f"{call}: no gradient reaches the input image; do not detach it")
    expect(grads[1] is not None, f"{call}: no gradient reaches self.proj.weight; compute the output with self.proj")
    expect(
        torch.allclose(grads[0], ref_grads[0], atol=1e-5, rtol=1e-4),
        f"{call}: the gradient with respect to the image differs from the strided convolution's",
    )
    expect(
        torch.allclose(grads[1], ref_grads[1].reshape(dim, -1), atol=1e-4, rtol=1e-4),
        f"{call}: the gradient with respect to self.proj.weight differs from the strided convolution's",
    )


def _check_not_divisible(cls: Any, gen: torch.Generator, where: str) -> None:
    p = int(torch.randint(3, 5, (), generator=gen))  # 3 or 4
    s = p * int(torch.randint(2, 5, (), generator=gen)) + int(torch.randint(1, p, (), generator=gen))
    c, dim = 1, 8
    call = (
        f"{_describe(cls)}(image_size={s}, patch_size={p}, in_channels={c}, dim={dim}), then forward on "
        f"x of shape (2, {c}, {s}, {s}) {where}"
    )
    advice = (
        f"raise a ValueError that says H and W ({s}) must be divisible by patch_size ({p}), in __init__ or in forward"
    )
    try:
        module = cls(image_size=s, patch_size=p, in_channels=c, dim=dim)
        module(torch.randn(2, c, s, s, generator=gen))
    except ValueError as err:
        expect(
            bool(str(err).strip()),
            f"{call}: raised ValueError without a message; say what was expected and what was found",
        )
        return
    except NotImplementedError as err:
        hint = f" (hint: {err})" if str(err) else ""
        raise CheckFailed(f"{call}: is not implemented yet{hint}") from None
    except Exception as err:
        raise CheckFailed(f"{call}: raised {type(err).__name__}: {err}; {advice}") from err
    raise CheckFailed(
        f"{call}: returned an output without complaint, silently dropping or misplacing the pixels "
        f"that do not fill a whole patch; {advice}"
    )


def _refuse_library(obj: Any, what: str) -> None:
    """Writing the module is the exercise: the library's own PatchEmbedding (or a module built on it) is refused."""
    library = obj is PatchEmbedding or (isinstance(obj, type) and issubclass(obj, PatchEmbedding))
    if isinstance(obj, nn.Module):
        library = any(isinstance(m, PatchEmbedding) for m in obj.modules())
    if library:
        raise CheckFailed(
            f"{what} is the library's own PatchEmbedding (dlfund.models.vit.PatchEmbedding): write yours, "
            "cutting the patches with reshape/permute and projecting them with nn.Linear"
        )


def patch_embedding(cls: Callable[..., nn.Module], *, seed: int | None = None) -> None:
    """Check a learner's ``PatchEmbedding(image_size, patch_size, in_channels, dim)`` module class.

    Expected: an ``nn.Module`` with ``self.proj = nn.Linear(in_channels · patch_size², dim)`` and
    ``self.num_patches = (image_size // patch_size) ** 2``, whose forward maps images
    ``(N, C, H, W)`` to ``(N, num_patches, dim)`` exactly like the strided convolution described in
    the module docstring (values and gradients), and which raises ``ValueError`` when the image size is
    not divisible by the patch size. Each call draws fresh sizes and inputs; a failure names the seed.
    """
    _refuse_library(cls, "the class you passed")
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    trials = []
    for channels in (1, 3, 2):
        p = int(torch.randint(2, 5, (), generator=gen))  # 2, 3 or 4
        s = p * int(torch.randint(2, 6, (), generator=gen))  # a grid of 2-5 patches per side
        dim = int(torch.randint(5, 40, (), generator=gen))
        if dim == channels * p * p:
            dim += 1
        trials.append({"image_size": s, "patch_size": p, "in_channels": channels, "dim": dim})
    trials.append({"image_size": 28, "patch_size": 7, "in_channels": 1, "dim": 16})  # Fashion-MNIST's shape
    torch.manual_seed(seed)  # the learner's nn.Linear initialisation, reproducible with the seed
    for trial in trials:
        _check_one(cls, gen, where, **trial)
    _check_not_divisible(cls, gen, where)
    sizes = ", ".join(f"{t['in_channels']}×{t['image_size']}×{t['image_size']}/p{t['patch_size']}" for t in trials)
    passed(
        f"patch embedding: shapes, row-major patch order and equality with the strided Conv2d "
        f"(values and gradients) for {sizes}; ValueError for an indivisible size"
    )
