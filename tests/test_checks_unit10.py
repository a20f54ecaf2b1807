"""The unit-10 checks accept the committed solutions and the library, and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import unit10
from dlfund.models.encoder import freeze_layers, mean_pool

# --- ex01: mean pooling ----------------------------------------------------------------------------


def pooling_variant(kind: str):
    """A learner's mean_pooling with one typical mistake."""

    def mean_pooling(hidden, mask):
        m = mask.to(hidden.dtype)[..., None]
        if kind == "all":  # forgot the mask
            return hidden.mean(dim=1)
        if kind == "sum":  # forgot to divide
            return (hidden * m).sum(1)
        if kind == "by_T":  # divided by the padded length
            return (hidden * m).sum(1) / hidden.shape[1]
        if kind == "inverted":  # mask read the wrong way round
            return (hidden * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1)
        if kind == "detach":
            return mean_pool(hidden.detach(), mask)
        if kind == "float_mask":  # returns float64
            return mean_pool(hidden.double(), mask)
        if kind == "dim0":
            return (hidden * m).sum(0) / m.sum(0)
        raise ValueError(kind)

    return mean_pooling


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooling_accepts_solution_and_library(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit10.mean_pooling(solution(10, "ex01-mean-pooling", "mean_pooling"), seed=seed)
    unit10.mean_pooling(mean_pool, seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ mean pooling")


def test_pooling_rejects_stub() -> None:
    rejects(unit10.mean_pooling, stub, match=r"is not implemented yet.*hint: write this function")


POOLING_MISTAKES = [
    ("all", r"mean over all T positions, padding included"),
    ("sum", r"the sum over the real tokens, not their mean"),
    ("by_T", r"divided by the padded length T"),
    ("inverted", r"mean over the padded positions .*the mask is True at real tokens"),
    ("detach", r"no gradient reached hidden"),
    ("float_mask", r"should return torch.float32"),
    ("dim0", r"should return shape \(B, H\)"),
]


@pytest.mark.seeds
def test_pooling_rejects_typical_mistakes_on_every_seed() -> None:
    for seed in range(50):
        for kind, match in POOLING_MISTAKES:
            rejects(unit10.mean_pooling, pooling_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_solutions_pass_on_every_seed() -> None:
    pooling = solution(10, "ex01-mean-pooling", "mean_pooling")
    freeze, count = solution(10, "ex02-freezing-layers", "freeze", "count_trainable")
    for seed in range(200):
        unit10.mean_pooling(pooling, seed=seed)
        unit10.freezing(freeze, count, seed=seed)


@pytest.mark.parametrize(("kind", "match"), POOLING_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_pooling_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit10.mean_pooling, pooling_variant(kind), match=match, seed=seed)


# --- ex02: freezing --------------------------------------------------------------------------------


def freeze_variant(kind: str):
    def freeze(model, k):
        if kind == "no_reset":  # only switches things on
            if k is None:
                model.requires_grad_(True)
                return
            model.encoder.embeddings.requires_grad_(False)
            for layer in model.encoder.layers[len(model.encoder.layers) - k :]:
                layer.requires_grad_(True)
            model.head.requires_grad_(True)
            return
        model.requires_grad_(k is None)
        if k is None:
            return
        layers = model.encoder.layers
        chosen = layers[:k] if kind == "bottom" else layers[len(layers) - k :]
        for layer in chosen:
            layer.requires_grad_(True)
        if kind != "head_frozen":
            model.head.requires_grad_(True)
        if kind == "embeddings_on":
            model.encoder.embeddings.requires_grad_(True)
        if kind == "norms_frozen":
            for layer in chosen:
                layer.norm1.requires_grad_(False)

    if kind == "none_frozen":

        def freeze_none(model, k):  # k=None treated as "head only"
            freeze_layers(model, 0 if k is None else k)

        return freeze_none
    return freeze


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_freezing_accepts_solution_and_library(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit10.freezing(*solution(10, "ex02-freezing-layers", "freeze", "count_trainable"), seed=seed)
    unit10.freezing(freeze_layers, seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ freezing")


def test_freezing_rejects_stub() -> None:
    rejects(unit10.freezing, stub, match=r"is not implemented yet")


def count_variant(kind: str):
    def count_trainable(model):
        params = list(model.parameters())
        if kind == "tensors":
            return sum(1 for p in params if p.requires_grad)
        if kind == "all":
            return sum(p.numel() for p in params)
        if kind == "frozen":
            return sum(p.numel() for p in params if not p.requires_grad)
        if kind == "float":
            return float(sum(p.numel() for p in params if p.requires_grad))
        return sum(p.numel() for p in params if p.requires_grad)

    return count_trainable


COUNT_MISTAKES = [
    ("tensors", r"number of trainable tensors: count their elements"),
    ("all", r"that is every parameter: count only those with p.requires_grad"),
    ("frozen", r"that is the frozen parameters"),
    ("float", r"should return an int"),
]

FREEZE_MISTAKES = [
    ("bottom", r"the bottom \d layers train, but the top ones should"),
    ("head_frozen", r"the head must be trainable"),
    ("embeddings_on", r"the embeddings should be frozen"),
    ("no_reset", r"switch requires_grad off everywhere first"),
    ("norms_frozen", r"a trainable layer should train all its parameters"),
    ("none_frozen", r"with k=None every parameter should train"),
]


@pytest.mark.parametrize(("kind", "match"), FREEZE_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_freezing_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit10.freezing, freeze_variant(kind), match=match, seed=seed)


@pytest.mark.parametrize(("kind", "match"), COUNT_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_count_trainable_mistakes_are_rejected(kind: str, match: str, seed: int) -> None:
    rejects(unit10.freezing, freeze_layers, count_variant(kind), match=match, seed=seed)


def test_freezing_accepts_a_right_count() -> None:
    unit10.freezing(freeze_layers, count_variant("right"), seed=3)


@pytest.mark.seeds
def test_freezing_rejects_typical_mistakes_on_every_seed() -> None:
    for seed in range(50):
        for kind, match in FREEZE_MISTAKES:
            rejects(unit10.freezing, freeze_variant(kind), match=match, seed=seed)
        for kind, match in COUNT_MISTAKES:
            rejects(unit10.freezing, freeze_layers, count_variant(kind), match=match, seed=seed)


def test_count_trainable_solution() -> None:
    from dlfund.models.encoder import Encoder, EncoderClassifier, EncoderConfig

    count = solution(10, "ex02-freezing-layers", "count_trainable")
    model = EncoderClassifier(
        Encoder(
            EncoderConfig(
                vocab_size=20,
                hidden_size=8,
                num_hidden_layers=2,
                num_attention_heads=2,
                intermediate_size=8,
                max_position_embeddings=8,
            )
        ),
        2,
    )
    freeze_layers(model, 0)
    assert count(model) == 8 * 2 + 2
    freeze_layers(model, None)
    assert count(model) == sum(p.numel() for p in model.parameters())


# --- ex03: layer-wise learning-rate decay ----------------------------------------------------------


def lr_variant(kind: str = "right"):
    """A learner's layerwise_lr_groups with one typical mistake."""

    def layerwise_lr_groups(model, lr, decay, weight_decay):
        layers = list(model.encoder.layers)
        n = len(layers)
        depth = {
            "reversed": lambda i: i + 1,  # the bottom layer gets the largest rate
            "off_by_one": lambda i: n - 1 - i,  # the top layer gets the head's rate
        }.get(kind, lambda i: n - i)
        blocks = [(layer, depth(i)) for i, layer in enumerate(layers)]
        if kind != "embeddings_forgotten":
            blocks.insert(0, (model.encoder.embeddings, n if kind == "embeddings_as_bottom" else n + 1))
        blocks.append((model.head, 1 if kind == "head_decayed" else 0))
        if kind == "duplicated":  # the head once more, "to be sure it trains"
            blocks.append((model.head, 0))
        groups, flat = [], []
        for module, d in blocks:
            decayed, plain = [], []
            for sub in module.modules():
                for name, p in sub.named_parameters(recurse=False):
                    if p.requires_grad or kind == "frozen_included":
                        (decayed if isinstance(sub, torch.nn.Linear) and name == "weight" else plain).append(p)
            if kind == "no_decay_flat":  # biases and norms collected across the model, at the head's rate
                flat, plain = flat + plain, []
            for params, wd in ((decayed, weight_decay), (plain, weight_decay if kind == "wd_everywhere" else 0.0)):
                if params:
                    group = {"params": params, "weight_decay": wd}
                    if kind != "missing_lr":
                        group["lr"] = lr * decay**d
                    groups.append(group)
        if flat:
            groups.append({"params": flat, "lr": lr, "weight_decay": 0.0})
        return groups

    return layerwise_lr_groups


LR_MISTAKES = [
    ("reversed", r"the rates grow towards the input"),
    ("off_by_one", r"exponent is off by one: the top layer got the head's rate"),
    ("embeddings_forgotten", r"the embeddings are in no group"),
    ("embeddings_as_bottom", r"the embeddings share a rate with another block"),
    ("head_decayed", r"the head was decayed"),
    ("duplicated", r"head\.weight is in two groups"),
    ("frozen_included", r"frozen parameters \(requires_grad=False\) were put into groups"),
    ("no_decay_flat", r"the biases and LayerNorm parameters got lr .*split each block by weight decay"),
    ("wd_everywhere", r"the (bias or LayerNorm parameter|embedding table) \S+ got weight decay"),
    ("missing_lr", r"group \d+ has no 'lr'"),
]


def test_layerwise_lr_accepts_solution(capsys: pytest.CaptureFixture[str]) -> None:
    groups_fn = solution(10, "ex03-layerwise-lr", "layerwise_lr_groups")
    for seed in range(3):
        unit10.layerwise_lr(groups_fn, seed=seed)
        unit10.layerwise_lr(lr_variant(), seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ layer-wise learning rates")


def test_layerwise_lr_rejects_stub_and_odd_answers() -> None:
    rejects(unit10.layerwise_lr, stub, match=r"is not implemented yet")
    rejects(unit10.layerwise_lr, lambda *args: None, match=r"should return a list of dicts")
    rejects(unit10.layerwise_lr, lambda m, *args: [{"params": 3, "lr": 1.0, "weight_decay": 0.0}], match=r"'params'")
    rejects(
        unit10.layerwise_lr,
        lambda m, lr, *args: [{"params": [torch.zeros(2)], "lr": lr, "weight_decay": 0.0}],
        match=r"not a parameter of the model",
    )
    rejects(
        unit10.layerwise_lr,
        lambda m, lr, *args: [{"params": m.parameters(), "lr": "big", "weight_decay": 0.0}],
        match=r"'lr' should be a number",
    )


@pytest.mark.parametrize(("kind", "match"), LR_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_layerwise_lr_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit10.layerwise_lr, lr_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), LR_MISTAKES)
def test_layerwise_lr_rejects_typical_mistakes_on_every_seed(kind: str, match: str) -> None:
    for seed in range(50):
        rejects(unit10.layerwise_lr, lr_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_layerwise_lr_solution_passes_on_every_seed() -> None:
    groups_fn = solution(10, "ex03-layerwise-lr", "layerwise_lr_groups")
    for seed in range(200):
        unit10.layerwise_lr(groups_fn, seed=seed)
