"""Checkpoints that survive a crash, and training that resumes exactly where it stopped.

Three pieces, used together (unit 6, notebook 01; ``tests/test_resume.py`` kills a run and checks it):

>>> trainer = L.Trainer(                                                   # doctest: +SKIP
...     max_epochs=20, default_root_dir=cfg.run_dir,
...     plugins=[AtomicCheckpointIO()],                    # writes are atomic, loads weights_only
...     callbacks=[ModelCheckpoint(dirpath=cfg.run_dir / "checkpoints", save_last=True),
...                StepSeed(seed=cfg.seed)],              # dropout etc. depend on (seed, step) only
... )
>>> train_loader = epoch_shuffled_loader(train_set, batch_size=128, seed=cfg.seed)   # doctest: +SKIP
>>> trainer.fit(lit, train_loader, val_loader, ckpt_path="last")                      # doctest: +SKIP

``ckpt_path="last"`` resumes from ``last.ckpt`` when there is one and starts afresh (with a warning)
when there is none, so the *same* call starts a run and resumes it after a crash.

What a Lightning checkpoint restores, and what it does not. It holds the weights, the optimizer and
scheduler states, the loop counters (epoch, global step), the callbacks' states and the logged
hyperparameters. It does **not** hold the random number generators' states. A resumed run therefore
matches an uninterrupted one only if no randomness depends on what happened before the crash:

- the order of the training examples: :func:`epoch_shuffled_loader` draws each epoch's permutation
  from ``(seed, epoch)`` alone (Lightning calls the sampler's ``set_epoch`` before every epoch);
  a ``DataLoader(shuffle=True, generator=g)`` would instead continue g's sequence, which a restarted
  process does not have;
- randomness inside training steps (dropout): :class:`StepSeed` reseeds torch's global generator
  from ``(seed, global_step)`` before every step.

Random transforms applied while a batch is *loaded* (augmentation in ``Dataset.__getitem__``) run
before the step's reseed; seed them from the index and epoch yourself if a resume must reproduce them.

Why ``weights_only=True``. ``torch.load`` unpickles, and unpickling arbitrary data can run arbitrary
code; ``weights_only=True`` restricts it to tensors, numbers, strings and containers. A Lightning
checkpoint of the course's modules contains only such things, so :class:`AtomicCheckpointIO` loads
with ``weights_only=True`` by default. A checkpoint needs ``weights_only=False`` when something in it
is a general Python object: hyperparameters that are not plain values (a ``Path``, an ``nn.Module``
or a class passed to ``save_hyperparameters``, an ``argparse.Namespace``), a callback or datamodule
whose ``state_dict`` returns such objects, or a scheduler whose ``lr_lambda`` is a callable *object*
with such attributes. Lightning then fails with torch's "Weights only load failed" message; pass
``weights_only=False`` to ``Trainer.fit`` / ``load_from_checkpoint`` only for files you trust.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from dlfund.utils.io import atomic_open

__all__ = ["AtomicCheckpointIO", "StepSeed", "epoch_shuffled_loader", "step_seed"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save``/``torch.load`` checkpoint IO, with atomic local writes and safe loads.

    ``save_checkpoint`` writes to a temporary file in the checkpoint's own folder, flushes and
    ``fsync``\\ s it, then ``os.replace``\\ s it onto the target name (:func:`dlfund.utils.io.atomic_open`):
    a crash or a full disk mid-write leaves the previous checkpoint intact, never half a file. (The
    temporary file is in the same folder because ``os.replace`` is atomic only within a filesystem.)

    ``load_checkpoint`` uses ``weights_only=True`` unless the caller passes ``weights_only=False``
    explicitly (see the module docstring for when a checkpoint needs that).

    Use it with ``L.Trainer(plugins=[AtomicCheckpointIO()])``. Remote paths (``s3://...``) are not
    supported: use Lightning's own ``TorchCheckpointIO`` for those.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike[str], storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if "://" in str(path):
            raise ValueError(f"{type(self).__name__} writes local files only, got {path}")
        with atomic_open(Path(path), "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(
        self,
        path: str | os.PathLike[str],
        map_location: Callable[..., Any] | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        return super().load_checkpoint(
            path, map_location=map_location, weights_only=True if weights_only is None else weights_only
        )


def step_seed(seed: int, step: int) -> int:
    """A 63-bit seed mixed from ``(seed, step)`` (NumPy's ``SeedSequence``: nearby pairs give unrelated seeds)."""
    return int(np.random.SeedSequence([int(seed), int(step)]).generate_state(2, dtype=np.uint64)[0] >> 1)


class StepSeed(L.Callback):
    """Reseed torch's generators (CPU and every GPU) before each training step from ``(seed, global_step)``.

    Dropout masks and any other random numbers drawn inside ``training_step`` then depend only on
    the seed and the step, not on how the process got there, so a run resumed from a checkpoint
    draws the same numbers as an uninterrupted one. Costs one ``torch.manual_seed`` per step.
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.seed = int(seed)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        torch.manual_seed(step_seed(self.seed, trainer.global_step))


def epoch_shuffled_loader(dataset: Dataset, batch_size: int, seed: int, **kwargs: Any) -> DataLoader:
    """A training ``DataLoader`` whose order in epoch e is a fixed permutation drawn from ``(seed, e)``.

    It uses torch's ``DistributedSampler`` with a single replica: that sampler is made for exactly this
    (every process of a multi-GPU run must agree on each epoch's permutation), draws it from
    ``seed + epoch`` when iterated, and Lightning calls its ``set_epoch`` before every epoch, also
    the first epoch after a resume. ``kwargs`` go to ``DataLoader`` (``num_workers``, ``drop_last``...).
    """
    if "shuffle" in kwargs or "sampler" in kwargs or "generator" in kwargs:
        raise TypeError("epoch_shuffled_loader chooses the shuffling itself: do not pass shuffle, sampler or generator")
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=int(seed))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
