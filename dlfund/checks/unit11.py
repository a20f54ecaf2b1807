"""Checks for unit 11 (making training fast): gradient accumulation, a precision study's table, and
dynamic loss scaling.

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
from dlfund.checks._library_use import refusing
from dlfund.checks._unit11_tensor_parallel import tensor_parallel_mlp
from dlfund.perf.precision import PRECISIONS, supported

__all__ = ["accumulation", "loss_scaler", "precision_study", "precision_table", "tensor_parallel_mlp"]

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


# ---------------------------------------------------------------------------------------------
# ex03: dynamic loss scaling

CLEAN, INF_FIRST, INF_LAST, NAN_MIDDLE = "clean", "inf in the first parameter", "inf in the last parameter", "NaN"


class _Poison(torch.autograd.Function):
    """Identity forward; backward adds ``value`` (0, inf or NaN) to the gradient: an overflow in the
    gradients while the loss itself stays finite, as in an fp16 backward pass."""

    @staticmethod
    def forward(ctx: Any, p: Tensor, value: float) -> Tensor:
        ctx.value = value
        return p.view_as(p)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad + ctx.value, None


def _scaler_script(interval: int, k: int) -> list[str]:
    """The kinds of the steps: a clean run past one growth, an overflow ``k + 1`` clean steps after it
    (the count must restart there), a clean run past the next growth, two overflows in a row, clean steps."""
    return (
        [CLEAN] * (interval + 1 + k)
        + [INF_FIRST]
        + [CLEAN] * (interval + 1)
        + [INF_LAST, NAN_MIDDLE]
        + [CLEAN] * interval
    )


def _factors(
    script: list[str],
    init: float,
    growth: float,
    backoff: float,
    interval: int,
    *,
    count_overflow: bool = False,
    reset_on_backoff: bool = True,
    reset_on_growth: bool = True,
    grow_after: int | None = None,
) -> list[float]:
    """The factor before the first step and after every step, by the documented rule (the defaults)
    or with one counting mistake."""
    grow_after = interval if grow_after is None else grow_after
    factor, clean, out = init, 0, [init]
    for kind in script:
        if count_overflow:
            clean += 1
        if kind != CLEAN:
            factor *= backoff
            if reset_on_backoff:
                clean = 0
        else:
            clean += 0 if count_overflow else 1
            if clean == grow_after or (not reset_on_growth and clean > grow_after):
                factor *= growth
                if reset_on_growth:
                    clean = 0
        out.append(factor)
    return out


def _scaler_problem(seed: int) -> dict[str, Any]:
    gen = torch.Generator().manual_seed(seed)
    interval = int(torch.randint(3, 6, (), generator=gen))
    k = int(torch.randint(1, interval - 1, (), generator=gen))
    # never the defaults (2, 0.5): a hard-coded factor shows; never reciprocal of each other
    growth = [3.0, 4.0, 1.5][int(torch.randint(0, 3, (), generator=gen))]
    backoff = [0.125, 0.3, 0.2][int(torch.randint(0, 3, (), generator=gen))]
    init = float(2 ** int(torch.randint(8, 14, (), generator=gen)))
    shapes = [(4, 3), (3,), (2, 3)]  # all different: the first, a middle and the last parameter
    params = [torch.randn(s, generator=gen, dtype=torch.float64) * 0.5 for s in shapes]
    script = _scaler_script(interval, k)
    data = [
        (torch.randn(5, 4, generator=gen, dtype=torch.float64), torch.randn(5, 2, generator=gen, dtype=torch.float64))
        for _ in script
    ]
    return {
        "interval": interval,
        "k": k,
        "growth": growth,
        "backoff": backoff,
        "init": init,
        "params": params,
        "script": script,
        "data": data,
    }


def _scaler_loss(params: list[Tensor], x: Tensor, y: Tensor, kind: str) -> Tensor:
    """A small regression loss; on an overflow step one parameter's gradient becomes inf or NaN."""
    poison = {INF_FIRST: (0, math.inf), INF_LAST: (2, math.inf), NAN_MIDDLE: (1, math.nan)}.get(kind)
    used = [_Poison.apply(p, poison[1]) if poison is not None and i == poison[0] else p for i, p in enumerate(params)]
    w1, b1, w2 = used
    return ((x @ w1 + b1).tanh() @ w2.T - y).pow(2).mean()


def _reference_scaler_run(problem: dict[str, Any], lr: float) -> tuple[list[list[Tensor]], list[float]]:
    """torch.amp.GradScaler on the script: the weights after each step, the factor before and after."""
    params = [p.clone().requires_grad_(True) for p in problem["params"]]
    opt = torch.optim.SGD(params, lr=lr)
    scaler = torch.amp.GradScaler(
        "cpu",
        init_scale=problem["init"],
        growth_factor=problem["growth"],
        backoff_factor=problem["backoff"],
        growth_interval=problem["interval"],
    )
    weights, factors = [], [scaler.get_scale()]
    for kind, (x, y) in zip(problem["script"], problem["data"]):
        opt.zero_grad(set_to_none=True)
        scaler.scale(_scaler_loss(params, x, y, kind)).backward()
        scaler.step(opt)
        scaler.update()
        weights.append([p.detach().clone() for p in params])
        factors.append(scaler.get_scale())
    return weights, factors


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-5)  # GradScaler keeps its factor in float32


def _read_factor(scaler: Any, call: str) -> float:
    one = torch.ones((), dtype=torch.float64)
    out = call_learner(scaler.scale, one, what=f"{call}.scale(loss)")
    expect(
        isinstance(out, Tensor) and out.numel() == 1,
        f"{call}.scale(loss) should return a tensor, the loss × the factor, still attached to the graph "
        f"(no .item(), no float()); found {type(out).__name__}",
    )
    value = float(out.detach())
    expect(math.isfinite(value) and value > 0, f"{call}.scale(loss) multiplies the loss by {value}: not a factor")
    return value


def loss_scaler(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``cls(init_scale=, growth_factor=, backoff_factor=, growth_interval=)``: a dynamic loss scaler
    with ``scale(loss) -> loss × factor`` and ``step(optimizer)``, which divides every gradient by the factor
    and steps, or, when any gradient is inf or NaN, skips the step and multiplies the factor by
    ``backoff_factor``; after ``growth_interval`` clean steps in a row it multiplies the factor by
    ``growth_factor``. A scripted run of clean and overflow steps (the loss always finite) is compared
    step by step with :class:`torch.amp.GradScaler` (factor, and weights under plain SGD, float64).
    """
    seed = fresh_seed(seed)
    where = f"(seed {seed})"
    problem = _scaler_problem(seed)
    interval, growth, backoff, init = problem["interval"], problem["growth"], problem["backoff"], problem["init"]
    script: list[str] = problem["script"]
    lr = 0.05
    ref_weights, ref_factors = _reference_scaler_run(problem, lr)
    call = (
        f"{_name(cls)}(init_scale={init:g}, growth_factor={growth:g}, backoff_factor={backoff:g}, "
        f"growth_interval={interval})"
    )
    params = [p.clone().requires_grad_(True) for p in problem["params"]]
    opt = torch.optim.SGD(params, lr=lr)
    torch_scaler = torch.amp.GradScaler
    library = {
        "torch.amp.GradScaler": torch_scaler.__init__,
        "torch.amp.GradScaler.scale": torch_scaler.scale,
        "torch.amp.GradScaler.unscale_": torch_scaler.unscale_,
        "torch.amp.GradScaler.step": torch_scaler.step,
        "torch.amp.GradScaler.update": torch_scaler.update,
    }
    with refusing(library, "writing the loss scaler yourself"):
        scaler = call_learner(
            cls,
            init_scale=init,
            growth_factor=growth,
            backoff_factor=backoff,
            growth_interval=interval,
            what=call,
        )
        expect(
            callable(getattr(scaler, "scale", None)) and callable(getattr(scaler, "step", None)),
            f"{call} should have the methods scale(loss) and step(optimizer)",
        )
        factors = [_read_factor(scaler, call)]
        expect(
            _same(factors[0], init),
            f"{call}.scale(loss) multiplies the loss by {factors[0]:g} before any step: start at init_scale ({init:g})",
        )
        for t, (kind, (x, y)) in enumerate(zip(script, problem["data"])):
            step = f"step {t + 1} ({kind}{'' if kind == CLEAN else ' gradient, finite loss'})"
            before = [p.detach().clone() for p in params]
            opt.zero_grad(set_to_none=True)
            loss = _scaler_loss(params, x, y, kind)
            scaled = call_learner(scaler.scale, loss, what=f"{call}.scale(loss)")
            expect(
                isinstance(scaled, Tensor) and scaled.requires_grad and scaled.numel() == 1,
                f"{call}.scale(loss) should return a tensor, the loss × the factor, still attached to the graph "
                f"(no .item(), no float()); found {type(scaled).__name__} {where}",
            )
            got, plain = float(scaled.detach()), float(loss.detach())
            expect(
                math.isclose(got, plain * factors[-1], rel_tol=1e-9),
                f"{call}.scale(loss) returned {got:.6g} for a loss of {plain:.6g} at {step}: "
                f"expected the loss × the current factor {factors[-1]:g} {where}",
            )
            scaled.backward()
            call_learner(scaler.step, opt, what=f"{call}.step(optimizer)")
            factors.append(_read_factor(scaler, call))
            after = [p.detach() for p in params]
            # GradScaler multiplies by a float32 reciprocal of the factor: equal to about 1e-8, not exactly
            if not all(torch.allclose(a, r, rtol=1e-5, atol=1e-8) for a, r in zip(after, ref_weights[t])):
                _weights_mistake(call, step, kind, before, after, ref_weights[t], factors, ref_factors[t + 1], where)
    # the weights do not depend on the factor: a counting mistake is named from the whole run of factors
    if not all(_same(a, b) for a, b in zip(factors, ref_factors)):
        _factor_mistake(call, problem, factors, ref_factors, where)
    skipped = len([k for k in script if k != CLEAN])
    passed(
        f"loss scaler: {len(script)} steps equal torch.amp.GradScaler's (backoff {backoff:g}, growth {growth:g} "
        f"every {interval} clean steps), {skipped} overflow steps skipped"
    )


def _weights_mistake(
    call: str,
    step: str,
    kind: str,
    before: list[Tensor],
    after: list[Tensor],
    expected: list[Tensor],
    factors: list[float],
    expected_factor: float,
    where: str,
) -> None:
    """Name the mistake when the weights after ``step`` are not GradScaler's."""
    moved = not all(torch.equal(a, b) for a, b in zip(after, before))
    factor = factors[-2]
    if kind != CLEAN and moved:
        if _same(factors[-1], expected_factor):
            raise CheckFailed(
                f"{call}: at {step} the factor backed off, but optimizer.step() still ran and the weights moved "
                f"(now inf/NaN): skip the step when any gradient is not finite {where}"
            )
        if factors[-1] >= factor:  # no backoff: the overflow was not seen (it may even have counted as clean)
            why = {
                INF_FIRST: "an inf in the gradients went unnoticed while the loss was finite: look at the "
                "gradients (every parameter's .grad), not at the loss",
                INF_LAST: "an inf in the last parameter's gradient went unnoticed: look at the gradient of "
                "every parameter in every param group, not only the first",
                NAN_MIDDLE: "a NaN gradient went unnoticed: torch.isinf(nan) is False; test with "
                "torch.isfinite, which catches both inf and NaN",
            }[kind]
            raise CheckFailed(f"{call}: at {step} {why} {where}")
        raise CheckFailed(
            f"{call}: at {step} the weights moved although a gradient was not finite: skip the step {where}"
        )
    if kind == CLEAN and not moved:
        raise CheckFailed(
            f"{call}: at {step} optimizer.step() did not run (the weights did not move), but every gradient was "
            f"finite {where}"
        )
    applied = [b - a for b, a in zip(before, after)]
    wanted = [b - e for b, e in zip(before, expected)]

    def ratio_is(r: float) -> bool:
        return all(torch.allclose(a, w * r, rtol=1e-4, atol=1e-10) for a, w in zip(applied, wanted))

    if ratio_is(factor):
        raise CheckFailed(
            f"{call}: at {step} the update is {factor:g}× too large: the gradients still carry the factor; divide "
            f"every .grad by it before optimizer.step() {where}"
        )
    if ratio_is(1 / factor):
        raise CheckFailed(
            f"{call}: at {step} the update is {factor:g}× too small: the gradients were divided by the factor twice "
            f"(or the loss was not multiplied) {where}"
        )
    worst = max(float((a - e).abs().max()) for a, e in zip(after, expected))
    raise CheckFailed(
        f"{call}: at {step} the weights differ from torch.amp.GradScaler's (largest difference {worst:.3g}): "
        f"unscale every gradient, then step {where}"
    )


def _factor_mistake(
    call: str,
    problem: dict[str, Any],
    factors: list[float],
    expected: list[float],
    where: str,
) -> None:
    """Name the counting mistake whose factors match the learner's over the whole run."""
    script, init, growth, backoff, interval = (
        problem["script"],
        problem["init"],
        problem["growth"],
        problem["backoff"],
        problem["interval"],
    )
    variants = [
        (
            _factors(script, init, 2.0, backoff, interval),
            f"grows the factor by 2 instead of growth_factor ({growth:g})",
        ),
        (
            _factors(script, init, growth, 0.5, interval),
            f"backs off by 0.5 instead of backoff_factor ({backoff:g})",
        ),
        (
            _factors(script, init, growth, 1.0, interval),
            "does not back off the factor on an overflow step: multiply it by backoff_factor",
        ),
        (
            _factors(script, init, 1.0, backoff, interval),
            f"never grows the factor: multiply it by growth_factor after {interval} clean steps in a row",
        ),
        (
            _factors(script, init, growth, backoff, interval, grow_after=interval + 1),
            f"grows after {interval + 1} clean steps, one too late: grow when the count of clean steps reaches "
            f"growth_interval ({interval}) (off by one)",
        ),
        (
            _factors(script, init, growth, backoff, interval, grow_after=interval - 1),
            f"grows after {interval - 1} clean steps, one too early: count the clean steps from 0, grow at "
            f"growth_interval ({interval}) (off by one)",
        ),
        (
            _factors(script, init, growth, backoff, interval, count_overflow=True, reset_on_backoff=False),
            "counts the overflow step as a clean step (and keeps counting): an overflow step is not clean; "
            "it restarts the count at 0",
        ),
        (
            _factors(script, init, growth, backoff, interval, reset_on_backoff=False),
            "does not restart the count of clean steps after a backoff: the clean steps before an overflow "
            "must not count towards the next growth; set the count to 0",
        ),
        (
            _factors(script, init, growth, backoff, interval, reset_on_growth=False),
            "does not restart the count after growing, so it grows again on every following clean step: "
            "set the count to 0 when the factor grows",
        ),
    ]
    for wrong, message in variants:
        if all(_same(a, b) for a, b in zip(factors, wrong)):
            raise CheckFailed(f"{call} {message} {where}")
    t = next(i for i, (a, b) in enumerate(zip(factors, expected)) if not _same(a, b))
    raise CheckFailed(
        f"{call}: after step {t} ({script[t - 1]}) the factor is {factors[t]:g}, expected {expected[t]:g} "
        f"(torch.amp.GradScaler's factors {[f'{f:g}' for f in expected]}, yours {[f'{f:g}' for f in factors]}) {where}"
    )
