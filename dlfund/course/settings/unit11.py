"""Unit 11, Making training fast: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class GPTTask(Settings):
    """Unit 9's GPT on Shakespeare characters: notebooks 01 and 03, exercises 1 and 2."""

    layers: int = doc("transformer blocks")
    dim: int = doc("numbers per token, the width of the model")
    heads: int = doc("attention heads per block")
    context: int = doc("characters per training window (the context length)")
    batch: int = doc("windows per batch in the precision runs")
    steps: int = doc("training steps of each precision run")
    lr: float = doc("learning rate of the precision runs")


@dataclass(frozen=True)
class CNNTask(Settings):
    """Unit 7's SmallCNN on Fashion-MNIST: notebook 01."""

    width: int = doc("channels of the CNN's first stage (later stages have 2 and 4 times as many)")
    batch: int = doc("images per training batch")
    steps: int = doc("training steps of each precision run")
    n_train: int = doc("Fashion-MNIST training images, drawn at random")
    n_test: int = doc("Fashion-MNIST test images the accuracy is measured on")
    lr: float = doc("learning rate of the precision runs")


@dataclass(frozen=True)
class CompileRun(Settings):
    """Compiling a GPT with torch.compile, notebook 02."""

    layers: int = doc("transformer blocks")
    dim: int = doc("numbers per token, the width of the model (4 heads below 384, else 6)")
    context: int = doc("characters per training window (the context length)")
    batch: int = doc("windows per batch")
    steps: int = doc("timed steps, after warm-up, of the eager and of the compiled model")
    speedup_target: float | None = doc("speed-up compiled steps must reach, full tier on a GPU (None: not checked)")


@dataclass(frozen=True)
class Accumulation(Settings):
    """Gradient accumulation: notebook 03 and exercise 1."""

    batch: int = doc("windows in the whole batch (also the batch of the GPT in notebook 03)")
    micro: int = doc("micro-batches the whole batch is split into")


@dataclass(frozen=True)
class ScalerRun(Settings):
    """Unit 9's GPT trained in float16 with a loss scaler: exercise 3."""

    layers: int = doc("transformer blocks")
    dim: int = doc("numbers per token, the width of the model")
    heads: int = doc("attention heads per block")
    context: int = doc("characters per training window (the context length)")
    batch: int = doc("windows per batch")
    steps: int = doc("training steps, each run once with your scaler and once with PyTorch's")


@dataclass(frozen=True)
class BatchSizeFinder(Settings):
    """Lightning's batch-size finder, notebook 03."""

    max_trials: int = doc("batch sizes tried at most, the first included (on a CPU the finder always stops there)")
    init_batch: int = doc("first batch size tried, in windows; each trial doubles it")


@dataclass(frozen=True)
class Checkpointing(Settings):
    """Activation checkpointing, notebook 03."""

    layers: int = doc("transformer blocks")
    dim: int = doc("numbers per token, the width of the model (4 heads below 384, else 12)")
    context: int = doc("characters per training window (the context length)")
    batch: int = doc("windows per batch")
    steps: int = doc("training steps measured with and without checkpointing")


@dataclass(frozen=True)
class DataParallel(Settings):
    """DDP and FSDP as several processes, notebook 04."""

    steps: int = doc("training steps, each on one global batch")
    global_batch: int = doc("windows per step, shared out over the processes")
    layers: int = doc("transformer blocks")
    dim: int = doc("numbers per token, the width of the model (2 heads below 384, else 6)")
    context: int = doc("characters per training window (the context length)")
    nproc: int | None = doc("processes (ranks) launched (None: one per GPU, or 2 on a CPU)")


@dataclass(frozen=True)
class ModelParallel(Settings):
    """Tensor, pipeline and sequence parallelism: notebook 05 (two CPU processes) and exercise 4."""

    dim: int = doc("numbers per token: the width of the MLP block and of the pipelined blocks")
    hidden: int = doc("hidden width of the tensor-parallel MLP block (split over the processes)")
    batch: int = doc("rows (tokens) in the batch each demo runs forward and backward once")
    blocks: int = doc("blocks in the pipelined stack, shared out over the processes")
    micro: int = doc("micro-batches the batch is cut into for the pipeline")
    tokens: int = doc("tokens of the sequence in the sequence-parallel demonstration")
    chunks: int = doc("slices the sequence is cut into in the sequence-parallel demonstration")


@dataclass(frozen=True)
class Unit11(Settings):
    """The settings of unit 11."""

    corpus_chars: int | None = doc("characters of Shakespeare training text used (None: all of it)")
    bf16_speedup_target: float | None = doc(
        "how many times faster than fp32 a bf16-mixed GPT step must be, full tier on a GPU (None: not checked)"
    )
    loss_tolerance: float | None = doc(
        "largest relative gap between bf16-mixed and fp32 validation loss, full tier on a GPU (None: not checked)"
    )
    gpt: GPTTask = doc("Unit 9's GPT on Shakespeare characters: notebooks 01 and 03, exercises 1 and 2.")
    cnn: CNNTask = doc("Unit 7's SmallCNN on Fashion-MNIST: notebook 01.")
    compile: CompileRun = doc("Compiling a GPT with torch.compile, notebook 02.")
    accum: Accumulation = doc("Gradient accumulation: notebook 03 and exercise 1.")
    scaler: ScalerRun = doc("Unit 9's GPT trained in float16 with a loss scaler: exercise 3.")
    finder: BatchSizeFinder = doc("Lightning's batch-size finder, notebook 03.")
    checkpointing: Checkpointing = doc("Activation checkpointing, notebook 03.")
    dist: DataParallel = doc("DDP and FSDP as several processes, notebook 04.")
    model_parallel: ModelParallel = doc(
        "Tensor, pipeline and sequence parallelism: notebook 05 (two CPU processes) and exercise 4."
    )


SMOKE = Unit11(
    corpus_chars=200000,
    bf16_speedup_target=None,
    loss_tolerance=None,
    gpt=GPTTask(layers=2, dim=64, heads=4, context=64, batch=16, steps=30, lr=0.001),
    cnn=CNNTask(width=8, batch=32, steps=24, n_train=2000, n_test=1000, lr=0.002),
    compile=CompileRun(layers=1, dim=64, context=64, batch=16, steps=20, speedup_target=None),
    accum=Accumulation(batch=32, micro=4),
    scaler=ScalerRun(layers=1, dim=32, heads=2, context=32, batch=8, steps=30),
    finder=BatchSizeFinder(max_trials=3, init_batch=8),
    checkpointing=Checkpointing(layers=4, dim=64, context=128, batch=8, steps=5),
    dist=DataParallel(steps=4, global_batch=8, layers=2, dim=32, context=32, nproc=2),
    model_parallel=ModelParallel(dim=512, hidden=2048, batch=256, blocks=4, micro=4, tokens=12, chunks=3),
)

FULL = Unit11(
    corpus_chars=None,
    bf16_speedup_target=2.5,
    loss_tolerance=0.02,
    gpt=GPTTask(layers=6, dim=384, heads=6, context=256, batch=64, steps=600, lr=0.001),
    cnn=CNNTask(width=32, batch=256, steps=600, n_train=60000, n_test=10000, lr=0.002),
    compile=CompileRun(layers=6, dim=384, context=256, batch=64, steps=50, speedup_target=1.3),
    accum=Accumulation(batch=256, micro=8),
    scaler=ScalerRun(layers=2, dim=128, heads=4, context=128, batch=32, steps=300),
    finder=BatchSizeFinder(max_trials=12, init_batch=32),
    checkpointing=Checkpointing(layers=12, dim=768, context=512, batch=16, steps=10),
    dist=DataParallel(steps=20, global_batch=64, layers=6, dim=384, context=256, nproc=None),
    model_parallel=ModelParallel(dim=1024, hidden=4096, batch=512, blocks=8, micro=8, tokens=64, chunks=4),
)
