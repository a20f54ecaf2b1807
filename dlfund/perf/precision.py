"""Training in lower precision (unit 11): fp32, tf32, fp16 and bf16 autocast, pure bf16, measured.

The five settings a learner meets in Lightning's ``Trainer(precision=...)``, written out in PyTorch:

============  ===========================================================================================
``fp32``      everything in float32 (the reference)
``tf32``      float32 tensors, but CUDA matrix multiplies and convolutions round their inputs to 10-bit
              mantissas on the tensor cores (``torch.backends.cuda.matmul.allow_tf32``); CUDA only
``fp16-mixed`` float32 weights; ``torch.autocast(dtype=float16)`` runs matmuls/convolutions in float16;
              the loss is multiplied by a :class:`torch.amp.GradScaler` factor so that small gradients
              do not underflow float16's range (smallest subnormal 6e-8), and unscaled before the step
``bf16-mixed`` float32 weights; autocast to bfloat16 (float32's range, 8-bit mantissa): no scaler needed
``bf16-true`` weights, gradients, optimizer state and activations all in bfloat16: half the memory of
              everything, but weight updates smaller than the weight's resolution are lost
============  ===========================================================================================

:func:`train_with_precision` trains a fresh model from the same seed with one of them on a
:class:`Task` and measures time per step (median, after warm-up), peak memory (CUDA's allocator; on
a CPU it does not exist, so also the bytes of tensors saved for backward, which a CPU can measure)
and the final validation loss or accuracy.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.data import load_fashion_mnist
from dlfund.models.cnn import SmallCNN
from dlfund.models.gpt import GPT, GPTConfig
from dlfund.perf.memory import (
    SavedTensorMeter,
    cuda_peak_mb,
    cuda_peak_start,
    state_bytes,
)
from dlfund.text.chars import CharTokenizer, random_windows, shakespeare_corpus
from dlfund.train.lm import lm_loss
from dlfund.utils.timing import synchronize

__all__ = [
    "FP16_TINY",
    "PRECISIONS",
    "PrecisionRun",
    "Task",
    "activation_gradients",
    "cnn_task",
    "gpt_task",
    "matmul_flags",
    "precision_context",
    "supported",
    "train_with_precision",
    "underflow_fraction",
]

PRECISIONS = ("fp32", "tf32", "fp16-mixed", "bf16-mixed", "bf16-true")
FP16_TINY = float(torch.finfo(torch.float16).smallest_normal) * 2.0**-10
"""The smallest positive float16 (a subnormal, 2^-24 ≈ 5.96e-8): anything smaller in size becomes 0."""


def supported(precision: str, device: torch.device | str) -> tuple[bool, str]:
    """Whether ``precision`` can run on ``device``, and if not, why (one line)."""
    device = torch.device(device)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "tf32" and device.type != "cuda":
        return False, "tf32: CUDA only (tensor-core matmuls), not measured here"
    if precision == "tf32" and torch.cuda.get_device_capability(device)[0] < 8:
        return False, "tf32: needs an Ampere or newer GPU, not measured here"
    if precision.startswith("bf16") and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return False, f"{precision}: this GPU has no bfloat16 support, not measured here"
    if device.type not in ("cpu", "cuda") and precision != "fp32":
        return False, f"{precision}: only measured on CPU and CUDA here, not on {device.type}"
    return True, ""


@contextlib.contextmanager
def matmul_flags(precision: str, device: torch.device | str) -> Iterator[None]:
    """On CUDA, allow tf32 in matmuls and convolutions exactly when ``precision == "tf32"`` (restored
    afterwards); elsewhere nothing. Wrap the whole training step in it: backward runs matmuls too."""
    device = torch.device(device)
    if device.type != "cuda":
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device | str) -> Iterator[None]:
    """The forward-pass context of ``precision``: autocast for the ``-mixed`` ones; for the others the
    tf32 switches of :func:`matmul_flags` (``bf16-true`` has its dtype in the weights). Backward runs
    outside it: :func:`train_with_precision` wraps the whole step in :func:`matmul_flags` as well."""
    device = torch.device(device)
    ok, why = supported(precision, device)
    if not ok:
        raise RuntimeError(why)
    if precision in ("fp16-mixed", "bf16-mixed"):
        dtype = torch.float16 if precision == "fp16-mixed" else torch.bfloat16
        with torch.autocast(device.type, dtype=dtype):
            yield
    else:
        with matmul_flags(precision, device):
            yield


def underflow_fraction(values: torch.Tensor, dtype: torch.dtype = torch.float16, scale: float = 1.0) -> float:
    """The share of the non-zero entries of ``values`` that become exactly 0 when ``values * scale`` is
    stored in ``dtype`` (what happens to small gradients in float16 without, or with, a loss scale)."""
    flat = values.detach().float().flatten()
    nonzero = flat[flat != 0]
    if nonzero.numel() == 0:
        return 0.0
    return float(((nonzero * scale).to(dtype) == 0).float().mean())


@dataclass
class Task:
    """A small training problem for comparing precisions.

    Attributes:
        name: shown in tables.
        make_model: a fresh float32 model (called after seeding, so every precision starts equal).
        batch: ``batch(step) -> (x, y)`` on the CPU, the same sequence for every run.
        loss: ``loss(model_output, y)`` as a float32 scalar.
        evaluate: ``evaluate(model, context) -> {metric: value}`` on held-out data, run inside ``context``
            (the precision's forward context) with gradients off.
        lr: AdamW's learning rate.
        float_inputs: whether ``x`` is floating point (cast to bfloat16 for ``bf16-true``).
    """

    name: str
    make_model: Callable[[], nn.Module]
    batch: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    evaluate: Callable[[nn.Module, Callable[[], Any]], dict[str, float]]
    lr: float = 1e-3
    float_inputs: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PrecisionRun:
    """What :func:`train_with_precision` measured (``None``: not measurable on this device)."""

    task: str
    precision: str
    steps: int
    step_ms: float
    """Median wall time of one training step (forward, backward, optimizer), warm-up steps excluded."""
    peak_memory_mb: float | None
    """CUDA: ``torch.cuda.max_memory_allocated`` during training. CPU: None (no allocator peak)."""
    saved_mb: float
    """Tensors autograd saved for backward in one training step (activations), parameters excluded."""
    state_mb: float
    """Parameters + gradients + optimizer state at the end."""
    metrics: dict[str, float]
    """The task's held-out metrics at the end, e.g. ``{"val_loss": ...}`` or ``{"accuracy": ...}``."""
    first_loss: float
    last_loss: float
    skipped_steps: int = 0
    """fp16-mixed: steps the GradScaler skipped because gradients overflowed to inf/NaN."""
    grad_scale: float | None = None
    model: nn.Module | None = field(default=None, repr=False)
    """The trained model (kept only with ``keep_model=True``)."""


def _state_mb(model: nn.Module, opt: torch.optim.Optimizer) -> float:
    return sum(state_bytes(model, opt).values()) / 2**20


def train_with_precision(
    task: Task,
    precision: str,
    *,
    steps: int,
    device: torch.device | str,
    seed: int = 0,
    warmup: int = 2,
    keep_model: bool = False,
) -> PrecisionRun:
    """Train ``task.make_model()`` for ``steps`` AdamW steps in ``precision`` and measure it
    (see :class:`PrecisionRun`)."""
    device = torch.device(device)
    ok, why = supported(precision, device)
    if not ok:
        raise RuntimeError(why)
    if steps <= warmup:
        raise ValueError(f"steps={steps} must exceed warmup={warmup}: the warm-up steps are not timed")
    torch.manual_seed(seed)
    model = task.make_model().to(device)
    if precision == "bf16-true":
        model = model.to(torch.bfloat16)
    opt = torch.optim.AdamW(model.parameters(), lr=task.lr, fused=device.type == "cuda")  # one kernel on a GPU
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16-mixed" else None

    def context() -> Any:
        return precision_context(precision, device)

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.to(device)
        return x.to(torch.bfloat16) if precision == "bf16-true" and task.float_inputs else x

    times: list[float] = []
    losses: list[float] = []
    skipped = 0
    saved = 0
    cuda_peak_start(device)
    model.train()
    with matmul_flags(precision, device):  # the whole step (backward too) with this precision's matmul settings
        for step in range(steps):
            x, y = task.batch(step)
            x, y = prepare(x), y.to(device)
            synchronize(device)
            start = time.perf_counter()
            # the first step also counts what is saved for backward (a step like every other: it trains too)
            meter = SavedTensorMeter(model) if step == 0 else contextlib.nullcontext()
            with meter, context():
                loss = task.loss(model(x), y)
            if step == 0:
                saved = meter.bytes  # type: ignore[union-attr]
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scale_before = scaler.get_scale()
                scaler.step(opt)
                scaler.update()
                skipped += int(scaler.get_scale() < scale_before)
            else:
                loss.backward()
                opt.step()
            losses.append(loss.item())  # synchronises, so the time below is the step's real time
            times.append(time.perf_counter() - start)
    peak = cuda_peak_mb(device)
    model.eval()
    with torch.no_grad():
        metrics = task.evaluate(model, context)
    return PrecisionRun(
        task=task.name,
        precision=precision,
        steps=steps,
        step_ms=1000 * statistics.median(times[warmup:]),
        peak_memory_mb=peak,
        saved_mb=saved / 2**20,
        state_mb=_state_mb(model, opt),
        metrics=metrics,
        first_loss=losses[0],
        last_loss=statistics.fmean(losses[-max(1, steps // 10) :]),
        skipped_steps=skipped,
        grad_scale=scaler.get_scale() if scaler is not None else None,
        model=model if keep_model else None,
    )


# ----------------------------------------------------------------------------------------------- tasks


def gpt_task(
    *,
    n_layers: int,
    dim: int,
    n_heads: int,
    context_length: int,
    batch_size: int,
    eval_batches: int = 4,
    lr: float = 1e-3,
    corpus_chars: int | None = None,
    seed: int = 0,
) -> Task:
    """Unit 9's character GPT on Shakespeare (no dropout): random training windows, validation loss on
    fixed windows of the held-out plays."""

    train_text, val_text = shakespeare_corpus()
    if corpus_chars is not None:
        train_text, val_text = train_text[:corpus_chars], val_text[: max(corpus_chars // 10, 4 * context_length)]
    tok = CharTokenizer.from_text(train_text + val_text)
    train_ids, val_ids = tok.encode(train_text), tok.encode(val_text)
    config = GPTConfig(
        vocab_size=tok.vocab_size,
        context_length=context_length,
        n_layers=n_layers,
        n_heads=n_heads,
        dim=dim,
        dropout=0.0,
    )
    gen = torch.Generator().manual_seed(seed)
    windows = [random_windows(train_ids, context_length, batch_size, generator=gen)]

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        while len(windows) <= step:  # the same windows for every precision
            windows.append(random_windows(train_ids, context_length, batch_size, generator=gen))
        return windows[step]

    val_gen = torch.Generator().manual_seed(seed + 1)
    val_windows = [random_windows(val_ids, context_length, batch_size, generator=val_gen) for _ in range(eval_batches)]

    def evaluate(model: nn.Module, context: Callable[[], Any]) -> dict[str, float]:
        device = next(model.parameters()).device
        total = 0.0
        for x, y in val_windows:
            with context():
                total += lm_loss(model(x.to(device)), y.to(device)).item()
        return {"val_loss": total / len(val_windows)}

    return Task(
        name=f"GPT {n_layers}×{dim}, T={context_length}, B={batch_size}",
        make_model=lambda: GPT(config),
        batch=batch,
        loss=lm_loss,
        evaluate=evaluate,
        lr=lr,
        info={"vocab_size": tok.vocab_size, "config": config, "train_ids": train_ids, "tokenizer": tok},
    )


def cnn_task(*, width: int, batch_size: int, n_train: int, n_test: int, lr: float = 2e-3, seed: int = 0) -> Task:
    """Unit 7's SmallCNN on Fashion-MNIST: shuffled training batches, accuracy on ``n_test`` test images."""

    images, labels = load_fashion_mnist("train")
    test_images, test_labels = load_fashion_mnist("test")
    gen = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(images), generator=gen)[:n_train]
    mean, std = 0.2860, 0.3530  # Fashion-MNIST's training-set pixel statistics

    def normalise(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255 - mean) / std)[:, None]  # (N, 1, 28, 28)

    x_train, y_train = normalise(images[pick]), labels[pick]
    x_test, y_test = normalise(test_images[:n_test]), test_labels[:n_test]
    per_epoch = max(1, n_train // batch_size)
    orders: dict[int, torch.Tensor] = {}

    def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(step, per_epoch)
        if epoch not in orders:
            orders[epoch] = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed + 100 + epoch))
        idx = orders[epoch][i * batch_size : (i + 1) * batch_size]
        return x_train[idx], y_train[idx]

    def evaluate(model: nn.Module, context: Callable[[], Any]) -> dict[str, float]:
        p = next(model.parameters())
        correct = 0
        for start in range(0, n_test, 500):
            x = x_test[start : start + 500].to(p.device, p.dtype)
            with context():
                correct += int((model(x).argmax(1).cpu() == y_test[start : start + 500]).sum())
        return {"accuracy": correct / n_test}

    return Task(
        name=f"SmallCNN w={width}, B={batch_size}",
        make_model=lambda: SmallCNN(width=width),
        batch=batch,
        loss=lambda out, y: F.cross_entropy(out.float(), y),
        evaluate=evaluate,
        lr=lr,
        float_inputs=True,
    )


def activation_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    context: Any = None,
    scale: float = 1.0,
) -> list[torch.Tensor]:
    """The gradients flowing backward out of every ``nn.Linear`` / ``nn.Conv2d`` (their ``grad_output``) in one
    backward pass of ``loss(model(x), y) * scale``, in the dtype backward computed them in (float16 under
    fp16 autocast). The model's ``.grad`` are left as they were."""
    grads: list[torch.Tensor] = []
    hooks = [
        m.register_full_backward_hook(lambda _m, _gi, go: grads.append(go[0].detach().clone()))
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    saved = {id(p): p.grad for p in model.parameters()}
    try:
        with context if context is not None else contextlib.nullcontext():
            value = loss(model(x), y)
        (value * scale).backward()
    finally:
        for h in hooks:
            h.remove()
        for p in model.parameters():
            p.grad = saved[id(p)]
    return grads
