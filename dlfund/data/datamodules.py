"""Lightning ``LightningDataModule`` classes: the data side of a training run in one object.

A DataModule gathers what unit 4 wrote by hand around each training loop: where the data comes from
(``prepare_data``), how it is split into training / validation / test sets (``setup``), and the
``DataLoader`` of each split. ``Trainer.fit(model, datamodule=dm)`` then asks it for the loaders it
needs, and the same object serves ``trainer.test`` and ``trainer.predict``.

>>> dm = FashionMNISTDataModule(batch_size=128, n_train=2000, n_val=500, n_test=1000, seed=0)
>>> dm.setup("fit")                                    # doctest: +SKIP
>>> images, labels = next(iter(dm.train_dataloader()))  # doctest: +SKIP
>>> images.shape, labels.shape                          # doctest: +SKIP
(torch.Size([128, 1, 28, 28]), torch.Size([128]))
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from dlfund.data.store import ensure
from dlfund.data.torch_datasets import (
    FashionMNISTDataset,
    ImageDataset,
    stratified_split,
)

__all__ = ["FashionMNISTDataModule"]


def _stratified_subset(
    labels: torch.Tensor, indices: torch.Tensor, n: int | None, *, seed: int, what: str
) -> torch.Tensor:
    """``n`` of ``indices``, drawn stratified by ``labels[indices]`` with ``seed``; all of them for ``None``."""
    if n is None:
        return indices
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{what} must be a positive int or None (all), got {n!r}")
    if n > len(indices):
        raise ValueError(f"{what}={n} asks for more examples than the {len(indices)} available")
    if n == len(indices):
        return indices
    _, keep = stratified_split(labels[indices], n, seed=seed)
    return indices[keep]


class FashionMNISTDataModule(L.LightningDataModule):
    """Fashion-MNIST as training, validation and test ``DataLoader``\\ s of standardised images.

    Batches are ``(images float32 (B, 1, 28, 28), labels int64 (B,))``, standardised with the
    training-set statistics (:class:`~dlfund.data.FashionMNISTDataset`).

    Args:
        batch_size: examples per batch, in every loader.
        n_train: training examples, drawn stratified (seeded) from what the validation split leaves;
            ``None`` uses all of them (60,000 - ``n_val``).
        n_val: validation examples, a stratified, seeded part of the 60,000 training images (the
            test set stays untouched until the end).
        n_test: test examples, a stratified, seeded subset of the 10,000 test images; ``None`` = all.
        seed: seeds the splits and the shuffling of the training loader: the same seed gives the same
            examples in the same order.
        num_workers: ``DataLoader`` worker processes (0 = load in the main process, which is fast
            enough for these small in-memory images).
        train_transform: applied to each training image ``(1, 28, 28)`` after standardisation (e.g.
            an augmentation); validation, test and prediction images are never transformed.

    After ``setup``, ``train_set``, ``val_set`` and ``test_set`` are the datasets (``Subset``\\ s), and
    ``classes`` names the labels. ``predict_dataloader`` serves the test set, unshuffled.
    """

    num_classes = 10
    dims = (1, 28, 28)

    def __init__(
        self,
        batch_size: int = 128,
        n_train: int | None = None,
        n_val: int = 5000,
        n_test: int | None = None,
        seed: int = 0,
        num_workers: int = 0,
        train_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if isinstance(n_val, bool) or not isinstance(n_val, int) or n_val < 1:
            raise ValueError(f"n_val must be a positive int, got {n_val!r}")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"num_workers must be an int >= 0, got {num_workers!r}")
        self.batch_size = batch_size
        self.n_train, self.n_val, self.n_test = n_train, n_val, n_test
        self.seed = seed
        self.num_workers = num_workers
        self.train_transform = train_transform
        self.classes: tuple[str, ...] | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def prepare_data(self) -> None:
        """Make sure the files are in the local cache (Lightning calls this once, on one process)."""
        ensure("fashion-mnist")

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets a stage needs (``"fit"``, ``"validate"``, ``"test"``, ``"predict"``; ``None``: all).

        Calling it again does not rebuild what is already there, so the splits stay fixed.
        """
        if stage in (None, "fit", "validate") and self.train_set is None:
            train = FashionMNISTDataset("train", transform=self.train_transform)
            # The validation images are the same tensors, without the training transform.
            plain = ImageDataset(train.images, train.labels, mean=train.mean, std=train.std, classes=train.classes)
            rest, val_idx = stratified_split(train.labels, self.n_val, seed=self.seed)
            train_idx = _stratified_subset(train.labels, rest, self.n_train, seed=self.seed, what="n_train")
            self.train_set = Subset(train, train_idx.tolist())
            self.val_set = Subset(plain, val_idx.tolist())
            self.classes = train.classes
        if stage in (None, "test", "predict") and self.test_set is None:
            test = FashionMNISTDataset("test")
            idx = _stratified_subset(test.labels, torch.arange(len(test)), self.n_test, seed=self.seed, what="n_test")
            self.test_set = Subset(test, idx.tolist())
            self.classes = test.classes

    def _loader(self, dataset: Dataset | None, name: str, *, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"the {name} set is not built yet: call setup() first (the Trainer does this for you)")
        generator = torch.Generator().manual_seed(self.seed) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled with a generator seeded by ``seed``: the same order of batches on every run."""
        return self._loader(self.train_set, "training", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """The test set, unshuffled (batches of ``(images, labels)``; predict_step uses the images)."""
        return self._loader(self.test_set, "test", shuffle=False)

    def __repr__(self) -> str:
        sizes = ", ".join(
            f"{name}={len(ds) if ds is not None else '?'}"
            for name, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))
        )
        return f"{type(self).__name__}(batch_size={self.batch_size}, seed={self.seed}, {sizes})"
