"""Measuring training memory on any device, and activation checkpointing (unit 11).

Training memory has two parts:

- **state**: parameters, their gradients and the optimizer's state (AdamW: two numbers per parameter).
  :func:`state_bytes` counts them (for sharded tensors, the local shard: what one rank holds);
- **activations**: tensors the forward pass saves for backward. :class:`SavedTensorMeter` counts them
  through :func:`torch.autograd.graph.saved_tensors_hooks`, on a CPU as well as on a GPU: it is what
  lower precision halves and activation checkpointing removes.

On CUDA, :func:`cuda_peak_start` / :func:`cuda_peak_mb` read the allocator's peak, which includes both
(and temporary buffers); a CPU has no such counter, so there the two device-independent counts stand in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dlfund.train.lm import lm_loss
from dlfund.utils.timing import synchronize

__all__ = [
    "Checkpointed",
    "SavedTensorMeter",
    "checkpoint_blocks",
    "checkpoint_comparison",
    "cuda_peak_mb",
    "cuda_peak_start",
    "find_batch_size",
    "state_bytes",
]


def _local(t: torch.Tensor) -> torch.Tensor:
    """The part of ``t`` this process holds (a DTensor's local shard; any other tensor itself)."""
    return t.to_local() if hasattr(t, "to_local") else t


def _storage_key(t: torch.Tensor) -> tuple[int, str]:
    return _local(t).untyped_storage().data_ptr(), str(t.device)


class SavedTensorMeter:
    """Count the bytes of tensors autograd saves for backward while the context is open.

    Each storage is counted once (several saved views of one tensor share it), and tensors whose
    storage is a parameter of ``model`` are not counted: the weights are in memory anyway. Under
    autocast the 16-bit copies of the weights that autocast makes do count: they live until backward.

    >>> lin = nn.Linear(100, 10)
    >>> with SavedTensorMeter(lin) as meter:
    ...     _ = torch.relu(lin(torch.randn(8, 100, requires_grad=True)))
    >>> meter.bytes  # the input of the linear layer (8×100 floats) and relu's output (8×10 floats)
    3520
    """

    def __init__(self, model: nn.Module | None = None) -> None:
        self._params = {_storage_key(p) for p in model.parameters()} if model is not None else set()
        self._seen: set[tuple[int, str]] = set()
        self.bytes = 0
        self.count = 0
        self._hooks: Any = None

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        key = _storage_key(t)
        if key not in self._params and key not in self._seen:
            self._seen.add(key)
            self.bytes += _local(t).untyped_storage().nbytes()
            self.count += 1
        return t

    def __enter__(self) -> SavedTensorMeter:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._hooks.__exit__(*exc)

    @property
    def mb(self) -> float:
        return self.bytes / 2**20


def state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """Bytes this process holds for ``parameters``, ``gradients`` and ``optimizer`` state (shards count
    their local part; a parameter shared by two modules counts once)."""
    params = {id(p): p for p in model.parameters()}.values()
    out = {
        "parameters": sum(_local(p).numel() * p.element_size() for p in params),
        "gradients": sum(_local(p.grad).numel() * p.grad.element_size() for p in params if p.grad is not None),
        "optimizer": 0,
    }
    if optimizer is not None:
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    out["optimizer"] += _local(value).numel() * value.element_size()
    return out


def cuda_peak_start(device: torch.device | str) -> None:
    """Start a peak-memory measurement on CUDA (no-op elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def cuda_peak_mb(device: torch.device | str) -> float | None:
    """The CUDA allocator's peak since :func:`cuda_peak_start` in MiB; ``None`` on other devices (no such counter)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


class Checkpointed(nn.Module):
    """Run ``module`` under activation checkpointing: its forward keeps only its inputs for backward and
    runs again during backward to recompute what it needs (less memory, one more forward of compute)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if not torch.is_grad_enabled():
            return self.module(*args, **kwargs)
        return checkpoint(self.module, *args, use_reentrant=False, **kwargs)


def checkpoint_blocks(blocks: nn.ModuleList) -> nn.ModuleList:
    """Wrap every block of ``blocks`` (e.g. ``gpt.layers``) in :class:`Checkpointed`, in place; returns it.

    The state-dict keys gain a ``.module`` part (``layers.0.module.self_attn...``)."""
    for i, block in enumerate(blocks):
        if not isinstance(block, Checkpointed):
            blocks[i] = Checkpointed(block)
    return blocks


def checkpoint_comparison(
    make_model: Callable[[], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    steps: int = 5,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, float | None]]:
    """Forward + backward of ``make_model()`` (a model with a ``layers`` ModuleList, e.g. unit 9's GPT) with and
    without :func:`checkpoint_blocks`, from the same weights on the batch ``x``, ``y``.

    Returns ``{"plain": m, "checkpointed": m}`` with ``saved_mb`` (bytes saved for backward),
    ``step_ms`` (median forward + backward), ``peak_mb`` (CUDA allocator peak, None elsewhere) and, for
    the checkpointed model, ``max_grad_difference`` from the plain model's gradients."""
    import statistics
    import time

    device = torch.device(device)
    x, y = x.to(device), y.to(device)
    out: dict[str, dict[str, float | None]] = {}
    grads: dict[str, list[torch.Tensor]] = {}
    for name in ("plain", "checkpointed"):
        model = make_model().to(device)
        if name == "checkpointed":
            checkpoint_blocks(model.layers)  # type: ignore[arg-type]
        with SavedTensorMeter(model) as meter:
            value = loss(model(x), y)
        value.backward()
        grads[name] = [p.grad.detach().clone() for p in model.parameters()]
        times = []
        cuda_peak_start(device)
        for _ in range(steps):
            model.zero_grad(set_to_none=True)
            synchronize(device)
            start = time.perf_counter()
            loss(model(x), y).backward()
            synchronize(device)
            times.append(time.perf_counter() - start)
        out[name] = {"saved_mb": meter.mb, "step_ms": 1000 * statistics.median(times), "peak_mb": cuda_peak_mb(device)}
    out["checkpointed"]["max_grad_difference"] = max(
        (a - b).abs().max().item() for a, b in zip(grads["plain"], grads["checkpointed"])
    )
    return out


def find_batch_size(
    make_model: Callable[[], nn.Module],
    tokens: torch.Tensor,
    *,
    context_length: int,
    init: int,
    max_trials: int,
    device: torch.device | str,
    root_dir: str,
    lr: float = 1e-3,
) -> int:
    """Lightning's batch-size finder (``Tuner.scale_batch_size``, mode ``"power"``) on a language model: doubles
    the batch from ``init`` until a step runs out of memory or ``max_trials`` doublings succeeded, and
    returns the largest batch that ran. ``tokens`` is a 1-D token stream; ``root_dir`` takes Lightning's
    temporary checkpoint. On a CPU nothing raises "out of memory" (the operating system swaps or kills
    the process instead), so there the finder stops at ``max_trials``."""
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner
    from torch.utils.data import DataLoader, Dataset

    class Windows(Dataset):
        """Window ``i`` of the stream: inputs and next-token targets ``(T,)``; a fixed pseudo-random start."""

        def __len__(self) -> int:
            return 1 << 20

        def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
            start = (i * 7919) % (len(tokens) - context_length - 1)
            w = tokens[start : start + context_length + 1]
            return w[:-1], w[1:]

    class LitLM(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model()
            self.batch_size = init  # the attribute the finder changes

        def train_dataloader(self) -> DataLoader:
            return DataLoader(Windows(), batch_size=self.batch_size, shuffle=False)

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
            return lm_loss(self.model(batch[0]), batch[1])

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=lr)

    device = torch.device(device)
    trainer = pl.Trainer(
        accelerator="cuda" if device.type == "cuda" else "cpu",
        devices=1,
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root_dir,
    )
    found = Tuner(trainer).scale_batch_size(
        LitLM(), mode="power", steps_per_trial=2, init_val=init, max_trials=max_trials
    )
    return int(found if found is not None else init)
