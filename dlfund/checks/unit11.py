"""Checks for unit 11 (making training fast): gradient accumulation, a layer-by-layer report of what
float16 can hold, and dynamic loss scaling.

Each check draws fresh random sizes (the seed is printed in failure messages, so a failure can be
replayed with ``seed=...``) and, when the answer is wrong, tries the typical mistakes to say which one
was made.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing
from dlfund.checks._unit11_tensor_parallel import tensor_parallel_mlp

__all__ = ["accumulation", "layer_report", "loss_scaler", "tensor_parallel_mlp"]

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
# ex02: a precision study, layer by layer: which layers float16 can hold

FIELDS = ("act_max", "act_overflow", "grad_max", "grad_underflow")
FP16_MAX = torch.finfo(torch.float16).max  # 65,504: anything larger becomes inf
FP16_TINY = torch.finfo(torch.float16).smallest_normal  # 6.1e-5: below it float16 loses bits, then becomes 0
FP16_SUBNORMAL = 2.0**-24  # float16's smallest subnormal: below it a value becomes 0


class _Probe(nn.Module):
    """A small float32 classifier with layers at both ends of float16's range: ``inp`` (its gradients,
    half of them exact zeros behind a ReLU, sit around float16's smallest normal), a nested
    ``block`` whose LayerNorm's outputs are all negative, ``big`` (its outputs overflow float16 in part)
    and ``head``."""

    def __init__(self, d_in: int, h1: int, h2: int, h3: int, classes: int) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, h1)
        self.block = nn.Sequential(nn.ReLU(), nn.Linear(h1, h2), nn.LayerNorm(h2))
        self.big = nn.Linear(h2, h3)
        self.head = nn.Linear(h3, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.big(self.block(self.inp(x))))


def _probe(seed: int) -> tuple[_Probe, Tensor, Tensor, Callable[[Tensor, Tensor], Tensor], int, float]:
    """The probe model with its batch, its loss and a power-of-two loss scale, calibrated on this seed so
    that every quantity sits where the typical mistakes show: ``big``'s outputs overflow float16 for
    between a quarter and three quarters of them, and ``inp``'s non-zero gradients straddle float16's
    smallest normal (without the scale)."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * torch.rand((), generator=gen).item()

    d_in, h1, h2, h3, classes = 6 + seed % 5, 24 + seed % 7, 13 + seed % 4, 11 + seed % 3, 5
    n = 48 + seed % 17
    with torch.random.fork_rng():  # the default initialisation, without touching the learner's random state
        torch.manual_seed(seed)
        model = _Probe(d_in, h1, h2, h3, classes)
    x = torch.randn(n, d_in, generator=gen)
    y = torch.randint(0, classes, (n,), generator=gen)
    with torch.no_grad():
        norm = model.block[2]
        norm.weight.fill_(uniform(0.3, 0.6))
        norm.bias.fill_(-uniform(3.0, 5.0))  # all outputs negative: the largest magnitude is not the largest value
        h = model.block(model.inp(x))
        out = model.big(h)
        factor = FP16_MAX * uniform(0.8, 1.25) / out.abs().median().item()
        model.big.weight.mul_(factor)
        model.big.bias.mul_(factor)
        model.head.weight.mul_(3.0 / (factor * model.big(h).std().item()))  # logits of a few units
    scale = 2.0 ** int(6 + seed % 7)
    outs: list[Tensor] = []
    handle = model.inp.register_forward_hook(lambda _m, _i, o: outs.append(o))
    (g,) = torch.autograd.grad(nn.functional.cross_entropy(model(x), y), outs)
    handle.remove()
    nonzero = g[g != 0].abs()
    weight = FP16_TINY * uniform(0.6, 1.6) / nonzero.median().item()

    def loss_fn(logits: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy, weighted down as a loss is late in training."""
        return weight * nn.functional.cross_entropy(logits, target)

    return model, x, y, loss_fn, n, scale


def _owners(model: nn.Module) -> dict[str, nn.Module]:
    """The modules with parameters of their own, by name."""
    return {name: m for name, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))}


def _underflow(g: Tensor, tiny: float = FP16_TINY, *, zeros: str = "skip") -> float:
    """Share of ``g``'s values below ``tiny`` in magnitude; exact zeros skipped, counted, or only in the denominator."""
    small = (g != 0) & (g.abs() < tiny)
    if zeros == "count":
        return (g.abs() < tiny).double().mean().item()
    if zeros == "denominator":
        return small.double().mean().item()
    nonzero = int((g != 0).sum())
    return small.sum().item() / nonzero if nonzero else 0.0


def _reference(model: nn.Module, x: Tensor, y: Tensor, loss_fn: Callable[..., Tensor], scale: float) -> dict:
    """Every layer's true row, and the numbers each typical mistake would report in its place."""
    layers = _owners(model)
    ins: dict[str, Tensor] = {}
    outs: dict[str, Tensor] = {}

    def keep(name: str) -> Callable[..., None]:
        def hook(_m: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            ins[name], outs[name] = inputs[0], output

        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in layers.items()]
    try:
        loss = loss_fn(model(x), y)
    finally:
        for h in handles:
            h.remove()
    names = list(layers)
    inputs_with_grad = [n for n in names if ins[n].requires_grad]
    weights = [layers[n].weight for n in names]
    grads = torch.autograd.grad(loss * scale, [outs[n] for n in names] + [ins[n] for n in inputs_with_grad] + weights)
    g_out = dict(zip(names, grads[: len(names)]))
    g_in = dict(zip(inputs_with_grad, grads[len(names) : len(names) + len(inputs_with_grad)]))
    g_w = dict(zip(names, grads[len(names) + len(inputs_with_grad) :]))
    ref: dict[str, dict[str, dict[str, float]]] = {}
    for n in names:
        out, g = outs[n].detach(), g_out[n]
        ref[n] = {
            "act_max": {
                "": out.abs().max().item(),
                "input": ins[n].detach().abs().max().item(),
                "signed": out.max().item(),
            },
            "act_overflow": {
                "": (out.abs() > FP16_MAX).double().mean().item(),
                "count": float((out.abs() > FP16_MAX).sum()),
            },
            "grad_max": {
                "": g.abs().max().item(),
                "unscaled": g.abs().max().item() / scale,
                "signed": g.max().item(),
                "weight": g_w[n].abs().max().item(),
                **({"grad_input": g_in[n].abs().max().item()} if n in g_in else {}),
            },
            "grad_underflow": {
                "": _underflow(g),
                "unscaled": _underflow(g / scale),
                "zeros": _underflow(g, zeros="count"),
                "zeros_denominator": _underflow(g, zeros="denominator"),
                "subnormal": _underflow(g, FP16_SUBNORMAL),
                "to_zero": ((g != 0) & (g.half() == 0)).sum().item() / max(int((g != 0).sum()), 1),
            },
        }
    return ref


def _same_number(found: float, want: float, share: bool) -> bool:
    return abs(found - want) <= (1e-4 if share else 1e-4 * abs(want) + 1e-30)


_TO_ZERO = (
    "counts only what becomes 0 (below float16's smallest subnormal, 6e-8): the "
    "question is the share below its smallest normal number, 6.1e-5, where float16 already loses precision"
)
_DIAGNOSES = {
    ("act_max", "input"): "is the largest value of the layer's input, not of its output: the forward hook receives "
    "(module, inputs, output), and float16 has to hold the output",
    ("act_max", "signed"): "is the largest signed value, not the largest magnitude: a large negative value overflows "
    "as surely as a large positive one (take .abs() before .max())",
    ("act_overflow", "count"): "is a count of values, not a share of them: divide by the number of values (or take "
    "the mean of the boolean mask)",
    ("grad_max", "unscaled"): "ignores the loss scale: report the gradients of scale × loss, the numbers float16 "
    "would have to hold",
    ("grad_max", "signed"): "is the largest signed gradient, not the largest magnitude (take .abs() before .max())",
    ("grad_max", "weight"): "is the gradient of the layer's weight, not the gradient flowing backward out of the "
    "layer (the gradient of its output)",
    ("grad_max", "grad_input"): "is the gradient of the layer's input (grad_input), not of its output (grad_output)",
    ("grad_underflow", "unscaled"): "ignores the loss scale: count on the gradients of scale × loss, the numbers "
    "float16 would have to hold",
    ("grad_underflow", "zeros"): "counts the exact zeros too (here the ReLU's): a zero is held exactly in any "
    "format, so take the share among the non-zero values",
    ("grad_underflow", "zeros_denominator"): "divides by all the values, exact zeros included: take the share among "
    "the non-zero values",
    ("grad_underflow", "subnormal"): _TO_ZERO,
    ("grad_underflow", "to_zero"): _TO_ZERO,
}


def _table_of(result: Any, call: str, model: nn.Module) -> dict[str, dict[str, float]]:
    """The learner's result as ``{layer: {field: float}}``, or a :class:`CheckFailed` saying what is off."""
    expect(result is not None, f"{call} returned None: return the report, a dict layer name -> row")
    expect(isinstance(result, Mapping), f"{call} should return a dict layer name -> row, found {type(result).__name__}")
    wanted = list(_owners(model))
    children = {name for name, _ in model.named_children()}
    missing = [n for n in wanted if n not in result]
    if missing:
        nested = all("." in n for n in missing) and all(k in children for k in result)
        raise CheckFailed(
            f"{call}: no row for {', '.join(map(repr, missing))}"
            + (
                ": only the model's direct children were visited; nested layers hold parameters too "
                "(model.named_modules() walks them all)"
                if nested
                else f": expected one row per module with parameters of its own, {wanted}"
            )
        )
    extra = [n for n in result if n not in wanted]
    expect(
        not extra,
        f"{call}: rows for {', '.join(map(repr, extra))}, which hold no parameters of their own (a ReLU, a "
        f"container, or the model itself): report the modules with parameters of their own, {wanted}",
    )
    table: dict[str, dict[str, float]] = {}
    for n in wanted:
        row = result[n]
        expect(
            isinstance(row, Mapping),
            f"{call}[{n!r}] should be a dict with {', '.join(FIELDS)}, found {type(row).__name__}",
        )
        absent = [f for f in FIELDS if f not in row]
        expect(not absent, f"{call}[{n!r}] lacks {', '.join(absent)} (the fields are {', '.join(FIELDS)})")
        table[n] = {}
        for f in FIELDS:
            v = row[f]
            try:
                number = float(v)
            except (TypeError, ValueError, RuntimeError):
                raise CheckFailed(f"{call}[{n!r}][{f!r}] = {v!r}: every field should be one number") from None
            expect(math.isfinite(number), f"{call}[{n!r}][{f!r}] = {number}: every field should be finite")
            table[n][f] = number
    return table


def _compare(table: dict[str, dict[str, float]], ref: dict, call: str) -> None:
    """Name the first typical mistake the table shows, else the first number that differs."""
    wrong: list[tuple[str, str]] = []
    for f in FIELDS:
        share = f in ("act_overflow", "grad_underflow")
        for n, row in ref.items():
            if not _same_number(table[n][f], row[f][""], share):
                wrong.append((n, f))
                for kind, value in row[f].items():
                    if kind and (f, kind) in _DIAGNOSES and _same_number(table[n][f], value, share):
                        raise CheckFailed(
                            f"{call}[{n!r}][{f!r}] = {table[n][f]:.4g}, expected {row[f]['']:.4g}: it "
                            f"{_DIAGNOSES[f, kind]}"
                        )
                if f == "act_overflow" and table[n][f] == 0 and row[f][""] > 0.1:
                    raise CheckFailed(
                        f"{call}[{n!r}]['act_overflow'] = 0, yet {row[f]['']:.1%} of its outputs exceed float16's "
                        f"largest finite number, {FP16_MAX:,.0f}: compare with torch.finfo(torch.float16).max (not "
                        "the limit of bfloat16 or float32, which are far larger)"
                    )
                if f == "grad_underflow" and table[n][f] < 0.01 < row[f][""]:
                    raise CheckFailed(
                        f"{call}[{n!r}]['grad_underflow'] = {table[n][f]:.4g}, yet {row[f]['']:.1%} of its non-zero "
                        f"gradients lie below float16's smallest normal number, {FP16_TINY:.3g}: compare with "
                        "torch.finfo(torch.float16).smallest_normal (bfloat16 and float32 reach far lower)"
                    )
    if wrong:
        n, f = wrong[0]
        raise CheckFailed(f"{call}[{n!r}][{f!r}] = {table[n][f]:.6g}, expected {ref[n][f]['']:.6g}")


def layer_report(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(model, x, y, loss_fn, scale=1.0)``: one forward and backward pass of ``scale *
    loss_fn(model(x), y)``, reported as ``{name: {"act_max", "act_overflow", "grad_max", "grad_underflow"}}``
    for every module with parameters of its own (``named_modules`` names). ``act_max``: the largest
    magnitude of the module's output; ``act_overflow``: the share of its output values above float16's
    largest finite number; ``grad_max``: the largest magnitude of the gradient of the module's output;
    ``grad_underflow``: among that gradient's non-zero values, the share below float16's smallest normal.
    The model is left as it was found: no hooks, no ``.grad``.

    Run on a probe model calibrated per seed (a nested layer, all-negative outputs, outputs overflowing
    float16 in part, gradients straddling float16's smallest normal, exact zeros behind a ReLU), once
    without ``scale`` and once with a power of two; every number compared with an independent
    autograd computation."""
    seed = fresh_seed(seed)
    model, x, y, loss_fn, n, scale = _probe(seed)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for kwargs in ({}, {"scale": scale}):
        ref = _reference(model, x, y, loss_fn, kwargs.get("scale", 1.0))  # before the learner's code touches it
        call = f"{_name(fn)}(model, x, y, loss_fn{f', scale={scale:g}' if kwargs else ''}) (seed={seed})"
        result = call_learner(fn, model, x.clone(), y.clone(), loss_fn, what=call, **kwargs)
        now = model.state_dict()
        changed = [
            k
            for k, v in state.items()
            if k not in now or now[k].dtype != v.dtype or now[k].shape != v.shape or not torch.equal(now[k], v)
        ]
        expect(
            not changed and len(now) == len(state),
            f"{call} changed the model ({', '.join(changed[:3]) or 'its parameters'}): a report only reads it "
            "(no optimizer step, no conversion such as .half(), no in-place change)",
        )
        hooked = [
            name
            for name, m in model.named_modules()
            if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks
        ]
        expect(
            not hooked,
            f"{call} left hooks on {', '.join(map(repr, hooked))}: remove every hook before returning "
            "(register_*_hook returns a handle; call handle.remove(), in a finally block)",
        )
        left = [name for name, p in model.named_parameters() if p.grad is not None]
        expect(
            not left,
            f"{call} left gradients in the .grad of {', '.join(left[:3])}{'...' if len(left) > 3 else ''}: a "
            "report should leave the model as it found it (set them back to None, or use torch.autograd.grad)",
        )
        table = _table_of(result, call, model)
        _compare(table, ref, call)
    passed(
        f"layer report: {len(_owners(model))} layers, their activations and gradients against float16's range, "
        f"without and with a loss scale of {scale:g} (seed={seed})"
    )


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
