"""dlfund.train.optim: parameter groups for weight decay, and the three optimizers of unit 6."""

from __future__ import annotations

import doctest

import pytest
import torch
from torch import nn

from dlfund.models.mlp import MLP
from dlfund.train import optim
from dlfund.train.optim import make_optimizer, param_groups


class Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.conv = nn.Conv1d(4, 6, 3)
        self.ln = nn.LayerNorm(6)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 10)
        self.gate = nn.Parameter(torch.zeros(()))
        self.frozen = nn.Linear(3, 3)
        self.frozen.requires_grad_(False)


class TinyRMSNorm(nn.Module):  # a hand-written norm, recognised by its name
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, 5))


def ids(ps) -> set[int]:
    return {id(p) for p in ps}


def test_groups_decay_only_weight_matrices_and_kernels() -> None:
    m = Mixed()
    groups = param_groups(m, 0.1)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert ids(groups[0]["params"]) == ids([m.conv.weight, m.head.weight])
    assert ids(groups[1]["params"]) == ids(
        [m.emb.weight, m.conv.bias, m.ln.weight, m.ln.bias, m.bn.weight, m.bn.bias, m.head.bias, m.gate]
    )
    everything = [p for g in groups for p in g["params"]]
    assert len(everything) == len(ids(everything))  # each parameter once
    assert ids(everything) == ids(p for p in m.parameters() if p.requires_grad)  # frozen ones left out


def test_tied_weights_count_once_and_hand_written_norms_are_exempt() -> None:
    emb, head = nn.Embedding(7, 3), nn.Linear(3, 7, bias=False)
    head.weight = emb.weight
    model = nn.Sequential(emb, head, TinyRMSNorm())
    groups = param_groups(model, 0.5)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    assert len(groups[0]["params"]) == 2


def test_errors() -> None:
    with pytest.raises(TypeError, match="needs an nn.Module"):
        param_groups([torch.zeros(2)], 0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        param_groups(MLP(2, [], 2), -1.0)
    with pytest.raises(ValueError, match="no trainable parameters"):
        param_groups(MLP(2, [], 2).requires_grad_(False), 0.1)
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop': expected one of sgd, adam, adamw"):
        make_optimizer("rmsprop", MLP(2, [], 2), 0.1)
    with pytest.raises(ValueError, match="lr must be positive"):
        make_optimizer("adam", MLP(2, [], 2), 0.0)


@pytest.mark.parametrize(
    ("name", "cls"), [("sgd", torch.optim.SGD), ("Adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]
)
def test_make_optimizer(name: str, cls: type) -> None:
    model = MLP(4, [8], 3, batchnorm=True)
    opt = make_optimizer(name, model, 0.01, weight_decay=0.1)
    assert type(opt) is cls
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    if name == "sgd":
        assert opt.param_groups[0]["momentum"] == 0.9
    plain = make_optimizer(name, model.parameters(), 0.01)
    assert len(plain.param_groups) == 1 and plain.param_groups[0]["weight_decay"] == 0.0


def test_adamw_decay_is_decoupled_and_skips_biases() -> None:
    """With a zero gradient, Adam+L2 moves weights by ~lr (the decay is normalised by Adam);
    AdamW shrinks them by exactly lr * wd * w; biases do not move."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    opt = make_optimizer("adamw", model, 0.1, weight_decay=0.5)
    model.weight.grad, model.bias.grad = torch.zeros_like(model.weight), torch.zeros_like(model.bias)
    opt.step()
    assert torch.allclose(model.weight, w0 * (1 - 0.1 * 0.5))
    assert torch.equal(model.bias, b0)

    model2 = nn.Linear(3, 2)
    model2.load_state_dict({"weight": w0, "bias": b0})
    l2 = make_optimizer("adam", model2, 0.1, weight_decay=0.5)
    model2.weight.grad, model2.bias.grad = torch.zeros_like(w0), torch.zeros_like(b0)
    l2.step()
    assert torch.allclose((w0 - model2.weight).abs(), torch.full_like(w0, 0.1), atol=1e-6)  # sign(w) * lr


def test_doctest() -> None:
    assert doctest.testmod(optim, raise_on_error=True).failed == 0
