"""dlfund.data.augment: shapes and dtypes kept, seeded, per-sample randomness, what the crop pads with,
how much random erasing erases."""

from __future__ import annotations

import pytest
import torch

from dlfund.data.augment import Compose, RandomCrop, RandomErasing, RandomHorizontalFlip
from dlfund.data.torch_datasets import ImageDataset


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


ALL = [
    lambda g: RandomCrop(padding=3, fill=-1.0, generator=g),
    lambda g: RandomHorizontalFlip(p=0.5, generator=g),
    lambda g: RandomErasing(p=0.7, generator=g),
    lambda g: Compose([RandomCrop(2, generator=g), RandomHorizontalFlip(generator=g), RandomErasing(generator=g)]),
]


@pytest.mark.parametrize("make", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_shape_and_dtype_preserved(make, dtype) -> None:
    t = make(gen(0))
    for shape in [(1, 28, 28), (3, 9, 13), (5, 1, 28, 28), (4, 2, 10, 7)]:
        x = torch.randn(*shape).to(dtype)
        out = t(x)
        assert out.shape == x.shape and out.dtype == dtype and out.device == x.device


@pytest.mark.parametrize("make", ALL)
def test_seeded_determinism_and_input_untouched(make) -> None:
    x = torch.randn(16, 1, 12, 12)
    before = x.clone()
    a, b, c = make(gen(3)), make(gen(3)), make(gen(4))
    outs_a = [a(x) for _ in range(3)]
    torch.rand(5)  # the global RNG does not matter when a generator is given
    outs_b = [b(x) for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(outs_a, outs_b))
    assert not all(torch.equal(p, q) for p, q in zip(outs_a, [c(x) for _ in range(3)]))
    assert torch.equal(x, before)


@pytest.mark.parametrize("make", ALL)
def test_per_sample_randomness_in_a_batch(make) -> None:
    x = torch.randn(1, 1, 12, 12).expand(32, 1, 12, 12).contiguous()  # the same image 32 times
    out = make(gen(1))(x)
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) >= 2, "every image in a batch should get its own random draw (a flip has only 2 outcomes)"


def test_crop_pads_with_fill_and_shifts_within_padding() -> None:
    x = torch.ones(200, 1, 8, 8)
    out = RandomCrop(padding=2, fill=-3.0, generator=gen(0))(x)
    assert set(out.unique().tolist()) <= {1.0, -3.0}
    # each output is the image shifted by (dy - 2, dx - 2): count the padded rows and columns
    pad_rows = (out[:, 0] == -3.0).all(dim=2).sum(dim=1)
    pad_cols = (out[:, 0] == -3.0).all(dim=1).sum(dim=1)
    assert pad_rows.max() == 2 and pad_cols.max() == 2 and (pad_rows == 0).any()
    # the interior always survives: rows/cols 2..5 of the original are never cut away
    assert torch.all(out[:, :, 2:6, 2:6] == 1.0)
    assert torch.equal(RandomCrop(padding=0)(x), x)
    # single image: equals one of the 25 shifted copies of the padded image
    img = torch.randn(1, 6, 6)
    crop = RandomCrop(padding=2, fill=0.5, generator=gen(1))(img)
    padded = torch.nn.functional.pad(img, (2, 2, 2, 2), value=0.5)
    assert any(torch.equal(crop, padded[:, dy : dy + 6, dx : dx + 6]) for dy in range(5) for dx in range(5))


def test_crop_offsets_are_uniform() -> None:
    x = torch.arange(25.0).view(1, 1, 5, 5).expand(5000, 1, 5, 5)
    out = RandomCrop(padding=1, fill=-1.0, generator=gen(2))(x)
    # the value at the centre pixel tells the offset: centre of the crop = original (1 + dy, 1 + dx) shifted by -1
    centre = out[:, 0, 2, 2].long()
    counts = torch.bincount(centre, minlength=25)
    seen = counts[counts > 0]
    assert len(seen) == 9 and seen.min() > 450 and seen.max() < 670  # 9 offsets, ~556 each


def test_flip_probability_and_orientation() -> None:
    x = torch.arange(6.0).view(1, 1, 2, 3).expand(4000, 1, 2, 3)
    out = RandomHorizontalFlip(p=0.3, generator=gen(0))(x)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped | kept)
    assert 0.27 < flipped.float().mean() < 0.33
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x.flip(-1))


def test_erasing_area_within_range() -> None:
    scale = (0.05, 0.25)
    x = torch.ones(3000, 2, 20, 20)
    out = RandomErasing(p=1.0, scale=scale, value=0.0, generator=gen(0))(x)
    assert torch.equal(out[:, 0], out[:, 1])  # the same rectangle in every channel
    area = (out[:, 0] == 0).flatten(1).float().mean(1)
    assert area.min() >= scale[0] * 0.75 and area.max() <= scale[1] * 1.25  # rounding to whole pixels
    assert area.mean() == pytest.approx(sum(scale) / 2, rel=0.1)
    # erased region is one rectangle: rows and columns touched form a box of exactly that area
    mask = out[:, 0] == 0
    rows, cols = mask.any(2).sum(1), mask.any(1).sum(1)
    assert torch.equal(rows * cols, mask.flatten(1).sum(1))
    some = RandomErasing(p=0.4, generator=gen(1))(torch.ones(4000, 1, 10, 10))
    assert 0.36 < (some != 1).flatten(1).any(1).float().mean() < 0.44


def test_usable_as_dataset_transform() -> None:
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    labels = torch.arange(5)
    ds = ImageDataset(
        images,
        labels,
        mean=0.3,
        std=0.35,
        transform=Compose([RandomCrop(2, fill=-0.3 / 0.35, generator=gen(0)), RandomErasing(generator=gen(1))]),
    )
    x, y = ds[3]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and y == 3
    assert "RandomCrop(padding=2" in repr(ds)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="padding must be an int >= 0"):
        RandomCrop(padding=-1)
    with pytest.raises(ValueError, match="p must be a probability"):
        RandomHorizontalFlip(p=1.5)
    with pytest.raises(ValueError, match="scale must be"):
        RandomErasing(scale=(0.3, 0.1))
    with pytest.raises(ValueError, match=r"expects an image \(C, H, W\) or a batch"):
        RandomCrop()(torch.zeros(28, 28))
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        RandomCrop(generator=0)  # type: ignore[arg-type]
