"""Unit 09, Self-attention from scratch: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class AttentionSteps(Settings):
    """The toy attention of notebook 01: its inputs and its heads."""

    dim: int = doc("numbers per token in the toy inputs")
    heads: int = doc("heads of the multi-head attention built step by step (they split the token width)")
    tokens: int = doc("tokens in each toy sequence")


@dataclass(frozen=True)
class Positions(Settings):
    """One small model per kind of position, notebook 02."""

    layers: int = doc("transformer blocks of each model")
    heads: int = doc("attention heads per block")
    dim: int = doc("numbers per token, the width of each model")
    context: int = doc("characters each model sees at once (its context length)")
    batch: int = doc("sequences per training batch")
    steps: int = doc("most training steps of each model")
    time_s: int = doc("wall-clock training budget in seconds; training stops at whichever of steps or time comes first")
    lr: float = doc("peak AdamW learning rate (warm-up, then cosine decay)")


@dataclass(frozen=True)
class GPTRun(Settings):
    """The GPT trained on Shakespeare in notebook 03."""

    layers: int = doc("transformer blocks")
    heads: int = doc("attention heads per block")
    dim: int = doc("numbers per token, the width of the model")
    context: int = doc("characters the model sees at once (its context length)")
    dropout: float = doc("dropout probability in the model (0: none)")
    batch: int = doc("sequences per training batch")
    lr: float = doc("peak AdamW learning rate (warm-up, then cosine decay)")
    steps: int = doc("most training steps")
    time_s: int = doc("wall-clock training budget in seconds; training stops at whichever of steps or time comes first")
    warmup: int = doc("steps over which the learning rate rises linearly to its peak")
    eval_every: int = doc("training steps between validation-loss measurements (and one at the end)")
    eval_batches: int = doc("validation batches averaged for each validation loss")
    compile: bool = doc("compile the model before training (CUDA only; ignored elsewhere)")
    target: float | None = doc("validation loss in nats per character the full tier must reach (None: not checked)")


@dataclass(frozen=True)
class GenerationModel(Settings):
    """The model trained for sampling and the KV cache, notebook 04 and exercise 3."""

    layers: int = doc("transformer blocks")
    heads: int = doc("attention heads per block")
    dim: int = doc("numbers per token, the width of the model")
    context: int = doc("characters the model sees at once (its context length)")
    batch: int = doc("sequences per training batch")
    steps: int = doc("most training steps")
    time_s: int = doc(
        "wall-clock training budget in seconds (exercise 3 uses half); training stops at "
        "whichever of steps or time comes first"
    )
    lr: float = doc("peak AdamW learning rate (warm-up, then cosine decay)")


@dataclass(frozen=True)
class KVCacheTiming(Settings):
    """The KV-cache timing of notebook 04."""

    prompt: int = doc("characters in each prompt, taken from the validation text")
    new_tokens: int = doc("characters generated per prompt, timed with and without the cache")
    batch: int = doc("prompts generated together in one batch")
    target_speedup: float | None = doc("how many times faster the cache must make generation (None: not checked)")


@dataclass(frozen=True)
class Scaling(Settings):
    """Time and memory of attention against sequence length, notebook 05."""

    lengths: tuple[int, ...] = doc("sequence lengths timed, in tokens")
    dim: int = doc("numbers per token, split evenly over the heads")
    heads: int = doc("attention heads")
    batch: int = doc("sequences per batch")
    min_run_s: float = doc("seconds each timing repeats for, at least, before the median is taken")


@dataclass(frozen=True)
class EncoderDecoder(Settings):
    """The encoder and the decoder of notebook 06: same characters, same size, same training budget."""

    layers: int = doc("transformer blocks of each model")
    heads: int = doc("attention heads per block")
    dim: int = doc("numbers per token, the width of each model")
    context: int = doc("characters each model sees at once (its context length)")
    batch: int = doc("windows per training batch (both models see the same windows)")
    steps: int = doc("training steps of each model (the same for both)")
    lr: float = doc("peak AdamW learning rate (warm-up, then cosine decay)")
    warmup: int = doc("steps over which the learning rate rises linearly to its peak")
    mask_share: float = doc("probability that the encoder's training blanks a character")
    blank_every: int = doc("in the fill-a-blank test, one character in this many is blanked (evenly spaced)")
    eval_every: int = doc("training steps between measurements on the validation windows")
    eval_windows: int = doc("validation windows of the unseen plays used for every measurement")
    first_gap: float | None = doc(
        "how much higher (a share, 0 to 1) the encoder's fill-a-blank accuracy must be than the decoder's at the "
        "window's first position, where the decoder reads a single character (None: not checked)"
    )


@dataclass(frozen=True)
class Unit09(Settings):
    """The settings of unit 09."""

    attn: AttentionSteps = doc("The toy attention of notebook 01: its inputs and its heads.")
    positions: Positions = doc("One small model per kind of position, notebook 02.")
    gpt: GPTRun = doc("The GPT trained on Shakespeare in notebook 03.")
    gen: GenerationModel = doc("The model trained for sampling and the KV cache, notebook 04 and exercise 3.")
    kv: KVCacheTiming = doc("The KV-cache timing of notebook 04.")
    scaling: Scaling = doc("Time and memory of attention against sequence length, notebook 05.")
    encdec: EncoderDecoder = doc("The encoder and the decoder of notebook 06: same characters, size and budget.")


SMOKE = Unit09(
    attn=AttentionSteps(dim=16, heads=4, tokens=6),
    positions=Positions(layers=2, heads=4, dim=64, context=64, batch=32, steps=400, time_s=6, lr=0.003),
    gpt=GPTRun(
        layers=2,
        heads=4,
        dim=64,
        context=64,
        dropout=0.0,
        batch=32,
        lr=0.003,
        steps=3000,
        time_s=20,
        warmup=50,
        eval_every=100,
        eval_batches=5,
        compile=False,
        target=None,
    ),
    gen=GenerationModel(layers=2, heads=4, dim=64, context=128, batch=16, steps=3000, time_s=12, lr=0.003),
    kv=KVCacheTiming(prompt=16, new_tokens=96, batch=4, target_speedup=None),
    scaling=Scaling(lengths=(64, 128, 256, 512, 1024, 2048), dim=64, heads=4, batch=1, min_run_s=0.05),
    encdec=EncoderDecoder(
        layers=2,
        heads=4,
        dim=64,
        context=32,
        batch=32,
        steps=600,
        lr=0.006,
        warmup=60,
        mask_share=0.15,
        blank_every=8,
        eval_every=100,
        eval_windows=2048,
        first_gap=None,
    ),
)

FULL = Unit09(
    attn=AttentionSteps(dim=16, heads=4, tokens=6),
    positions=Positions(layers=4, heads=4, dim=128, context=128, batch=64, steps=5000, time_s=90, lr=0.002),
    gpt=GPTRun(
        layers=6,
        heads=6,
        dim=384,
        context=256,
        dropout=0.2,
        batch=64,
        lr=0.001,
        steps=30000,
        time_s=300,
        warmup=200,
        eval_every=500,
        eval_batches=40,
        compile=True,
        target=1.45,
    ),
    gen=GenerationModel(layers=6, heads=6, dim=384, context=640, batch=32, steps=30000, time_s=120, lr=0.001),
    kv=KVCacheTiming(prompt=64, new_tokens=512, batch=64, target_speedup=3.0),
    scaling=Scaling(lengths=(256, 512, 1024, 2048, 4096, 8192, 16384), dim=512, heads=8, batch=4, min_run_s=0.2),
    encdec=EncoderDecoder(
        layers=4,
        heads=4,
        dim=128,
        context=64,
        batch=64,
        steps=4000,
        lr=0.003,
        warmup=200,
        mask_share=0.15,
        blank_every=8,
        eval_every=250,
        eval_windows=2048,
        first_gap=0.1,
    ),
)
