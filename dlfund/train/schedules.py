"""Learning-rate schedules: cosine decay with a linear warmup, as a multiplier and as a ``LambdaLR``.

A schedule here is a *multiplier* of the optimizer's base learning rate, as a function of the
optimizer step (``0, 1, 2, ...``): ``lr(step) = base_lr * multiplier(step)``. With ``W`` warmup steps
and ``T`` total steps:

    step < W       multiplier = (step + 1) / W                        linear ramp: 1/W, 2/W, ..., 1
    W <= step <= T multiplier = m + (1 - m) * (1 + cos(pi * p)) / 2   p = (step - W) / (T - W), from 1 down to m
    step > T       multiplier = m                                     stays at the floor

where ``m = min_lr_ratio``. The first update already moves the weights (by ``base_lr / W``, not 0),
the ramp reaches the full rate at step ``W - 1``, and the cosine runs over the ``T - W`` steps after
the warmup, so it reaches the floor ``m`` at step ``T``. For steps ``0..T`` this is exactly torch's
``SequentialLR([LinearLR(start_factor=1/W, total_iters=W-1), CosineAnnealingLR(T_max=T-W,
eta_min=m*base_lr)], milestones=[W])`` (a test checks it); past ``T`` torch's cosine climbs back up,
this one stays at the floor.

>>> [round(cosine_with_warmup(s, warmup_steps=4, total_steps=12), 3) for s in (0, 1, 3, 4, 8, 12, 20)]
[0.25, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0]
"""

from __future__ import annotations

import functools
import math
import numbers

import torch
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["cosine_with_warmup", "warmup_cosine_scheduler"]


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def cosine_with_warmup(step: int, *, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """The learning-rate multiplier at optimizer step ``step`` (see the module docstring).

    Args:
        step: the optimizer step, counted from 0.
        warmup_steps: W >= 0 steps of linear warmup (0: start at the full rate).
        total_steps: T > W, the step at which the cosine reaches its floor (usually the number of
            optimizer steps of the whole run).
        min_lr_ratio: the floor m in [0, 1], as a fraction of the base learning rate.
    """
    step = _check_int(step, "step", 0)
    warmup_steps = _check_int(warmup_steps, "warmup_steps", 0)
    total_steps = _check_int(total_steps, "total_steps", 1)
    if total_steps <= warmup_steps:
        raise ValueError(f"total_steps ({total_steps}) must be larger than warmup_steps ({warmup_steps})")
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio!r}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min((step - warmup_steps) / (total_steps - warmup_steps), 1.0)  # clamp: the floor past T
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_scheduler(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0
) -> LambdaLR:
    """A ``LambdaLR`` that applies :func:`cosine_with_warmup` to every parameter group.

    Call ``scheduler.step()`` after every ``optimizer.step()`` (in Lightning: return it from
    ``configure_optimizers`` with ``"interval": "step"``). The multiplier is a ``functools.partial``
    of a module-level function, so the scheduler's state dict holds no code and pickles cleanly.
    """
    cosine_with_warmup(0, warmup_steps=warmup_steps, total_steps=total_steps, min_lr_ratio=min_lr_ratio)  # validate
    multiplier = functools.partial(
        cosine_with_warmup, warmup_steps=warmup_steps, total_steps=total_steps, min_lr_ratio=min_lr_ratio
    )
    return LambdaLR(optimizer, multiplier)
