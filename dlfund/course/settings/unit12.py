"""Unit 12, LLaMA from scratch: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class Perplexity(Settings):
    """Perplexity of SmolLM2 on held-out Shakespeare, notebook 05."""

    context: int = doc("tokens per held-out window")
    batch: int = doc("windows per batch")
    batches: int = doc("batches whose loss is averaged into the perplexity")


@dataclass(frozen=True)
class ContinuedPretraining(Settings):
    """Continued pretraining of SmolLM2 on Shakespeare, notebook 05."""

    context: int = doc("tokens per training window")
    batch: int = doc("windows per training step")
    steps: int = doc("most training steps (a tenth of them warm-up)")
    lr: float = doc("peak AdamW learning rate, small because the model is already trained")
    time_s: int = doc("wall-clock training budget in seconds; training stops at whichever of steps or time comes first")
    must_improve: bool = doc("whether the held-out perplexity must fall after training")


@dataclass(frozen=True)
class TinyLlama(Settings):
    """A tiny LLaMA from scratch against unit 9's GPT, notebook 05."""

    layers: int = doc("transformer blocks of both models")
    heads: int = doc("attention (query) heads per block of both models")
    kv_heads: int = doc("key and value heads of the LLaMA's grouped-query attention")
    dim: int = doc("numbers per token, the width of both models")
    context: int = doc("characters each model sees at once (its context length)")
    batch: int = doc("windows per training batch")
    lr: float = doc("peak AdamW learning rate (warm-up, then cosine decay)")
    steps: int = doc("most training steps of each model")
    time_s: int = doc("wall-clock training budget in seconds; training stops at whichever of steps or time comes first")
    warmup: int = doc("steps over which the learning rate rises linearly to its peak")
    eval_every: int = doc("training steps between validation-loss measurements (and one at the end)")
    eval_batches: int = doc("validation batches averaged for each validation loss")


@dataclass(frozen=True)
class Unit12(Settings):
    """The settings of unit 12."""

    bpe_lines: int = doc("lines of the held-out Shakespeare plays both tokenizers must encode identically")
    max_new_tokens: int = doc("tokens generated per chat answer and per Shakespeare sample")
    kv_new_tokens: int = doc("tokens generated when timing generation with and without the KV cache")
    sample_seed: int = doc("seed of the random sampling, so that samples repeat")
    text_chars: int | None = doc("characters kept of each Shakespeare split, training and held-out (None: all)")
    ppl: Perplexity = doc("Perplexity of SmolLM2 on held-out Shakespeare, notebook 05.")
    continued: ContinuedPretraining = doc("Continued pretraining of SmolLM2 on Shakespeare, notebook 05.")
    tiny: TinyLlama = doc("A tiny LLaMA from scratch against unit 9's GPT, notebook 05.")


SMOKE = Unit12(
    bpe_lines=2000,
    max_new_tokens=16,
    kv_new_tokens=12,
    sample_seed=0,
    text_chars=100000,
    ppl=Perplexity(context=64, batch=2, batches=2),
    continued=ContinuedPretraining(context=32, batch=2, steps=2, lr=3e-05, time_s=20, must_improve=False),
    tiny=TinyLlama(
        layers=2,
        heads=4,
        kv_heads=2,
        dim=64,
        context=64,
        batch=16,
        lr=0.003,
        steps=150,
        time_s=3,
        warmup=10,
        eval_every=50,
        eval_batches=4,
    ),
)

FULL = Unit12(
    bpe_lines=20000,
    max_new_tokens=200,
    kv_new_tokens=256,
    sample_seed=0,
    text_chars=None,
    ppl=Perplexity(context=512, batch=8, batches=20),
    continued=ContinuedPretraining(context=512, batch=16, steps=300, lr=3e-05, time_s=240, must_improve=True),
    tiny=TinyLlama(
        layers=6,
        heads=6,
        kv_heads=2,
        dim=384,
        context=256,
        batch=64,
        lr=0.001,
        steps=20000,
        time_s=120,
        warmup=200,
        eval_every=500,
        eval_batches=40,
    ),
)
