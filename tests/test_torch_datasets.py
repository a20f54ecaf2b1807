"""Library tests for dlfund.data.torch_datasets, and parity with the unit-04 notebook that builds a Dataset."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch.utils.data import DataLoader, Subset

from dlfund import data
from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.data import torch_datasets
from dlfund.data.torch_datasets import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    MNIST_MEAN,
    MNIST_STD,
    FashionMNISTDataset,
    ImageDataset,
    MNIST5kDataset,
    stratified_split,
)

UNIT = manifest.get_unit(4)


def random_images(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
    return images, torch.arange(n) % 10


def test_items_are_float_images_and_int64_labels() -> None:
    images, labels = random_images()
    ds = ImageDataset(images, labels.to(torch.uint8))
    image, label = ds[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert label.shape == () and label.dtype == torch.int64 and int(label) == 3
    assert torch.allclose(image[0], images[3].double().div(255).float())
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_standardisation_and_transform_order() -> None:
    images, labels = random_images()
    seen = []

    def transform(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.clone())
        return x.flip(-1)

    ds = ImageDataset(images, labels, mean=0.3, std=0.2, transform=transform)
    image, _ = ds[5]
    standardised = ((images[5].float() / 255 - 0.3) / 0.2).unsqueeze(0)
    assert torch.allclose(seen[-1], standardised, atol=1e-6), "the transform receives the standardised image"
    assert torch.allclose(image, standardised.flip(-1), atol=1e-6)


def test_sequence_semantics() -> None:
    images, labels = random_images(7)
    ds = ImageDataset(images, labels)
    assert len(ds) == 7
    assert torch.equal(ds[-1][0], ds[6][0]) and torch.equal(ds[-7][0], ds[0][0])
    for bad in (7, -8, 100):
        with pytest.raises(IndexError, match="out of range for a dataset of 7"):
            ds[bad]
    assert len(list(ds)) == 7, "a for loop stops at IndexError"
    assert torch.equal(ds[torch.tensor(2)][0], ds[2][0]), "0-d integer tensors (from Subset) work"
    with pytest.raises(TypeError):
        ds[1:3]  # type: ignore[index]
    with pytest.raises(TypeError, match="bool"):
        ds[True]


def test_batches_through_subset_and_dataloader() -> None:
    images, labels = random_images(20)
    ds = ImageDataset(images, labels)
    loader = DataLoader(Subset(ds, torch.tensor([4, 5, 6, 7, 8])), batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 1, 28, 28) and xb.dtype == torch.float32 and yb.tolist() == [4, 5, 6, 7]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"images": torch.zeros(3, 28, 28)}, TypeError, r"\(N, H, W\) uint8 tensor, got \(3, 28, 28\) torch.float32"),
        ({"images": torch.zeros(3, 784, dtype=torch.uint8)}, TypeError, "uint8 tensor"),
        ({"labels": torch.zeros(3)}, TypeError, r"labels must be \(3,\) integers"),
        ({"labels": torch.zeros(4, dtype=torch.int64)}, TypeError, r"labels must be \(3,\) integers"),
        ({"mean": 0.5}, ValueError, "give both mean and std"),
        ({"mean": 0.5, "std": 0.0}, ValueError, "std must be positive"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs: dict, error: type[Exception], message: str) -> None:
    args = {"images": torch.zeros(3, 28, 28, dtype=torch.uint8), "labels": torch.zeros(3, dtype=torch.int64)} | kwargs
    with pytest.raises(error, match=message):
        ImageDataset(**args)


def test_named_datasets_use_their_loaders_and_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    images, labels = random_images(10)
    monkeypatch.setattr(torch_datasets, "load_fashion_mnist", lambda split: (images, labels))
    monkeypatch.setattr(torch_datasets, "load_mnist_5k", lambda: (images, labels))
    fashion = FashionMNISTDataset("test")
    assert (fashion.mean, fashion.std, fashion.split) == (FASHION_MNIST_MEAN, FASHION_MNIST_STD, "test")
    assert fashion.classes == data.FASHION_MNIST_CLASSES
    assert FashionMNISTDataset(standardize=False).mean is None
    digits = MNIST5kDataset(transform=torch.neg)
    assert (digits.mean, digits.std) == (MNIST_MEAN, MNIST_STD) and digits.classes[3] == "3"
    assert torch.allclose(digits[0][0], -((images[0].float() / 255 - MNIST_MEAN) / MNIST_STD).unsqueeze(0))
    assert "MNIST5kDataset(10 images (28, 28)" in repr(digits)


def test_stratified_split_is_exact_seeded_and_disjoint() -> None:
    labels = torch.arange(1000) // 100  # sorted by class, like MNIST 5k
    first, second = stratified_split(labels, 200, seed=3)
    assert torch.bincount(labels[second]).tolist() == [20] * 10
    assert len(first) == 800 and set(first.tolist()).isdisjoint(second.tolist())
    assert first.dtype == torch.int64 and torch.equal(first, first.sort().values)
    assert torch.equal(stratified_split(labels, 200, seed=3)[1], second)
    assert not torch.equal(stratified_split(labels, 200, seed=4)[1], second)
    assert len(stratified_split(labels.numpy(), 0.25, seed=0)[1]) == 250


def test_exported_from_dlfund_data() -> None:
    assert data.FashionMNISTDataset is FashionMNISTDataset and data.stratified_split is stratified_split
    assert {"ImageDataset", "FashionMNISTDataset", "MNIST5kDataset", "stratified_split"} <= set(data.__all__)


def test_docstring_example() -> None:
    assert doctest.testmod(torch_datasets).failed == 0


def test_datasets_notebook_class_matches_library() -> None:
    MNISTDigits = definitions(UNIT.notebook_path("04-datasets-and-loaders"), names=("MNISTDigits",))["MNISTDigits"]
    """The notebook's dataset scales to [0, 1] only (standardising and transforms are exercise 2's)."""
    images, labels = random_images(15, seed=1)
    ours, library = MNISTDigits(images, labels), ImageDataset(images, labels)
    assert len(ours) == len(library)
    for i in (0, 7, -1):
        assert torch.allclose(ours[i][0], library[i][0], atol=1e-6) and torch.equal(ours[i][1], library[i][1])


def test_real_fashion_mnist_statistics() -> None:
    if not data.verify("fashion-mnist"):
        pytest.skip("fashion-mnist is not in the cache (run `dlfund data fetch fashion-mnist`)")
    ds = FashionMNISTDataset("train", standardize=False)
    assert len(ds) == 60000
    pixels = ds.images.float() / 255
    assert pixels.mean().item() == pytest.approx(FASHION_MNIST_MEAN, abs=1e-3)
    assert pixels.std().item() == pytest.approx(FASHION_MNIST_STD, abs=1e-3)
