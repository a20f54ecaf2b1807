"""The check of unit 5's Fabric gradient-accumulation exercise (re-exported by :mod:`dlfund.checks.unit05`).

The learner writes ``train_accumulating(fabric, model, optimizer, batches, k)``: one optimizer step per
``k`` micro-batches, the last step on the ``r < k`` micro-batches left over, each step on the mean
cross-entropy of its micro-batches, with ``fabric.backward`` and ``fabric.no_backward_sync`` around every
micro-batch but the last of a step. The check hands it a :class:`Fabric` subclass that records every
``backward`` and ``no_backward_sync`` call, hooks that count the backward passes, the forward passes and
the optimizer steps, and at every step compares the gradients with the mean gradient of that step's
micro-batches computed independently at the same weights. Fresh random data on every call (``k``
between 3 and 5, a leftover of 1 to ``k - 1`` micro-batches, SGD with momentum, where the size of a
gradient matters); each usual mistake is named from what the recordings show.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import numbers
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from lightning.fabric import Fabric
from torch import nn

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["fabric_accumulation", "reference_accumulation"]

Tensor = torch.Tensor
Batch = tuple[Tensor, Tensor]
RTOL, ATOL = 1e-4, 1e-6


@contextlib.contextmanager
def _quiet_and_single_threaded() -> Iterator[None]:
    """Silence Lightning's info lines and warnings, and compute on one thread: the check's tensors are tiny,
    and on a busy machine several threads make each small operation wait for the others (20 times slower)."""
    loggers = [logging.getLogger(name) for name in ("lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    threads = torch.get_num_threads()
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        torch.set_num_threads(threads)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class _RecordingFabric(Fabric):
    """A one-CPU Fabric that writes down, for every ``backward`` call, whether it ran inside
    ``no_backward_sync(enabled=True)``; the forward passes are recorded by a hook the check adds."""

    def __init__(self) -> None:
        super().__init__(accelerator="cpu", devices=1, precision="32-true")
        self.reset()

    def reset(self) -> None:
        """Forget what an earlier check call recorded."""
        self.backward_in_no_sync: list[bool] = []
        self.forward_in_no_sync: list[bool] = []
        self.no_sync_depth = 0

    def backward(self, tensor: Tensor, *args: Any, model: Any = None, **kwargs: Any) -> None:
        self.backward_in_no_sync.append(self.no_sync_depth > 0)
        super().backward(tensor, *args, model=model, **kwargs)

    @contextlib.contextmanager
    def no_backward_sync(self, module: Any, enabled: bool = True) -> Iterator[None]:  # type: ignore[override]
        with super().no_backward_sync(module, enabled=enabled):
            self.no_sync_depth += bool(enabled)
            try:
                yield
            finally:
                self.no_sync_depth -= bool(enabled)


@functools.cache
def _launched_fabric() -> _RecordingFabric:
    """One recording Fabric for all check calls: creating one looks up Lightning's plugins (about 45 ms)."""
    fabric = _RecordingFabric()
    fabric.launch()
    return fabric


def _model(d: int, hidden: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def _groups(n: int, k: int) -> list[range]:
    """The micro-batch indices of each optimizer step: k at a time, the last group the r = n mod k left."""
    return [range(start, min(start + k, n)) for start in range(0, n, k)]


def _mean_loss(model: nn.Module, batches: list[Batch], group: range) -> Tensor:
    """The step's loss: the mean over its (equal-sized) micro-batches of their mean cross-entropy."""
    return torch.stack([F.cross_entropy(model(batches[i][0]), batches[i][1]) for i in group]).mean()


def reference_accumulation(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: list[Batch], k: int
) -> list[float]:
    """A plain-PyTorch loop with the same steps: each step's gradient is that of the mean loss of its
    micro-batches, computed in one backward pass. Returns the loss of each step."""
    losses = []
    for group in _groups(len(batches), k):
        optimizer.zero_grad()
        loss = _mean_loss(model, batches, group)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@dataclass
class _Case:
    d: int
    hidden: int
    classes: int
    k: int
    batches: list[Batch]
    initial: dict[str, Tensor]
    lr: float = 0.2
    momentum: float = 0.6
    groups: list[range] = field(init=False)

    def __post_init__(self) -> None:
        self.groups = _groups(len(self.batches), self.k)

    def fresh(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = _model(self.d, self.hidden, self.classes)
        model.load_state_dict(self.initial)
        return model, torch.optim.SGD(model.parameters(), lr=self.lr, momentum=self.momentum)


def _draw(seed: int) -> _Case:
    g = torch.Generator().manual_seed(seed)

    def pick(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    d, hidden, classes = pick(5, 8), pick(9, 12), pick(3, 4)
    k, full = pick(3, 5), pick(2, 3)
    leftover, size = pick(1, k - 1), pick(3, 6)
    centres = torch.randn(classes, d, generator=g) * 2
    batches = []
    for _ in range(full * k + leftover):
        y = torch.randint(0, classes, (size,), generator=g)
        batches.append((centres[y] + torch.randn(size, d, generator=g), y))
    torch.manual_seed(seed)
    initial = {n: t.clone() for n, t in _model(d, hidden, classes).state_dict().items()}
    return _Case(d, hidden, classes, k, batches, initial)


@dataclass
class _Recording:
    """What the hooks saw: backward passes, grad-enabled forwards, and per step the gradients found and
    expected (at the weights of that step) and the expected loss."""

    backward_passes: int = 0
    steps: int = 0
    found_grads: list[list[Tensor | None]] = field(default_factory=list)
    expected_grads: list[list[Tensor]] = field(default_factory=list)
    expected_losses: list[float] = field(default_factory=list)
    states: list[dict[str, Tensor]] = field(default_factory=list)


def _record(case: _Case, fabric: _RecordingFabric, raw: nn.Module, optimizer: torch.optim.Optimizer) -> _Recording:
    rec = _Recording()
    twin = _model(case.d, case.hidden, case.classes)  # the same architecture, for independent gradients

    def count_backward(grad: Tensor) -> None:
        rec.backward_passes += 1

    def count_forward(module: nn.Module, inputs: Any) -> None:
        if torch.is_grad_enabled():
            fabric.forward_in_no_sync.append(fabric.no_sync_depth > 0)

    def before_step(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        j = rec.steps
        rec.steps += 1
        rec.found_grads.append([None if p.grad is None else p.grad.detach().clone() for p in raw.parameters()])
        if j >= len(case.groups):
            return
        with torch.no_grad():
            twin.load_state_dict(raw.state_dict())
        with torch.enable_grad():
            loss = _mean_loss(twin, case.batches, case.groups[j])
            rec.expected_grads.append([g.detach() for g in torch.autograd.grad(loss, list(twin.parameters()))])
        rec.states.append({n: t.detach().clone() for n, t in raw.state_dict().items()})
        rec.expected_losses.append(loss.item())

    next(raw.parameters()).register_hook(count_backward)
    raw.register_forward_pre_hook(count_forward)
    optimizer.register_step_pre_hook(before_step)
    return rec


def _close(found: list[Tensor | None], want: list[Tensor]) -> bool:
    return all(f is not None and torch.allclose(f, w, rtol=RTOL, atol=ATOL) for f, w in zip(found, want))


def _scaled(grads: list[Tensor], factor: float) -> list[Tensor]:
    return [g * factor for g in grads]


def _last_micro_batch_gradient(case: _Case, state: dict[str, Tensor], group: range) -> list[Tensor]:
    """The gradient of the last micro-batch's loss alone, at the weights ``state`` of a step."""
    twin = _model(case.d, case.hidden, case.classes)
    twin.load_state_dict(state)
    with torch.enable_grad():
        loss = _mean_loss(twin, case.batches, range(group[-1], group[-1] + 1))
        return [g.detach() for g in torch.autograd.grad(loss, list(twin.parameters()))]


def _diagnose_gradients(rec: _Recording, case: _Case, call: str) -> None:
    k = case.k
    for j, group in enumerate(case.groups):
        found, want = rec.found_grads[j], rec.expected_grads[j]
        if _close(found, want):
            continue
        n = len(group)
        where = f"step {j + 1} ({n} micro-batches{', the leftover' if n < k else ''})"
        expect(
            all(f is not None for f in found),
            f"{call}: at {where} some parameters had no gradient at all when optimizer.step() ran: call "
            "fabric.backward(loss) on every micro-batch's loss before the step",
        )
        if _close(found, _scaled(want, n)):
            raise CheckFailed(
                f"{call}: at {where} the gradient was {n} times too large: each micro-batch's loss must be "
                f"divided by the number of micro-batches of its step, so that the step follows the mean loss, "
                f"not the sum"
            )
        if n < k and _close(found, _scaled(want, n / k)):
            raise CheckFailed(
                f"{call}: at {where} the gradient was {n}/{k} of the mean's: the leftover step has only {n} "
                f"micro-batches, so its losses are divided by {n}, not by k = {k}"
            )
        last = _last_micro_batch_gradient(case, rec.states[j], group)
        if _close(found, _scaled(last, 1 / n)) or _close(found, last) or _close(found, _scaled(last, 1 / k)):
            raise CheckFailed(
                f"{call}: at {where} the gradient was that of the last micro-batch only: the gradients of "
                "the earlier micro-batches were cleared; call optimizer.zero_grad() once per step (after "
                "optimizer.step()), not before every micro-batch"
            )
        previous = rec.found_grads[j - 1] if j else []
        if previous and all(p is not None for p in previous) and _close(found, [w + p for w, p in zip(want, previous)]):  # type: ignore[operator]
            raise CheckFailed(
                f"{call}: at {where} the gradient still held the previous step's: call "
                "optimizer.zero_grad() after every optimizer.step()"
            )
        raise CheckFailed(
            f"{call}: at {where} the gradient is not that of the mean loss of its {n} micro-batches "
            f"(largest difference {max((f - w).abs().max().item() for f, w in zip(found, want)):.3g}); each "
            "micro-batch's loss divided by the number of micro-batches of the step, gradients cleared once per step"
        )


def _diagnose_sync(fabric: _RecordingFabric, case: _Case, call: str) -> None:
    expected = [i != group[-1] for group in case.groups for i in group]
    found = fabric.backward_in_no_sync
    if found != expected:
        expect(
            any(found),
            f"{call}: fabric.no_backward_sync(model, enabled=...) was never used: with several devices every "
            "micro-batch's backward pass would all-reduce the gradients, k times the communication needed; "
            "skip the sync for every micro-batch but the last of a step",
        )
        last = len(case.batches) - 1
        if all(found):
            raise CheckFailed(
                f"{call}: every backward pass ran inside no_backward_sync(enabled=True), also the last of each "
                "step: then the gradients are never averaged over the devices and each would step with its own"
            )
        if found[:last] == expected[:last] and found[last]:
            raise CheckFailed(
                f"{call}: the last micro-batch of the leftover step ran inside no_backward_sync(enabled=True), "
                f"so the final step's gradients would never be synchronized: the leftover step has "
                f"{len(case.groups[-1])} micro-batches, and its last one must sync (is it (i + 1) % k?)"
            )
        wrong = next(i for i, (f, e) in enumerate(zip(found + [None] * len(expected), expected)) if f != e)
        raise CheckFailed(
            f"{call}: micro-batch {wrong + 1} of {len(expected)} ran {'inside' if found[wrong] else 'outside'} "
            f"no_backward_sync(enabled=True): expected inside for every micro-batch but the last of its "
            f"step (k = {case.k}, the last step on the {len(case.groups[-1])} left over)"
        )
    forwards = fabric.forward_in_no_sync
    if forwards != expected:
        raise CheckFailed(
            f"{call}: the backward passes ran in no_backward_sync but the forward passes did not: under DDP the "
            "forward pass already decides whether the next backward syncs, so the model's forward and "
            "fabric.backward must both run inside the context"
        )


def _as_losses(found: Any, call: str, steps: int) -> list[float]:
    ok = isinstance(found, (list, tuple)) and all(
        isinstance(v, numbers.Real) or (isinstance(v, Tensor) and v.numel() == 1) for v in found
    )
    expect(ok, f"{call} should return a list of floats, the loss of each optimizer step; found {type(found).__name__}")
    values = [float(v) for v in found]
    expect(
        len(values) == steps,
        f"{call} should return one loss per optimizer step ({steps}); found {len(values)} values"
        + (" (one per micro-batch?)" if len(values) > steps else ""),
    )
    return values


def fabric_accumulation(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``train_accumulating(fabric, model, optimizer, batches, k) -> list[float]``.

    ``batches`` is a list of ``(x (m, d), y (m,))`` micro-batches of equal size ``m``; ``model`` and
    ``optimizer`` come set up by ``fabric.setup``. Expected: one optimizer step per ``k`` micro-batches
    and one on the leftover, each on the mean cross-entropy of its micro-batches, ``fabric.backward``
    for every micro-batch, ``no_backward_sync`` around all but the last of each step; the loss of each
    step returned."""
    seed = fresh_seed(seed)
    with _quiet_and_single_threaded():
        _check(fn, seed)


def _check(fn: Callable[..., Any], seed: int) -> None:
    case = _draw(seed)
    n, k, steps = len(case.batches), case.k, len(case.groups)
    call = (
        f"train_accumulating(fabric, model, optimizer, batches, k={k}) on {n} micro-batches of "
        f"{case.batches[0][1].numel()} examples (seed={seed})"
    )
    fabric = _launched_fabric()
    fabric.reset()
    raw, optimizer = case.fresh()
    model, fabric_optimizer = fabric.setup(raw, optimizer)
    rec = _record(case, fabric, raw, optimizer)
    given = [(x.clone(), y.clone()) for x, y in case.batches]
    found = call_learner(fn, fabric, model, fabric_optimizer, given, k, what=call)
    expect(
        rec.backward_passes <= len(fabric.backward_in_no_sync),
        f"{call}: {rec.backward_passes} backward passes ran but fabric.backward was called "
        f"{len(fabric.backward_in_no_sync)} times: call fabric.backward(loss), not loss.backward(), so that "
        "Fabric can scale the loss and synchronize gradients as the precision and strategy need",
    )
    if rec.steps != steps:
        full = n // k
        if rec.steps == n:
            raise CheckFailed(
                f"{call}: optimizer.step() ran after every one of the {n} micro-batches: step once per k = {k} "
                f"micro-batches ({steps} steps in all)"
            )
        if rec.steps == full:
            raise CheckFailed(
                f"{call}: {full} optimizer steps, none for the {n - full * k} micro-batches left over after "
                f"the last full group of k = {k}: the leftover makes one more, smaller step ({steps} in all)"
            )
        raise CheckFailed(f"{call}: expected {steps} optimizer steps ({n} micro-batches, k = {k}), found {rec.steps}")
    expect(
        len(fabric.backward_in_no_sync) == n,
        f"{call}: expected one fabric.backward per micro-batch ({n}), found {len(fabric.backward_in_no_sync)}",
    )
    _diagnose_gradients(rec, case, call)
    _diagnose_sync(fabric, case, call)
    losses = _as_losses(found, call, steps)
    for j, (f, w) in enumerate(zip(losses, rec.expected_losses)):
        expect(
            abs(f - w) <= RTOL * abs(w) + ATOL,
            f"{call}: the loss returned for step {j + 1} should be the mean loss of its {len(case.groups[j])} "
            f"micro-batches, {w:.6g}; found {f:.6g}",
        )
    ref_model, ref_opt = case.fresh()
    reference_accumulation(ref_model, ref_opt, case.batches, k)
    gap = max((a - b).abs().max().item() for a, b in zip(raw.parameters(), ref_model.parameters()))
    expect(
        gap <= 1e-5,
        f"{call}: the final weights differ from an independent loop's by up to {gap:.3g}, although every "
        "step's gradient was right: did something change the weights or the optimizer outside the steps?",
    )
    passed(
        f"Fabric gradient accumulation: {steps} steps of k = {k} micro-batches (the last on {len(case.groups[-1])}), "
        f"gradients, syncs and final weights right (seed={seed})"
    )
