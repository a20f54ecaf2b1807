"""Checks for unit 11 (making training fast): gradient accumulation, and a precision study's table.

Each check draws fresh random sizes (the seed is printed in failure messages, so a failure can be
replayed with ``seed=...``) and, when the answer is wrong, tries the typical mistakes to say which one
was made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.perf.precision import PRECISIONS, supported

__all__ = ["accumulation", "precision_study", "precision_table"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


# ---------------------------------------------------------------------------------------------
# ex01: gradient accumulation


class _Counting(nn.Module):
    """A small float64 MLP that remembers the batch sizes it was called with."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, 16), nn.Tanh(), nn.Linear(16, d_out)).double()
        self.calls: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append(x.shape[0])
        return self.net(x)


def _grads(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor) -> list[Tensor]:
    model.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    return [p.grad.clone() for p in model.parameters()]


def _close(a: list[Tensor], b: list[Tensor]) -> bool:
    return all(torch.allclose(u, v, rtol=1e-7, atol=1e-10) for u, v in zip(a, b))


def accumulation(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(model, loss_fn, optimizer, x, y, micro_batches)``: one optimizer step on the batch
    ``x (B, D)``, ``y (B, ...)`` computed as ``micro_batches`` equal micro-batches, one backward each.

    The step must equal the large-batch step (plain SGD, float64: to 1e-7 relative), whatever
    gradients were left in ``.grad`` before the call; the model must see micro-batches of ``B / k``
    examples, and ``optimizer.step()`` must run once.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    k = int(torch.randint(2, 5, (), generator=gen))
    b = k * int(torch.randint(2, 5, (), generator=gen))
    d_in, d_out = 6, 3
    torch.manual_seed(seed)
    model = _Counting(d_in, d_out)
    x = torch.randn(b, d_in, generator=gen, dtype=torch.float64)
    y = torch.randint(0, d_out, (b,), generator=gen)
    loss_fn = nn.CrossEntropyLoss()  # a mean over the examples

    full = _grads(model, loss_fn, x, y)
    micro = [_grads(model, loss_fn, xi, yi) for xi, yi in zip(x.chunk(k), y.chunk(k))]
    last = micro[-1]
    # leftovers from "the previous step": a correct step clears them before accumulating
    stale = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in model.parameters()]
    for p, s in zip(model.parameters(), stale):
        p.grad = s.clone()
    before = [p.detach().clone() for p in model.parameters()]
    lr = 0.1
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # plain SGD: the update is -lr · gradient
    steps = 0
    original_step = opt.step

    def counting_step(*args: Any, **kwargs: Any) -> Any:
        nonlocal steps
        steps += 1
        return original_step(*args, **kwargs)

    opt.step = counting_step  # type: ignore[method-assign]
    model.calls.clear()
    call = f"{_name(fn)}(model, loss_fn, optimizer, x {tuple(x.shape)}, y {tuple(y.shape)}, micro_batches={k})"
    call_learner(fn, model, loss_fn, opt, x.clone(), y.clone(), k, what=call)

    expect(steps >= 1, f"{call} never called optimizer.step(): the weights did not move {where}")
    expect(
        steps == 1,
        f"{call} called optimizer.step() {steps} times: accumulate the gradients of all {k} "
        f"micro-batches, then step once {where}",
    )
    expect(model.calls, f"{call} never called the model {where}")
    expect(
        max(model.calls) <= b // k,
        f"{call} ran the model on {max(model.calls)} examples at once: split the batch into {k} micro-batches "
        f"of {b // k} (x.chunk({k}) or slicing), that is what saves memory {where}",
    )
    expect(
        sum(model.calls) == b,
        f"{call}: the model saw {sum(model.calls)} examples in total, the batch has {b}: every example once {where}",
    )
    applied = [(p0 - p.detach()) / lr for p0, p in zip(before, model.parameters())]
    if _close(applied, full):
        passed(
            f"gradient accumulation: {k} micro-batches of {b // k} give the step of one batch of {b} "
            "(equal to 1e-7), one optimizer step"
        )
        return
    mistakes = [
        (
            [k * g for g in full],
            f"the gradient is {k}× the large batch's: divide each micro-batch's loss by the number "
            f"of micro-batches ({k}) before backward(), so the sum of the means is the mean",
        ),
        (
            [g / k for g in last],
            "only the last micro-batch's gradient reached the step: zero the gradients once per "
            "step, before the first micro-batch, not inside the loop over micro-batches",
        ),
        (
            last,
            "only the last micro-batch's gradient reached the step (and it was not divided): zero the gradients "
            "once per step, before the loop, and divide each micro-batch's loss by the number of micro-batches",
        ),
        (
            [g + s for g, s in zip(full, stale)],
            "the step included gradients left in .grad from before the call: "
            "call optimizer.zero_grad() once at the start of the step",
        ),
        (
            [k * g + s for g, s in zip(full, stale)],
            "the step included gradients left in .grad from before the call, and "
            f"the gradient is {k}× too large: zero once at the start, and divide "
            "each micro-batch's loss by the number of micro-batches",
        ),
    ]
    for wrong, message in mistakes:
        if _close(applied, wrong):
            raise CheckFailed(f"{call}: {message} {where}")
    worst = max((a - g).abs().max().item() for a, g in zip(applied, full))
    raise CheckFailed(
        f"{call}: the update is not the large-batch step (largest difference in the applied gradient "
        f"{worst:.3g}) {where}"
    )


# ---------------------------------------------------------------------------------------------
# ex02: precision study

COLUMNS = ("step_ms", "activation_mb", "state_mb", "val_loss")


def precision_table(
    table: Mapping[str, Mapping[str, float] | None], device: torch.device | str = "cpu", *, seed: int | None = None
) -> None:
    """Check a precision study's results: ``table[precision] = {"step_ms", "activation_mb", "state_mb",
    "val_loss"}`` for every precision in :data:`dlfund.perf.precision.PRECISIONS` that ``device``
    supports (the others absent or ``None``); values finite and positive; memory ordered as the
    dtypes imply: activations of ``bf16-mixed`` below ``fp32``'s, the state of ``bf16-true`` at most
    3/4 of ``fp32``'s, the ``-mixed`` states as large as ``fp32``'s (their weights stay float32);
    validation losses within 10% of fp32's. ``seed`` is accepted for a uniform interface (nothing is random).
    """
    device = torch.device(device)
    expect(isinstance(table, Mapping), f"the table should be a dict precision -> row, found {type(table).__name__}")
    unknown = [p for p in table if p not in PRECISIONS]
    expect(not unknown, f"unknown precision(s) {unknown}: the names are {', '.join(PRECISIONS)}")
    wanted = [p for p in PRECISIONS if supported(p, device)[0]]
    missing = [p for p in wanted if table.get(p) is None]
    expect(
        not missing, f"missing runs: {', '.join(missing)} (every precision {device.type} supports: {', '.join(wanted)})"
    )
    for p in PRECISIONS:
        if p not in wanted and table.get(p) is not None:
            raise CheckFailed(
                f"{p} has numbers, but {supported(p, device)[1]}: leave it out (or None), never fake a measurement"
            )
    for p in wanted:
        row = table[p]
        expect(
            isinstance(row, Mapping),
            f"table[{p!r}] should be a dict with {', '.join(COLUMNS)}, found {type(row).__name__}",
        )
        absent = [c for c in COLUMNS if c not in row]  # type: ignore[operator]
        expect(not absent, f"table[{p!r}] lacks {', '.join(absent)}")
        extra = [c for c in row if c not in COLUMNS]  # type: ignore[union-attr]
        expect(
            not extra,
            f"table[{p!r}] has field(s) {extra} besides {', '.join(COLUMNS)}: use exactly these names "
            "(a misspelt or renamed field is read by no one)",
        )
        for c in COLUMNS:
            v = row[c]  # type: ignore[index]
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
            expect(
                ok,
                f"table[{p!r}][{c!r}] = {v!r}: every measurement must be a finite positive number"
                + (" (NaN or inf: did the run diverge?)" if isinstance(v, float) and not math.isfinite(v) else ""),
            )
    for p in wanted:
        r = table[p]
        assert r is not None
        expect(
            r["step_ms"] >= 0.02,
            f"table[{p!r}]['step_ms'] = {r['step_ms']:.3g}: a training step (forward, backward, AdamW) takes more "
            "than 20 µs; is it in seconds? report milliseconds (× 1000)",
        )
    fp32 = table["fp32"]
    assert fp32 is not None
    if "bf16-mixed" in wanted:
        r = table["bf16-mixed"]
        assert r is not None
        expect(
            r["activation_mb"] < fp32["activation_mb"],
            f"activation memory: bf16-mixed {r['activation_mb']:.3g} MB is not below fp32's "
            f"{fp32['activation_mb']:.3g} MB, yet autocast saves bfloat16 activations (2 bytes, not 4): was "
            "the bf16 run inside torch.autocast, or are the columns swapped?",
        )
    if "bf16-true" in wanted:
        r = table["bf16-true"]
        assert r is not None
        expect(
            r["state_mb"] <= 0.75 * fp32["state_mb"],
            f"state memory: bf16-true {r['state_mb']:.3g} MB is not well below fp32's {fp32['state_mb']:.3g} MB: "
            "its weights, gradients and AdamW state are bfloat16 (half the bytes): was the model converted "
            "with model.to(torch.bfloat16)?",
        )
    for p in ("fp16-mixed", "bf16-mixed", "tf32"):
        if p in wanted:
            r = table[p]
            assert r is not None
            expect(
                r["state_mb"] >= 0.95 * fp32["state_mb"],
                f"state memory: {p} {r['state_mb']:.3g} MB is below fp32's {fp32['state_mb']:.3g} MB, but mixed "
                "precision keeps float32 weights, gradients and optimizer state: are the columns swapped?",
            )
    for p in wanted:
        r = table[p]
        assert r is not None
        rel = abs(r["val_loss"] - fp32["val_loss"]) / fp32["val_loss"]
        expect(
            rel <= 0.10,
            f"{p}: validation loss {r['val_loss']:.4g} differs from fp32's {fp32['val_loss']:.4g} by "
            f"{rel:.0%}: the same model, data and steps should end within 10%",
        )
    passed(f"precision table: {len(wanted)} runs on {device.type}, finite, memory ordered as the dtypes imply")


def precision_study(
    study: Callable[..., Any], task: Any, device: torch.device | str = "cpu", steps: int = 10, seed: int = 0
) -> Mapping[str, Mapping[str, float] | None]:
    """Run the learner's ``study(task, device, steps, seed)`` and check the table it returns with
    :func:`precision_table`; returns the table."""
    call = f"{_name(study)}(task, {torch.device(device).type!r}, steps={steps}, seed={seed})"
    start = time.perf_counter()
    table = call_learner(study, task, device, steps, seed, what=call)
    wall_ms = (time.perf_counter() - start) * 1000
    expect(table is not None, f"{call} returned None: return the table (a dict precision -> row)")
    precision_table(table, device)
    rows = [r for r in table.values() if r is not None]
    spent = sum(r["step_ms"] for r in rows) * steps
    expect(
        spent <= wall_ms * 1.05,
        f"{call}: the step times add up to {spent:,.0f} ms over {steps} steps per precision, but the whole call took "
        f"{wall_ms:,.0f} ms: step_ms should be milliseconds per step (not microseconds, not the total of all steps)",
    )
    n_params = sum(p.numel() for p in task.make_model().parameters())
    want = n_params * (4 + 4 + 8) / 2**20  # float32 weights, gradients, and AdamW's two moments
    found = table["fp32"]["state_mb"]
    if not 0.8 * want <= found <= 1.25 * want:
        ratio = found / want
        why = (
            "it looks like bytes: divide by 2**20"
            if ratio > 1e5
            else "it looks like KB: divide by 1024"
            if ratio > 500
            else "it looks like GB: report MB"
            if ratio < 1 / 500
            else "count the weights, their gradients and AdamW's two moments, 4 bytes each"
        )
        raise CheckFailed(
            f"{call}: fp32's state_mb is {found:.4g}, but the model's {n_params:,} float32 parameters, their "
            f"gradients and AdamW's two moments take {want:.4g} MB (16 bytes per parameter): {why}"
        )
    return table
