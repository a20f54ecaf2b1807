"""Data augmentation written with torch: random crops with padding, horizontal flips, random erasing.

Every transform takes a float image ``(C, H, W)`` **or** a batch ``(B, C, H, W)`` and returns a
tensor of the same shape, dtype and device. In a batch every image gets its own random draw, so the
same objects serve a ``Dataset`` (one image at a time, on the CPU) and the fast trainer of
:mod:`dlfund.train.vision` (whole batches, on the GPU).

Randomness is seeded with an optional ``torch.Generator``: two transforms built with generators
seeded alike produce the same sequence of outputs. The random numbers are drawn on the generator's
device (the CPU for ``torch.Generator()``) and moved to the images' device; they are a few numbers
per image, so this costs nothing next to the image work. Without a generator the global RNG of the
images' device is used (seeded by ``dlfund.setup``).

>>> augment = Compose([RandomCrop(padding=2), RandomHorizontalFlip(), RandomErasing()])
>>> batch = torch.randn(16, 1, 28, 28)
>>> augment(batch).shape, augment(batch[0]).shape
(torch.Size([16, 1, 28, 28]), torch.Size([1, 28, 28]))

Note: a ``DataLoader`` with ``num_workers > 0`` copies the transform, generator included, into every
worker, so the workers would repeat each other's draws; the course's datasets use ``num_workers=0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["RandomCrop", "RandomHorizontalFlip", "RandomErasing", "Compose", "Transform"]

Transform = Callable[[torch.Tensor], torch.Tensor]


class _BatchTransform:
    """Shared plumbing: accept ``(C, H, W)`` or ``(B, C, H, W)``; subclasses transform a batch."""

    def __init__(self, generator: torch.Generator | None) -> None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.generator = generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() not in (3, 4):
            found = f"shape {tuple(x.shape)}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{type(self).__name__} expects an image (C, H, W) or a batch (B, C, H, W), got {found}")
        if x.dim() == 3:
            return self.apply(x.unsqueeze(0)).squeeze(0)
        return self.apply(x)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Transform a batch ``(B, C, H, W)``, one random draw per image."""
        raise NotImplementedError

    def uniform(self, batch: int, k: int, device: torch.device) -> torch.Tensor:
        """``(batch, k)`` float32 uniform numbers in [0, 1) from :attr:`generator`, on ``device``."""
        where = self.generator.device if self.generator is not None else device
        return torch.rand(batch, k, generator=self.generator, device=where).to(device)


class RandomCrop(_BatchTransform):
    """Pad every side by ``padding`` pixels of value ``fill``, then crop back to the original size
    at a random offset: the image moves by up to ``padding`` pixels in each direction.

    Args:
        padding: P, the largest shift in pixels (P = 2 on a 28×28 image is about 7%).
        fill: the value of the padding pixels. Use the value of a *black* pixel: 0.0 for images in
            [0, 1], ``(0 - mean) / std`` for standardised images (e.g. ``-FASHION_MNIST_MEAN /
            FASHION_MNIST_STD``), so the new border looks like background.
        generator: seeds the offsets.

    Each image's offsets ``(dy, dx)`` are uniform in ``{0, ..., 2P}``; ``(P, P)`` is the unchanged image.
    """

    def __init__(self, padding: int = 2, fill: float = 0.0, *, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0, got {padding!r}")
        self.padding, self.fill = padding, float(fill)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        p = self.padding
        if p == 0:
            return x.clone()
        padded = F.pad(x, (p, p, p, p), value=self.fill)  # (B, C, H + 2P, W + 2P)
        offsets = (self.uniform(b, 2, x.device) * (2 * p + 1)).long().clamp_max(2 * p)  # (B, 2): dy, dx
        rows = offsets[:, :1] + torch.arange(h, device=x.device)  # (B, H): the rows each image keeps
        cols = offsets[:, 1:] + torch.arange(w, device=x.device)  # (B, W)
        index = torch.arange(b, device=x.device)[:, None, None]
        # Advanced indexing over (batch, row, col) with channels last: (B, H, W, C), one gather.
        out = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()

    def __repr__(self) -> str:
        return f"RandomCrop(padding={self.padding}, fill={self.fill:g})"


class RandomHorizontalFlip(_BatchTransform):
    """Mirror each image left-right with probability ``p``.

    Use it where a mirrored image is still a valid example of its class: clothes (Fashion-MNIST) yes,
    digits and letters no (a mirrored 3 is not a 3).
    """

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None) -> None:
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        self.p = p

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        flip = self.uniform(x.shape[0], 1, x.device).view(-1, 1, 1, 1) < self.p  # (B, 1, 1, 1)
        return torch.where(flip, x.flip(-1), x)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p:g})"


class RandomErasing(_BatchTransform):
    """With probability ``p``, overwrite one random rectangle of each image with ``value``.

    Args:
        p: the probability that an image gets a rectangle.
        scale: the rectangle's area as a fraction of the image, drawn uniformly from this range.
        ratio: the rectangle's aspect ratio height / width, drawn log-uniformly from this range.
        value: what the rectangle is filled with (0.0 is the mean pixel of standardised images).
        generator: seeds the rectangles.

    Sides are rounded to whole pixels and clipped to the image, so the area is in ``scale`` up to
    rounding. The network has to recognise an item with a part of it hidden.
    """

    def __init__(
        self,
        p: float = 0.5,
        scale: tuple[float, float] = (0.02, 0.2),
        ratio: tuple[float, float] = (0.3, 3.3),
        value: float = 0.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(generator)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale!r}")
        if not 0.0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio!r}")
        self.p, self.scale, self.ratio, self.value = p, tuple(scale), tuple(ratio), float(value)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        u = self.uniform(b, 5, x.device)  # per image: area, ratio, top, left, apply?
        area = h * w * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[:, 0])
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + (log_hi - log_lo) * u[:, 1])
        eh = torch.sqrt(area * aspect).round().clamp(1, h)  # (B,) rectangle heights
        ew = torch.sqrt(area / aspect).round().clamp(1, w)
        top = (u[:, 2] * (h - eh + 1)).floor()
        left = (u[:, 3] * (w - ew + 1)).floor()
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        inside = (
            (ys >= top.view(-1, 1, 1))
            & (ys < (top + eh).view(-1, 1, 1))
            & (xs >= left.view(-1, 1, 1))
            & (xs < (left + ew).view(-1, 1, 1))
        )  # (B, H, W)
        mask = inside & (u[:, 4] < self.p).view(-1, 1, 1)
        return x.masked_fill(mask.unsqueeze(1), self.value)  # the same rectangle in every channel

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p:g}, scale={self.scale}, ratio={self.ratio}, value={self.value:g})"


class Compose:
    """Apply ``transforms`` one after the other (each keeps its own generator)."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"every transform must be callable, got {t!r}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose([{', '.join(repr(t) for t in self.transforms)}])"
