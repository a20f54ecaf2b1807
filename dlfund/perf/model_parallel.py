"""Model parallelism for real (unit 11): tensor and pipeline parallelism, several processes.

Data parallelism (:mod:`dlfund.perf.distributed`) splits the *batch*; here the *model* is split.

- **Tensor parallelism** (Megatron style) of an MLP block ``Linear(d, h) → GELU → Linear(h, d)``: rank
  ``r`` keeps a block of the first layer's output features (column-parallel: rows of ``nn.Linear``'s
  ``(out, in)`` weight and of its bias) and the matching block of the second layer's input features
  (row-parallel). Each rank computes a partial output; one all-reduce (a sum) in the forward pass and one
  in the backward pass make it whole. PyTorch's ``parallelize_module`` with ``ColwiseParallel`` and
  ``RowwiseParallel`` over a ``DeviceMesh``.
- **Pipeline parallelism** of a stack of blocks: rank ``r`` keeps consecutive blocks (a *stage*); the
  batch is cut into micro-batches that flow through the stages (activations sent forward, their
  gradients back). ``torch.distributed.pipelining``: ``PipelineStage`` and ``ScheduleGPipe``.

:func:`launch` starts the ranks with :func:`dlfund.perf.distributed.run_ranks` (torchrun in a
subprocess; gloo on CPUs); each rank runs :func:`main`, both demos in one launch, and writes
``<out>/tp.rank<r>.pt`` and ``<out>/pp.rank<r>.pt``. :func:`reference` is the single process the
results are compared with; :func:`gpipe_schedule` is the GPipe schedule itself (time slots), for the
bubble.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.pipelining import PipelineStage, ScheduleGPipe
from torch.distributed.tensor.debug import CommDebugMode
from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

from dlfund.perf.distributed import DistributedResult, _atomic_save, launch_failure, run_ranks

__all__ = [
    "DEMOS",
    "Slot",
    "bubble_fraction",
    "gpipe_schedule",
    "idle_fraction",
    "launch",
    "main",
    "make_data",
    "make_mlp",
    "make_stack",
    "mse",
    "reference",
]

DEMOS = ("tp", "pp")

# --------------------------------------------------------------------------------------------- problem


def make_mlp(dim: int, hidden: int, seed: int) -> nn.Sequential:
    """A transformer's MLP block, ``(..., dim) → (..., dim)``: ``Linear(dim, hidden) → GELU → Linear(hidden, dim)``."""
    torch.manual_seed(seed)  # every rank (and the reference) starts from the same weights
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


def make_stack(blocks: int, dim: int, seed: int) -> nn.Sequential:
    """``blocks`` blocks ``Linear(dim, dim) → Tanh``, ``(..., dim) → (..., dim)``; block ``i`` is ``stack[i]``."""
    torch.manual_seed(seed)
    return nn.Sequential(*(nn.Sequential(nn.Linear(dim, dim), nn.Tanh()) for _ in range(blocks)))


def make_data(batch: int, dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(batch, dim)`` and regression targets ``(batch, dim)``, the same on every rank."""
    gen = torch.Generator().manual_seed(seed + 1)
    return torch.randn(batch, dim, generator=gen), torch.randn(batch, dim, generator=gen)


def mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean squared error: with equal micro-batches the mean of their losses is the whole batch's."""
    return ((out - target) ** 2).mean()


def reference(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, Any]:
    """One process, the whole batch: ``{"output", "loss", "grads": {name: gradient}, "input_grad"}``.

    The input gets a gradient too: inside a network a block's input comes from earlier layers."""
    model.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    out = model(x)
    loss = mse(out, target)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
    return {"output": out.detach(), "loss": loss.item(), "grads": grads, "input_grad": x.grad.detach().clone()}


# ----------------------------------------------------------------------------------------- the bubble


@dataclass(frozen=True)
class Slot:
    """One unit of work in a pipeline schedule: ``rank`` runs ``phase`` ("F"/"B") of ``micro`` at time ``step``."""

    rank: int
    step: int
    phase: str
    micro: int


def gpipe_schedule(stages: int, micro: int) -> list[Slot]:
    """GPipe with ``stages`` ranks and ``micro`` micro-batches, each forward and backward one time step.

    All forwards first (micro-batch ``i`` reaches stage ``r`` at step ``r + i``), then all backwards in
    the same order, starting at the last stage."""
    first_backward = micro + stages - 1
    slots = [Slot(r, r + i, "F", i) for r in range(stages) for i in range(micro)]
    slots += [Slot(r, first_backward + (stages - 1 - r) + i, "B", i) for r in range(stages) for i in range(micro)]
    return slots


def idle_fraction(slots: list[Slot]) -> float:
    """The share of (rank, time step) cells no work is in, over the schedule's whole length."""
    ranks = {s.rank for s in slots}
    length = max(s.step for s in slots) + 1
    return 1.0 - len(slots) / (len(ranks) * length)


def bubble_fraction(stages: int, micro: int) -> float:
    """GPipe's idle share, ``(p - 1) / (m + p - 1)`` for ``p`` stages and ``m`` micro-batches."""
    return (stages - 1) / (micro + stages - 1)


# ------------------------------------------------------------------------------------------ the ranks


def _tensor_parallel(spec: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """Rank ``rank``'s share of the MLP: forward and backward once; the gathered output and gradients."""
    mesh = init_device_mesh("cpu", (world,))
    model = make_mlp(spec["dim"], spec["hidden"], spec["seed"])
    parallelize_module(model, mesh, {"0": ColwiseParallel(), "2": RowwiseParallel()})
    x, target = make_data(spec["batch"], spec["dim"], spec["seed"])
    x.requires_grad_()  # as inside a network: then the backward pass all-reduces the input's gradient too
    start = time.perf_counter()
    with CommDebugMode() as forward_comm:
        out = model(x)
    loss = mse(out, target)
    with CommDebugMode() as backward_comm:
        loss.backward()
    seconds = time.perf_counter() - start
    return {
        "output": out.detach().clone(),
        "loss": loss.item(),
        # DTensors: this rank's shard; full_tensor() gathers the shards from every rank
        "grads": {n: p.grad.full_tensor().detach().clone() for n, p in model.named_parameters()},
        "input_grad": x.grad.detach().clone(),
        "local_shapes": {n: list(p.to_local().shape) for n, p in model.named_parameters()},
        "forward_collectives": {str(k): v for k, v in forward_comm.get_comm_counts().items()},
        "backward_collectives": {str(k): v for k, v in backward_comm.get_comm_counts().items()},
        "seconds": seconds,
    }


class _Timed(nn.Module):
    """A stage's blocks, stamping when each micro-batch's forward and backward starts and ends."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.events: list[list[Any]] = []  # [phase, micro-batch, start, end] in perf_counter seconds
        self._forwards = 0
        self._backwards = 0
        self._backward_start: float | None = None

    def reset(self) -> None:
        """Forget the stamps and start counting micro-batches from 0 again."""
        self.events.clear()
        self._forwards = self._backwards = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        if not x.requires_grad:  # the first stage: a gradient for the input only to stamp the backward's end
            x = x.detach().requires_grad_()
        x.register_hook(self._backward_done)
        out = self.inner(x)
        out.register_hook(self._backward_begins)
        self.events.append(["F", self._forwards, start, time.perf_counter()])
        self._forwards += 1
        return out

    def _backward_begins(self, grad: torch.Tensor) -> None:
        self._backward_start = time.perf_counter()  # the gradient of this micro-batch's output arrived

    def _backward_done(self, grad: torch.Tensor) -> None:
        # GPipe runs the backwards in micro-batch order, so the n-th backward is micro-batch n; the stage may
        # ask for the input's gradient more than once per backward: only the first answer ends it
        if self._backward_start is None:
            return
        self.events.append(["B", self._backwards, self._backward_start, time.perf_counter()])
        self._backward_start = None
        self._backwards += 1


def _pipeline(spec: dict[str, Any], rank: int, world: int) -> dict[str, Any]:
    """Rank ``rank``'s stage of the stack under GPipe: one step; its gradients, timestamps, and (last) the loss."""
    blocks, micro = spec["blocks"], spec["micro"]
    if blocks % world or spec["batch"] % micro:
        raise ValueError(f"{blocks} blocks over {world} ranks, {spec['batch']} rows in {micro} micro-batches")
    per_stage = blocks // world
    stack = make_stack(blocks, spec["dim"], spec["seed"])
    first = rank * per_stage
    stage_blocks = stack[first : first + per_stage]  # this rank keeps only these; the rest is dropped
    timed = _Timed(stage_blocks)
    stage = PipelineStage(timed, rank, world, torch.device("cpu"))
    schedule = ScheduleGPipe(stage, n_microbatches=micro, loss_fn=mse)
    x, target = make_data(spec["batch"], spec["dim"], spec["seed"])

    def step(losses: list[torch.Tensor]) -> torch.Tensor | None:
        if rank == 0:
            return schedule.step(x)
        if rank == world - 1:
            return schedule.step(target=target, losses=losses)
        return schedule.step()

    # a warm-up step: the first one also infers the shapes sent between stages and opens the connections
    step([])
    stage_blocks.zero_grad(set_to_none=True)
    timed.reset()
    losses: list[torch.Tensor] = []
    start = time.perf_counter()
    out = step(losses)
    seconds = time.perf_counter() - start
    # a slice of nn.Sequential keeps the names: block i is still "i.<...>", as in the single model
    grads = {n: p.grad.detach().clone() for n, p in stage_blocks.named_parameters()}
    report: dict[str, Any] = {
        "grads": grads,
        "events": timed.events,
        "seconds": seconds,
        "stage_blocks": list(range(first, first + per_stage)),
        "activation_bytes": spec["batch"] * spec["dim"] * 4,  # crosses each stage boundary forward, and back
    }
    if rank == world - 1:
        report.update(output=out.detach().clone(), loss=torch.stack(losses).mean().item())
    return report


def main(argv: list[str] | None = None) -> int:
    """One rank (started by torchrun): run the demos, write ``<demo>.rank<r>.pt``."""
    p = argparse.ArgumentParser(description="one rank of unit 11's tensor- and pipeline-parallel runs")
    p.add_argument("--out", required=True, help="folder for <demo>.rank<r>.pt")
    p.add_argument("--spec", required=True, help="JSON: dim, hidden, batch, blocks, micro, seed")
    p.add_argument("--demos", default=",".join(DEMOS), help=f"comma-separated, from {', '.join(DEMOS)}")
    args = p.parse_args(argv)
    dist.init_process_group("gloo")  # CPU ranks: the model-parallel demos are about the arithmetic
    rank, world = dist.get_rank(), dist.get_world_size()
    spec = json.loads(args.spec)
    for demo in args.demos.split(","):
        try:
            report = (_tensor_parallel if demo == "tp" else _pipeline)(spec, rank, world)
            report["ok"] = True
        except Exception as err:  # written down for the notebook to print; the next demo still runs
            report = {"ok": False, "error": f"{type(err).__name__}: {err}".strip().splitlines()[0]}
            report["traceback"] = traceback.format_exc(limit=4)
        _atomic_save(report, Path(args.out) / f"{demo}.rank{rank}.pt")
        dist.barrier()
    dist.destroy_process_group()
    return 0


# ----------------------------------------------------------------------------------------- launching


def launch(
    out_dir: str | os.PathLike[str],
    *,
    dim: int,
    hidden: int,
    batch: int,
    blocks: int,
    micro: int,
    seed: int = 0,
    nproc: int = 2,
    demos: tuple[str, ...] = DEMOS,
    timeout: float = 300.0,
) -> DistributedResult:
    """Start ``nproc`` CPU ranks (gloo) once and run the demos in them; collect each rank's report (per demo
    in ``reports``, as :func:`dlfund.perf.distributed.launch` does per mode)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bad = [d for d in demos if d not in DEMOS]
    if bad:
        raise ValueError(f"unknown demo(s) {bad}: expected some of {', '.join(DEMOS)}")
    spec = {"dim": dim, "hidden": hidden, "batch": batch, "blocks": blocks, "micro": micro, "seed": seed}
    args = ["--out", str(out), "--spec", json.dumps(spec), "--demos", ",".join(demos)]
    proc, seconds = run_ranks("dlfund.perf.model_parallel", args, nproc=nproc, device="cpu", timeout=timeout)
    result = DistributedResult(nproc=nproc, seconds=seconds, log=proc.stdout + proc.stderr)
    for demo in demos:
        files = [out / f"{demo}.rank{r}.pt" for r in range(nproc)]
        if all(f.exists() for f in files):
            result.reports[demo] = [torch.load(f, weights_only=True) for f in files]
    if proc.returncode != 0 and not result.reports:
        raise launch_failure(proc.returncode, result.log)
    return result


if __name__ == "__main__":
    sys.exit(main())
