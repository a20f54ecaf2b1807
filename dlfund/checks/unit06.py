"""Checks for unit 6 (training craft): the cosine schedule with warmup, AdamW's weight decay, a
warmup-stable-decay schedule, and the gradient noise scale (:mod:`dlfund.checks._unit06_noise_scale`).

Each check draws fresh settings (a new seed on every call, printed in failure messages so a failure
can be replayed with ``seed=...``), compares the learner's work with a reference, and names the
usual mistake when the values match one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from dlfund.checks._core import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fresh_seed,
    passed,
)
from dlfund.checks._unit06_noise_scale import noise_scale
from dlfund.train.optim import param_groups
from dlfund.train.schedules import cosine_with_warmup

__all__ = [
    "cosine_warmup",
    "adamw_weight_decay",
    "noise_scale",
    "reference_adamw_update",
    "reference_wsd",
    "wsd_schedule",
]

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# ex01: cosine schedule with linear warmup


def _number(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype.is_floating_point:
        return float(value)
    expect(
        isinstance(value, numbers.Real) and not isinstance(value, bool),
        f"{what}: expected a number (the multiplier), found {type(value).__name__} {value!r}",
    )
    return float(value)


def _schedule_mistake(step: int, found: float, w: int, t: int, m: float) -> str:
    """Name the mistake ``found`` is consistent with at ``step``, if any."""

    def close(x: float) -> bool:
        return math.isclose(found, x, rel_tol=1e-6, abs_tol=1e-9)

    def cosine(progress: float, floor: float) -> float:
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    if step < w:
        if close(step / w):
            return (
                "warmup off by one: step / warmup_steps gives 0 at step 0, so the first update does nothing; "
                "use (step + 1) / warmup_steps (1/W at step 0, 1 at step W - 1)"
            )
        if close((step + 1) / (w + 1)):
            return "warmup off by one: divide by warmup_steps, not warmup_steps + 1 (the ramp reaches 1 at step W - 1)"
        return ""
    if close(cosine(min(step / t, 1.0), m)) or close(cosine(step / t, m)):
        return (
            "the cosine runs over total_steps; it should run over the total_steps - warmup_steps steps after the "
            "warmup: progress = (step - warmup_steps) / (total_steps - warmup_steps)"
        )
    if close(cosine(min((step - w) / (t - w), 1.0), 0.0)) and m > 0:
        return "no floor: the multiplier should decay to min_lr_ratio, m + (1 - m) * (1 + cos(pi * progress)) / 2"
    if step > t and close(cosine((step - w) / (t - w), m)):
        return (
            "past total_steps the cosine climbs back up: clamp progress at 1 so the multiplier stays at the floor "
            "min_lr_ratio"
        )
    if close(0.5 * (1 + math.cos(math.pi * min((step - w) / (t - w), 1.0))) * m):
        return "the floor multiplies the cosine; it should be added: m + (1 - m) * (1 + cos(pi * progress)) / 2"
    return ""


def cosine_warmup(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(step, *, warmup_steps, total_steps, min_lr_ratio)`` → the learning-rate multiplier.

    Expected (W warmup steps, T total steps, floor m): ``(step + 1) / W`` for ``step < W``; then
    ``m + (1 - m) * (1 + cos(pi * p)) / 2`` with ``p = (step - W) / (T - W)``, clamped to 1 (so the
    multiplier stays at ``m`` after step T). Compared at step 0, mid-warmup, the end of the warmup,
    the start and middle of the cosine, the last step, T and beyond, for three fresh settings.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for floor in (0.0, None, None):
        w = int(torch.randint(4, 40, (), generator=gen))
        t = w + int(torch.randint(20, 200, (), generator=gen))
        m = floor if floor is not None else round(float(torch.empty(()).uniform_(0.05, 0.3, generator=gen)), 3)
        cases.append((w, t, m))
    for w, t, m in cases:
        steps = [0, w // 2, w - 1, w, w + (t - w) // 3, (w + t) // 2, t - 1, t, t + (t - w) // 2]
        for step in steps:
            call = f"fn({step}, warmup_steps={w}, total_steps={t}, min_lr_ratio={m}) (seed {seed})"
            found = _number(call_learner(fn, step, warmup_steps=w, total_steps=t, min_lr_ratio=m, what=call), call)
            expected = cosine_with_warmup(step, warmup_steps=w, total_steps=t, min_lr_ratio=m)
            if not math.isclose(found, expected, rel_tol=1e-6, abs_tol=1e-9):
                where = (
                    "during the warmup"
                    if step < w
                    else "after total_steps"
                    if step > t
                    else "at total_steps"
                    if step == t
                    else "in the cosine part"
                )
                hint = _schedule_mistake(step, found, w, t, m)
                raise CheckFailed(
                    f"{call}: expected {expected:.6g} ({where}), found {found:.6g}" + (f": {hint}" if hint else "")
                )
    passed(f"cosine with warmup: right at {9 * len(cases)} chosen steps of {len(cases)} fresh schedules")


# ---------------------------------------------------------------------------------------------
# ex02: AdamW and weight decay


class _CheckModel(nn.Module):
    """A small model with every kind of parameter: weight matrices, kernels, biases, norm parameters."""

    def __init__(self, gen: torch.Generator) -> None:
        super().__init__()
        width = int(torch.randint(4, 9, (), generator=gen))
        self.conv = nn.Conv1d(2, width, 3)
        self.bn = nn.BatchNorm1d(width)
        self.proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 3)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen))


def _name_of(model: nn.Module) -> dict[int, str]:
    return {id(p): n for n, p in model.named_parameters()}


def _check_groups(groups: Any, model: nn.Module, wd: float, call: str) -> None:
    expect(
        isinstance(groups, (list, tuple)) and all(isinstance(g, dict) for g in groups),
        f"{call}: expected a list of dicts (parameter groups), found {type(groups).__name__}",
    )
    names = _name_of(model)
    seen: dict[int, float] = {}
    for i, group in enumerate(groups):
        expect(
            "params" in group and "weight_decay" in group,
            f"{call}: group {i} should have the keys 'params' and 'weight_decay', found {sorted(group)}",
        )
        params = list(group["params"])
        for p in params:
            expect(
                isinstance(p, torch.Tensor) and id(p) in names,
                f"{call}: group {i} holds something that is not a parameter of the model ({type(p).__name__})",
            )
            expect(
                id(p) not in seen,
                f"{call}: parameter {names[id(p)]!r} is in more than one group: every parameter "
                "must be in exactly one group",
            )
            seen[id(p)] = float(group["weight_decay"])
    missing = [n for i, n in names.items() if i not in seen]
    expect(not missing, f"{call}: parameters missing from every group: {missing} (they would never be trained)")
    reference = {id(p): g["weight_decay"] for g in param_groups(model, wd) for p in g["params"]}
    for pid, decay in seen.items():
        name, want = names[pid], reference[pid]
        if want == 0.0 and decay != 0.0:
            kind = "a bias" if name.endswith("bias") else "a normalisation parameter (BatchNorm/LayerNorm scale)"
            raise CheckFailed(
                f"{call}: {name!r} is {kind} and should get weight_decay 0.0, found {decay}: decay only "
                "weight matrices and kernels (parameters with 2 or more dimensions outside norm layers)"
            )
        expect(
            decay == want,
            f"{call}: {name!r} is a weight matrix/kernel and should get weight_decay {want}, found {decay}",
        )


def reference_adamw_update(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: int,
    *,
    lr: float,
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """One AdamW step (step counted from 1), returning new ``(p, exp_avg, exp_avg_sq)``; inputs untouched."""
    b1, b2 = betas
    p = p * (1 - lr * weight_decay)  # decoupled: shrink the weights, not the gradient
    exp_avg = b1 * exp_avg + (1 - b1) * grad
    exp_avg_sq = b2 * exp_avg_sq + (1 - b2) * grad * grad
    m_hat, v_hat = exp_avg / (1 - b1**step), exp_avg_sq / (1 - b2**step)
    return p - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq


def _update_mistake(found: Tensor, args: tuple[Tensor, ...], step: int, kw: dict[str, Any]) -> str:
    p, g, m, v = args
    lr, wd = kw["lr"], kw["weight_decay"]

    def close(x: Tensor) -> bool:
        return torch.allclose(found, x, rtol=1e-9, atol=1e-12)

    coupled = reference_adamw_update(p, g + wd * p, m, v, step, **{**kw, "weight_decay": 0.0})[0]
    if close(coupled):
        return (
            "that is Adam with L2: the decay was added to the gradient (grad + weight_decay * p), where Adam's "
            "scaling weakens it. AdamW decouples it: p = p * (1 - lr * weight_decay), separately from the gradient"
        )
    if close(reference_adamw_update(p, g, m, v, step, **{**kw, "weight_decay": 0.0})[0]):
        return "no weight decay was applied: shrink the weights by p * (1 - lr * weight_decay)"
    if close(reference_adamw_update(p, g, m, v, step, **{**kw, "weight_decay": wd / lr})[0]):
        return "the decay is missing the learning rate: AdamW shrinks by lr * weight_decay, p * (1 - lr * weight_decay)"
    b1, b2 = kw["betas"]
    m1, v1 = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
    eps = kw["eps"]
    if close(p * (1 - lr * wd) - lr * m1 / (v1.sqrt() + eps)):
        return "no bias correction: divide the moving averages by (1 - beta1**step) and (1 - beta2**step)"
    m_hat, v_hat = m1 / (1 - b1**step), v1 / (1 - b2**step)
    if close(p * (1 - lr * wd) - lr * m_hat / (v_hat + eps).sqrt()):
        return "eps went inside the square root: divide by sqrt(v_hat) + eps"
    if close((p - lr * m_hat / (v_hat.sqrt() + eps)) * (1 - lr * wd)):
        return "the decay shrank the already updated weights: shrink p first, p * (1 - lr * weight_decay), then step"
    return ""


def adamw_weight_decay(
    groups_fn: Callable[..., Any], update_fn: Callable[..., Any], *, seed: int | None = None
) -> None:
    """Check ``groups_fn(model, weight_decay)`` and ``update_fn(p, grad, exp_avg, exp_avg_sq, step, *, lr, betas,
    eps, weight_decay)``.

    ``groups_fn`` must return parameter groups (a list of dicts with ``params`` and ``weight_decay``)
    putting every parameter of the model in exactly one group, with ``weight_decay`` on weight
    matrices and kernels and 0 on biases and normalisation parameters; ``torch.optim.AdamW`` must
    accept them. ``update_fn`` must return the new ``(p, exp_avg, exp_avg_sq)`` after one AdamW
    step (``step`` counted from 1), equal to ``torch.optim.AdamW``'s step, with decoupled decay.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = _CheckModel(gen)
    wd = round(float(torch.empty(()).uniform_(0.01, 0.3, generator=gen)), 3)
    call = f"groups_fn(model, weight_decay={wd}) (seed {seed})"
    groups = call_learner(groups_fn, model, wd, what=call)
    _check_groups(groups, model, wd, call)
    try:
        torch.optim.AdamW(groups, lr=1e-3)
    except Exception as err:  # say what torch said
        raise CheckFailed(f"{call}: torch.optim.AdamW does not accept these groups: {err}") from None

    # The update, over a few steps, against torch.optim.AdamW itself (float64: tight tolerances).
    lr = round(float(torch.empty(()).uniform_(0.01, 0.1, generator=gen)), 4)
    # Not the defaults (0.9, 0.999), 1e-8: swapped betas or eps inside the square root must show.
    betas = (
        round(float(torch.empty(()).uniform_(0.75, 0.88, generator=gen)), 3),
        round(float(torch.empty(()).uniform_(0.95, 0.99, generator=gen)), 3),
    )
    eps = round(float(torch.empty(()).uniform_(0.01, 0.1, generator=gen)), 3)
    kw = {"lr": lr, "betas": betas, "eps": eps, "weight_decay": wd}
    p0 = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    grads = [torch.randn(5, 4, generator=gen, dtype=torch.float64) for _ in range(3)]
    torch_param = nn.Parameter(p0.clone())
    torch_opt = torch.optim.AdamW([torch_param], lr=lr, betas=betas, eps=eps, weight_decay=wd)
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for step, g in enumerate(grads, start=1):
        torch_param.grad = g.clone()
        torch_opt.step()
        args = (p.clone(), g.clone(), m.clone(), v.clone())
        ucall = (
            f"update_fn(p, grad, exp_avg, exp_avg_sq, step={step}, lr={lr}, betas={betas}, eps={eps}, "
            f"weight_decay={wd}) (seed {seed})"
        )
        out = call_learner(update_fn, *args, step, what=ucall, **kw)
        expect(
            isinstance(out, (tuple, list)) and len(out) == 3,
            f"{ucall}: expected a tuple (p, exp_avg, exp_avg_sq), found {type(out).__name__}",
        )
        expect(
            torch.equal(args[0], p) and torch.equal(args[2], m) and torch.equal(args[3], v),
            f"{ucall}: the inputs were changed in place; return new tensors instead",
        )
        new_p, new_m, new_v = out
        for what, t in (("p", new_p), ("exp_avg", new_m), ("exp_avg_sq", new_v)):
            expect(
                not isinstance(t, torch.Tensor) or bool(torch.isfinite(t).all()),
                f"{ucall}: the new {what} holds NaN or inf: is the bias correction 1 - beta**step with step "
                "counted from 1 (step 0 would divide by zero)?",
            )
        state = torch_opt.state[torch_param]
        if (
            isinstance(new_p, torch.Tensor)
            and new_p.shape == p.shape
            and not torch.allclose(new_p, torch_param.detach(), rtol=1e-9, atol=1e-12)
        ):
            hint = _update_mistake(new_p, (p, g, m, v), step, kw)
            if hint:
                raise CheckFailed(f"{ucall}: the new p differs from torch.optim.AdamW's: {hint}")
        expect_close(
            new_p, torch_param.detach(), f"{ucall}: the new p, compared with torch.optim.AdamW", atol=1e-12, rtol=1e-9
        )
        swapped = betas[1] * m + (1 - betas[1]) * g
        expect(
            not (isinstance(new_m, torch.Tensor) and new_m.shape == m.shape and torch.allclose(new_m, swapped)),
            f"{ucall}: exp_avg was averaged with beta2: beta1 and beta2 swapped: betas = (beta1, beta2), beta1 for "
            "the gradient's average, beta2 for grad²",
        )
        expect_close(
            new_m, state["exp_avg"], f"{ucall}: exp_avg (the moving average of the gradient)", atol=1e-12, rtol=1e-9
        )
        expect_close(
            new_v, state["exp_avg_sq"], f"{ucall}: exp_avg_sq (the moving average of grad²)", atol=1e-12, rtol=1e-9
        )
        p, m, v = new_p, new_m, new_v
    passed(
        f"AdamW: {len(groups)} parameter groups with decay on weights only, and {len(grads)} update steps equal "
        "to torch.optim.AdamW (decoupled decay)"
    )


# ---------------------------------------------------------------------------------------------
# ex03: warmup-stable-decay


def reference_wsd(
    step: int, *, warmup_steps: int, stable_steps: int, decay_steps: int, start_ratio: float, min_lr_ratio: float
) -> float:
    """The warmup-stable-decay multiplier at optimizer step ``step`` (counted from 0).

    A linear ramp from ``start_ratio`` at step 0 towards 1 (reached at step W), the plateau at 1 for
    steps ``W … W + S - 1``, a linear decay from 1 at step ``W + S`` to ``min_lr_ratio`` at step
    ``T = W + S + D``, and ``min_lr_ratio`` after that.
    """
    w, s, d = warmup_steps, stable_steps, decay_steps
    if step < w:
        return start_ratio + (1 - start_ratio) * step / w
    if step < w + s:
        return 1.0
    progress = min((step - w - s) / d, 1.0)
    return 1.0 - (1.0 - min_lr_ratio) * progress


def _wsd_mistake(values: list[float], w: int, s: int, d: int, start: float, floor: float) -> str:
    """Name the property that ``values`` (steps 0 … T + D // 2) break first, with what was expected and found."""
    t = w + s + d

    def close(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)

    ramp = [start + (1 - start) * k / w for k in range(w)]
    if not close(values[0], start):
        if close(values[0], start + (1 - start) / w):
            why = "the ramp is one step ahead: step 0 must use start_ratio itself, start + (1 - start) * step / W"
        elif close(values[0], 0.0) or close(values[0], 1 / w):
            why = "the warmup ignores start_ratio: ramp from start_ratio, not from 0"
        else:
            why = "the warmup should begin at start_ratio"
        return f"step 0: expected start_ratio = {start:g}, found {values[0]:.6g}: {why}"
    for k in range(1, w):
        if not close(values[k], ramp[k]):
            reached = "; it reaches 1 already at step W - 1: divide by W" if close(values[w - 1], 1.0) else ""
            return (
                f"step {k} (warmup): expected {ramp[k]:.6g} on the straight line from start_ratio at step 0 to 1 at "
                f"step W = {w}, found {values[k]:.6g}{reached}"
            )
    for k in range(w, w + s):
        if not close(values[k], 1.0):
            where = "first" if k == w else "last" if k == w + s - 1 else "a"
            return (
                f"step {k} ({where} step of the plateau, steps {w} … {w + s - 1}): expected 1 (the peak), found "
                f"{values[k]:.6g}: the plateau lasts exactly stable_steps = {s} steps after the warmup"
            )
    if not close(values[w + s], 1.0):
        if close(values[w + s], 1 - (1 - floor) / d):
            return (
                f"step {w + s} (first step of the decay): expected 1, found {values[w + s]:.6g}: the decay started one "
                f"step early; the plateau holds 1 for steps W … W + S - 1 and the decay's progress (step - W - S) / D "
                f"is 0 at step W + S = {w + s}"
            )
        return (
            f"step {w + s} (first step of the decay): expected 1, found {values[w + s]:.6g}, a jump down from the "
            f"plateau: the decay starts from the peak at step W + S = {w + s}, progress (step - W - S) / D"
        )
    if close(values[t - 1], floor):
        return (
            f"step T - 1 = {t - 1}: expected {1 - (1 - floor) * (d - 1) / d:.6g}, found the floor {floor:g} already: "
            "the floor is reached one step early: divide by decay_steps, so it is reached at T = W + S + D"
        )
    if not close(values[t], floor):
        hint = ""
        if close(values[t], 0.0):
            hint = ": the decay ends at 0, not at min_lr_ratio"
        elif close(values[t], 1 - (1 - floor) * (d - 1) / d):
            hint = (
                ": the decay is one step behind, it started one step late; the plateau lasts S steps and the decay "
                "begins at step W + S"
            )
        return f"step T = W + S + D = {t}: expected the floor min_lr_ratio = {floor:g}, found {values[t]:.6g}{hint}"
    for k in range(w + s, t + 1):
        expected = 1 - (1 - floor) * (k - w - s) / d
        if not close(values[k], expected):
            return (
                f"step {k} (decay): expected {expected:.6g} on the straight line from 1 at step {w + s} to "
                f"{floor:g} at step {t}, found {values[k]:.6g}"
            )
    for k in range(t + 1, len(values)):
        if not close(values[k], floor):
            return (
                f"step {k} (after T = {t}): expected the floor {floor:g}, found {values[k]:.6g}: the multiplier "
                "stays at min_lr_ratio after the decay (clamp the progress at 1)"
            )
    return ""


def wsd_schedule(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(step, *, warmup_steps, stable_steps, decay_steps, start_ratio, min_lr_ratio)`` → multiplier.

    Expected, with W, S, D the three lengths, ``T = W + S + D``, start ``s`` and floor ``m``: a straight
    line from ``s`` at step 0 to 1 at step W (not reached during the warmup), exactly 1 from step W to
    ``W + S`` (the plateau, S steps, and the first step of the decay), a straight line down to ``m`` at
    step T, and ``m`` after it. Checked by these properties at every step up to ``T + D // 2``, for
    three fresh settings whose lengths all differ (and no setting at a usual default). Together these
    make the multiplier continuous: no jump at the ends of the warmup, the plateau or the decay.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(3):
        w, s, d = (int(v) for v in torch.randperm(40, generator=gen)[:3] + 6)  # three different lengths, 6 … 45
        start = round(float(torch.empty(()).uniform_(0.02, 0.3, generator=gen)), 3)
        floor = round(float(torch.empty(()).uniform_(0.03, 0.3, generator=gen)), 3)
        settings = {
            "warmup_steps": w,
            "stable_steps": s,
            "decay_steps": d,
            "start_ratio": start,
            "min_lr_ratio": floor,
        }
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        values = []
        for step in range(w + s + d + d // 2 + 1):
            call = f"fn({step}, {shown}) (seed {seed})"
            values.append(_number(call_learner(fn, step, what=call, **settings), call))
        why = _wsd_mistake(values, w, s, d, start, floor)
        if why:
            raise CheckFailed(f"fn(step, {shown}) (seed {seed}), stepping from 0: {why}")
    passed(
        "warmup-stable-decay: ramp from the start, plateau at the peak, decay to the floor and the floor after it, "
        "right at every step of 3 fresh schedules"
    )
