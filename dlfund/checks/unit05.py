"""Checks for unit 5 (Lightning): a LightningModule for regression, a custom callback, a custom
torchmetrics ``Metric`` (macro-F1), and gradient accumulation in a Fabric loop (in ``_unit05_fabric``).

Each check builds a fresh random problem (a new seed on every call, printed in failure messages so a
failure can be replayed with ``seed=...``), trains on it with a small, quiet, deterministic CPU
``Trainer``, and compares what the learner's class does with a reference.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import numbers
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics import Metric
from torchmetrics.classification import MulticlassStatScores
from torchmetrics.functional.classification.f_beta import _fbeta_reduce, multiclass_f1_score, multiclass_fbeta_score

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing
from dlfund.models.mlp import MLP
from dlfund.train.lightning import LitClassifier

__all__ = [
    "regression_module",
    "custom_callback",
    "macro_f1_metric",
    "reference_macro_f1",
    "StopAtTarget",
    "fabric_accumulation",
]

Tensor = torch.Tensor


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence Lightning's info lines (GPU available, tips) and warnings while a check trains."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _no_external_callbacks() -> Iterator[None]:
    """Building a Trainer, Lightning scans every installed package's entry points for callback factories
    (tens of ms, more than a check's tiny fit takes per epoch); the check's Trainers use none, and the seed
    sweeps build hundreds of them. Inside the block the scan finds nothing."""
    from lightning.pytorch.trainer.connectors import callback_connector

    original = getattr(callback_connector, "_load_external_callbacks", None)
    if original is None:  # another Lightning version: build the Trainer as it is
        yield
        return
    callback_connector._load_external_callbacks = lambda group: []
    try:
        yield
    finally:
        callback_connector._load_external_callbacks = original


def _trainer(max_epochs: int, callbacks: list[Callback] | None = None, **kwargs: Any) -> L.Trainer:
    """A small CPU Trainer: no logger files, no checkpoints, no progress bar, deterministic."""
    with _no_external_callbacks():
        return L.Trainer(
            max_epochs=max_epochs,
            accelerator="cpu",
            devices=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic=True,
            callbacks=callbacks or [],
            **kwargs,
        )


def _loaders(X: Tensor, y: Tensor, n_train: int, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    train = DataLoader(
        TensorDataset(X[:n_train], y[:n_train]),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    val = DataLoader(TensorDataset(X[n_train:], y[n_train:]), batch_size=batch_size)
    return train, val


def _unwrap_optimizer(found: Any) -> Any:
    """The optimizer from what ``configure_optimizers`` may return: it, a list/tuple, or a dict."""
    if isinstance(found, dict):
        return found.get("optimizer")
    if isinstance(found, (list, tuple)) and found:
        first = found[0]
        return first[0] if isinstance(first, (list, tuple)) and first else first
    return found


# ---------------------------------------------------------------------------------------------
# ex01: a LightningModule for regression


def _regression_problem(gen: torch.Generator, n: int) -> tuple[Tensor, Tensor]:
    """``X (n, D)`` standard normal, ``y (n, 1)`` standardised: a linear trend, a bend and a little noise."""
    d = int(torch.randint(3, 9, (), generator=gen))
    w = torch.randn(d, generator=gen)
    X = torch.randn(n, d, generator=gen)
    y = X @ w / math.sqrt(d) + 0.5 * torch.sin(2 * X[:, 0]) + 0.1 * torch.randn(n, generator=gen)
    y = (y - y.mean()) / y.std()
    return X, y.unsqueeze(1)


def _diagnose_loss(found: float, preds: Tensor, y: Tensor) -> str:
    """Name the usual regression-loss mistakes that ``found`` is consistent with."""
    candidates = {
        "that is the mean absolute error (F.l1_loss); the task asks for the mean squared error, F.mse_loss": F.l1_loss(
            preds, y
        ),
        "that is the sum of the squared errors; use their mean (F.mse_loss's default reduction)": F.mse_loss(
            preds, y, reduction="sum"
        ),
        "that is the root of the mean squared error (RMSE); train on the MSE itself": F.mse_loss(preds, y).sqrt(),
        "the predictions and targets were broadcast to (N, N): compare (N, 1) with (N, 1), without "
        "squeezing only one of them": ((preds.reshape(1, -1) - y.reshape(-1, 1)) ** 2).mean(),
    }
    for message, value in candidates.items():
        if math.isclose(found, float(value), rel_tol=1e-4, abs_tol=1e-6):
            return ": " + message
    return ""


class _LossRecorder(Callback):
    """Reads ``train_loss`` after every training epoch, and notes whether it was logged per step."""

    def __init__(self) -> None:
        self.train_losses: list[float] = []
        self.logged_per_step = False

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.current_epoch == 0 and batch_idx == 0:
            self.logged_per_step = "train_loss" in trainer.callback_metrics

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if "train_loss" in trainer.callback_metrics:
            self.train_losses.append(float(trainer.callback_metrics["train_loss"]))


_FIT_SEEDS = {5e-3: 11, 1e-2: 12, 2e-2: 13}


def _check_architecture(module: Any, d: int, hidden: int, call: str, gen: torch.Generator) -> None:
    """One hidden layer of ``hidden`` units with a non-linearity: parameter count and non-affinity."""
    expected = d * hidden + hidden + hidden + 1
    found = sum(p.numel() for p in module.parameters())
    shapes = [tuple(p.shape) for p in module.parameters()]
    expect(
        found == expected,
        f"{call}: expected an MLP with one hidden layer of {hidden} units, nn.Linear({d}, {hidden}) → activation → "
        f"nn.Linear({hidden}, 1), i.e. {expected} parameters; found {found} parameters with shapes {shapes}"
        + (": is hidden passed to the first layer?" if found != expected and d * 32 + 32 + 32 + 1 == found else ""),
    )
    x1, x2 = 3 * torch.randn(64, d, generator=gen), 3 * torch.randn(64, d, generator=gen)
    with torch.no_grad():
        outs = [call_learner(module, x, what=f"{call}(x)") for x in (x1, x2, x1 + x2, torch.zeros(1, d))]
    if all(isinstance(o, torch.Tensor) and o.shape[-1:] == (1,) for o in outs):
        gap = (outs[0] + outs[1] - outs[2] - outs[3]).abs().max()
        expect(
            float(gap) > 1e-4,
            f"{call}: the model is affine (f(a) + f(b) = f(a + b) + f(0) on every input): put a non-linearity "
            "(nn.ReLU) between the two linear layers",
        )


def regression_module(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check a LightningModule class ``cls(in_features, hidden=32, lr=1e-3)`` for regression.

    Expected: a ``LightningModule`` whose ``forward`` maps ``x (N, in_features)`` to predictions
    ``(N, 1)`` (an MLP with one hidden layer of ``hidden`` units); ``training_step`` returns the mean
    squared error of a batch ``(x (B, D), y (B, 1))`` and logs it as ``"train_loss"`` once per epoch
    (``on_step=False, on_epoch=True``); ``validation_step`` logs the validation MSE as ``"val_loss"``;
    ``configure_optimizers`` returns ``torch.optim.Adam`` over all parameters with learning rate ``lr``.
    A short seeded fit on a fresh regression problem must make the loss fall.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    n_train, n_val, batch_size, epochs = 192, 61, 32, 15
    X, y = _regression_problem(gen, n_train + n_val)
    d = X.shape[1]
    lr = [5e-3, 1e-2, 2e-2][int(torch.randint(0, 3, (), generator=gen))]
    hidden = 16
    name = getattr(cls, "__name__", "cls")
    call = f"{name}(in_features={d}, hidden={hidden}, lr={lr})"

    with _quiet():
        L.seed_everything(seed % 2**31, verbose=False)
        module = call_learner(cls, in_features=d, hidden=hidden, lr=lr, what=f"{call} {where}")
        expect(
            isinstance(module, L.LightningModule),
            f"{call}: expected a lightning.LightningModule (class {name}(L.LightningModule)), "
            f"found {type(module).__name__}",
        )

        # forward: (N, D) -> (N, 1)
        out = call_learner(module, X[:5], what=f"{call}(x) with x of shape (5, {d})")
        expect(isinstance(out, torch.Tensor), f"{call}(x): expected a tensor, found {type(out).__name__}")
        if tuple(out.shape) == (5,):
            raise CheckFailed(
                f"{call}(x) for x (5, {d}): expected predictions of shape (5, 1), found (5,): keep the "
                "output dimension, so that predictions and targets y (N, 1) have the same shape"
            )
        expect(tuple(out.shape) == (5, 1), f"{call}(x) for x (5, {d}): expected shape (5, 1), found {tuple(out.shape)}")
        expect(out.dtype == torch.float32, f"{call}(x): expected float32 predictions, found {out.dtype}")

        # configure_optimizers: Adam over all parameters, with the lr it was given
        found = call_learner(module.configure_optimizers, what=f"{call}.configure_optimizers()")
        opt = _unwrap_optimizer(found)
        expect(
            isinstance(opt, torch.optim.Optimizer),
            f"{call}.configure_optimizers(): expected an optimizer, found {type(found).__name__}",
        )
        expect(
            isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW),
            f"{call}.configure_optimizers(): expected torch.optim.Adam, found {type(opt).__name__}",
        )
        opt_lr = opt.param_groups[0]["lr"]
        expect(
            math.isclose(float(opt_lr), lr),
            f"{call}.configure_optimizers(): expected Adam with lr={lr} (the lr given to __init__; keep it with "
            f"self.save_hyperparameters() and use self.hparams.lr), found lr={opt_lr}",
        )
        in_opt = {id(p) for group in opt.param_groups for p in group["params"]}
        missing = [n for n, p in module.named_parameters() if id(p) not in in_opt]
        expect(
            not missing,
            f"{call}.configure_optimizers(): the optimizer does not update {missing}: give it self.parameters()",
        )

        # training_step on one batch: the MSE, returned
        xb, yb = X[:16], y[:16]
        torch.manual_seed(seed % 2**31)
        loss = call_learner(module.training_step, (xb, yb), 0, what=f"{call}.training_step((x, y), 0)")
        torch.manual_seed(seed % 2**31)
        preds = module(xb)
        if loss is None:
            raise CheckFailed(
                f"{call}.training_step returned None: return the loss (Lightning calls backward() on "
                "it; returning None skips the optimisation step)"
            )
        if isinstance(loss, dict):
            loss = loss.get("loss")
        expect(
            isinstance(loss, torch.Tensor) and loss.numel() == 1,
            f"{call}.training_step: expected the loss as a one-element tensor, found {type(loss).__name__}"
            + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""),
        )
        expect(
            loss.requires_grad,
            f"{call}.training_step: the returned loss has no gradient: compute it from "
            "self(x) without .item(), .detach() or torch.no_grad()",
        )
        expected = F.mse_loss(preds, yb)
        expect(
            math.isclose(float(loss), float(expected), rel_tol=1e-4, abs_tol=1e-6),
            f"{call}.training_step on a batch of 16 {where}: expected the mean squared error "
            f"{float(expected):.6f}, found {float(loss):.6f}" + _diagnose_loss(float(loss), preds.detach(), yb),
        )

        _check_architecture(module, d, hidden, call, gen)

        # a short seeded fit: logged names, logged values, learning. The fit's data, initialisation and
        # shuffling depend only on which of the three learning rates was drawn (not on the seed), so a
        # right answer learns on every seed: its verdict is one of three fixed, deterministic runs.
        fit_seed = _FIT_SEEDS[lr]
        X, y = _regression_problem(torch.Generator().manual_seed(fit_seed), n_train + n_val)
        d = X.shape[1]
        call = f"{name}(in_features={d}, hidden={hidden}, lr={lr})"
        L.seed_everything(fit_seed, verbose=False)
        module = call_learner(cls, in_features=d, hidden=hidden, lr=lr, what=f"{call} {where}")
        train_loader, val_loader = _loaders(X, y, n_train, batch_size, fit_seed)
        recorder = _LossRecorder()
        trainer = _trainer(epochs, [recorder], num_sanity_val_steps=0)
        fit_call = f"Trainer(max_epochs={epochs}).fit({call}, ...) on {n_train} examples {where}"
        call_learner(trainer.fit, module, train_loader, val_loader, what=fit_call)

    logged = sorted(trainer.callback_metrics)
    for key, step in (("train_loss", "training_step"), ("val_loss", "validation_step")):
        expect(
            key in logged,
            f"{fit_call}: {key!r} was never logged; call self.log({key!r}, loss, ...) in {step} "
            f"(logged: {logged or 'nothing'})",
        )
    expect(
        not recorder.logged_per_step,
        f"{fit_call}: 'train_loss' is logged for every step (on_step=True, training_step's default); log only "
        "the mean over each epoch with self.log('train_loss', loss, on_step=False, on_epoch=True)",
    )

    Xv, yv = X[n_train:], y[n_train:]
    module.eval()
    with torch.no_grad():
        val_preds = module(Xv)
    val_mse = float(F.mse_loss(val_preds, yv))
    found_val = float(trainer.callback_metrics["val_loss"])
    expect(
        math.isclose(found_val, val_mse, rel_tol=1e-4, abs_tol=1e-6),
        f"{fit_call}: the logged val_loss is {found_val:.6f}, but the mean squared error of the trained model on "
        f"the {n_val} validation examples is {val_mse:.6f}" + _diagnose_loss(found_val, val_preds, yv),
    )

    losses = recorder.train_losses
    expect(
        len(losses) == epochs,
        f"{fit_call}: expected train_loss after each of the {epochs} epochs, found {len(losses)} values",
    )
    learn_hint = "; does training_step return the loss, and does configure_optimizers give Adam self.parameters()?"
    expect(
        losses[-1] < 0.6 * losses[0],
        f"{fit_call}: train_loss went from {losses[0]:.4f} (epoch 1) to {losses[-1]:.4f} (epoch {epochs}); "
        f"it should fall well below its start{learn_hint}",
    )
    expect(
        val_mse < 0.7,
        f"{fit_call}: the validation MSE after training is {val_mse:.4f}, but a constant "
        f"prediction already gets about 1 on these standardised targets{learn_hint}",
    )
    used = trainer.optimizers[0] if trainer.optimizers else None
    expect(isinstance(used, torch.optim.Adam), f"{fit_call}: the Trainer used {type(used).__name__}, expected Adam")
    passed(
        f"regression module: (N, 1) predictions, MSE loss, 'train_loss'/'val_loss' logged per epoch, Adam with "
        f"lr={lr}; train_loss {losses[0]:.3f} → {losses[-1]:.3f}, val MSE {val_mse:.3f} on a fresh "
        f"{d}-feature problem"
    )


# ---------------------------------------------------------------------------------------------
# ex02: a custom callback


class StopAtTarget(Callback):
    """The reference callback: after each validation epoch, record ``monitor`` and stop once it reaches ``target``."""

    def __init__(self, target: float, monitor: str = "val_acc") -> None:
        super().__init__()
        self.target, self.monitor = target, monitor
        self.history: list[float] = []
        self.stopped_epoch: int | None = None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:  # the few batches Lightning validates before training starts
            return
        value = float(trainer.callback_metrics[self.monitor])
        self.history.append(value)
        if value >= self.target:
            trainer.should_stop = True
            self.stopped_epoch = trainer.current_epoch


WRONG_HOOKS = {
    "on_train_epoch_end": "it runs after the training epoch: in a fit it happens to follow validation, but not in "
    "trainer.validate(), nor when validation runs only every few epochs",
    "on_validation_end": "it runs after the whole validation loop, also during the sanity check; the task asks for "
    "on_validation_epoch_end",
    "on_validation_batch_end": "it runs after every validation batch, before the epoch's metric is complete",
    "on_train_batch_end": "it runs after every training batch, long before validation",
    "on_train_end": "it runs once, after training is over: too late to stop anything",
    "on_fit_end": "it runs once, after fit is over: too late to stop anything",
}


def _hooks(cls: type) -> list[str]:
    """The ``on_*`` hooks that ``cls`` defines itself (rather than inheriting Callback's no-ops)."""
    return sorted(
        name
        for name in dir(Callback)
        if name.startswith("on_") and getattr(cls, name, None) is not getattr(Callback, name)
    )


def _blob_problem(gen: torch.Generator, n: int) -> tuple[Tensor, Tensor, int]:
    """Overlapping Gaussian clusters: accuracy climbs over several epochs instead of jumping to 1."""
    c = int(torch.randint(3, 5, (), generator=gen))
    d = int(torch.randint(6, 11, (), generator=gen))
    centres = 1.2 * torch.randn(c, d, generator=gen)
    y = torch.arange(n) % c
    y = y[torch.randperm(n, generator=gen)]
    return centres[y] + torch.randn(n, d, generator=gen), y, c


def _as_floats(values: Any, what: str) -> list[float]:
    expect(isinstance(values, list), f"{what}: expected a list, found {type(values).__name__}")
    out = []
    for v in values:
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            v = v.item()
        expect(
            isinstance(v, numbers.Real) and not isinstance(v, bool),
            f"{what}: expected numbers (float(value)), found {type(v).__name__}",
        )
        out.append(float(v))
    return out


def _same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b))


# Two training batches and one validation batch per epoch, at a learning rate that still makes the accuracy
# climb over several epochs: each of the check's Trainer runs is a few optimizer steps (the seed sweeps run
# hundreds of them).
_CALLBACK_SIZES = {"n_train": 240, "n_val": 101, "batch_size": 120, "max_epochs": 4}
_CALLBACK_LR = 1e-2


def _callback_problem(seed: int) -> tuple[Tensor, Tensor, int, int]:
    """The check's data ``(X, y, classes, run_seed)``, drawn from ``seed`` alone."""
    gen = torch.Generator().manual_seed(seed)
    X, y, c = _blob_problem(gen, _CALLBACK_SIZES["n_train"] + _CALLBACK_SIZES["n_val"])
    return X, y, c, int(torch.randint(0, 2**31 - 1, (), generator=gen))


def _fit_blobs(
    callback: Callback, X: Tensor, y: Tensor, c: int, n_train: int, batch_size: int, max_epochs: int, run_seed: int
) -> L.Trainer:
    """A tiny seeded fit of an MLP classifier with ``callback``; the same weights for the same seed."""
    L.seed_everything(run_seed, verbose=False)
    model = LitClassifier(MLP(X.shape[1], [16], c), num_classes=c, lr=_CALLBACK_LR)
    train_loader, val_loader = _loaders(X, y, n_train, batch_size, run_seed)
    trainer = _trainer(max_epochs, [callback], num_sanity_val_steps=2)
    trainer.fit(model, train_loader, val_loader)
    return trainer


@functools.lru_cache(maxsize=256)
def _reference_history(seed: int) -> tuple[float, ...]:
    """val_acc after each epoch of the reference fit that never stops (cached: it depends on ``seed`` only)."""
    X, y, c, run_seed = _callback_problem(seed)
    sizes = _CALLBACK_SIZES
    with _quiet():
        reference = StopAtTarget(target=math.inf)
        _fit_blobs(reference, X, y, c, sizes["n_train"], sizes["batch_size"], sizes["max_epochs"], run_seed)
    return tuple(reference.history)


def custom_callback(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check a callback class ``cls(target, monitor="val_acc")``.

    Expected: a ``lightning.pytorch.Callback`` that implements ``on_validation_epoch_end`` (and none of
    the hooks that would do the job at the wrong time); there it skips Lightning's sanity check,
    appends ``float(trainer.callback_metrics[monitor])`` to ``self.history``, and, once the value is
    ``>= target``, sets ``trainer.should_stop = True`` and ``self.stopped_epoch`` to
    ``trainer.current_epoch``. ``stopped_epoch`` is ``None`` until then. A tiny seeded fit with it must
    record and stop exactly like the reference.
    """
    seed = fresh_seed(seed)
    where = f"(data seed {seed})"
    name = getattr(cls, "__name__", "cls")
    expect(
        isinstance(cls, type) and issubclass(cls, Callback),
        f"{name}: expected a subclass of lightning.pytorch.Callback (class {name}(L.Callback)), found "
        + (
            f"a class based on {', '.join(b.__name__ for b in cls.__mro__[1:])}"
            if isinstance(cls, type)
            else type(cls).__name__
        ),
    )
    hooks = _hooks(cls)
    wrong = [h for h in hooks if h in WRONG_HOOKS]
    if "on_validation_epoch_end" not in hooks:
        why = f": {wrong[0]} — {WRONG_HOOKS[wrong[0]]}" if wrong else ""
        raise CheckFailed(
            f"{name} should implement on_validation_epoch_end(self, trainer, pl_module); it implements "
            f"{', '.join(hooks) or 'no hook'}{why}"
        )
    if wrong:
        raise CheckFailed(
            f"{name} implements {', '.join(wrong)} as well as on_validation_epoch_end: do all the work "
            f"in on_validation_epoch_end ({wrong[0]}: {WRONG_HOOKS[wrong[0]]})"
        )

    n_train, batch_size, max_epochs = (_CALLBACK_SIZES[k] for k in ("n_train", "batch_size", "max_epochs"))
    X, y, c, run_seed = _callback_problem(seed)

    def fit(callback: Callback) -> L.Trainer:
        return _fit_blobs(callback, X, y, c, n_train, batch_size, max_epochs, run_seed)

    with _quiet():
        full = list(_reference_history(seed))  # val_acc after each epoch, never stopping
        # Stop at the last epoch (within the first max_epochs - 1) that sets a new best: an exact tie
        # with the target must stop (>=), and earlier epochs are all below it.
        news = [k for k in range(max_epochs - 1) if all(full[j] < full[k] for j in range(k))]
        k = news[-1]
        target = full[k]
        expected = full[: k + 1]
        call = f"{name}(target={target:.6f}, monitor='val_acc')"
        cb = call_learner(cls, target=target, monitor="val_acc", what=f"{call} {where}")
        expect(
            isinstance(getattr(cb, "history", None), list) and cb.history == [],
            f"{call}: a new callback should have an empty list self.history, found "
            f"{getattr(cb, 'history', 'no attribute history')!r}",
        )
        expect(
            hasattr(cb, "stopped_epoch") and cb.stopped_epoch is None,
            f"{call}: a new callback should have self.stopped_epoch = None, found "
            f"{getattr(cb, 'stopped_epoch', 'no attribute stopped_epoch')!r}",
        )
        fit_call = f"Trainer(max_epochs={max_epochs}).fit(...) with {call} {where}"
        trainer = call_learner(fit, cb, what=fit_call)

    history = _as_floats(cb.history, f"{fit_call}: history")
    epochs_run = trainer.current_epoch
    shown = [round(v, 4) for v in expected]
    if not _same(history, expected):
        if len(history) == len(expected) + 1 and _same(history[1:], expected):
            raise CheckFailed(
                f"{fit_call}: history has an extra first entry {history[0]:.4f}: that is Lightning's "
                "sanity check (a few validation batches before training); skip it with "
                "`if trainer.sanity_checking: return`"
            )
        if len(history) > len(expected) and _same(history[: len(expected)], expected):
            raise CheckFailed(
                f"{fit_call}: val_acc reached the target {target:.4f} at epoch {k} (counted from 0) "
                f"but training went on for {len(history) - len(expected)} more validation epoch(s): "
                "stop when value >= target (reaching the target counts), by setting "
                "trainer.should_stop = True in that same call"
            )
        if _same(history, full[: len(history)]) and len(history) < len(expected):
            raise CheckFailed(
                f"{fit_call}: stopped after {len(history)} epoch(s), before val_acc reached the target "
                f"(values {[round(v, 4) for v in history]}): compare value >= target"
            )
        raise CheckFailed(
            f"{fit_call}: expected history {shown} (val_acc after each epoch, read from "
            f"trainer.callback_metrics[self.monitor]), found {[round(v, 4) for v in history]}"
        )
    expect(
        epochs_run == k + 1,
        f"{fit_call}: the history is right but training ran {epochs_run} epochs instead of {k + 1}: set "
        "trainer.should_stop = True when the target is reached",
    )
    expect(
        cb.stopped_epoch == k,
        f"{fit_call}: expected stopped_epoch = {k} (trainer.current_epoch of the epoch whose validation reached the "
        f"target, counted from 0), found {cb.stopped_epoch!r}",
    )

    # The hook must also run in a plain validation, and read the metric it is told to monitor.
    with _quiet():
        L.seed_everything(run_seed, verbose=False)
        model = LitClassifier(MLP(X.shape[1], [16], c), num_classes=c)
        _, val_loader = _loaders(X, y, n_train, batch_size, run_seed)
        watcher = call_learner(cls, target=math.inf, monitor="val_loss", what=f"{name}(target=inf, monitor='val_loss')")
        validator = _trainer(1, [watcher])
        result = call_learner(
            validator.validate,
            model,
            val_loader,
            verbose=False,
            what=f"Trainer().validate(...) with {name}(target=inf, monitor='val_loss')",
        )
    val_loss = float(result[0]["val_loss"])
    watched = _as_floats(watcher.history, f"Trainer().validate(...) with {name}(monitor='val_loss'): history")
    expect(
        _same(watched, [val_loss]),
        f"Trainer().validate(...) with {name}(target=inf, monitor='val_loss') {where}: expected history "
        f"[{val_loss:.4f}] (the val_loss of that validation), found {[round(v, 4) for v in watched]}: read "
        "trainer.callback_metrics[self.monitor], not a fixed name",
    )
    expect(
        watcher.stopped_epoch is None,
        f"{name}(target=inf): stopped_epoch should stay None, found {watcher.stopped_epoch!r}",
    )
    passed(
        f"custom callback: on_validation_epoch_end records {shown} and stops at epoch {k}, like the reference; "
        "sanity check skipped; monitor honoured in trainer.validate()"
    )


# ---------------------------------------------------------------------------------------------
# ex03: a custom torchmetrics Metric (macro-F1)


def reference_macro_f1(preds: Tensor, target: Tensor, num_classes: int) -> float:
    """Macro-F1 of the predictions ``preds.argmax(1)`` (``preds (N, C)``) against ``target (N,)``.

    Per class ``F1 = 2 TP / (2 TP + FP + FN)``, averaged over the classes that occur in the targets or
    the predictions (a class absent from both has no F1 and is left out of the mean).
    """
    tp, fp, fn = _class_counts(preds, target, num_classes)
    present = (tp + fp + fn) > 0
    return float((2 * tp[present] / (2 * tp[present] + fp[present] + fn[present])).mean())


def _class_counts(preds: Tensor, target: Tensor, num_classes: int) -> tuple[Tensor, Tensor, Tensor]:
    """True positives, false positives and false negatives per class, as float64 ``(C,)`` tensors."""
    confusion = torch.bincount(target * num_classes + preds.argmax(1), minlength=num_classes**2)
    confusion = confusion.reshape(num_classes, num_classes).double()  # rows true, columns predicted
    tp = confusion.diagonal()
    return tp, confusion.sum(0) - tp, confusion.sum(1) - tp


def _f1_mistake(found: float, batches: list[tuple[Tensor, Tensor]], c: int) -> str:
    """Name the averaging mistake whose value equals ``found``, if any."""
    preds = torch.cat([p for p, _ in batches])
    target = torch.cat([t for _, t in batches])
    tp, fp, fn = _class_counts(preds, target, c)
    present = (tp + fp + fn) > 0
    precision = torch.where(tp + fp > 0, tp / (tp + fp).clamp(min=1), torch.zeros_like(tp))
    recall = torch.where(tp + fn > 0, tp / (tp + fn).clamp(min=1), torch.zeros_like(tp))
    f1 = 2 * tp / (2 * tp + fp + fn).clamp(min=1)
    macro_p, macro_r = precision[present].mean(), recall[present].mean()
    candidates = {
        "that is the micro F1 (the counts summed over the classes first, which equals the accuracy here): "
        "compute F1 per class, then average the classes": float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum())),
        "a class that never occurs (neither in the targets nor in the predictions) was counted with F1 = 0: leave "
        "such classes out of the mean": float(f1.mean()),
        "that is the harmonic mean of the macro precision and the macro recall: average the per-class F1 "
        "scores instead": float(2 * macro_p * macro_r / (macro_p + macro_r)),
        "per class, that is the arithmetic mean of precision and recall: F1 is their harmonic mean, "
        "2 TP / (2 TP + FP + FN)": float(((precision + recall) / 2)[present].mean()),
        "that is the macro recall (balanced accuracy), TP / (TP + FN): F1 also counts the false positives, "
        "2 TP / (2 TP + FP + FN)": float(recall[tp + fn > 0].mean()),
        "that is the mean of the per-batch F1 scores: keep counts over all batches in the states and compute F1 "
        "once, from the totals": sum(reference_macro_f1(p, t, c) for p, t in batches) / len(batches),
        "that is the F1 of the last batch alone: update must add the batch's counts to the states (+=), not "
        "replace them": reference_macro_f1(*batches[-1], c),
    }
    matching = [
        (abs(found - value), why) for why, value in candidates.items() if math.isclose(found, value, abs_tol=1e-6)
    ]
    return min(matching)[1] if matching else ""  # the closest, should two averages nearly coincide


def _state_size(metric: Any) -> int:
    """The number of values held in the metric's registered states (tensors, or lists of tensors)."""
    total = 0
    for value in metric.metric_state.values():
        for item in value if isinstance(value, list) else [value]:
            total += item.numel() if isinstance(item, Tensor) else 1
    return total


def macro_f1_metric(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check a ``torchmetrics.Metric`` subclass ``cls(num_classes)`` computing the macro-F1.

    ``update(preds, target)`` takes scores ``(N, C)`` (the predicted class is the argmax) and labels
    ``(N,)``; ``compute()`` returns the mean over classes of ``2 TP / (2 TP + FP + FN)``, leaving out a
    class that occurs neither in the targets nor in the predictions. Checked: the value over several
    batches of different sizes against an independent count; states of a fixed size (counts, not
    every prediction) registered with ``add_state``; ``metric(preds, target)`` giving the batch's
    value while accumulating; ``reset()``; and ``merge_state`` of two metrics fed different halves
    (needs ``full_state_update = False`` and states that add up). The library's
    ``MulticlassF1Score`` is refused: writing it is the exercise.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    name = getattr(cls, "__name__", "cls")
    expect(
        isinstance(cls, type) and issubclass(cls, Metric),
        f"{name}: expected a subclass of torchmetrics.Metric (class {name}(torchmetrics.Metric)), found "
        + (f"a class based on {cls.__mro__[1].__name__}" if isinstance(cls, type) else type(cls).__name__),
    )
    c = int(torch.randint(4, 8, (), generator=gen))
    absent = int(torch.randint(0, c, (), generator=gen))  # never a target, never predicted
    weights = torch.rand(c, generator=gen) + 0.2 * torch.arange(c)  # imbalanced classes
    weights[absent] = 0
    favourite = (absent + 1 + int(torch.randint(0, c - 1, (), generator=gen))) % c
    sizes = [int(s) for s in torch.randperm(30, generator=gen)[:4] + 5]  # four different batch sizes
    batches = []
    for size in sizes:
        target = torch.multinomial(weights, size, replacement=True, generator=gen)
        preds = torch.randn(size, c, generator=gen)
        preds[torch.arange(size), target] += 1.2  # better than chance, far from perfect
        preds[:, favourite] += 0.8  # one class over-predicted: its precision and recall differ
        preds[:, absent] = -1e4
        batches.append((preds, target))
    whole = reference_macro_f1(torch.cat([p for p, _ in batches]), torch.cat([t for _, t in batches]), c)
    call = f"{name}(num_classes={c})"
    refused = {
        "MulticlassF1Score": MulticlassStatScores.update,
        "multiclass_f1_score": multiclass_f1_score,
        "multiclass_fbeta_score": multiclass_fbeta_score,
        "_fbeta_reduce": _fbeta_reduce,
    }

    def make() -> Any:
        metric = call_learner(cls, num_classes=c, what=f"{call} {where}")
        expect(isinstance(metric, Metric), f"{call}: expected a torchmetrics.Metric, found {type(metric).__name__}")
        return metric

    def value(metric: Any, what: str) -> float:
        out = call_learner(metric.compute, what=what)
        expect(
            isinstance(out, Tensor) and out.numel() == 1,
            f"{what}: expected a 0-d tensor (one F1 score), found "
            + (f"a tensor of shape {tuple(out.shape)}" if isinstance(out, Tensor) else type(out).__name__),
        )
        found = float(out)
        expect(
            math.isfinite(found),
            f"{what} returned {found} {where}: class {absent} never occurs, so its F1 is 0 / 0; leave classes "
            "with TP + FP + FN = 0 out of the mean",
        )
        return found

    with refusing(refused, "the macro-F1 metric"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = make()
        expect(
            len(metric.metric_state) > 0,
            f"{call} {where}: the metric has no registered states: create its counts with self.add_state(name, "
            "default=torch.zeros(num_classes), dist_reduce_fx='sum'), so that reset, merging and syncing "
            "across devices know about them",
        )
        for i, (preds, target) in enumerate(batches):
            call_learner(metric.update, preds, target, what=f"{call}.update(preds {tuple(preds.shape)}, target)")
            if i == 0:
                size = _state_size(metric)
        expect(
            _state_size(metric) == size,
            f"{call} {where}: the states grew from {size} to {_state_size(metric)} values over {len(batches)} updates: "
            "keep counts per class (fixed-size tensors), not every prediction",
        )
        what = f"{call}.compute() after {len(batches)} updates of sizes {sizes} {where}"
        found = value(metric, what)
        if not math.isclose(found, whole, rel_tol=1e-5, abs_tol=1e-6):
            why = _f1_mistake(found, batches, c)
            raise CheckFailed(f"{what}: expected macro-F1 {whole:.6f}, found {found:.6f}" + (f": {why}" if why else ""))

        # forward: each batch's own value, while the states accumulate
        stepped = make()
        for i, (preds, target) in enumerate(batches):
            out = call_learner(stepped, preds, target, what=f"{call}(preds, target) on batch {i}")
            expected = reference_macro_f1(preds, target, c)
            expect(
                isinstance(out, Tensor) and out.numel() == 1 and math.isclose(float(out), expected, abs_tol=1e-6),
                f"{call}(preds, target) on batch {i} {where}: expected that batch's macro-F1 {expected:.6f}, found "
                + (f"{float(out):.6f}" if isinstance(out, Tensor) and out.numel() == 1 else repr(out))
                + ": calling the metric updates it and returns the value of this batch alone, if update only adds "
                "to the states",
            )
        found = value(stepped, f"{call}.compute() after calling the metric on each batch")
        expect(
            math.isclose(found, whole, abs_tol=1e-6),
            f"{call}.compute() after calling the metric on each batch {where}: expected {whole:.6f} over all "
            f"batches, found {found:.6f}: states that combine by 'sum' add the batch counts up",
        )

        # reset forgets everything
        call_learner(metric.reset, what=f"{call}.reset()")
        preds, target = batches[1]
        call_learner(metric.update, preds, target, what=f"{call}.update(...) after reset()")
        expected = reference_macro_f1(preds, target, c)
        found = value(metric, f"{call}.compute() after reset() and one update")
        expect(
            math.isclose(found, expected, abs_tol=1e-6),
            f"{call}.compute() after reset() and one update {where}: expected {expected:.6f} (that batch alone), "
            f"found {found:.6f}: reset() only restores states registered with add_state",
        )

        # two metrics fed different halves, merged
        first, second = make(), make()
        for preds, target in batches[:2]:
            call_learner(first.update, preds, target, what=f"{call}.update(...)")
        for preds, target in batches[2:]:
            call_learner(second.update, preds, target, what=f"{call}.update(...)")
        try:
            first.merge_state(second)
        except RuntimeError as err:
            if "full_state_update" in str(err):
                raise CheckFailed(
                    f"{call}.merge_state(other) {where} raised RuntimeError: set the class attribute "
                    "full_state_update = False (update only needs the batch, not the accumulated states), so "
                    "states can be merged"
                ) from None
            raise CheckFailed(f"{call}.merge_state(other) {where} raised RuntimeError: {err}") from None
        except Exception as err:  # say what went wrong, as a check failure
            raise CheckFailed(f"{call}.merge_state(other) {where} raised {type(err).__name__}: {err}") from None
        found = value(first, f"{call}.compute() after merge_state")
        expect(
            math.isclose(found, whole, abs_tol=1e-6),
            f"{call}: one metric updated on batches 0-1, another on batches 2-3, merged with merge_state: expected "
            f"{whole:.6f} (all four batches), found {found:.6f} {where}: counts combine by adding, "
            "dist_reduce_fx='sum'",
        )
    passed(
        f"macro-F1 metric: {whole:.4f} over {len(batches)} batches of sizes {sizes} ({c} classes, one never seen), "
        "right per batch through forward, after reset and after merging two metrics"
    )


from dlfund.checks._unit05_fabric import fabric_accumulation  # noqa: E402
