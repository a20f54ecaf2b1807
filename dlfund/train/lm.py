"""Training a language model on a token stream with a wall-clock budget (unit 9).

:func:`train_lm` samples random windows of the training stream, trains with AdamW (weight decay on
matrices only), linear warm-up and cosine decay, gradient clipping, and bf16 autocast / ``torch.compile``
where the device supports them. It stops after ``max_steps`` or ``time_limit_s`` seconds, whichever
comes first; the cosine schedule follows whichever is further along (steps or time), so a
time-limited run still ends with a decayed learning rate. Validation loss is measured on fixed
windows (the same every time) of the held-out stream.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.text.chars import random_windows
from dlfund.train.optim import param_groups
from dlfund.utils.device import autocast_bf16, resolve_bf16
from dlfund.utils.timing import synchronize

__all__ = ["LMHistory", "evaluate_lm", "lm_loss", "train_lm"]


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats): logits ``(B, T, V)``, targets ``(B, T)``."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1))


@torch.no_grad()
def evaluate_lm(
    model: nn.Module,
    data: torch.Tensor,
    *,
    context_length: int,
    batch_size: int,
    batches: int,
    device: torch.device | str,
    seed: int = 0,
    bf16: bool = False,
) -> float:
    """Mean next-token loss on ``batches`` fixed random windows of ``data`` (eval mode; restores the mode)."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    total = torch.zeros((), device=device)
    for _ in range(batches):
        x, y = random_windows(data, context_length, batch_size, generator=gen, device=device)
        with autocast_bf16(device, bf16):
            total += lm_loss(model(x), y)
    model.train(was_training)
    return total.item() / batches


@dataclass
class LMHistory:
    """What :func:`train_lm` measured."""

    steps: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    """Mean training loss over the steps since the previous evaluation."""
    val_loss: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    """Training seconds (evaluation excluded) at each evaluation."""
    tokens_per_s: float = 0.0
    bf16: bool = False
    compiled: bool = False
    stopped_by: str = "steps"

    @property
    def final_val_loss(self) -> float:
        return self.val_loss[-1]

    @property
    def total_steps(self) -> int:
        return self.steps[-1] if self.steps else 0


def train_lm(
    model: nn.Module,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    *,
    context_length: int,
    batch_size: int,
    lr: float,
    max_steps: int,
    time_limit_s: float | None = None,
    warmup_steps: int = 100,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.99),
    grad_clip: float = 1.0,
    eval_every: int = 250,
    eval_batches: int = 20,
    device: torch.device | str = "cpu",
    bf16: bool | None = None,
    compile: bool = False,
    seed: int = 0,
    callback: Callable[[int, float, float], None] | None = None,
    verbose: bool = True,
) -> LMHistory:
    """Train ``model`` (tokens ``(B, T)`` -> logits ``(B, T, V)``) on random windows of ``train_data``.

    Args:
        train_data, val_data: 1-D token streams (int64), kept on the CPU; batches move to ``device``.
        context_length, batch_size: the window length and the number of windows per step.
        lr, warmup_steps, min_lr_ratio: peak learning rate, linear warm-up, cosine decay to ``lr·min_lr_ratio``.
        max_steps, time_limit_s: stop after this many steps or this many seconds of training.
        eval_every, eval_batches: validation loss every ``eval_every`` steps (and at the end).
        bf16, compile: bf16 autocast (``None``: where supported) and ``torch.compile`` (CUDA only).
        callback: called as ``callback(step, train_loss, val_loss)`` after each evaluation.

    Returns:
        an :class:`LMHistory`; training seconds exclude evaluation and include compilation.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    device = torch.device(device)
    use_bf16 = resolve_bf16(bf16, device)
    if compile and device.type != "cuda":
        print(f"torch.compile is only used on CUDA: running eagerly on {device}")
        compile = False
    model.to(device)
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compile else model  # type: ignore[assignment]
    opt = torch.optim.AdamW(
        param_groups(model, weight_decay, decay_embeddings=True), lr=lr, betas=betas, fused=device.type == "cuda"
    )
    gen = torch.Generator().manual_seed(seed)
    history = LMHistory(bf16=use_bf16, compiled=compile)
    if verbose:
        limit = f" or {time_limit_s:.0f} s" if time_limit_s is not None else ""
        print(
            f"training on {device}: {'bf16 autocast' if use_bf16 else 'float32'}, "
            f"{'torch.compile' if compile else 'eager'}; AdamW lr {lr:g}, "
            f"batch {batch_size}×{context_length} tokens, up to {max_steps} steps{limit}"
        )

    def learning_rate(step: int, elapsed: float) -> float:
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        if time_limit_s is not None:
            progress = max(progress, elapsed / time_limit_s)
        progress = min(1.0, progress)
        return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))

    model.train()
    elapsed, loss_sum, since = 0.0, torch.zeros((), device=device), 0
    synchronize(device)
    start = time.perf_counter()
    step = 0
    while True:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, elapsed)
        x, y = random_windows(train_data, context_length, batch_size, generator=gen, device=device)
        with autocast_bf16(device, use_bf16):
            loss = lm_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        loss_sum += loss.detach()
        since += 1
        step += 1
        out_of_time = time_limit_s is not None and elapsed + time.perf_counter() - start >= time_limit_s
        if step % eval_every == 0 or step == max_steps or out_of_time:
            synchronize(device)
            elapsed += time.perf_counter() - start
            val = evaluate_lm(
                net,
                val_data,
                context_length=context_length,  # type: ignore[arg-type]
                batch_size=batch_size,
                batches=eval_batches,
                device=device,
                seed=seed + 1,
                bf16=use_bf16,
            )
            history.steps.append(step)
            history.train_loss.append(loss_sum.item() / since)
            history.val_loss.append(val)
            history.seconds.append(elapsed)
            if verbose:
                print(
                    f"step {step:>6}: train loss {history.train_loss[-1]:.4f}, validation loss {val:.4f}, "
                    f"{elapsed:.1f} s"
                )
            if callback is not None:
                callback(step, history.train_loss[-1], val)
            loss_sum, since = torch.zeros((), device=device), 0
            if step >= max_steps or (time_limit_s is not None and elapsed >= time_limit_s):
                history.stopped_by = "steps" if step >= max_steps else "time"
                break
            synchronize(device)
            start = time.perf_counter()
    history.tokens_per_s = step * batch_size * context_length / elapsed
    if verbose:
        print(
            f"stopped by the {'step' if history.stopped_by == 'steps' else 'time'} limit after {step} steps, "
            f"{elapsed:.1f} s of training, {history.tokens_per_s:,.0f} tokens/s"
        )
    return history
