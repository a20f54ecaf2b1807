"""Checks for unit 7 (CNNs and ViTs): an augmentation (random crop with padding) and convolution with unfold.

Each check builds fresh random inputs (a new seed on every call, printed in failure messages so a
failure can be replayed with ``seed=...``), compares the learner's work with a reference, and says
precisely what differs. The patch-embedding check (exercise 1) lives in :mod:`._unit07_vit`, the supervised
contrastive check (exercise 5) in :mod:`._unit07_supcon`; both are
re-exported here.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing
from dlfund.data.augment import RandomCrop
from dlfund.data.torch_datasets import ImageDataset
from dlfund.models.cnn import conv2d_unfold as library_conv2d_unfold

__all__ = ["augmentation", "conv_unfold", "depthwise_separable", "patch_embedding", "supervised_contrastive"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


# ---------------------------------------------------------------------------------------------
# ex02: an augmentation — random crop with padding


def _shifted(image: Tensor, padding: int, fill: float, dy: int, dx: int) -> Tensor:
    """The reference crop: ``image (C, H, W)`` padded by ``padding`` with ``fill``, cut at offset (dy, dx)."""
    _, h, w = image.shape
    return F.pad(image, (padding,) * 4, value=fill)[:, dy : dy + h, dx : dx + w]


def _find_offset(out: Tensor, image: Tensor, padding: int, fill: float) -> tuple[int, int] | None:
    """The offset (dy, dx) in {0..2P}² whose reference crop equals ``out``, or ``None``."""
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            if torch.equal(out, _shifted(image, padding, fill, dy, dx)):
                return dy, dx
    return None


def _explain_no_offset(out: Tensor, image: Tensor, padding: int, fill: float, call: str) -> str:
    """Why ``out`` is not a shifted copy of ``image``: the typical mistakes, else a generic message."""
    if fill != 0.0 and _find_offset(out, image, padding, 0.0) is not None:
        return (
            f"{call} padded with 0, but fill={fill:g} was asked for: pass value=self.fill to F.pad "
            "(for standardised images the background is not 0)"
        )
    for big in range(padding + 1, 3 * padding + 2):  # padded more than asked?
        if _find_offset(out, image, big, fill) is not None:
            return (
                f"{call} shifted the image by more than padding={padding} pixels: pad by exactly "
                f"{padding} on every side, then crop back to the original size"
            )
    c, h, w = image.shape
    padded = F.pad(image, (padding,) * 4, value=fill)
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            if torch.equal(out, crop.flip(-1)) or torch.equal(out, crop.transpose(-1, -2)):
                return f"{call} returned a flipped or transposed crop: keep the orientation, only move the image"
    return (
        f"{call} is not a shifted copy of the input: expected the input padded by {padding} pixels "
        f"of value {fill:g} on every side and cut back to {h}×{w} at a random offset"
    )


def _offsets(aug: Any, image: Tensor, padding: int, fill: float, n: int, call: str) -> list[tuple[int, int]]:
    found = []
    for _ in range(n):
        out = call_learner(aug, image, what=call)
        expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
        expect(
            out.shape == image.shape,
            f"{call}: expected shape {tuple(image.shape)} (the same as the input), found {tuple(out.shape)}"
            + (": pad first, then crop back to the original size" if out.shape[:1] == image.shape[:1] else ""),
        )
        expect(out.dtype == image.dtype, f"{call}: expected dtype {image.dtype} (the input's), found {out.dtype}")
        offset = _find_offset(out, image, padding, fill)
        if offset is None:
            raise CheckFailed(_explain_no_offset(out, image, padding, fill, call))
        found.append(offset)
    return found


def _refuse_library_crop(obj: Any, what: str) -> None:
    """Writing the crop is the exercise: the library's own :class:`RandomCrop` (or a wrapper of it) is refused."""
    held = list(vars(obj).values()) if hasattr(obj, "__dict__") and not isinstance(obj, type) else []
    if (
        obj is RandomCrop
        or (isinstance(obj, type) and issubclass(obj, RandomCrop))
        or any(isinstance(v, RandomCrop) for v in [obj, *held])
    ):
        raise CheckFailed(
            f"{what} is the library's own RandomCrop (dlfund.data.augment.RandomCrop): write yours, "
            "with F.pad and a slice at a random offset"
        )


def augmentation(cls: Callable[..., Any], *, seed: int | None = None, calls: int = 300) -> None:
    """Check a random crop with padding: ``cls(padding, fill=0.0, generator=None)``, called on ``(C, H, W)``.

    The transform pads the image by ``padding`` pixels of value ``fill`` on every side and crops it
    back to ``(C, H, W)`` at an offset ``(dy, dx)`` drawn uniformly from ``{0, ..., 2·padding}²``
    with ``generator``, as :class:`dlfund.data.augment.RandomCrop`. The check verifies shape, dtype,
    that the input is not modified, that every output is a shifted copy of the input with the right
    fill, that the offsets cover the whole range about uniformly over ``calls`` calls, that equal seeds
    reproduce and different seeds differ, and that it works as ``ImageDataset(transform=...)`` with
    labels unchanged.
    """
    _refuse_library_crop(cls, "the class you passed")
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    padding = int(torch.randint(2, 4, (), generator=gen))
    fill = round(float(torch.empty(()).uniform_(-1.5, -0.5, generator=gen)), 3)
    c, h, w = int(torch.randint(1, 4, (), generator=gen)), int(torch.randint(10, 17, (), generator=gen)), 12
    image = torch.randn(c, h, w, generator=gen)  # distinct values: each offset gives a different crop
    original = image.clone()
    call = f"{_name(cls)}(padding={padding}, fill={fill:g}, generator=...)(image {tuple(image.shape)})"

    aug = call_learner(
        cls,
        padding,
        fill=fill,
        generator=torch.Generator().manual_seed(seed + 1),
        what=f"{_name(cls)}(padding={padding}, fill={fill:g}, generator=...)",
    )
    _refuse_library_crop(aug, f"{_name(cls)}(...)")
    offsets = _offsets(aug, image, padding, fill, calls, call + f" {where}")
    expect(
        torch.equal(image, original),
        f"{call} changed its input in place {where}: return a new tensor, leave the image it was given as it was",
    )

    # The offsets: every value of {0..2P} along both axes, about equally often, not the same every call.
    expect(
        len(set(offsets)) > 1,
        f"{call} moved the image by the same offset {offsets[0]} on all {calls} calls "
        f"{where}: draw a new random offset in __call__, not once in __init__",
    )
    k = 2 * padding + 1
    for axis, name in ((0, "dy (rows)"), (1, "dx (columns)")):
        counts = Counter(o[axis] for o in offsets)
        missing = [v for v in range(k) if counts[v] == 0]
        if missing == [k - 1]:
            raise CheckFailed(
                f"{call}: the offset {name} never took the value {k - 1} = 2·padding in {calls} calls "
                f"{where}: torch.randint(low, high) excludes high, so draw from "
                f"torch.randint(0, 2 * padding + 1, ...)"
            )
        if missing == list(range(padding + 1, k)) or missing == list(range(padding)):
            raise CheckFailed(
                f"{call}: the image only ever moved one way along {name} (offsets seen: "
                f"{sorted(counts)}) {where}: the offset should range over 0..{k - 1} = 2·padding, "
                f"so the image can move by up to {padding} pixels either way"
            )
        expect(
            not missing,
            f"{call}: the offset {name} never took the values {missing} in {calls} calls "
            f"(expected each of 0..{k - 1} about {calls / k:.0f} times) {where}",
        )
        expected = calls / k
        worst = max(range(k), key=lambda v: abs(counts[v] - expected))
        expect(
            abs(counts[worst] - expected) < 0.5 * expected + 10,
            f"{call}: the offset {name} is not uniform over 0..{k - 1}: {worst} came {counts[worst]} times in "
            f"{calls} calls, expected about {expected:.0f} {where}",
        )
    by_dy: dict[int, set[int]] = {}
    for dy, dx in offsets:
        by_dy.setdefault(dy, set()).add(dx)
    if all(dy == dx for dy, dx in offsets):
        raise CheckFailed(
            f"{call}: dy and dx were equal on all {calls} calls {where}: one random draw was used for both "
            "axes, so the image only moves along the diagonal; draw dy and dx separately"
        )
    expect(
        any(len(dxs) > 1 for dxs in by_dy.values()),
        f"{call}: dx is always the same function of dy over {calls} calls {where}: the two offsets are not "
        "drawn independently; draw dy and dx separately (e.g. torch.randint(0, 2 * padding + 1, (2,), ...))",
    )
    unchanged = sum(o == (padding, padding) for o in offsets) / calls
    expect(
        unchanged < 0.5,
        f"{call} left {unchanged:.0%} of the images unchanged; a uniform offset leaves about {1 / k**2:.0%} {where}",
    )

    # Seeds: alike → the same outputs (even when the global RNG moves in between), different → different.
    a = call_learner(cls, padding, fill=fill, generator=torch.Generator().manual_seed(seed + 2), what=call)
    b = call_learner(cls, padding, fill=fill, generator=torch.Generator().manual_seed(seed + 2), what=call)
    other = call_learner(cls, padding, fill=fill, generator=torch.Generator().manual_seed(seed + 3), what=call)
    first = [call_learner(a, image, what=call) for _ in range(12)]
    torch.rand(7)  # move the global RNG: a transform that ignores its generator is caught here
    second = [call_learner(b, image, what=call) for _ in range(12)]
    expect(
        all(torch.equal(x, y) for x, y in zip(first, second)),
        f"two transforms built with generators seeded alike gave different outputs {where}: draw the random "
        "offset with generator=self.generator (e.g. torch.randint(..., generator=self.generator))",
    )
    third = [call_learner(other, image, what=call) for _ in range(12)]
    expect(
        not all(torch.equal(x, y) for x, y in zip(first, third)),
        f"generators with different seeds gave the same 12 outputs {where}: use the generator you are given",
    )

    # Through a Dataset: images keep their shape and dtype, labels stay as they were.
    images = torch.randint(0, 256, (6, 20, 20), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (6,), generator=gen)
    ds = ImageDataset(
        images, labels, transform=call_learner(cls, padding, fill=0.0, generator=torch.Generator(), what=call)
    )
    plain = ImageDataset(images, labels)
    for i in range(len(ds)):
        x, y = call_learner(ds.__getitem__, i, what=f"ImageDataset(..., transform={_name(cls)}(...))[{i}]")
        expect(
            x.shape == (1, 20, 20) and x.dtype == torch.float32,
            f"through ImageDataset the image should stay (1, 20, 20) float32, found {tuple(x.shape)} {x.dtype}",
        )
        expect(
            torch.equal(y, labels[i]),
            f"through ImageDataset the label of example {i} changed: expected {int(labels[i])}, found {y}",
        )
        expect(
            _find_offset(x, plain[i][0], padding, 0.0) is not None,
            f"through ImageDataset example {i} is not a shifted copy of the image {where}",
        )
    passed(
        f"random crop: shape and dtype kept, {k}×{k} offsets drawn uniformly over {calls} calls, fill "
        f"{fill:g}, seeded, labels unchanged through a Dataset"
    )


# ---------------------------------------------------------------------------------------------
# ex03: convolution with unfold + matmul


@contextlib.contextmanager
def _no_builtin_conv() -> Iterator[None]:
    """Make F.conv2d / torch.conv2d raise while the learner's function runs: the point is to use unfold."""
    saved = F.conv2d, torch.conv2d

    def refuse(*args: Any, **kwargs: Any) -> Tensor:
        raise CheckFailed(
            "conv2d_unfold called F.conv2d (or nn.Conv2d): write it with F.unfold and a matrix "
            "multiplication; F.conv2d is what the check compares against"
        )

    F.conv2d = torch.conv2d = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        F.conv2d, torch.conv2d = saved  # type: ignore[assignment]


def _out_shape(x: Tensor, weight: Tensor, stride: int, padding: int) -> tuple[int, ...]:
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    return n, c_out, (h + 2 * padding - kh) // stride + 1, (w + 2 * padding - kw) // stride + 1


def _shape_hint(found: tuple[int, ...], x: Tensor, weight: Tensor, stride: int, padding: int) -> str:
    if padding and found == _out_shape(x, weight, stride, 0):
        return f": that is the shape without padding; pass padding={padding} to F.unfold"
    if stride > 1 and found == _out_shape(x, weight, 1, padding):
        return f": that is the shape with stride 1; pass stride={stride} to F.unfold"
    n, c, ho, wo = _out_shape(x, weight, stride, padding)
    if found == (n, c, wo, ho):
        return ": H_out and W_out are swapped"
    return ""


def _value_hint(found: Tensor, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int) -> str:
    """Name the mistake ``found`` is consistent with, if any (compared as F.conv2d with a changed weight)."""
    c_out, c_in, kh, kw = weight.shape
    ref = F.conv2d(x, weight, bias, stride=stride, padding=padding)

    def close(other: Tensor) -> bool:
        return other.shape == found.shape and torch.allclose(found, other, atol=1e-4, rtol=1e-4)

    if bias is not None and close(ref - bias.view(1, -1, 1, 1)):
        return ": the bias is missing; add bias.view(1, C_out, 1) to the (N, C_out, L) product"
    candidates = {
        "the weight was flattened channels-last; weight.reshape(C_out, -1) keeps the (C_in, kH, kW) order "
        "that F.unfold uses for the rows of its columns": weight.permute(0, 2, 3, 1).reshape(c_out, c_in, kh, kw),
        "the weight was reshaped to (C_in·kH·kW, C_out) and transposed: reshape it to (C_out, C_in·kH·kW) "
        "directly, each row is one filter": weight.reshape(-1, c_out).t().reshape(c_out, c_in, kh, kw),
        "the kernel is flipped: PyTorch's conv2d is a cross-correlation, no flip": weight.flip(-1, -2),
    }
    for message, changed in candidates.items():
        if close(F.conv2d(x, changed, bias, stride=stride, padding=padding)):
            return ": " + message
    n, _, ho, wo = ref.shape
    if close(ref.flatten(2).transpose(1, 2).reshape(n, c_out, ho, wo)):
        return (
            ": the product was (N, L, C_out) and was reshaped straight to (N, C_out, H_out, W_out); "
            "compute weight.reshape(C_out, -1) @ cols to get (N, C_out, L) first"
        )
    return ""


def _compare(found: Any, expected: Tensor, what: str) -> None:
    expect(isinstance(found, Tensor), f"{what}: expected a tensor, found {type(found).__name__}")
    diff = (found.detach().double() - expected.double()).abs().max().item()
    expect(
        torch.allclose(found.detach(), expected, atol=1e-4, rtol=1e-4),
        f"{what}: values differ from F.conv2d's (largest difference {diff:.3g})",
    )


def conv_unfold(fn: Callable[..., Tensor], *, seed: int | None = None) -> None:
    """Check ``fn(x, weight, bias=None, stride=1, padding=0)`` against ``F.conv2d``: values and gradients.

    Fresh random shapes (non-square images and kernels), with and without bias, padding and stride;
    ``F.conv2d`` is switched off while ``fn`` runs, so it must really be unfold + matmul, and the library's
    own ``dlfund.models.cnn.conv2d_unfold`` is refused.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"

    def rint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (), generator=gen))

    cases = [  # (stride, padding, bias): the simplest first, so the first failure names one mistake
        (1, 0, False),
        (1, 0, True),
        (1, rint(1, 2), True),
        (2, rint(0, 1), False),
        (rint(2, 3), rint(1, 2), True),
    ]
    for stride, padding, use_bias in cases:
        n, c_in, c_out = rint(1, 3), rint(1, 4), rint(2, 5)
        kh, kw = rint(1, 3) * 2 + 1 if stride == 1 else 3, rint(1, 3)
        h, w = rint(kh + 2, 11), rint(kw + 3, 12)
        if w == h:
            w += 1
        x = torch.randn(n, c_in, h, w, generator=gen, requires_grad=True)
        weight = torch.randn(c_out, c_in, kh, kw, generator=gen, requires_grad=True)
        bias = torch.randn(c_out, generator=gen, requires_grad=True) if use_bias else None
        call = (
            f"conv2d_unfold(x {tuple(x.shape)}, weight {tuple(weight.shape)}, "
            f"bias={'(' + str(c_out) + ',)' if use_bias else 'None'}, stride={stride}, padding={padding})"
        )
        with _no_builtin_conv(), refusing({"conv2d_unfold": library_conv2d_unfold}, "the unfold and the matmul"):
            try:
                found = call_learner(fn, x, weight, bias, stride=stride, padding=padding, what=call)
            except CheckFailed as err:
                if not isinstance(err.__cause__, RuntimeError):  # a stub or a refused F.conv2d: said already
                    raise
                raise CheckFailed(
                    f"{err} {where}. A shape error here usually means the sizes disagree: F.unfold(x, (kH, kW), "
                    f"padding, stride) takes the kernel as (kH, kW) = {(kh, kw)} (height first) and gives "
                    f"(N, C_in·kH·kW, L) with L = H_out·W_out = {_out_shape(x, weight, stride, padding)[2]}·"
                    f"{_out_shape(x, weight, stride, padding)[3]}"
                ) from err.__cause__
        with torch.no_grad():
            expected = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        expect(isinstance(found, Tensor), f"{call} should return a tensor, found {type(found).__name__}")
        shape = tuple(found.shape)
        expect(
            shape == tuple(expected.shape),
            f"{call}: expected shape {tuple(expected.shape)}, found {shape}"
            + _shape_hint(shape, x, weight, stride, padding)
            + f" {where}",
        )
        expect(found.dtype == expected.dtype, f"{call}: expected dtype {expected.dtype}, found {found.dtype}")
        if not torch.allclose(found.detach(), expected, atol=1e-4, rtol=1e-4):
            diff = (found.detach() - expected).abs().max().item()
            raise CheckFailed(
                f"{call}: values differ from F.conv2d's (largest difference {diff:.3g})"
                + _value_hint(
                    found.detach(),
                    x.detach(),
                    weight.detach(),
                    None if bias is None else bias.detach(),
                    stride,
                    padding,
                )
                + f" {where}"
            )
        expect(
            found.requires_grad,
            f"{call}: the output does not require grad, so nothing can be learned "
            "through it: keep the computation in torch (no .detach(), .numpy() or .data)",
        )
        grad_out = torch.randn(expected.shape, generator=gen)
        inputs = [x, weight] + ([bias] if bias is not None else [])
        names = ["x", "weight", "bias"][: len(inputs)]
        found_grads = torch.autograd.grad(found, inputs, grad_out, allow_unused=True)
        ref = F.conv2d(x, weight, bias, stride=stride, padding=padding)
        ref_grads = torch.autograd.grad(ref, inputs, grad_out)
        for name, g, r in zip(names, found_grads, ref_grads):
            expect(g is not None, f"{call}: no gradient reaches {name}: it must take part in the computation")
            _compare(g, r, f"{call}: the gradient with respect to {name} {where}")
    passed(
        f"conv2d_unfold matches F.conv2d in values and gradients on {len(cases)} random cases "
        "(stride, padding, bias, non-square shapes)"
    )


# ---------------------------------------------------------------------------------------------
# ex04: a depthwise-separable convolution


def reference_separable(
    x: Tensor, depthwise: Tensor, pointwise: Tensor, bias: Tensor | None, stride: int, padding: int
) -> Tensor:
    """The depthwise-separable convolution, computed channel by channel (an independent computation).

    ``x (N, C, H, W)``, ``depthwise (C·m, 1, k, k)``: output channel ``c·m + j`` filters input channel
    ``c`` alone; ``pointwise (C_out, C·m, 1, 1)`` mixes the channels at every position; ``bias (C_out,)``.
    """
    c, per = x.shape[1], depthwise.shape[0] // x.shape[1]
    maps = [
        F.conv2d(x[:, i : i + 1], depthwise[i * per + j : i * per + j + 1], stride=stride, padding=padding)
        for i in range(c)
        for j in range(per)
    ]  # C·m maps of shape (N, 1, H_out, W_out)
    mixed = torch.einsum("om,nmhw->nohw", pointwise[:, :, 0, 0], torch.cat(maps, dim=1))
    return mixed if bias is None else mixed + bias.view(1, -1, 1, 1)


def _separable_case(
    cls: Callable[..., Any], c_in: int, c_out: int, k: int, stride: int, padding: int, m: int, bias: bool, where: str
) -> tuple[str, Any, dict[str, Tensor]]:
    """Build the learner's module for one case and check its layers' shapes and its parameter count."""
    make = (
        f"{_name(cls)}(in_channels={c_in}, out_channels={c_out}, kernel_size={k}, stride={stride}, "
        f"padding={padding}, multiplier={m}, bias={bias})"
    )
    module = call_learner(cls, c_in, c_out, k, stride=stride, padding=padding, multiplier=m, bias=bias, what=make)
    expect(isinstance(module, torch.nn.Module), f"{make} should be an nn.Module, found {type(module).__name__}")
    layers = {}
    for name in ("depthwise", "pointwise"):
        layer = getattr(module, name, None)
        expect(
            isinstance(getattr(layer, "weight", None), Tensor),
            f"{make} should hold its two layers as self.depthwise and self.pointwise (each an nn.Conv2d with a "
            f".weight), found self.{name} = {type(layer).__name__}",
        )
        layers[name] = layer
    dw, pw = layers["depthwise"].weight, layers["pointwise"].weight
    want_dw, want_pw = (c_in * m, 1, k, k), (c_out, c_in * m, 1, 1)
    found_dw, found_pw = tuple(dw.shape), tuple(pw.shape)
    if found_dw != want_dw:
        if found_dw == (c_in * m, c_in, k, k):
            why = f"groups=1 makes every depthwise filter see all {c_in} input channels: pass groups=in_channels"
        elif found_dw == (c_in, 1, k, k):
            why = f"the depthwise layer makes in_channels maps, not in_channels · multiplier = {c_in * m}"
        else:
            why = "one k×k filter per output map, each reading one input channel (groups=in_channels)"
        raise CheckFailed(
            f"{make}: depthwise.weight should have shape (in_channels · multiplier, 1, k, k) = {want_dw}, "
            f"found {found_dw}: {why} {where}"
        )
    if found_pw != want_pw:
        if found_pw[1] != c_in * m and found_pw[2:] == (1, 1):
            why = "the pointwise layer has groups: it must mix all the depthwise maps, so leave groups=1 there"
        elif found_pw[2:] != (1, 1):
            why = f"the pointwise layer has a {found_pw[2]}×{found_pw[3]} kernel: it is a 1×1 convolution"
        else:
            why = "one 1×1 filter over all the depthwise maps per output channel"
        raise CheckFailed(
            f"{make}: pointwise.weight should have shape (out_channels, in_channels · multiplier, 1, 1) = {want_pw}, "
            f"found {found_pw}: {why} {where}"
        )
    params = dict(module.named_parameters())
    want = c_in * m * k * k + c_out * c_in * m + (c_out if bias else 0)
    found = sum(p.numel() for p in params.values())
    if found != want:
        depthwise_bias = getattr(layers["depthwise"], "bias", None)
        pointwise_bias = getattr(layers["pointwise"], "bias", None)
        if isinstance(depthwise_bias, Tensor):
            why = (
                "the depthwise layer has a bias too: give it bias=False; a bias before the pointwise layer only "
                "adds a constant the pointwise bias can hold"
            )
        elif bias != isinstance(pointwise_bias, Tensor):
            why = f"bias={bias} was asked for: pass it to the pointwise layer"
        else:
            why = f"parameters {sorted(params)}"
        raise CheckFailed(
            f"{make} has {found} parameters, expected {c_in * m}·{k}·{k} + {c_out}·{c_in * m}"
            + (f" + {c_out}" if bias else "")
            + f" = {want}: {why} {where}"
        )
    weights = {"depthwise": dw, "pointwise": pw}
    pointwise_bias = getattr(layers["pointwise"], "bias", None)
    if bias:
        weights["bias"] = pointwise_bias
    return make, module, weights


def depthwise_separable(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check a depthwise-separable convolution ``cls(in_channels, out_channels, kernel_size, stride=1,
    padding=0, multiplier=1, bias=True)``.

    The module holds two ``nn.Conv2d`` layers: ``self.depthwise`` (weight ``(C·m, 1, k, k)``: every
    input channel filtered on its own by ``m`` filters, no bias) and ``self.pointwise`` (weight
    ``(C_out, C·m, 1, 1)``, the bias if asked for); ``forward(x (N, C, H, W)) -> (N, C_out, H_out, W_out)``.
    The check fills the parameters with fresh random values and compares output and gradients with a
    channel-by-channel computation, on cases with stride, padding, a channel multiplier, with and
    without bias.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"

    def rint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (), generator=gen))

    cases = []  # (C_in, m, C_out, k, stride, padding, bias): sizes all different, padding never 0
    for stride, bias in ((1, True), (2, False)):
        c_in, m = rint(3, 5), rint(2, 3)
        cases.append((c_in, m, 2 * c_in * m + rint(0, 1) * c_in * m, 2 * rint(1, 2) + 1, stride, rint(1, 2), bias))
    for c_in, m, c_out, k, stride, padding, bias in cases:
        make, module, weights = _separable_case(cls, c_in, c_out, k, stride, padding, m, bias, where)
        with torch.no_grad():
            for w in weights.values():
                w.copy_(torch.randn(w.shape, generator=gen) / w[0].numel() ** 0.5)
        n, h = rint(2, 3), rint(9, 12)
        x = torch.randn(n, c_in, h, h + rint(1, 3), generator=gen)
        call = f"{make}(x {tuple(x.shape)})"
        xl = x.clone().requires_grad_(True)
        out = call_learner(module, xl, what=call)
        expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
        dw, pw, b = weights["depthwise"].detach(), weights["pointwise"].detach(), weights.get("bias")
        expected = reference_separable(x, dw, pw, None if b is None else b.detach(), stride, padding)
        found = tuple(out.shape)
        if found != tuple(expected.shape):
            size = _out_shape(x, pw.new_empty(c_out, 1, k, k), stride, 0)  # the size without padding
            hint = ""
            if found == size:
                hint = f": that is the shape without padding; pass padding={padding} to the depthwise layer"
            elif found == _out_shape(x, pw.new_empty(c_out, 1, k, k), 1, padding):
                hint = f": that is the shape with stride 1; pass stride={stride} to the depthwise layer"
            raise CheckFailed(f"{call}: expected shape {tuple(expected.shape)}, found {found}{hint} {where}")
        diff = (out.detach() - expected).abs().max().item()
        expect(
            torch.allclose(out.detach(), expected, atol=1e-4, rtol=1e-4),
            f"{call}: values differ from the channel-by-channel computation (largest difference {diff:.3g}): "
            f"forward should be pointwise(depthwise(x)) {where}",
        )
        expect(
            out.requires_grad,
            f"{call}: the output does not require grad, so nothing can be learned through it: no .detach() "
            f"or .data {where}",
        )
        grad_out = torch.randn(expected.shape, generator=gen)
        leaves = {k_: w.detach().clone().requires_grad_(True) for k_, w in weights.items()}
        xr = x.clone().requires_grad_(True)
        ref = reference_separable(xr, leaves["depthwise"], leaves["pointwise"], leaves.get("bias"), stride, padding)
        names = ["x", *weights]
        mine = torch.autograd.grad(out, [xl, *weights.values()], grad_out, allow_unused=True)
        theirs = torch.autograd.grad(ref, [xr, *leaves.values()], grad_out)
        for name, g, r in zip(names, mine, theirs):
            expect(g is not None, f"{call}: no gradient reaches {name}: it must take part in the computation {where}")
            expect(
                torch.allclose(g, r, atol=1e-4, rtol=1e-4),
                f"{call}: the gradient with respect to {name} differs from the reference "
                f"(largest difference {(g - r).abs().max().item():.3g}) {where}",
            )
    passed(
        f"depthwise-separable convolution: layer shapes, parameter counts, outputs and gradients match a "
        f"channel-by-channel computation on {len(cases)} cases (stride, padding, multiplier, with and without bias)"
    )


from dlfund.checks._unit07_supcon import supervised_contrastive  # noqa: E402
from dlfund.checks._unit07_vit import patch_embedding  # noqa: E402
