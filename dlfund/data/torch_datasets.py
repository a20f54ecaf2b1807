"""PyTorch ``Dataset`` classes for the course's image data, and a stratified, seeded split.

A map-style ``torch.utils.data.Dataset`` answers two questions: how many examples there are
(``__len__``) and what example ``i`` is (``__getitem__``). A ``DataLoader`` asks for examples by index
and stacks them into batches. The datasets here keep the images as compact ``uint8`` tensors and
convert one image at a time when it is asked for:

    uint8 (28, 28), 0-255  →  float32 (1, 28, 28) in [0, 1]  →  (x - mean) / std  →  transform(x)

and return ``(image float32 (1, 28, 28), label int64 ())``. The channel dimension of size 1 is the
layout of image models (``(C, H, W)``); an MLP flattens it away.

>>> images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
>>> ds = ImageDataset(images, torch.arange(5))
>>> image, label = ds[-1]
>>> tuple(image.shape), image.dtype, label
((1, 28, 28), torch.float32, tensor(4))
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from dlfund.data.loaders import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist_5k

__all__ = [
    "ImageDataset",
    "FashionMNISTDataset",
    "MNIST5kDataset",
    "stratified_split",
    "FASHION_MNIST_MEAN",
    "FASHION_MNIST_STD",
    "MNIST_MEAN",
    "MNIST_STD",
]

FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
"""Mean and standard deviation of the Fashion-MNIST training pixels after scaling to [0, 1]."""
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
"""The customary MNIST statistics (all 60,000 MNIST training images, pixels scaled to [0, 1])."""

Transform = Callable[[torch.Tensor], torch.Tensor]


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Greyscale images with class labels, converted to normalised float tensors one at a time.

    Args:
        images: ``(N, H, W)`` uint8, pixel values 0-255.
        labels: ``(N,)`` integer class labels.
        mean, std: standardise with ``(x - mean) / std`` after scaling to [0, 1]; both ``None``
            keeps the pixels in [0, 1].
        transform: applied last, to each float image ``(1, H, W)`` (e.g. an augmentation).
        classes: the class names, indexed by label (optional, for plots).

    Indexing follows Python's sequence rules: ``ds[-1]`` is the last example and an index outside
    ``[-N, N)`` raises ``IndexError`` (which also ends a ``for`` loop over the dataset).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: float | None = None,
        std: float | None = None,
        transform: Transform | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 3:
            found = (
                f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
            )
            raise TypeError(f"images must be an (N, H, W) uint8 tensor, got {found}")
        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != images.shape[:1]:
            raise TypeError(f"labels must be ({images.shape[0]},) integers, got {tuple(labels.shape)} {labels.dtype}")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std (standardised images) or neither (images in [0, 1])")
        if std is not None and std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.images = images
        self.labels = labels.long()
        self.mean, self.std = mean, std
        self.transform = transform
        self.classes = tuple(classes) if classes is not None else None

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(index, bool):
            raise TypeError("index must be an int, got bool")
        index = operator.index(index)  # ints, NumPy ints and 0-d integer tensors (Subset passes those)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a dataset of {n} examples")
        # Convert first, then divide: uint8 arithmetic would truncate (and wrap around below 0).
        image = self.images[index].to(torch.float32).div(255).unsqueeze(0)  # (1, H, W) in [0, 1]
        if self.mean is not None and self.std is not None:
            image = (image - self.mean) / self.std
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[index]

    def __repr__(self) -> str:
        norm = f"mean={self.mean}, std={self.std}" if self.mean is not None else "pixels in [0, 1]"
        extra = f", transform={self.transform!r}" if self.transform is not None else ""
        return f"{type(self).__name__}({len(self)} images {tuple(self.images.shape[1:])}, {norm}{extra})"


class FashionMNISTDataset(ImageDataset):
    """Fashion-MNIST (60,000 training or 10,000 test images, 10 classes) from the offline cache.

    Args:
        split: ``"train"`` or ``"test"``.
        standardize: standardise with the training-set statistics (:data:`FASHION_MNIST_MEAN`,
            :data:`FASHION_MNIST_STD`); ``False`` keeps the pixels in [0, 1].
        transform: applied to each float image ``(1, 28, 28)`` after normalisation.
    """

    def __init__(self, split: str = "train", *, standardize: bool = True, transform: Transform | None = None) -> None:
        images, labels = load_fashion_mnist(split)
        stats = (FASHION_MNIST_MEAN, FASHION_MNIST_STD) if standardize else (None, None)
        super().__init__(
            images, labels, mean=stats[0], std=stats[1], transform=transform, classes=FASHION_MNIST_CLASSES
        )
        self.split = split


class MNIST5kDataset(ImageDataset):
    """The 5,000-digit MNIST subset (500 per digit, sorted by digit) from the offline cache.

    It has no separate test set: split it with :func:`stratified_split`.

    Args:
        standardize: standardise with :data:`MNIST_MEAN` and :data:`MNIST_STD`; ``False`` keeps [0, 1].
        transform: applied to each float image ``(1, 28, 28)`` after normalisation.
    """

    def __init__(self, *, standardize: bool = True, transform: Transform | None = None) -> None:
        images, labels = load_mnist_5k()
        stats = (MNIST_MEAN, MNIST_STD) if standardize else (None, None)
        super().__init__(
            images, labels, mean=stats[0], std=stats[1], transform=transform, classes=tuple(str(d) for d in range(10))
        )


def stratified_split(
    labels: torch.Tensor | np.ndarray | Sequence[int], test_size: float | int, *, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the indices ``0..N-1`` in two, keeping the class proportions of ``labels (N,)`` in both.

    ``test_size`` is a fraction (``0.2``) or a number of examples (``500``) for the second part. The
    same ``seed`` gives the same split. Returns two sorted int64 index tensors, e.g. for
    ``torch.utils.data.Subset(dataset, indices)``. Split twice for train / validation / test.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(torch.as_tensor(labels).cpu())
    first, second = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=seed)
    return torch.from_numpy(np.sort(first)), torch.from_numpy(np.sort(second))
