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

from dlfund.course.settings import (
    Settings,
    tiers,
    unit01,
    unit02,
    unit03,
    unit04,
    unit05,
    unit06,
    unit07,
    unit08,
    unit09,
    unit10,
    unit11,
    unit12,
    unit13,
    unit14,
)

ROOT = Path(__file__).resolve().parents[2]
"""The course repository (this package is installed from it in editable mode)."""

UNITS_DIR = ROOT / "units"
SOLUTIONS_DIR = ROOT / "solutions"
BOOK_DIR = ROOT / "book"
RESULTS_DIR = BOOK_DIR / "results"
RUNS_DIR = ROOT / "runs"
"""Git-ignored home of everything a run writes: executed notebooks, logs, checkpoints, smoke results."""

TIERS = ("smoke", "full")
BUDGET_TOLERANCE = 2.0
"""A notebook slower than this many times its smoke budget fails the tests (a slower machine has room)."""


@dataclass(frozen=True)
class Notebook:
    """A lecture notebook ``units/<unit>/<name>.ipynb``."""

    name: str
    title: str
    smoke_s: int = 45
    """Budget on a 2-core CPU in the smoke tier (seconds), under the test suite's ``pytest -n 2``: the time
    measured there ×1.3 + 5 s, rounded up to 5 s; at least 40 s for a notebook that loads SmolLM2 (the
    first load on a machine dequantises the weights, about 14 s once). At most 45 s. The tests fail a
    notebook that takes more than :data:`BUDGET_TOLERANCE` times its budget."""
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
    smoke_s: int = 45
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
    settings: dict[str, Settings] = field(default_factory=dict)
    """Per-tier settings (data size, epochs, width...): ``{"smoke": ..., "full": ...}``, typed and documented
    in :mod:`dlfund.course.settings`."""
    builds_on: str = ""
    """What the unit takes from the units before it, in one line: the first box of its roadmap figure."""
    prerequisites: tuple[str, ...] = ()
    """What a learner should know before starting (earlier units, outside knowledge): the README's list."""
    outcomes: tuple[str, ...] = ()
    """What the learner will be able to do after the unit (3 to 5 items, each completing "You will be able
    to ..."): the README's list."""
    study_hours: tuple[int, int] = (0, 0)
    """An estimate of the study time (hours, low and high): reading the notebooks, running them in the smoke
    tier and doing the exercises. Not measured: the README says it is an estimate."""

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

    def over_budget(self, notebook: str, tier: str, seconds: float) -> str | None:
        """Why ``seconds`` is too long for ``notebook`` in ``tier`` (over :data:`BUDGET_TOLERANCE` × its budget);
        ``None`` when it is not."""
        budget = self.budget(notebook, tier)
        if seconds <= BUDGET_TOLERANCE * budget:
            return None
        return (
            f"{self.dirname}/{notebook} took {seconds:.1f} s, more than {BUDGET_TOLERANCE:g} × its {tier} budget "
            f"of {budget} s: make it faster or raise its budget in dlfund/course/manifest.py, saying why"
        )

    def tier_settings(self, tier: str) -> Settings:
        """The unit's settings in ``tier`` (``"smoke"`` or ``"full"``)."""
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}: expected one of {', '.join(TIERS)}")
        if tier not in self.settings:
            raise KeyError(f"unit {self.number} has no {tier}-tier settings")
        return self.settings[tier]

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
            Notebook("01-supervised-workflow", "The supervised learning workflow", smoke_s=10, full_s=60),
            Notebook("02-perceptron-python", "A perceptron in plain Python", smoke_s=10, full_s=60),
            Notebook("03-perceptron-vectorised", "The vectorised perceptron on real images", smoke_s=15, full_s=120),
        ),
        exercises=(
            Exercise("ex01-early-stopping", "Early stopping", ("unit01.early_stopping",), smoke_s=10, full_s=60),
            Exercise("ex02-random-init", "Random initialisation", ("unit01.random_init",), smoke_s=10, full_s=60),
            Exercise("ex03-learning-rate", "The learning rate", ("unit01.learning_rate",), smoke_s=10, full_s=60),
            Exercise(
                "ex04-multiclass-perceptron",
                "The multiclass perceptron",
                ("unit01.multiclass_perceptron",),
                smoke_s=15,
                full_s=60,
            ),
        ),
        datasets=("iris", "fashion-mnist"),
        settings=tiers(unit01),
        builds_on="Python and school algebra: the course starts here.",
        prerequisites=(
            "Python: functions, lists, loops, dictionaries and classes",
            "school algebra: a weighted sum, the equation of a straight line",
            "no machine learning: this unit starts from the beginning",
        ),
        outcomes=(
            "split data into seeded, stratified training, validation and test sets, and beat a trivial baseline",
            "write Rosenblatt's perceptron and its learning rule in plain Python, and read its decision boundary",
            "vectorise the perceptron with tensors and time it against the plain-Python loop",
            "train a perceptron on two Fashion-MNIST classes and read its weights as an image",
        ),
        study_hours=(3, 4),
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
            Notebook("01-tensors-and-dtypes", "Tensors, dtypes and devices", smoke_s=10, full_s=60),
            Notebook(
                "02-broadcasting-and-vectorisation", "Broadcasting and vectorisation, timed", smoke_s=15, full_s=120
            ),
            Notebook("03-shape-debugging", "Reading and fixing shape errors", smoke_s=10, full_s=60),
        ),
        exercises=(
            Exercise(
                "ex01-torch-where", "Choosing values with torch.where", ("unit02.torch_where",), smoke_s=10, full_s=60
            ),
            Exercise(
                "ex02-matmul-perceptron",
                "The perceptron with matrix multiplication",
                ("unit02.matmul_perceptron",),
                smoke_s=10,
                full_s=120,
            ),
            Exercise(
                "ex03-confusion-matrix",
                "A confusion matrix without loops",
                ("unit02.confusion",),
                smoke_s=15,
                full_s=60,
            ),
        ),
        datasets=("iris", "fashion-mnist"),
        settings=tiers(unit02),
        builds_on="the perceptron rewritten with tensors; a first taste of vectorised code.",
        prerequisites=(
            "unit 01: the supervised workflow and the perceptron",
            "Python and NumPy-style arrays help, but are not required",
        ),
        outcomes=(
            "create tensors and read their shape, dtype and device, and tell a view from a copy",
            "predict where each dtype rounds or overflows, and how mixed dtypes promote",
            "combine tensors of different shapes by broadcasting, and replace Python loops by tensor operations, timed",
            "read a shape error message and fix it with reshape, permute, unsqueeze and their relatives",
        ),
        study_hours=(3, 4),
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
            Notebook("01-chain-rule-by-hand", "Computation graphs and the chain rule", smoke_s=10, full_s=60),
            Notebook("02-autograd-engine", "A tiny autograd engine", smoke_s=15, full_s=60),
            Notebook(
                "03-logistic-regression", "Logistic regression: by hand, then with autograd", smoke_s=10, full_s=120
            ),
            Notebook("04-sgd-and-standardisation", "Minibatch SGD and standardisation", smoke_s=10, full_s=120),
        ),
        exercises=(
            Exercise(
                "ex01-backward-ops", "Backward for two operations", ("unit03.backward_ops",), smoke_s=10, full_s=60
            ),
            Exercise("ex02-standardise", "Standardising features", ("unit03.standardise",), smoke_s=10, full_s=60),
            Exercise(
                "ex03-custom-function", "A custom autograd Function", ("unit03.custom_function",), smoke_s=10, full_s=60
            ),
        ),
        datasets=("breast-cancer",),
        settings=tiers(unit03),
        builds_on="tensors and vectorised code; the perceptron's learning rule, which had no gradient.",
        prerequisites=(
            "units 01–02: the supervised workflow, tensors and broadcasting",
            "derivatives of simple functions (sum, product, exp, log) and the idea of the chain rule",
        ),
        outcomes=(
            "write a computation as a graph and compute every gradient by hand with the chain rule",
            "build a small scalar autograd engine and check it against torch.autograd and finite differences",
            "derive logistic regression's gradients, train it by hand, then with autograd, to the same weights",
            "train with minibatch SGD and explain why unstandardised features slow gradient descent",
        ),
        study_hours=(4, 6),
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
            Notebook("01-softmax-regression", "Softmax regression and cross-entropy", smoke_s=10, full_s=120),
            Notebook("02-xor-and-hidden-layers", "XOR and why hidden layers are needed", smoke_s=15, full_s=60),
            Notebook("03-activations-and-init", "Activation functions and initialisation", smoke_s=15, full_s=120),
            Notebook("04-datasets-and-loaders", "Dataset and DataLoader", smoke_s=10, full_s=60),
            Notebook("05-mlp-classifier", "An MLP classifier on MNIST and Fashion-MNIST", smoke_s=15, full_s=300),
            Notebook("06-mlp-regression", "An MLP regressor", smoke_s=15, full_s=120),
        ),
        exercises=(
            Exercise("ex01-depth-width", "Depth and width", ("unit04.depth_width",), smoke_s=15, full_s=600),
            Exercise(
                "ex02-custom-dataset",
                "A custom Dataset for Fashion-MNIST",
                ("unit04.fashion_dataset",),
                smoke_s=15,
                full_s=60,
            ),
            Exercise(
                "ex03-label-smoothing",
                "Cross-entropy with label smoothing",
                ("unit04.label_smoothing",),
                smoke_s=15,
                full_s=120,
            ),
        ),
        datasets=("mnist-5k", "fashion-mnist", "diabetes"),
        settings=tiers(unit04),
        builds_on="gradients by autograd, logistic regression and minibatch SGD.",
        prerequisites=("units 01–03: tensors, autograd and logistic regression trained by gradient descent",),
        outcomes=(
            "compute softmax and cross-entropy stably and train softmax regression on many classes",
            "explain why XOR needs a hidden layer, and draw any model's decision boundary",
            "choose activations and initialisations, and measure vanishing and exploding signals layer by layer",
            "feed a training loop with Dataset and DataLoader, and train MLP classifiers and a regressor",
        ),
        study_hours=(5, 7),
    ),
    Unit(
        number=5,
        slug="lightning",
        title="Organising training with Lightning",
        summary=(
            "The unit-4 MLP as a LightningModule trained by the Trainer; torchmetrics; a "
            "LightningDataModule for Fashion-MNIST; CSV and TensorBoard logs read back and plotted; "
            "reproducible runs; callbacks; checkpoint, reload, test and predict; Fabric, which keeps your own "
            "loop and scales it in five changes."
        ),
        notebooks=(
            Notebook("01-lightning-module", "From a training loop to a LightningModule", smoke_s=15, full_s=300),
            Notebook(
                "02-metrics-and-datamodules",
                "Metrics with torchmetrics, data with a DataModule",
                smoke_s=15,
                full_s=300,
            ),
            Notebook("03-logging", "Logging to CSV and TensorBoard, and reading the logs back", smoke_s=15, full_s=300),
            Notebook("04-reproducibility-and-callbacks", "Reproducible runs and callbacks", smoke_s=15, full_s=600),
            Notebook("05-checkpoint-and-predict", "Checkpoint, reload, test and predict", smoke_s=15, full_s=300),
            Notebook(
                "06-fabric-in-five-changes", "Fabric: your own loop, scaled in five changes", smoke_s=45, full_s=240
            ),
        ),
        exercises=(
            Exercise(
                "ex01-lightning-regression",
                "A LightningModule for regression",
                ("unit05.regression_module",),
                smoke_s=15,
                full_s=120,
            ),
            Exercise("ex02-custom-callback", "A custom callback", ("unit05.custom_callback",), smoke_s=15, full_s=300),
            Exercise(
                "ex03-macro-f1-metric",
                "A torchmetrics metric of your own: macro-F1",
                ("unit05.macro_f1_metric",),
                smoke_s=15,
                full_s=300,
            ),
            Exercise(
                "ex04-fabric-accumulation",
                "Gradient accumulation in a Fabric loop",
                ("unit05.fabric_accumulation",),
                smoke_s=20,
                full_s=120,
            ),
        ),
        datasets=("fashion-mnist", "diabetes"),
        settings=tiers(unit05),
        builds_on="the MLP and the training loop written by hand.",
        prerequisites=("unit 04: the MLP, its training loop, Dataset and DataLoader",),
        outcomes=(
            "turn a hand-written training loop into a LightningModule that the Trainer runs to the same weights",
            "measure with torchmetrics and feed data through a LightningDataModule",
            "log to CSV and TensorBoard and plot the logs read back",
            "make runs reproducible, write a callback, and checkpoint, reload, test and predict",
            "keep your own loop with Fabric, checkpoint and resume it exactly, and switch precision and devices",
        ),
        study_hours=(4, 5),
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
            Notebook(
                "01-checkpoints-and-early-stopping", "Checkpoints, resuming and early stopping", smoke_s=15, full_s=600
            ),
            Notebook("02-learning-rates", "The learning-rate finder and schedules", smoke_s=15, full_s=300),
            Notebook("03-optimizers", "SGD with momentum, Adam and AdamW", smoke_s=15, full_s=600),
            Notebook("04-batchnorm-and-dropout", "BatchNorm and dropout", smoke_s=15, full_s=600),
            Notebook(
                "05-lightning-cli-and-sweep", "LightningCLI, a config file and a small sweep", smoke_s=15, full_s=1200
            ),
            Notebook("06-debugging", "Debugging a training run", smoke_s=15, full_s=300),
            Notebook("07-batch-size-and-generalisation", "Batch size and generalisation", smoke_s=45, full_s=300),
        ),
        exercises=(
            Exercise(
                "ex01-cosine-warmup",
                "Cosine schedule with linear warmup",
                ("unit06.cosine_warmup",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex02-adamw-weight-decay",
                "AdamW and weight decay",
                ("unit06.adamw_weight_decay",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex03-warmup-stable-decay",
                "A warmup-stable-decay schedule",
                ("unit06.wsd_schedule",),
                smoke_s=15,
                full_s=60,
            ),
            Exercise(
                "ex04-gradient-noise-scale",
                "The gradient noise scale",
                ("unit06.noise_scale",),
                smoke_s=35,
                full_s=60,
            ),
        ),
        datasets=("fashion-mnist",),
        settings=tiers(unit06),
        builds_on="Lightning's Trainer, metrics, logs, callbacks and checkpoints.",
        prerequisites=(
            "unit 05: LightningModule, Trainer, DataModule and callbacks",
            "unit 04: the MLP on Fashion-MNIST",
        ),
        outcomes=(
            "resume a killed run from its last checkpoint and stop early on the validation loss",
            "find a learning rate and schedule it (step, plateau, cosine with warmup)",
            "compare SGD with momentum, Adam and AdamW fairly, and decay only the right parameters",
            "use BatchNorm and dropout, describe runs in a LightningCLI config and sweep them",
            "debug a training run with fast_dev_run, the model summary and overfitting one batch",
        ),
        study_hours=(5, 7),
    ),
    Unit(
        number=7,
        slug="cnn-vit",
        title="Convolutional networks and Vision Transformers",
        summary=(
            "Images as tensors; convolution by hand (unfold) vs nn.Conv2d; a CNN; residual blocks and a "
            "small ResNet; data augmentation written with torch; transfer learning without downloaded "
            "weights; a Vision Transformer from scratch; CNN vs ViT measured; contrastive self-supervised "
            "pretraining (SimCLR) on unlabelled images, judged by a linear probe."
        ),
        notebooks=(
            Notebook("01-images-as-tensors", "Images as tensors", smoke_s=10, full_s=60),
            Notebook("02-convolution-by-hand", "Convolution by hand", smoke_s=15, full_s=120),
            Notebook("03-cnn", "A convolutional network", smoke_s=20, full_s=300),
            Notebook("04-resnet-and-augmentation", "Residual networks and data augmentation", smoke_s=20, full_s=80),
            Notebook("05-transfer-learning", "Transfer learning without downloaded weights", smoke_s=25, full_s=600),
            Notebook("06-vision-transformer", "A Vision Transformer from scratch", smoke_s=15, full_s=170),
            Notebook("07-cnn-vs-vit", "CNN vs ViT, measured", smoke_s=20, full_s=600),
            Notebook(
                "08-self-supervised",
                "Self-supervised pretraining: learning from unlabeled images",
                smoke_s=40,
                full_s=420,
            ),
        ),
        exercises=(
            Exercise("ex01-patch-embedding", "Patch embedding", ("unit07.patch_embedding",), smoke_s=10, full_s=60),
            Exercise("ex02-augmentation", "An augmentation", ("unit07.augmentation",), smoke_s=10, full_s=60),
            Exercise("ex03-conv-unfold", "Convolution with unfold", ("unit07.conv_unfold",), smoke_s=15, full_s=120),
            Exercise(
                "ex04-depthwise-separable",
                "A depthwise-separable convolution",
                ("unit07.depthwise_separable",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex05-supervised-contrastive",
                "A supervised contrastive loss",
                ("unit07.supervised_contrastive",),
                smoke_s=15,
                full_s=180,
            ),
        ),
        datasets=("fashion-mnist", "mnist-5k"),
        settings=tiers(unit07),
        builds_on="schedules, AdamW, BatchNorm, checkpoints and fair comparisons, on an MLP.",
        prerequisites=(
            "units 04–06: MLPs, Lightning and the training craft",
            "unit 02: tensor shapes and broadcasting, used on (N, C, H, W) batches",
        ),
        outcomes=(
            "compute a convolution by hand and with unfold, and predict a layer's output size",
            "build and train a CNN and a small ResNet, with data augmentation written in torch",
            "reuse a pretrained network's features (transfer learning) and measure when it helps",
            "build a Vision Transformer from patches and compare it with a CNN on accuracy, parameters and throughput",
            "pretrain an encoder without labels with a contrastive loss and judge it with a linear probe at few labels",
        ),
        study_hours=(6, 8),
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
            Notebook("01-text-as-data", "Text as data", smoke_s=10, full_s=60),
            Notebook("02-bag-of-words-baseline", "A bag-of-words baseline and embeddings", smoke_s=15, full_s=180),
            Notebook("03-rnn-classifiers", "RNN, LSTM and GRU classifiers", smoke_s=25, full_s=600),
            Notebook("04-seq2seq-attention", "An encoder-decoder with attention", smoke_s=15, full_s=600),
        ),
        exercises=(
            Exercise(
                "ex01-additive-attention",
                "Additive attention with a padding mask",
                ("unit08.additive_attention",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise("ex02-gru-cell", "A GRU cell from scratch", ("unit08.gru_cell",), smoke_s=10, full_s=120),
            Exercise(
                "ex03-luong-attention",
                "Luong attention: dot and general scores",
                ("unit08.luong_attention",),
                smoke_s=10,
                full_s=60,
            ),
        ),
        datasets=("movie-reviews",),
        settings=tiers(unit08),
        builds_on="classifiers trained with a good recipe; the ViT's first look at attention.",
        prerequisites=(
            "units 04–06: training classifiers, choosing on validation data",
            "unit 07 helps (the ViT's attention), but is not required",
        ),
        outcomes=(
            "turn raw reviews into padded id tensors with a vocabulary, split so that no movie leaks",
            "build a bag-of-words baseline and use embeddings",
            "train RNN, LSTM and GRU classifiers on packed sequences and compare them",
            "build an encoder–decoder with additive attention and read its attention heatmaps",
        ),
        study_hours=(5, 7),
    ),
    Unit(
        number=9,
        slug="self-attention",
        title="Self-attention from scratch",
        summary=(
            "Attention built in visible steps (raw parameters, linear layers, causal mask, multi-head, "
            "fused) and checked against PyTorch's; sinusoidal, learned and rotary positions; the "
            "transformer block and a small GPT trained on Shakespeare's characters; sampling with "
            "temperature and top-k; a KV cache; time and memory of attention as sequences grow; an encoder "
            "trained on masked characters against a decoder trained on next characters, on the same budget."
        ),
        notebooks=(
            Notebook("01-attention-step-by-step", "Self-attention, step by step", smoke_s=10, full_s=60),
            Notebook("02-positions", "Positions: sinusoidal, learned and rotary", smoke_s=45, full_s=600),
            Notebook("03-gpt-on-shakespeare", "A small GPT on Shakespeare", smoke_s=40, full_s=480),
            Notebook("04-sampling-and-kv-cache", "Sampling and the KV cache", smoke_s=30, full_s=600),
            Notebook("05-attention-scaling", "How attention scales with sequence length", smoke_s=10, full_s=300),
            Notebook(
                "06-encoder-vs-decoder",
                "Encoder vs decoder: masked-token and next-token training",
                smoke_s=45,
                full_s=300,
            ),
        ),
        exercises=(
            Exercise("ex01-causal-mask", "The causal mask", ("unit09.causal_mask",), smoke_s=10, full_s=60),
            Exercise("ex02-multi-head", "Splitting and merging heads", ("unit09.multi_head",), smoke_s=10, full_s=60),
            Exercise("ex03-kv-cache", "A KV cache", ("unit09.kv_cache",), smoke_s=20, full_s=300),
            Exercise(
                "ex04-window-prefix-masks",
                "Sliding-window and prefix-LM masks",
                ("unit09.attention_masks",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex05-mlm-masking", "BERT's masked-token corruption", ("unit09.mlm_masking",), smoke_s=15, full_s=60
            ),
        ),
        datasets=("shakespeare",),
        settings=tiers(unit09),
        builds_on="additive attention in an encoder–decoder; text as ids and embeddings.",
        prerequisites=(
            "unit 08: tokens, embeddings and additive attention",
            "units 04–06: training loops, AdamW, warm-up and cosine schedules",
        ),
        outcomes=(
            "build scaled dot-product self-attention step by step (causal mask, heads, fused) and match PyTorch's",
            "give attention positions (sinusoidal, learned, rotary) and explain why it needs them",
            "train a small GPT on Shakespeare and sample from it with temperature and top-k",
            "speed up generation with a KV cache, and measure how attention's time and memory grow with length",
        ),
        study_hours=(6, 8),
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
            Notebook(
                "01-loading-minilm",
                "Loading MiniLM: tokenizer, weights, the encoder from scratch",
                smoke_s=10,
                full_s=120,
            ),
            Notebook(
                "02-frozen-embeddings", "Frozen sentence embeddings and logistic regression", smoke_s=20, full_s=300
            ),
            Notebook("03-finetuning", "Finetuning the top layers and the whole encoder", smoke_s=40, full_s=600),
        ),
        exercises=(
            Exercise(
                "ex01-mean-pooling",
                "Mean pooling with the attention mask",
                ("unit10.mean_pooling",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex02-freezing-layers",
                "Which parameters train: layer-wise freezing",
                ("unit10.freezing",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex03-layerwise-lr",
                "Layer-wise learning-rate decay",
                ("unit10.layerwise_lr",),
                smoke_s=15,
                full_s=60,
            ),
        ),
        datasets=("minilm-l6-v2", "movie-reviews"),
        settings=tiers(unit10),
        builds_on="the transformer block and self-attention built from scratch.",
        prerequisites=(
            "unit 09: self-attention and the transformer block",
            "unit 08: the movie-review data and its bag-of-words and RNN baselines",
        ),
        outcomes=(
            "tokenise with WordPiece and load a pretrained checkpoint into your own encoder with strict checks",
            "compute sentence embeddings by mean pooling and compare sentences",
            "classify sentiment with frozen embeddings, by finetuning the top layers, and by finetuning everything",
            "compare the finetuned encoder honestly with unit 8's baselines",
        ),
        study_hours=(3, 5),
    ),
    Unit(
        number=11,
        slug="fast-training",
        title="Making training fast",
        summary=(
            "Speed and scale, every claim measured: fp32, tf32, fp16 with gradient scaling, bf16 mixed and pure "
            "bf16 on unit 9's GPT and unit 7's CNN (time per step, memory, final loss and accuracy); "
            "torch.compile timed after warm-up; gradient accumulation and activation checkpointing, which "
            "trade time for memory, and Lightning's batch-size finder, which chooses a batch by memory alone "
            "(a different batch changes the optimisation: unit 6); data parallelism for real with DDP and FSDP "
            "in PyTorch, Lightning and Fabric, run as several processes; and how the same code runs on many nodes."
        ),
        notebooks=(
            Notebook("01-precision", "Precision: fp32, tf32, fp16 with a scaler, bf16", smoke_s=25, full_s=150),
            # compiling even a tiny model with inductor takes 30-40 s on a 2-core CPU: the smoke run compiles
            # one small model once, and the budget is the maximum
            Notebook("02-compile", "torch.compile: compile time and steady-state speed", smoke_s=45, full_s=300),
            Notebook(
                "03-memory-tricks",
                "Gradient accumulation, the batch-size finder, activation checkpointing",
                smoke_s=15,
                full_s=300,
            ),
            # two processes start torch and Lightning (about 5-10 s each) before the few training steps
            Notebook(
                "04-ddp-and-fsdp", "Data parallelism for real: DDP and FSDP, several processes", smoke_s=25, full_s=300
            ),
            # two processes start torch (about 5-10 s) once for both demos
            Notebook("05-parallelism-beyond-data", "Tensor, pipeline and sequence parallelism", smoke_s=40, full_s=120),
        ),
        exercises=(
            Exercise(
                "ex01-gradient-accumulation",
                "Gradient accumulation in a plain PyTorch loop",
                ("unit11.accumulation",),
                smoke_s=10,
                full_s=60,
            ),
            Exercise(
                "ex02-precision-study",
                "A precision study: which layers float16 can hold",
                ("unit11.layer_report",),
                smoke_s=25,
                full_s=300,
            ),
            Exercise(
                "ex03-loss-scaler",
                "Dynamic loss scaling, written from scratch",
                ("unit11.loss_scaler",),
                smoke_s=15,
                full_s=120,
            ),
            Exercise(
                "ex04-tensor-parallel-mlp",
                "Tensor parallelism by hand: an MLP block over N ranks",
                ("unit11.tensor_parallel_mlp",),
                smoke_s=25,
                full_s=30,
            ),
        ),
        datasets=("shakespeare", "fashion-mnist"),
        settings=tiers(unit11),
        builds_on="a pretrained transformer finetuned; unit 9's GPT and unit 7's CNN, to be trained faster.",
        prerequisites=(
            "unit 09: the GPT and its training loop",
            "unit 07: the CNN on Fashion-MNIST",
            "units 05–06: Lightning and the training craft",
        ),
        outcomes=(
            "say what fp32, tf32, fp16 and bf16 can hold, and train with autocast and a gradient scaler",
            "time torch.compile fairly: compile time apart from the steady-state step",
            "trade time for memory with gradient accumulation and activation checkpointing, and say what "
            "Lightning's batch-size finder measures (memory) and what it does not (what is learned)",
            "run data-parallel training with DDP and FSDP as several processes, and scale it to many nodes",
        ),
        study_hours=(4, 6),
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
            Notebook(
                "01-building-blocks",
                "RMSNorm, RoPE, SwiGLU and grouped-query attention, step by step",
                smoke_s=40,
                full_s=60,
            ),
            Notebook(
                "02-loading-smollm2",
                "Loading SmolLM2: GGUF, dequantisation, the q/k permutation, safetensors",
                smoke_s=40,
                full_s=120,
            ),
            Notebook(
                "03-tokenizer",
                "Byte-level BPE from scratch, special tokens and the chat template",
                smoke_s=40,
                full_s=120,
            ),
            Notebook(
                "04-generation",
                "Chat, streaming, greedy and sampled decoding, the KV cache measured",
                smoke_s=40,
                full_s=180,
            ),
            Notebook(
                "05-perplexity-and-pretraining",
                "Perplexity, continued pretraining, a tiny LLaMA vs the GPT",
                smoke_s=40,
                full_s=600,
            ),
        ),
        exercises=(
            Exercise("ex01-rope", "Rotary position embeddings", ("unit12.rope",), smoke_s=10, full_s=60),
            Exercise("ex02-rmsnorm", "RMSNorm", ("unit12.rms_norm",), smoke_s=10, full_s=60),
            Exercise(
                "ex03-grouped-query-attention",
                "Grouped-query attention head sharing",
                ("unit12.grouped_attention",),
                smoke_s=40,
                full_s=60,
            ),
            Exercise(
                "ex04-rope-interpolation",
                "RoPE for a longer context: position interpolation",
                ("unit12.interpolated_rope",),
                smoke_s=10,
                full_s=60,
            ),
        ),
        datasets=("smollm2-135m-gguf", "shakespeare"),
        settings=tiers(unit12),
        builds_on="fast training with mixed precision; unit 9's GPT, its KV cache and rotary positions.",
        prerequisites=(
            "unit 09: the GPT, sampling, the KV cache and RoPE",
            "unit 11: mixed precision (for the full tier on a GPU)",
        ),
        outcomes=(
            "build RMSNorm, RoPE, SwiGLU and grouped-query attention and assemble them into LLaMA",
            "load SmolLM2-135M's real weights from a GGUF file, undoing the q/k permutation",
            "write a byte-level BPE tokenizer and prompt a chat model through its template",
            "decode greedily and by sampling with a KV cache, measure perplexity, and pretrain a tiny LLaMA",
        ),
        study_hours=(6, 8),
    ),
    Unit(
        number=13,
        slug="lora-adapter",
        title="LoRA and LLaMA-Adapter",
        summary=(
            "Parameter-efficient finetuning of SmolLM2-135M written from scratch: the LoRA layer (merge, unmerge, "
            "adapter-only checkpoints, a rank/alpha study), a generated instruction dataset with exact answers and "
            "response-only loss, LLaMA-Adapter v1 (zero-gated adaption prompts) and v2 (bias, scale, norms), and "
            "full finetuning vs LoRA vs Adapter compared: exact match, trainable parameters, memory, step time; "
            "in-context learning as the baseline, prompt and prefix tuning, preference tuning with DPO, and "
            "retrieval-augmented answers."
        ),
        notebooks=(
            Notebook(
                "01-lora-from-scratch",
                "LoRA from scratch: the layer, injection, merging, a rank study",
                smoke_s=40,
                full_s=60,
            ),
            Notebook(
                "02-instruction-data",
                "An instruction dataset, a prompt template and the base model's score",
                smoke_s=40,
                full_s=180,
            ),
            Notebook(
                "03-llama-adapter", "LLaMA-Adapter v1 and v2: gated prompts, bias and scale", smoke_s=40, full_s=240
            ),
            Notebook("04-finetuning-compared", "Full finetuning vs LoRA vs LLaMA-Adapter", smoke_s=45, full_s=480),
            Notebook(
                "05-in-context-learning",
                "In-context learning: zero- and few-shot prompting as the baseline",
                smoke_s=30,
                full_s=300,
            ),
            Notebook("06-prompt-and-prefix-tuning", "Prompt tuning and prefix tuning", smoke_s=45, full_s=480),
            Notebook(
                "07-preference-tuning", "Preference tuning: RLHF's idea and DPO from scratch", smoke_s=40, full_s=240
            ),
            Notebook("08-retrieval-augmented", "Retrieval-augmented answers", smoke_s=45, full_s=240),
        ),
        exercises=(
            Exercise(
                "ex01-lora-layer", "A LoRA layer with merge and unmerge", ("unit13.lora_layer",), smoke_s=10, full_s=30
            ),
            Exercise(
                "ex02-adapter-gate",
                "The adapter's zero-initialised gate",
                ("unit13.adapter_gate",),
                smoke_s=10,
                full_s=30,
            ),
            Exercise(
                "ex03-lora-embedding",
                "LoRA for an embedding table",
                ("unit13.lora_embedding",),
                smoke_s=15,
                full_s=30,
            ),
            Exercise(
                "ex04-similar-shots",
                "Choosing few-shot examples by similarity",
                ("unit13.similar_shots",),
                smoke_s=20,
                full_s=180,
            ),
            Exercise(
                "ex05-prefix-attention",
                "Attention with a key/value prefix",
                ("unit13.prefix_attention",),
                smoke_s=15,
                full_s=30,
            ),
            Exercise("ex06-ipo-loss", "The IPO preference loss", ("unit13.ipo_loss",), smoke_s=15, full_s=30),
            Exercise(
                "ex07-mmr",
                "Maximal marginal relevance: relevant and diverse context",
                ("unit13.mmr",),
                smoke_s=25,
                full_s=30,
            ),
        ),
        datasets=("smollm2-135m-gguf", "shakespeare", "minilm-l6-v2"),
        settings=tiers(unit13),
        builds_on="the LLaMA model with SmolLM2's real weights, its tokenizer and generation.",
        prerequisites=(
            "unit 12: the LLaMA model, its tokenizer, the chat template and generation",
            "unit 11: where training memory goes (weights, gradients, optimizer state)",
        ),
        outcomes=(
            "write a LoRA layer, inject it by name, merge and unmerge it, and save only the adapter",
            "build an instruction dataset with exact answers and train on the response tokens only",
            "add LLaMA-Adapter v1 (zero-gated prompts) and v2 (bias, scale and norms) to a model",
            "compare full finetuning, LoRA and LLaMA-Adapter on exact match, trainable parameters, memory and time",
            "weigh finetuning against few-shot prompts and retrieval, and tune a model on preferences with DPO",
        ),
        study_hours=(7, 9),
    ),
    Unit(
        number=14,
        slug="evaluation",
        title="Evaluation and next steps",
        summary=(
            "Confidence intervals for test accuracy (normal approximation, bootstrap, repeated runs); "
            "comparing two models honestly; calibrated confidences and conformal prediction sets; "
            "exporting a trained model for inference and serving it; "
            "scoring generated text (exact match, perplexity, BLEU, ROUGE) and where each metric misleads; "
            "where to go next; the final exam."
        ),
        notebooks=(
            Notebook("01-confidence-intervals", "Confidence intervals for test accuracy", smoke_s=15, full_s=600),
            Notebook("02-comparing-models", "Comparing two models honestly", smoke_s=15, full_s=450),
            Notebook(
                "03-trustworthy-predictions",
                "Trustworthy predictions: calibration and conformal prediction",
                smoke_s=15,
                full_s=300,
            ),
            Notebook("04-export-and-serve", "Exporting and serving a trained model", smoke_s=15, full_s=180),
            Notebook(
                "05-measuring-generated-text",
                "Measuring generated text: exact match, perplexity, BLEU and ROUGE",
                smoke_s=45,
                full_s=120,
            ),
            Notebook("06-next-steps", "Where to go next, and the final exam", smoke_s=10, full_s=20),
        ),
        exercises=(
            Exercise(
                "ex01-bootstrap-ci", "A bootstrap confidence interval", ("unit14.bootstrap_ci",), smoke_s=10, full_s=180
            ),
            Exercise(
                "ex02-paired-comparison",
                "A paired comparison of two models",
                ("unit14.paired_comparison",),
                smoke_s=10,
                full_s=300,
            ),
            Exercise(
                "ex03-permutation-test",
                "A paired permutation test",
                ("unit14.permutation_test",),
                smoke_s=15,
                full_s=300,
            ),
            Exercise(
                "ex04-class-conditional-conformal",
                "Class-conditional conformal prediction",
                ("unit14.class_conditional_conformal",),
                smoke_s=15,
                full_s=120,
            ),
            Exercise(
                "ex05-rouge-l",
                "ROUGE-L from the longest common subsequence",
                ("unit14.rouge_l",),
                smoke_s=20,
                full_s=60,
            ),
        ),
        datasets=("fashion-mnist",),
        settings=tiers(unit14),
        builds_on="every model of the course, each judged so far by one test accuracy.",
        prerequisites=(
            "unit 04: the MLP on Fashion-MNIST (retrained here)",
            "units 01–13 for the final exam",
        ),
        outcomes=(
            "put a confidence interval on a test accuracy (normal, Wilson, bootstrap, repeated runs)",
            "compare two models on the same test set with a paired bootstrap and McNemar's test",
            "calibrate a classifier's confidences and give prediction sets with a coverage guarantee",
            "export a model for inference (safetensors, torch.export) and serve it over HTTP; score generated "
            "text (exact match, perplexity, BLEU, ROUGE) knowing where each metric misleads",
            "choose where to go next, and take the final exam",
        ),
        study_hours=(3, 5),
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
