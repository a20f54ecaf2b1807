"""Library tests for dlfund.models.perceptron, and parity with the notebooks that build it step by step."""

from __future__ import annotations

import doctest

import pytest
import torch

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models import perceptron as perceptron_module
from dlfund.models.perceptron import History, Perceptron

UNIT = manifest.get_unit(1)


def separable_data(n: int = 60, d: int = 3, seed: int = 0, margin: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Points labelled by a random hyperplane, keeping only those at least `margin` away from it."""
    gen = torch.Generator().manual_seed(seed)
    w, b = torch.randn(d, generator=gen), torch.randn((), generator=gen)
    X = 3 * torch.randn(4 * n, d, generator=gen)
    z = (X @ w + b) / w.norm()
    keep = z.abs() > margin
    return X[keep][:n], (z[keep][:n] > 0).long()


def overlapping_data(n: int = 50, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    X = torch.randn(n, d, generator=gen) + 0.8 * y[:, None] + 1.0
    return X, y


XOR_X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
XOR_Y = torch.tensor([0, 1, 1, 0])


# --- learning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_converges_on_separable_data(seed: int) -> None:
    X, y = separable_data(seed=seed)
    model = Perceptron(X.shape[1])
    history = model.fit(X, y, epochs=200)
    assert history.converged and history.mistakes[-1] == 0
    assert history.epochs < 200
    assert torch.equal(model.predict(X), y)


def test_never_converges_on_xor() -> None:
    model = Perceptron(2)
    history = model.fit(XOR_X, XOR_Y, epochs=100)
    assert history.epochs == 100 and not history.converged
    assert min(history.mistakes) > 0
    assert (model.predict(XOR_X) != XOR_Y).any()


def test_stop_when_converged_false_runs_every_epoch() -> None:
    X, y = separable_data()
    history = Perceptron(X.shape[1]).fit(X, y, epochs=50, stop_when_converged=False)
    assert history.epochs == 50 and history.mistakes[-1] == 0


def test_train_epoch_counts_mistakes_and_updates_only_on_mistakes() -> None:
    model = Perceptron(2)
    X = torch.tensor([[2.0, 1.0], [-1.0, -2.0]])
    assert model.train_epoch(X, torch.tensor([1, 0])) == 1  # z = 0 predicts 0: one mistake, then right
    assert torch.equal(model.weight, torch.tensor([2.0, 1.0])) and float(model.bias) == 1.0
    assert model.train_epoch(X, torch.tensor([1, 0])) == 0
    assert torch.equal(model.weight, torch.tensor([2.0, 1.0]))  # no mistake, no change


def test_zero_init_learning_rate_only_rescales() -> None:
    X, y = overlapping_data()
    a, b = Perceptron(4), Perceptron(4)
    a.fit(X, y, epochs=5, lr=1.0, stop_when_converged=False)
    b.fit(X, y, epochs=5, lr=0.25, stop_when_converged=False)  # a power of two: the scaling is exact
    assert torch.equal(b.weight * 4, a.weight) and torch.equal(a.predict(X), b.predict(X))


def test_random_init_is_seeded_and_scaled() -> None:
    def draw(seed: int, scale: float = 0.01) -> torch.Tensor:
        return Perceptron(5000, init="random", generator=torch.Generator().manual_seed(seed), scale=scale).weight

    assert torch.equal(draw(1), draw(1)) and not torch.equal(draw(1), draw(2))
    assert abs(float(draw(3, scale=0.5).std()) - 0.5) < 0.05
    assert float(Perceptron(3, init="random").bias) == 0.0


def test_shapes_dtypes_and_state() -> None:
    X, y = overlapping_data(n=7, d=4)
    model = Perceptron(4)
    assert model.weight.shape == (4,) and model.bias.shape == () and model.weight.dtype == torch.float32
    assert model.net_input(X).shape == (7,) and model.net_input(X).dtype == torch.float32
    prediction = model(X)
    assert prediction.shape == (7,) and prediction.dtype == torch.int64
    assert torch.equal(prediction, model.predict(X))
    assert set(model.state_dict()) == {"weight", "bias"} and list(model.parameters()) == []
    assert Perceptron(4, dtype=torch.float64).net_input(X).dtype == torch.float64  # inputs are cast
    model.train_epoch(X, y.float())  # float labels 0.0/1.0 are accepted
    assert "num_features=4" in repr(model)


def test_history() -> None:
    assert History().epochs == 0 and not History().converged
    assert History([3, 1, 0]).converged and History([3, 1, 0]).epochs == 3


def test_docstring_example() -> None:
    assert doctest.testmod(perceptron_module).failed == 0


# --- clear errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "y", "error", "message"),
    [
        (torch.zeros(5), torch.zeros(5, dtype=torch.long), ValueError, r"X must have shape \(N, 3\).*got \(5,\)"),
        (torch.zeros(5, 4), torch.zeros(5, dtype=torch.long), ValueError, r"X must have shape \(N, 3\).*got \(5, 4\)"),
        (torch.zeros(5, 3, dtype=torch.uint8), torch.zeros(5, dtype=torch.long), TypeError, r"floating point.*uint8"),
        ([[0.0, 0.0, 0.0]], torch.zeros(1, dtype=torch.long), TypeError, r"torch.Tensor.*list"),
        (torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.long), ValueError, r"y must have shape \(5,\).*\(5, 1\)"),
        (torch.zeros(5, 3), torch.zeros(4, dtype=torch.long), ValueError, r"y must have shape \(5,\)"),
        (torch.zeros(5, 3), torch.tensor([0, 1, 2, 1, 0]), ValueError, r"only the labels 0 and 1, found \[2\]"),
        (torch.zeros(2, 3), torch.tensor([0.5, 1.0]), ValueError, r"only the labels 0 and 1"),
    ],
)
def test_bad_inputs_raise_clear_errors(X: object, y: torch.Tensor, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Perceptron(3).train_epoch(X, y)  # type: ignore[arg-type]


def test_bad_construction_raises_clear_errors() -> None:
    with pytest.raises(ValueError, match="positive int"):
        Perceptron(0)
    with pytest.raises(ValueError, match="'zeros' or 'random'"):
        Perceptron(3, init="ones")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="only used with init='random'"):
        Perceptron(3, generator=torch.Generator())
    with pytest.raises(TypeError, match="floating-point dtype"):
        Perceptron(3, dtype=torch.int64)
    with pytest.raises(ValueError, match="epochs must be >= 0"):
        Perceptron(3).fit(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), epochs=-1)
    with pytest.raises(ValueError, match=r"X must have shape \(N, 3\)"):
        Perceptron(3).predict(torch.zeros(2, 2))


# --- parity with the notebooks ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_notebook_matches_library(seed: int) -> None:
    nb = definitions(
        UNIT.notebook_path("03-perceptron-vectorised"), names=("train_epoch_torch", "predict_one", "predict_all")
    )
    X, y = overlapping_data(n=60, d=6, seed=seed)
    model = Perceptron(6)
    w, b = torch.zeros(6), torch.zeros(())
    for _ in range(4):
        w, b, mistakes = nb["train_epoch_torch"](w, b, X, y, lr=0.5)
        assert model.train_epoch(X, y, lr=0.5) == mistakes
        assert torch.equal(model.weight, w) and torch.equal(model.bias, b)
    assert torch.equal(nb["predict_all"](w, b, X), model.predict(X))
    assert [nb["predict_one"](w, b, x) for x in X] == model.predict(X).tolist()


@pytest.mark.parametrize("seed", [0, 1])
def test_plain_python_notebook_matches_library(seed: int) -> None:
    nb = definitions(UNIT.notebook_path("02-perceptron-python"), names=("train_epoch", "predict_one"))
    X, y = overlapping_data(n=40, d=3, seed=seed)
    X = X.double()
    model = Perceptron(3, dtype=torch.float64)
    weights, bias = [0.0] * 3, 0.0
    for _ in range(4):
        weights, bias, mistakes = nb["train_epoch"](weights, bias, X.tolist(), y.tolist(), lr=0.5)
        assert model.train_epoch(X, y, lr=0.5) == mistakes
        assert torch.allclose(model.weight, torch.tensor(weights, dtype=torch.float64), atol=1e-12)
        assert abs(float(model.bias) - bias) < 1e-12
    assert [nb["predict_one"](weights, bias, x) for x in X.tolist()] == model.predict(X).tolist()
