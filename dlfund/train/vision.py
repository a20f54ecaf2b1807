"""A fast trainer for small image classifiers (unit 7): the data lives on the device, the loop is lean.

Fashion-MNIST is 47 MB as uint8: it fits on any GPU many times over. :class:`TensorBatches` keeps the
whole set there as uint8 and builds each normalised float batch with one indexing operation, so the
GPU never waits for a ``DataLoader``; augmentation (:mod:`dlfund.data.augment`) runs on the batch, on
the device. :func:`train_classifier` then trains with

- SGD with Nesterov momentum or AdamW, weight decay only on weights (not on biases and norms),
- a one-cycle schedule (warm-up, cosine decay), a cosine schedule with a linear warm-up, or a plain
  cosine schedule, stepped every batch,
- optional label smoothing, bf16 autocast (CUDA with bf16 support only), channels-last memory
  format and ``torch.compile`` (CUDA only),

and measures what a speed recipe is judged by: training seconds (the GPU synchronised, evaluation
excluded), images per second and the *time to target accuracy*.

>>> images, labels = torch.randint(0, 256, (64, 28, 28), dtype=torch.uint8), torch.arange(64) % 10
>>> train = TensorBatches(images, labels, batch_size=16, mean=0.5, std=0.25, shuffle=True, seed=0)
>>> x, y = next(iter(train))
>>> x.shape, x.dtype, y.shape, len(train)
(torch.Size([16, 1, 28, 28]), torch.float32, torch.Size([16]), 4)
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.train.optim import param_groups
from dlfund.train.schedules import warmup_cosine_scheduler
from dlfund.utils.device import autocast_bf16, resolve_bf16
from dlfund.utils.timing import synchronize

__all__ = ["TensorBatches", "VisionHistory", "train_classifier", "evaluate_accuracy", "images_per_second"]


class TensorBatches:
    """A whole image dataset held as one uint8 tensor on ``device``, served in normalised float batches.

    Args:
        images: ``(N, H, W)`` or ``(N, C, H, W)`` uint8, pixel values 0-255.
        labels: ``(N,)`` integer class labels.
        batch_size: B.
        mean, std: batches are ``(pixels / 255 - mean) / std``.
        shuffle: a new random order every epoch, drawn from a CPU generator seeded with ``seed``.
        augment: applied to every float batch ``(B, C, H, W)`` on the device, e.g. a
            :class:`dlfund.data.augment.Compose`; it must keep the shape.
        drop_last: skip a last batch smaller than B (steadier BatchNorm statistics for training).
        device: where the images live and the batches are made.
        seed: the shuffling seed; the same seed gives the same sequence of epochs.

    Iterating yields ``(x (B, C, H, W) float32, y (B,) int64)`` on ``device``; ``len()`` is the number
    of batches per epoch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: float,
        std: float,
        shuffle: bool = False,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        drop_last: bool = False,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() not in (3, 4):
            found = (
                f"{tuple(images.shape)} {images.dtype}" if isinstance(images, torch.Tensor) else type(images).__name__
            )
            raise TypeError(f"images must be an (N, H, W) or (N, C, H, W) uint8 tensor, got {found}")
        labels = torch.as_tensor(labels)
        if labels.dtype.is_floating_point or labels.shape != images.shape[:1]:
            raise TypeError(f"labels must be ({images.shape[0]},) integers, got {tuple(labels.shape)} {labels.dtype}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        self.device = torch.device(device)
        self.images = (images.unsqueeze(1) if images.dim() == 3 else images).to(self.device)  # (N, C, H, W)
        self.labels = labels.long().to(self.device)
        self.batch_size, self.mean, self.std = batch_size, float(mean), float(std)
        self.shuffle, self.augment, self.drop_last = shuffle, augment, drop_last
        self.generator = torch.Generator().manual_seed(seed)
        if len(self) == 0:
            raise ValueError(
                f"{len(self.labels)} images with batch_size={batch_size} and drop_last=True give no batches"
            )

    @classmethod
    def from_dataset(cls, dataset: Any, indices: torch.Tensor | None = None, **kwargs: Any) -> TensorBatches:
        """Batches of an :class:`dlfund.data.ImageDataset` (its uint8 images, labels, mean and std),
        optionally only the examples at ``indices``; ``kwargs`` as for the constructor."""
        images, labels = dataset.images, dataset.labels
        if indices is not None:
            images, labels = images[indices], labels[indices]
        mean, std = (dataset.mean, dataset.std) if dataset.mean is not None else (0.0, 1.0)
        return cls(images, labels, mean=kwargs.pop("mean", mean), std=kwargs.pop("std", std), **kwargs)

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    @property
    def num_examples(self) -> int:
        """N, the number of images (all of them are seen per epoch unless ``drop_last`` skips a few)."""
        return len(self.labels)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.labels)
        order = (
            torch.randperm(n, generator=self.generator).to(self.device)
            if self.shuffle
            else torch.arange(n, device=self.device)
        )
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            x = self.images[idx].float().div_(255).sub_(self.mean).div_(self.std)  # (B, C, H, W)
            if self.augment is not None:
                x = self.augment(x)
            yield x, self.labels[idx]

    def __repr__(self) -> str:
        extra = f", augment={self.augment!r}" if self.augment is not None else ""
        return (
            f"TensorBatches({self.num_examples} images {tuple(self.images.shape[1:])} on {self.device}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}{extra})"
        )


@dataclass
class VisionHistory:
    """What :func:`train_classifier` measured: lists with one entry per epoch (epoch 1 first)."""

    train_loss: list[float] = field(default_factory=list)
    test_accuracy: list[float] = field(default_factory=list)
    """Test accuracy after each epoch; with a validation set, one entry: the test set, scored once at the end."""
    val_accuracy: list[float] = field(default_factory=list)
    """Validation accuracy after each epoch (empty without a validation set): what the run is watched on."""
    images_per_s: list[float] = field(default_factory=list)
    """Training throughput of each epoch (the first includes warm-up, and compilation if any)."""
    train_seconds: list[float] = field(default_factory=list)
    """Cumulative training time at the end of each epoch (synchronised; evaluation excluded)."""
    time_to_target: float | None = None
    """Training seconds when the watched accuracy (validation if given, else test) first reached the target."""
    epochs_to_target: int | None = None
    bf16: bool = False
    channels_last: bool = False
    compiled: bool = False

    @property
    def epochs(self) -> int:
        return len(self.train_loss)

    @property
    def final_accuracy(self) -> float:
        return self.test_accuracy[-1] if self.test_accuracy else math.nan

    @property
    def total_train_seconds(self) -> float:
        return self.train_seconds[-1] if self.train_seconds else 0.0

    @property
    def mean_images_per_s(self) -> float:
        """Throughput over all epochs after the first (over the first if there is only one)."""
        rates = self.images_per_s[1:] or self.images_per_s
        return sum(rates) / len(rates) if rates else math.nan

    def rows(self) -> list[dict[str, Any]]:
        """One dict per epoch, for a table."""
        if self.val_accuracy:
            return [
                {"epoch": i + 1, "train_loss": loss, "val_accuracy": acc, "images_per_s": ips, "train_seconds": s}
                for i, (loss, acc, ips, s) in enumerate(
                    zip(self.train_loss, self.val_accuracy, self.images_per_s, self.train_seconds)
                )
            ]
        return [
            {"epoch": i + 1, "train_loss": loss, "test_accuracy": acc, "images_per_s": ips, "train_seconds": s}
            for i, (loss, acc, ips, s) in enumerate(
                zip(self.train_loss, self.test_accuracy, self.images_per_s, self.train_seconds)
            )
        ]


@torch.no_grad()
def evaluate_accuracy(
    model: nn.Module,
    batches: TensorBatches,
    device: torch.device | str,
    *,
    bf16: bool = False,
    channels_last: bool = False,
) -> float:
    """The share of examples in ``batches`` whose largest logit is the label (model in eval mode)."""
    device = torch.device(device)
    first = next(model.parameters(), None)
    if first is not None and first.device.type != device.type:
        raise ValueError(
            f"the model's parameters are on {first.device} but the batches go to {device}: "
            "move the model first (model.to(device))"
        )
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=device)
    count = 0
    for x, y in batches:
        x, y = x.to(device), y.to(device)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast_bf16(device, bf16):
            correct += (model(x).argmax(dim=1) == y).sum()
        count += len(y)
    return correct.item() / count


def _make_optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float | None, momentum: float
) -> torch.optim.Optimizer:
    if name == "sgd":
        groups = param_groups(model, 5e-4 if weight_decay is None else weight_decay, decay_embeddings=True)
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=True)
    if name == "adamw":
        groups = param_groups(model, 0.05 if weight_decay is None else weight_decay, decay_embeddings=True)
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {name!r}")


def _make_schedule(
    optimizer: torch.optim.Optimizer, name: str, total_steps: int, warmup: float
) -> torch.optim.lr_scheduler.LRScheduler:
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in optimizer.param_groups],
            total_steps=total_steps,
            pct_start=warmup,
            anneal_strategy="cos",
            div_factor=10.0,
            final_div_factor=100.0,
            cycle_momentum=False,
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "warmup_cosine":
        # the warm-up is a share of the steps, so at a fixed number of epochs it spans the same number of
        # examples whatever the batch size; at least one step is left for the cosine
        warmup_steps = min(round(warmup * total_steps), total_steps - 1)
        return warmup_cosine_scheduler(optimizer, warmup_steps=warmup_steps, total_steps=total_steps)
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    raise ValueError(f"schedule must be 'onecycle', 'warmup_cosine', 'cosine' or 'constant', got {name!r}")


def train_classifier(
    model: nn.Module,
    train: TensorBatches,
    test: TensorBatches | None,
    *,
    epochs: int,
    lr: float,
    device: torch.device | str,
    optimizer: str = "sgd",
    weight_decay: float | None = None,
    momentum: float = 0.9,
    schedule: str = "onecycle",
    warmup: float = 0.2,
    label_smoothing: float = 0.0,
    bf16: bool | None = None,
    channels_last: bool = False,
    compile: bool = False,
    target_accuracy: float | None = None,
    val: TensorBatches | None = None,
    verbose: bool = True,
) -> VisionHistory:
    """Train ``model`` on ``train`` for ``epochs`` epochs, measuring accuracy after each.

    With a validation set ``val``, the accuracy after each epoch (and the target) is measured on it,
    and ``test`` is scored once, after the last epoch: the test set takes no part in watching the run.
    Without one, ``test`` is measured after every epoch (as in a benchmark of time to accuracy). With a
    validation set ``test`` may be ``None``: a study that selects among many runs scores only the chosen
    one on the test set, later.

    Args:
        model: maps ``(B, C, H, W)`` to logits ``(B, num_classes)``; moved to ``device``.
        train, test: :class:`TensorBatches` (``train`` normally with ``shuffle=True`` and ``augment``).
        epochs, lr: the number of epochs and the peak learning rate.
        optimizer: ``"sgd"`` (Nesterov momentum; weight decay 5e-4 by default) or ``"adamw"``
            (weight decay 0.05 by default). Biases and norm parameters are never decayed.
        schedule: ``"onecycle"`` (``warmup`` fraction of the steps rising from lr/10 to lr along half a
            cosine, then cosine decay to lr/1000), ``"warmup_cosine"`` (a linear ramp over the ``warmup``
            fraction of the steps, then cosine decay to 0: :func:`dlfund.train.schedules.cosine_with_warmup`;
            ``warmup=0`` starts at the full rate), ``"cosine"`` or ``"constant"``; stepped after every batch.
        label_smoothing: passed to ``F.cross_entropy``.
        bf16: bf16 autocast; ``None`` uses it where supported (CUDA with bf16), else float32.
        channels_last: store the model and the batches as NHWC (faster convolutions on tensor cores).
        compile: ``torch.compile`` the model (CUDA only; skipped with a printed line elsewhere).
        target_accuracy: record in ``time_to_target`` the training seconds when the watched accuracy
            (validation if ``val`` is given, else test) first reached it.
        val: a validation set, watched after every epoch instead of ``test``.
        verbose: print the setup and one line per epoch.

    Returns:
        a :class:`VisionHistory`. Training time excludes evaluation and counts from the first
        step, with the device synchronised, so it includes warm-up (and compilation).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if test is None and val is None:
        raise ValueError("test may be None only with a validation set val: something must be watched")
    device = torch.device(device)
    use_bf16 = resolve_bf16(bf16, device)
    if compile and device.type != "cuda":
        print(f"torch.compile is only used on CUDA: running eagerly on {device}")
        compile = False
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net: Callable[[torch.Tensor], torch.Tensor] = torch.compile(model) if compile else model  # type: ignore[assignment]
    opt = _make_optimizer(model, optimizer, lr, weight_decay, momentum)
    sched = _make_schedule(opt, schedule, epochs * len(train), warmup)
    history = VisionHistory(bf16=use_bf16, channels_last=channels_last, compiled=compile)
    if verbose:
        print(
            f"training on {device}: {'bf16 autocast' if use_bf16 else 'float32'}, "
            f"{'channels_last' if channels_last else 'contiguous (NCHW)'}, "
            f"{'torch.compile' if compile else 'eager'}; {optimizer} lr {lr:g}, {schedule} schedule, "
            f"{epochs} epochs × {len(train)} batches"
        )
    elapsed = 0.0
    for epoch in range(1, epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        seen = 0
        synchronize(device)
        start = time.perf_counter()
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast_bf16(device, use_bf16):
                loss = F.cross_entropy(net(x), y, label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach().float() * len(y)
            seen += len(y)
        synchronize(device)
        seconds = time.perf_counter() - start
        elapsed += seconds
        watched = val if val is not None else test
        assert watched is not None  # checked above
        accuracy = evaluate_accuracy(net, watched, device, bf16=use_bf16, channels_last=channels_last)  # type: ignore[arg-type]
        history.train_loss.append(loss_sum.item() / seen)
        (history.test_accuracy if val is None else history.val_accuracy).append(accuracy)
        history.images_per_s.append(seen / seconds)
        history.train_seconds.append(elapsed)
        if target_accuracy is not None and history.time_to_target is None and accuracy >= target_accuracy:
            history.time_to_target, history.epochs_to_target = elapsed, epoch
        if verbose:
            print(
                f"epoch {epoch:>{len(str(epochs))}}/{epochs}: train loss {history.train_loss[-1]:.4f}, "
                f"{'test' if val is None else 'validation'} accuracy {accuracy:.4f}, "
                f"{seen / seconds:,.0f} images/s, {elapsed:.1f} s of training"
            )
    if verbose and target_accuracy is not None:
        reached = (
            f"reached {target_accuracy:.4f} after {history.time_to_target:.1f} s of training "
            f"(epoch {history.epochs_to_target})"
            if history.time_to_target is not None
            else f"did not reach {target_accuracy:.4f}"
        )
        print(reached)
    if val is not None and test is not None:  # the test set, touched once
        history.test_accuracy.append(
            evaluate_accuracy(net, test, device, bf16=use_bf16, channels_last=channels_last)  # type: ignore[arg-type]
        )
        if verbose:
            print(f"test accuracy, measured once after training: {history.test_accuracy[-1]:.4f}")
    return history


def images_per_second(
    model: nn.Module,
    batch_size: int,
    device: torch.device | str,
    *,
    image_shape: tuple[int, int, int] = (1, 28, 28),
    num_classes: int = 10,
    steps: int = 20,
    warmup: int = 3,
    bf16: bool | None = None,
    channels_last: bool = False,
    train: bool = True,
) -> float:
    """Throughput of ``model`` in images per second on random batches ``(batch_size, *image_shape)``.

    With ``train=True`` a step is forward + cross-entropy + backward + an SGD update, timed on a copy
    of the model (``model`` itself is not changed); with ``train=False`` it is an inference forward
    pass. ``warmup`` untimed steps come first; the device is synchronised around the timed ``steps``.
    """
    device = torch.device(device)
    use_bf16 = resolve_bf16(bf16, device)
    net = copy.deepcopy(model).to(device)
    if channels_last:
        net.to(memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, *image_shape, generator=gen).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch_size,), generator=gen).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    net.train(train)

    def step() -> None:
        if train:
            with autocast_bf16(device, use_bf16):
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        else:
            with torch.no_grad(), autocast_bf16(device, use_bf16):
                net(x)

    for _ in range(warmup):
        step()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)
