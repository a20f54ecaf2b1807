"""dlfund.train.contrastive: NT-Xent against an explicit per-anchor loop, its properties, the pretraining loop
and frozen features."""

from __future__ import annotations

import doctest
import math

import pytest
import torch

from dlfund.data.augment import RandomCrop
from dlfund.models import SmallCNN
from dlfund.train import contrastive
from dlfund.train.contrastive import encode, nt_xent_loss, pretrain_contrastive
from dlfund.train.vision import TensorBatches


def loop_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> float:
    """NT-Xent one anchor at a time, in Python floats: cosines by hand, a log-sum-exp over the others."""
    views = [row.tolist() for row in torch.cat([z1, z2]).double()]
    n2 = len(views)
    units = []
    for v in views:
        norm = math.sqrt(sum(a * a for a in v))
        units.append([a / norm for a in v])
    total = 0.0
    for i in range(n2):
        partner = (i + n2 // 2) % n2
        sims = {k: sum(a * b for a, b in zip(units[i], units[k])) / temperature for k in range(n2) if k != i}
        top = max(sims.values())
        lse = top + math.log(sum(math.exp(s - top) for s in sims.values()))
        total += lse - sims[partner]
    return total / n2


@pytest.mark.parametrize(("n", "d", "temperature", "seed"), [(2, 3, 1.0, 0), (5, 7, 0.5, 1), (9, 4, 0.1, 2)])
def test_matches_a_per_anchor_loop(n, d, temperature, seed):
    g = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    assert abs(nt_xent_loss(z1, z2, temperature).item() - loop_nt_xent(z1, z2, temperature)) <= 1e-6


def test_float32_close_to_the_loop():
    g = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g)
    assert abs(nt_xent_loss(z1, z2, 0.2).item() - loop_nt_xent(z1, z2, 0.2)) <= 1e-5


def test_loss_falls_as_the_positives_align():
    g = torch.Generator().manual_seed(4)
    z1, noise = torch.randn(12, 6, generator=g), torch.randn(12, 6, generator=g)
    losses = [nt_xent_loss(z1, z1 + s * noise, 0.3).item() for s in (4.0, 1.0, 0.3, 0.0)]
    assert losses == sorted(losses, reverse=True)


def test_invariances():
    """Permuting the pairs, swapping the two views and scaling rows leave the loss unchanged."""
    g = torch.Generator().manual_seed(5)
    z1, z2 = torch.randn(10, 5, generator=g, dtype=torch.float64), torch.randn(10, 5, generator=g, dtype=torch.float64)
    base = nt_xent_loss(z1, z2, 0.4)
    perm = torch.randperm(10, generator=g)
    torch.testing.assert_close(nt_xent_loss(z1[perm], z2[perm], 0.4), base)
    torch.testing.assert_close(nt_xent_loss(z2, z1, 0.4), base)
    scale = torch.rand(10, 1, generator=g, dtype=torch.float64) + 0.5
    torch.testing.assert_close(nt_xent_loss(z1 * scale, z2, 0.4), base)
    # breaking the pairing (shuffling only one view) changes it
    assert abs(nt_xent_loss(z1[perm], z2, 0.4).item() - base.item()) > 1e-3


def test_bounds_and_gradient():
    n = 6
    z = torch.randn(n, 4, requires_grad=True)
    loss = nt_xent_loss(z, torch.randn(n, 4), 0.5)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
    # identical views of orthogonal directions: the partner has cosine 1, the rest 0
    eye = torch.eye(n)
    want = -1 / 0.5 + math.log(math.exp(1 / 0.5) + (2 * n - 2))
    assert abs(nt_xent_loss(eye, eye, 0.5).item() - want) < 1e-5


def test_rejects_bad_inputs():
    with pytest.raises(ValueError):
        nt_xent_loss(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(ValueError):
        nt_xent_loss(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0)


def test_pretraining_lowers_the_loss_and_encode_gives_features():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8)
    labels = torch.arange(64) % 10
    batches = TensorBatches(images, labels, batch_size=32, mean=0.3, std=0.3, shuffle=True, drop_last=True)
    encoder = SmallCNN(width=4)
    head = torch.nn.Sequential(torch.nn.Linear(encoder.num_features, 16), torch.nn.ReLU(), torch.nn.Linear(16, 8))
    losses = pretrain_contrastive(
        encoder,
        head,
        batches,
        RandomCrop(padding=2),
        lambda z1, z2, y: nt_xent_loss(z1, z2, 0.5),
        epochs=6,
        lr=3e-3,
        device="cpu",
        verbose=False,
    )
    assert len(losses) == 6 and losses[-1] < losses[0]
    feats, ys = encode(encoder, TensorBatches(images, labels, batch_size=20, mean=0.3, std=0.3), "cpu")
    assert feats.shape == (64, encoder.num_features) and torch.equal(ys, labels)
    assert not encoder.training


def test_doctest():
    assert doctest.testmod(contrastive).failed == 0
