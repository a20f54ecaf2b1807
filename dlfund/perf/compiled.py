"""``torch.compile`` measured honestly (unit 11): compile time apart, steady-state speed after warm-up.

``torch.compile(model)`` returns at once; the work happens at the first call: TorchDynamo traces the
Python code into graphs, AOTAutograd derives the backward graph, and TorchInductor generates and
compiles fused kernels (Triton on a GPU, C++ on a CPU: it needs a C++ compiler). That first call can
take tens of seconds; later calls reuse the kernels. So a fair measurement times the first call
separately (the *compile time*) and compares the median of later steps with eager mode's.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dlfund.perf.precision import matmul_flags, precision_context
from dlfund.utils.timing import synchronize

__all__ = ["CompileResult", "time_compile"]


@dataclass
class CompileResult:
    """What :func:`time_compile` measured; ``compiled_ms``/``compile_s`` are ``None`` when compiling failed."""

    eager_ms: float
    """Median training step (forward, backward, AdamW) of the eager model, after warm-up."""
    compiled_ms: float | None
    """The same for the compiled model, after its first calls (compilation) and warm-up."""
    compile_s: float | None
    """Wall time of the compiled model's first training step: tracing, code generation and compiling."""
    first_loss_difference: float | None
    """|loss(eager) - loss(compiled)| on the first batch, from the same weights."""
    error: str | None = None
    """Why compiling failed (one line), else None."""

    @property
    def speedup(self) -> float | None:
        return None if self.compiled_ms is None else self.eager_ms / self.compiled_ms


def time_compile(
    make_model: Callable[[], nn.Module],
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int,
    device: torch.device | str,
    precision: str = "fp32",
    warmup: int = 3,
    lr: float = 1e-3,
    mode: str | None = None,
) -> CompileResult:
    """Train two copies of ``make_model()`` (eager, compiled) for ``warmup + steps`` steps each on the
    same batches in ``precision`` and time them (see :class:`CompileResult`). A compile failure is
    caught and reported in ``error``: the eager numbers still stand."""
    device = torch.device(device)
    eager = make_model().to(device)
    compiled_source = copy.deepcopy(eager)

    def run(net: Any, params: nn.Module, n: int, offset: int = 0) -> tuple[list[float], list[float]]:
        opt = optimizers.setdefault(id(params), torch.optim.AdamW(params.parameters(), lr=lr))
        times, losses = [], []
        for i in range(n):
            x, y = batch(offset + i)
            x, y = x.to(device), y.to(device)
            synchronize(device)
            start = time.perf_counter()
            with matmul_flags(precision, device):
                with precision_context(precision, device):
                    value = loss(net(x), y)
                opt.zero_grad(set_to_none=True)
                value.backward()
                opt.step()
            losses.append(value.item())
            times.append(time.perf_counter() - start)
        return times, losses

    optimizers: dict[int, torch.optim.Optimizer] = {}
    first_eager = run(eager, eager, 1)[1][0]
    run(eager, eager, warmup - 1, 1)
    eager_ms = 1000 * statistics.median(run(eager, eager, steps, warmup)[0])
    torch._dynamo.reset()
    try:
        net = torch.compile(compiled_source, mode=mode)
        times, losses = run(net, compiled_source, 1)
    except Exception as err:  # no C++ compiler, unsupported platform or Python version, ...
        reason = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        return CompileResult(eager_ms, None, None, None, error=reason[:300])
    compile_s = times[0]
    run(net, compiled_source, warmup - 1, 1)
    compiled_ms = 1000 * statistics.median(run(net, compiled_source, steps, warmup)[0])
    return CompileResult(eager_ms, compiled_ms, compile_s, abs(losses[0] - first_eager))
