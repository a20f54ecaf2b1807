"""Library tests for dlfund.models.logistic, and parity with notebooks 03 and 04 of unit 3."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models import logistic

UNIT = manifest.get_unit(3)


def data(n: int = 60, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two overlapping Gaussian classes, float64 features, int64 labels 0/1."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    X = torch.randn(n, d, generator=gen, dtype=torch.float64) + 1.2 * (2 * y[:, None] - 1)
    return X, y


def params(d: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(d, generator=gen, dtype=torch.float64), torch.randn((), generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradients_match_autograd(seed: int) -> None:
    X, y = data(seed=seed)
    w, b = params(X.shape[1], seed)
    w_, b_ = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    logistic.loss(w_, b_, X, y).backward()
    grad_w, grad_b = logistic.gradients(w, b, X, y)
    assert grad_w.shape == (X.shape[1],) and grad_b.shape == ()
    assert torch.allclose(grad_w, w_.grad, rtol=1e-12, atol=1e-15)
    assert torch.allclose(grad_b, b_.grad, rtol=1e-12, atol=1e-15)


def test_loss_equals_torch_bce_and_stays_finite() -> None:
    X, y = data()
    w, b = params(X.shape[1])
    z = X @ w + b
    assert torch.allclose(logistic.loss(w, b, X, y), F.binary_cross_entropy_with_logits(z, y.double()), rtol=1e-12)
    huge = logistic.loss(1000 * w, b, X, y)  # probabilities round to 0 and 1
    assert torch.isfinite(huge) and huge > 10


def test_predictions_and_accuracy() -> None:
    X, y = data()
    w, b = params(X.shape[1])
    p = logistic.predict_proba(w, b, X)
    assert p.shape == (len(y),) and bool(((p > 0) & (p < 1)).all())
    assert torch.equal(logistic.predict(w, b, X), (p > 0.5).long())
    assert logistic.accuracy(w, b, X, y) == (logistic.predict(w, b, X) == y).double().mean().item()


def test_full_batch_fit_descends_and_leaves_inputs_alone() -> None:
    X, y = data()
    w0, b0 = params(X.shape[1])
    w_copy = w0.clone()
    result = logistic.fit(X, y, lr=0.5, epochs=50, w=w0, b=b0)
    assert torch.equal(w0, w_copy)
    assert len(result.losses) == 51 and all(a >= b for a, b in zip(result.losses, result.losses[1:]))
    assert logistic.accuracy(result.w, result.b, X, y) > 0.85
    again = logistic.fit(X, y, lr=0.5, epochs=50, w=w0, b=b0)
    assert torch.equal(again.w, result.w)


def test_minibatch_fit_is_seeded_and_makes_one_update_per_batch() -> None:
    X, y = data(n=50)
    a = logistic.fit(X, y, lr=0.1, epochs=3, batch_size=8, generator=torch.Generator().manual_seed(5))
    b = logistic.fit(X, y, lr=0.1, epochs=3, batch_size=8, generator=torch.Generator().manual_seed(5))
    c = logistic.fit(X, y, lr=0.1, epochs=3, batch_size=8, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a.w, b.w) and not torch.equal(a.w, c.w)
    # by hand: 7 batches per epoch (6 of 8 and one of 2), in the generator's order
    gen = torch.Generator().manual_seed(5)
    w, bias = torch.zeros(X.shape[1], dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    updates = 0
    for _ in range(3):
        for idx in torch.randperm(50, generator=gen).split(8):
            gw, gb = logistic.gradients(w, bias, X[idx], y[idx])
            w, bias = w - 0.1 * gw, bias - 0.1 * gb
            updates += 1
    assert updates == 21 and torch.allclose(a.w, w, rtol=1e-12, atol=1e-14)


def test_bad_inputs_raise_clear_errors() -> None:
    X, y = data(d=3)
    w, b = params(3)
    with pytest.raises(ValueError, match=r"w must have shape \(D,\) = \(3,\)"):
        logistic.loss(torch.zeros(4, dtype=torch.float64), b, X, y)
    with pytest.raises(ValueError, match=r"X must be a floating-point tensor of shape \(N, D\)"):
        logistic.logits(w, b, X[0])
    with pytest.raises(ValueError, match=r"y must have shape \(N,\)"):
        logistic.gradients(w, b, X, y[:-1])
    with pytest.raises(ValueError, match="epochs must be >= 0 and batch_size >= 1"):
        logistic.fit(X, y, lr=0.1, epochs=1, batch_size=0)


def test_docstring_example() -> None:
    assert doctest.testmod(logistic).failed == 0


# --- parity with the notebooks ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_logistic_regression_notebook_matches_library(seed: int) -> None:
    nb = definitions(
        UNIT.notebook_path("03-logistic-regression"),
        names=("bce_loss", "gradients", "train_by_hand", "train_with_autograd"),
    )
    X, y = data(seed=seed)
    w, b = params(X.shape[1], seed)
    assert torch.allclose(nb["bce_loss"](w, b, X, y), logistic.loss(w, b, X, y), rtol=1e-14)
    for mine, lib in zip(nb["gradients"](w, b, X, y), logistic.gradients(w, b, X, y)):
        assert torch.allclose(mine, lib, rtol=1e-14, atol=1e-16)
    w0, b0 = 0.01 * w, torch.zeros((), dtype=torch.float64)
    w_hand, b_hand, losses = nb["train_by_hand"](X, y, w0, b0, 0.3, 40)
    lib = logistic.fit(X, y, lr=0.3, epochs=40, w=w0, b=b0)
    assert torch.equal(w_hand, lib.w) and torch.equal(b_hand, lib.b) and losses == lib.losses
    w_auto, b_auto, _ = nb["train_with_autograd"](X, y, w0, b0, 0.3, 40)
    assert torch.allclose(w_auto, lib.w, rtol=0, atol=1e-10) and torch.allclose(b_auto, lib.b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("batch_size", [1, 7, 60])
def test_sgd_notebook_matches_library(batch_size: int) -> None:
    sgd = definitions(UNIT.notebook_path("04-sgd-and-standardisation"), names=("sgd",))["sgd"]
    X, y = data(n=60)
    w, b, losses = sgd(X, y, batch_size=batch_size, lr=0.2, epochs=3, generator=torch.Generator().manual_seed(3))
    lib = logistic.fit(X, y, lr=0.2, epochs=3, batch_size=batch_size, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(w, lib.w, rtol=1e-12, atol=1e-15) and torch.allclose(b, lib.b, rtol=1e-12, atol=1e-15)
    per_epoch = -(-60 // batch_size)
    assert len(losses) == 1 + 3 * per_epoch
    assert losses[::per_epoch] == pytest.approx(lib.losses, rel=1e-12)
