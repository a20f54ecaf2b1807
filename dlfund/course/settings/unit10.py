"""Unit 10, Finetuning a pretrained transformer: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class FrozenEmbeddings(Settings):
    """Frozen embeddings and logistic regression, notebook 02 (its C values also in notebook 03)."""

    n_train: int | None = doc("training reviews drawn at random (None: the whole training split)")
    n_val: int | None = doc("validation reviews drawn at random (None: the whole validation split)")
    n_test: int | None = doc("test reviews drawn at random (None: the whole test split)")
    Cs: tuple[float, ...] = doc("inverse L2-penalty strengths of the logistic regression, chosen on validation")


@dataclass(frozen=True)
class Unit10(Settings):
    """The settings of unit 10."""

    split_seed: int = doc("seed of the split by movie, the same as in unit 8")
    max_length: int = doc("most tokens per review, [CLS] and [SEP] included; longer reviews are cut")
    embed_batch: int = doc("reviews per batch when embedding, and when evaluating the finetuned models")
    n_train: int | None = doc("training reviews drawn at random for notebook 03 (None: the whole training split)")
    n_val: int | None = doc("validation reviews drawn at random for notebook 03 (None: the whole validation split)")
    n_test: int | None = doc("test reviews drawn at random for notebook 03 (None: the whole test split)")
    top_layers: int = doc("top encoder layers trained, with the head, in the partial finetuning")
    epochs: int = doc("passes over the training reviews in each finetuning")
    batch_size: int = doc("reviews per finetuning batch")
    lr_top: float = doc("peak learning rate of the unfrozen top layers in the partial finetuning")
    lr_full: float = doc("peak learning rate of the encoder when every layer is finetuned")
    head_lr: float = doc("peak learning rate of the new classification head")
    warmup: float = doc("share of the steps over which the learning rate rises linearly (then decays to 0)")
    weight_decay: float = doc("AdamW weight decay during finetuning")
    dropout: float = doc("dropout probability before the classification head")
    target_accuracy: float | None = doc("test accuracy full finetuning must reach in the full tier (None: not checked)")
    frozen: FrozenEmbeddings = doc(
        "Frozen embeddings and logistic regression, notebook 02 (its C values also in notebook 03)."
    )


SMOKE = Unit10(
    split_seed=0,
    max_length=48,
    embed_batch=64,
    n_train=160,
    n_val=96,
    n_test=240,
    top_layers=2,
    epochs=1,
    batch_size=8,
    lr_top=0.0002,
    lr_full=0.0001,
    head_lr=0.003,
    warmup=0.1,
    weight_decay=0.01,
    dropout=0.1,
    target_accuracy=None,
    frozen=FrozenEmbeddings(n_train=600, n_val=200, n_test=400, Cs=(0.1, 1.0, 10.0)),
)

FULL = Unit10(
    split_seed=0,
    max_length=128,
    embed_batch=256,
    n_train=None,
    n_val=None,
    n_test=None,
    top_layers=2,
    epochs=3,
    batch_size=32,
    lr_top=0.0001,
    lr_full=5e-05,
    head_lr=0.001,
    warmup=0.1,
    weight_decay=0.01,
    dropout=0.1,
    target_accuracy=0.82,
    frozen=FrozenEmbeddings(n_train=None, n_val=None, n_test=None, Cs=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0)),
)
