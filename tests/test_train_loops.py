"""Library tests for dlfund.train.loops, and parity with the unit-04 notebook that builds the loop."""

from __future__ import annotations

import copy
import doctest
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models.mlp import MLP
from dlfund.train import History, evaluate, fit, loops, train_epoch

UNIT = manifest.get_unit(4)


def blobs(n: int = 90, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    X = 3 * torch.eye(3)[y] @ torch.randn(3, 5, generator=gen) + 0.5 * torch.randn(n, 5, generator=gen)
    return X, y


def loader(X: torch.Tensor, y: torch.Tensor, batch_size: int = 16, seed: int | None = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    return DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=seed is not None, generator=gen)


def test_train_epoch_returns_the_size_weighted_mean_loss() -> None:
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    X, y = blobs(20)
    batches = [(X[:16], y[:16]), (X[16:], y[16:])]  # a full and a small last batch
    frozen = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every batch sees the same weights
    with torch.no_grad():
        expected = F.cross_entropy(model(X), y).item()
    assert train_epoch(model, batches, frozen, F.cross_entropy, "cpu") == pytest.approx(expected, rel=1e-6)


def test_train_epoch_updates_and_sets_train_mode() -> None:
    torch.manual_seed(0)
    model = MLP(5, [8], 3, dropout=0.3).eval()
    before = copy.deepcopy(model.state_dict())
    X, y = blobs()
    train_epoch(model, loader(X, y), torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, "cpu")
    assert model.training
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_evaluate_counts_accuracy_exactly_and_does_not_train() -> None:
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
        model.bias.zero_()
    X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    loss, acc = evaluate(model, [(X[:2], y[:2]), (X[2:], y[2:])], F.cross_entropy, "cpu")
    assert acc == 2 / 3 and loss == pytest.approx(F.cross_entropy(model(X), y).item(), rel=1e-6)
    assert not model.training and model.weight.grad is None


def test_evaluate_regression_gives_nan_accuracy() -> None:
    X = torch.randn(10, 3)
    loss, acc = evaluate(nn.Linear(3, 1), [(X, torch.randn(10, 1))], F.mse_loss, "cpu")
    assert math.isnan(acc) and loss > 0


def test_fit_learns_and_records_history(capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    X, y = blobs()
    model = MLP(5, [16], 3)
    history = fit(
        model,
        loader(X, y),
        loader(X, y, seed=None),
        torch.optim.Adam(model.parameters(), lr=0.01),
        nn.CrossEntropyLoss(),
        "cpu",
        epochs=4,
    )
    assert isinstance(history, History) and history.epochs == 4
    assert len(history.val_loss) == len(history.val_accuracy) == len(history.epoch_seconds) == 4
    assert history.train_loss[-1] < history.train_loss[0] and history.val_accuracy[-1] > 0.9
    assert history.total_seconds == pytest.approx(sum(history.epoch_seconds))
    assert history.rows()[0]["epoch"] == 1 and set(history.rows()[0]) == {
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "seconds",
    }
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 4 and out[0].startswith("epoch 1/4: train loss") and "val accuracy" in out[0]


def test_fit_without_validation_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = blobs()
    model = nn.Linear(5, 3)
    history = fit(
        model,
        loader(X, y),
        None,
        torch.optim.SGD(model.parameters(), lr=0.1),
        F.cross_entropy,
        "cpu",
        epochs=2,
        verbose=False,
    )
    assert all(math.isnan(v) for v in history.val_loss + history.val_accuracy)
    assert capsys.readouterr().out == ""
    assert (
        fit(
            model, loader(X, y), None, torch.optim.SGD(model.parameters(), lr=0.1), F.cross_entropy, "cpu", epochs=0
        ).epochs
        == 0
    )


def test_clear_errors() -> None:
    model = nn.Linear(5, 3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="yielded no batches"):
        train_epoch(model, [], optimizer, F.cross_entropy, "cpu")
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate(model, [], F.cross_entropy, "cpu")
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        fit(model, [], None, optimizer, F.cross_entropy, "cpu", epochs=-1)


def test_fit_is_reproducible() -> None:
    X, y = blobs()

    def run() -> list[float]:
        torch.manual_seed(1)
        model = MLP(5, [8], 3)
        return fit(
            model,
            loader(X, y, seed=7),
            None,
            torch.optim.Adam(model.parameters()),
            F.cross_entropy,
            "cpu",
            epochs=3,
            verbose=False,
        ).train_loss

    assert run() == run()


def test_docstring_example() -> None:
    assert doctest.testmod(loops).failed == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_notebook_loop_matches_library(seed: int) -> None:
    nb = definitions(UNIT.notebook_path("05-mlp-classifier"), names=("train_one_epoch", "evaluate_model"))
    X, y = blobs(seed=seed)
    torch.manual_seed(seed)
    ours = MLP(5, [8], 3, dropout=0.2)
    theirs = copy.deepcopy(ours)
    opt_ours, opt_theirs = torch.optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    for epoch in range(2):
        torch.manual_seed(100 + epoch)  # the same dropout masks for both
        loss_ours = nb["train_one_epoch"](ours, loader(X, y, seed=epoch), opt_ours, F.cross_entropy, "cpu")
        torch.manual_seed(100 + epoch)
        loss_theirs = train_epoch(theirs, loader(X, y, seed=epoch), opt_theirs, F.cross_entropy, "cpu")
        assert loss_ours == pytest.approx(loss_theirs, rel=1e-6)
    for a, b in zip(ours.parameters(), theirs.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    ev_ours = nb["evaluate_model"](ours, loader(X, y, seed=None), F.cross_entropy, "cpu")
    ev_theirs = evaluate(theirs, loader(X, y, seed=None), F.cross_entropy, "cpu")
    assert ev_ours[0] == pytest.approx(ev_theirs[0], rel=1e-6) and ev_ours[1] == ev_theirs[1]
