"""dlfund.train.schedules: cosine with linear warmup, against torch's own schedulers."""

from __future__ import annotations

import doctest
import math

import pytest
import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from dlfund.train import schedules
from dlfund.train.schedules import cosine_with_warmup, warmup_cosine_scheduler


def lrs(scheduler: torch.optim.lr_scheduler.LRScheduler, steps: int) -> list[float]:
    opt = scheduler.optimizer
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    return out


def optimizer(lr: float = 0.1) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_reference_values() -> None:
    f = lambda s: cosine_with_warmup(s, warmup_steps=10, total_steps=110, min_lr_ratio=0.1)
    assert f(0) == pytest.approx(0.1)  # (0 + 1) / 10: the first step already moves
    assert f(4) == pytest.approx(0.5)  # mid-warmup
    assert f(9) == pytest.approx(1.0)  # last warmup step: the full rate
    assert f(10) == pytest.approx(1.0)  # the cosine starts at the top
    assert f(60) == pytest.approx(0.55)  # half-way through the cosine: (1 + 0.1) / 2
    assert f(110) == pytest.approx(0.1)  # the floor at total_steps
    assert f(500) == pytest.approx(0.1)  # and it stays there
    assert cosine_with_warmup(0, warmup_steps=0, total_steps=4) == 1.0


@pytest.mark.parametrize(("warmup", "total", "floor"), [(5, 40, 0.0), (3, 17, 0.2), (1, 9, 0.05)])
def test_equals_torch_linear_then_cosine(warmup: int, total: int, floor: float) -> None:
    base = 0.3
    ours = warmup_cosine_scheduler(optimizer(base), warmup_steps=warmup, total_steps=total, min_lr_ratio=floor)
    opt = optimizer(base)
    # LinearLR needs total_iters >= 1 for a ramp; with one warmup step the ramp is the single factor 1/1.
    ramp = LinearLR(opt, start_factor=1 / warmup, end_factor=1.0, total_iters=max(warmup - 1, 1))
    cosine = CosineAnnealingLR(opt, T_max=total - warmup, eta_min=floor * base)
    theirs = SequentialLR(opt, [ramp, cosine], milestones=[warmup])
    a, b = lrs(ours, total + 1), lrs(theirs, total + 1)
    assert a == pytest.approx(b, rel=1e-6, abs=1e-9)
    assert a[-1] == pytest.approx(floor * base)


def test_lambda_lr_state_dict_round_trip() -> None:
    sched = warmup_cosine_scheduler(optimizer(), warmup_steps=3, total_steps=20)
    lrs(sched, 7)
    state = sched.state_dict()
    restored = warmup_cosine_scheduler(optimizer(), warmup_steps=3, total_steps=20)
    restored.load_state_dict(state)
    assert restored.last_epoch == 7
    assert restored.get_last_lr() == sched.get_last_lr()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"step": -1, "warmup_steps": 2, "total_steps": 5}, "step must be an int >= 0"),
        ({"step": 0, "warmup_steps": 5, "total_steps": 5}, r"total_steps \(5\) must be larger than warmup_steps \(5\)"),
        ({"step": 0, "warmup_steps": 1, "total_steps": 5, "min_lr_ratio": 1.5}, r"min_lr_ratio must be in \[0, 1\]"),
        ({"step": 1.5, "warmup_steps": 1, "total_steps": 5}, "step must be an int"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cosine_with_warmup(**kwargs)


def test_monotone_pieces() -> None:
    values = [cosine_with_warmup(s, warmup_steps=8, total_steps=50) for s in range(51)]
    assert all(a < b for a, b in zip(values[:8], values[1:8]))
    assert all(a >= b for a, b in zip(values[8:], values[9:]))
    assert math.isclose(max(values), 1.0)


def test_doctest() -> None:
    assert doctest.testmod(schedules, raise_on_error=True).failed == 0
