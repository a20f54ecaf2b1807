"""Library tests for dlfund.models.mlp, and parity with the unit-04 notebooks that build it step by step."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfund.checks.unit04 import mlp_parameters
from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models import mlp as mlp_module
from dlfund.models.mlp import ACTIVATIONS, MLP

UNIT = manifest.get_unit(4)


# --- the model ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("in_features", "hidden", "out_features"), [(784, [256, 128], 10), (10, [64, 64], 1), (5, [], 3), (3, [7, 1, 4], 2)]
)
def test_shapes_and_parameter_count(in_features: int, hidden: list[int], out_features: int) -> None:
    model = MLP(in_features, hidden, out_features)
    out = model(torch.randn(6, in_features))
    assert out.shape == (6, out_features) and out.dtype == torch.float32
    assert sum(p.numel() for p in model.parameters()) == mlp_parameters(in_features, hidden, out_features)
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    assert [m.out_features for m in linears] == [*hidden, out_features]
    assert isinstance(model.layers[-1], nn.Linear), "no activation after the last layer: it returns logits"


def test_images_are_flattened() -> None:
    model = MLP(784, [32], 10)
    images = torch.randn(4, 1, 28, 28)
    assert torch.equal(model(images), model(images.reshape(4, 784)))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activation_by_name_and_fresh_module_per_layer(name: str) -> None:
    model = MLP(4, [8, 8], 2, activation=name)
    acts = [m for m in model.layers if isinstance(m, ACTIVATIONS[name])]
    assert len(acts) == 2 and acts[0] is not acts[1]


def test_activation_callable_and_dropout() -> None:
    model = MLP(4, [8, 8], 2, activation=nn.LeakyReLU, dropout=0.5)
    assert sum(isinstance(m, nn.LeakyReLU) for m in model.layers) == 2
    assert sum(isinstance(m, nn.Dropout) for m in model.layers) == 2
    assert not any(isinstance(m, nn.Dropout) for m in MLP(4, [8], 2).layers), "dropout=0 adds no layers"
    x = torch.randn(16, 4)
    model.eval()
    assert torch.equal(model(x), model(x)), "dropout is off in eval mode"
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    assert not torch.equal(a, model(x)), "dropout is random in train mode"


def test_manual_forward_equals_module() -> None:
    torch.manual_seed(0)
    model = MLP(5, [6], 3, activation="tanh")
    x = torch.randn(4, 5)
    first, last = model.layers[0], model.layers[2]
    expected = torch.tanh(x @ first.weight.T + first.bias) @ last.weight.T + last.bias
    assert torch.allclose(model(x), expected, atol=1e-6)


def test_state_dict_keys_and_repr() -> None:
    model = MLP(784, [256, 128], 10)
    assert list(model.state_dict()) == [f"layers.{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")]
    assert "hidden=[256, 128]" in repr(model)


def test_trains_on_xor() -> None:
    torch.manual_seed(0)
    X = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])
    model = MLP(2, [16], 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(X), y).backward()
        optimizer.step()
    assert torch.equal(model(X).argmax(dim=1), y)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"in_features": 0}, ValueError, "in_features must be a positive int"),
        ({"out_features": 2.5}, ValueError, "out_features must be a positive int"),
        ({"hidden": 64}, TypeError, "hidden must be a sequence"),
        ({"hidden": "64"}, TypeError, "hidden must be a sequence"),
        ({"hidden": [64, 0]}, ValueError, "every hidden width must be a positive int"),
        ({"activation": "swish"}, ValueError, "unknown activation 'swish'"),
        ({"activation": 3}, TypeError, "activation must be a name or a callable"),
        ({"dropout": 1.0}, ValueError, r"dropout must be a probability in \[0, 1\)"),
    ],
)
def test_bad_construction_raises_clear_errors(kwargs: dict, error: type[Exception], message: str) -> None:
    args = {"in_features": 4, "hidden": [8], "out_features": 2} | kwargs
    with pytest.raises(error, match=message):
        MLP(**args)


def test_wrong_input_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"expects 784 features per example, got input of 28"):
        MLP(784, [8], 10)(torch.zeros(2, 28))


def test_docstring_example() -> None:
    assert doctest.testmod(mlp_module).failed == 0


# --- parity with the notebooks ------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_classifier_notebook_mlp_matches_library(seed: int) -> None:
    MyMLP = definitions(UNIT.notebook_path("05-mlp-classifier"), names=("MyMLP",))["MyMLP"]
    gen = torch.Generator().manual_seed(seed)
    hidden = [int(h) for h in torch.randint(1, 20, (int(torch.randint(0, 4, (), generator=gen)),), generator=gen)]
    mine = MyMLP(12, hidden, 5)
    library = MLP(12, hidden, 5)
    library.load_state_dict(mine.state_dict())  # the same parameter names, so the weights carry over
    x = torch.randn(9, 12, generator=gen)
    assert torch.allclose(library(x), mine(x), atol=1e-6)
    assert sum(p.numel() for p in mine.parameters()) == mlp_parameters(12, hidden, 5)


@pytest.mark.parametrize("scale", [1.0, 50.0, 1000.0])
def test_softmax_notebook_functions_match_torch(scale: float) -> None:
    nb = definitions(
        UNIT.notebook_path("01-softmax-regression"), names=("softmax", "log_softmax", "cross_entropy", "softmax_naive")
    )
    gen = torch.Generator().manual_seed(int(scale))
    z = scale * torch.randn(64, 10, generator=gen)
    targets = torch.randint(0, 10, (64,), generator=gen)
    assert torch.allclose(nb["softmax"](z), torch.softmax(z, dim=1), atol=1e-6)
    assert torch.allclose(nb["log_softmax"](z), F.log_softmax(z, dim=1), atol=1e-4 * scale)
    assert torch.allclose(nb["cross_entropy"](z, targets), F.cross_entropy(z, targets), rtol=1e-5, atol=1e-5)
    if scale >= 1000:
        assert torch.isnan(nb["softmax_naive"](z)).any(), "the naive version overflows"


def test_init_notebook_formulas() -> None:
    nb = definitions(UNIT.notebook_path("03-activations-and-init"), names=("init_std", "deep_network", "initialise"))
    assert nb["init_std"]("Kaiming", 256, 256) == pytest.approx(math.sqrt(2 / 256))
    assert nb["init_std"]("Xavier", 100, 300) == pytest.approx(math.sqrt(2 / 400))
    model = nb["deep_network"](nn.ReLU)
    nb["initialise"](model, "Kaiming", torch.Generator().manual_seed(0))
    first = model[0].weight
    assert first.std().item() == pytest.approx(math.sqrt(2 / 784), rel=0.02)
    assert torch.equal(model[0].bias, torch.zeros_like(model[0].bias))


# --- unit 6: the batchnorm option -------------------------------------------------------------


def test_batchnorm_layers_order_and_default_off() -> None:
    assert not any(isinstance(m, nn.BatchNorm1d) for m in MLP(4, [8, 6], 3).modules())  # unchanged default
    model = MLP(4, [8, 6], 3, batchnorm=True, dropout=0.1)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in MLP(4, [8, 6], 3).parameters()) + 2 * (
        8 + 6
    )


def test_batchnorm_train_uses_batch_statistics_and_eval_running_ones() -> None:
    torch.manual_seed(0)
    model = MLP(5, [7], 2, batchnorm=True)
    x = 3 * torch.randn(64, 5) + 1
    model.train()
    hidden = model.layers[1](model.layers[0](x))  # after Linear -> BatchNorm1d
    assert torch.allclose(hidden.mean(0), torch.zeros(7), atol=1e-5)
    assert torch.allclose(hidden.var(0, unbiased=False), torch.ones(7), atol=1e-3)
    model(x)  # updates the running statistics
    model.eval()
    out1, out2 = model(x[:1]), model(x)[:1]  # in eval mode an example's output does not depend on its batch
    assert torch.allclose(out1, out2, atol=1e-6)
