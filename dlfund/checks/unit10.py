"""Checks for unit 10 (finetuning a pretrained transformer): mean pooling with the mask, layer-wise freezing,
and layer-wise learning-rate decay.

Each check draws fresh random sizes (the seed is printed in failure messages, so a failure can be
replayed with ``seed=...``), compares with the library's reference, and when the answer differs
tries the typical mistakes to say which one was made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from dlfund.checks._core import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fresh_seed,
    passed,
)
from dlfund.models.encoder import Encoder, EncoderClassifier, EncoderConfig, freeze_layers, mean_pool

__all__ = ["mean_pooling", "freezing", "layerwise_lr"]

Tensor = torch.Tensor


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", type(obj).__name__)


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach(), b.detach(), atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# ex01: mean pooling


def mean_pooling(fn: Callable[[Tensor, Tensor], Tensor], *, seed: int | None = None) -> None:
    """Check ``fn(hidden, mask) -> pooled``: ``hidden (B, T, H)``, ``mask (B, T)`` bool (True at real tokens,
    at least one per row) → ``(B, H)``, the mean of each row's real positions.

    Values and gradients are compared with ``dlfund.models.encoder.mean_pool``; padded positions are
    filled with large noise, which must not change the result.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    b, t, h = int(torch.randint(3, 6, (), generator=gen)), int(torch.randint(6, 10, (), generator=gen)), 5
    lengths = torch.randint(1, t, (b,), generator=gen)
    lengths[0] = t  # one full row, the others padded
    mask = torch.arange(t)[None, :] < lengths[:, None]
    hidden = torch.randn(b, t, h, generator=gen) + 3.0  # non-zero mean: sums and means differ
    call = f"{_name(fn)}(hidden {tuple(hidden.shape)}, mask {tuple(mask.shape)})"

    leaf = hidden.clone().requires_grad_(True)
    out = call_learner(fn, leaf, mask.clone(), what=call)
    expect(isinstance(out, Tensor), f"{call} should return a tensor, found {type(out).__name__}")
    expect(
        out.shape == (b, h),
        f"{call} should return shape (B, H) = {(b, h)}, one vector per sequence, found "
        f"{tuple(out.shape)} {where}"
        + (": average over dim=1 (the positions), not dim=0 or -1" if out.shape in ((t, h), (b, t)) else ""),
    )
    expect(
        out.dtype == hidden.dtype,
        f"{call} should return {hidden.dtype} (like hidden), found {out.dtype} {where}: "
        "convert the bool mask with .to(hidden.dtype) or .float()",
    )
    ref = mean_pool(hidden, mask)
    if not _close(out, ref):
        lengths_f = lengths.to(hidden.dtype)[:, None]
        mistakes = [
            (
                hidden.mean(dim=1),
                "the mean over all T positions, padding included: multiply by the mask and divide "
                "by the number of real tokens",
            ),
            (
                mean_pool(hidden, mask) * lengths_f,
                "the sum over the real tokens, not their mean: divide by each row's "
                "number of real tokens, mask.sum(dim=1)",
            ),
            (
                mean_pool(hidden, mask) * lengths_f / t,
                "the sum over the real tokens divided by the padded length T: "
                "divide by each row's own number of real tokens",
            ),
        ]
        for wrong, message in mistakes:
            if _close(out, wrong):
                raise CheckFailed(f"{call} returned {message} {where}")
        inverted = mean_pool(hidden[1:], ~mask[1:])  # rows 1.. all have padding
        if _close(out[1:], inverted):
            raise CheckFailed(
                f"{call} returned the mean over the padded positions {where}: the mask is True at "
                "real tokens, False at padding"
            )
    expect(bool(torch.isfinite(out).all()), f"{call} returned NaN or inf {where}")
    expect_close(out, ref, f"{call}: pooled vectors {where}", atol=1e-5, rtol=1e-4)

    grad_out = torch.randn(b, h, generator=gen)
    expect(
        out.requires_grad,
        f"{call}: no gradient reached hidden {where}: use torch operations (no .detach(), "
        ".item() or numpy), finetuning trains through the pooling",
    )
    (out * grad_out).sum().backward()
    ref_leaf = hidden.clone().requires_grad_(True)
    (mean_pool(ref_leaf, mask) * grad_out).sum().backward()
    expect(
        leaf.grad is not None,
        f"{call}: no gradient reached hidden {where}: use torch operations (no .detach(), "
        ".item() or numpy), finetuning trains through the pooling",
    )
    expect_close(leaf.grad, ref_leaf.grad, f"{call}: gradient of hidden {where}", atol=1e-5, rtol=1e-4)
    expect(
        bool(leaf.grad[~mask].abs().max() == 0) if bool((~mask).any()) else True,
        f"{call}: padded positions received gradient {where}",
    )

    noisy = hidden.masked_fill(~mask[..., None], 0.0) + 1000 * torch.randn(b, t, h, generator=gen) * (~mask[..., None])
    out2 = call_learner(fn, noisy, mask.clone(), what=call)
    expect(
        _close(out2, ref),
        f"{call}: changing the hidden states at padded positions changed the result {where}: padding must not count",
    )
    expect(torch.equal(mask, torch.arange(t)[None, :] < lengths[:, None]), f"{call} changed mask in place {where}")
    passed(
        f"mean pooling: values and gradients match mean_pool on {b} sequences of up to {t} tokens; padding is ignored"
    )


# ---------------------------------------------------------------------------------------------
# ex02: layer-wise freezing


def _tiny_classifier(n_layers: int, gen: torch.Generator) -> EncoderClassifier:
    config = EncoderConfig(
        vocab_size=40,
        hidden_size=16,
        num_hidden_layers=n_layers,
        num_attention_heads=2,
        intermediate_size=24,
        max_position_embeddings=12,
    )
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=gen)))
    return EncoderClassifier(Encoder(config), 2)


def _trainable(model: EncoderClassifier) -> dict[str, bool]:
    return {name: p.requires_grad for name, p in model.named_parameters()}


def _check_count(
    count_trainable: Callable[[torch.nn.Module], Any], model: torch.nn.Module, want: int, when: str, where: str
) -> None:
    call = f"{_name(count_trainable)}(model) {when}"
    got = call_learner(count_trainable, model, what=call)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    expect(
        isinstance(got, int) and not isinstance(got, bool),
        f"{call} should return an int (a number of parameters), found {type(got).__name__} {got!r}",
    )
    if got == want:
        return
    params = list(model.parameters())
    total = sum(p.numel() for p in params)
    if got == sum(1 for p in params if p.requires_grad):
        why = "that is the number of trainable tensors: count their elements, p.numel()"
    elif got == total:
        why = "that is every parameter: count only those with p.requires_grad"
    elif got == total - want:
        why = "that is the frozen parameters: count those with p.requires_grad True"
    else:
        why = "sum p.numel() over the parameters with p.requires_grad"
    raise CheckFailed(f"{call} returned {got:,}, expected {want:,} trainable numbers {where}: {why}")


def freezing(
    fn: Callable[[EncoderClassifier, int | None], Any],
    count_trainable: Callable[[torch.nn.Module], Any] | None = None,
    *,
    seed: int | None = None,
) -> None:
    """Check ``fn(model, k)`` on an :class:`~dlfund.models.encoder.EncoderClassifier`: afterwards exactly the
    head and the top ``k`` encoder layers require gradients (``k=None``: every parameter, embeddings
    included), whatever was trainable before the call. With ``count_trainable``, also check that
    ``count_trainable(model)`` returns the number of trainable numbers (elements, not tensors) each time.

    Counts of trainable parameters are compared exactly; the head must train, the embeddings and
    lower layers must not.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    n = int(torch.randint(3, 6, (), generator=gen))
    model = _tiny_classifier(n, gen)
    layer_size = sum(p.numel() for p in model.encoder.layers[0].parameters())
    head_size = sum(p.numel() for p in model.head.parameters())
    total = sum(p.numel() for p in model.parameters())
    middle = int(torch.randint(1, n, (), generator=gen))
    # None first (everything trainable), so a version that forgets to freeze before unfreezing is caught.
    for k in (None, middle, 0, n, 1, None):
        call = f"{_name(fn)}(model with {n} layers, {k})"
        call_learner(fn, model, k, what=call)
        flags = _trainable(model)
        found = sum(p.numel() for p in model.parameters() if p.requires_grad)
        if count_trainable is not None:
            _check_count(count_trainable, model, found, f"after {call}", where)
        if k is None:
            frozen = [name for name, on in flags.items() if not on]
            expect(
                not frozen,
                f"{call}: with k=None every parameter should train, but {len(frozen)} are frozen, e.g. "
                f"{frozen[:3]} {where}",
            )
            continue
        expected = head_size + k * layer_size
        expect(
            all(flags[name] for name in flags if name.startswith("head.")),
            f"{call}: the head must be trainable (it starts random), but head parameters have requires_grad=False "
            f"{where}",
        )
        on_embeddings = [name for name in flags if name.startswith("encoder.embeddings.") and flags[name]]
        expect(
            not on_embeddings,
            f"{call}: the embeddings should be frozen, but {on_embeddings[:2]} require gradients {where}",
        )
        layer_on = [any(p.requires_grad for p in layer.parameters()) for layer in model.encoder.layers]
        layer_all = [all(p.requires_grad for p in layer.parameters()) for layer in model.encoder.layers]
        want = [i >= n - k for i in range(n)]
        if layer_on != want:
            if layer_on == [i < k for i in range(n)] and k not in (0, n):
                raise CheckFailed(
                    f"{call}: the bottom {k} layers train, but the top ones should (the layers "
                    f"nearest the head: model.encoder.layers[{n - k}:]) {where}"
                )
            if sum(layer_on) > k:
                raise CheckFailed(
                    f"{call}: {sum(layer_on)} layers train (layers {[i for i, on in enumerate(layer_on) if on]}), "
                    f"expected the top {k} ({list(range(n - k, n))}) {where}: switch requires_grad off "
                    "everywhere first, since the model may have been trainable before the call"
                )
            raise CheckFailed(
                f"{call}: trainable layers {[i for i, on in enumerate(layer_on) if on]}, expected the top "
                f"{k}: {list(range(n - k, n))} {where}"
            )
        expect(
            layer_all == want,
            f"{call}: a trainable layer should train all its parameters (attention, "
            f"feed-forward, both LayerNorms) {where}",
        )
        expect(
            found == expected,
            f"{call}: {found:,} trainable parameters, expected exactly {expected:,} (head "
            f"{head_size:,} + {k} × {layer_size:,} per layer) of {total:,} {where}",
        )
    passed(
        f"freezing: exact trainable counts for k in 0..{n} and None on a {n}-layer encoder; the head trains, "
        "the embeddings and lower layers do not"
    )


# ---------------------------------------------------------------------------------------------
# ex03: layer-wise learning-rate decay


def _blocks(model: EncoderClassifier) -> dict[int, str]:
    """``id(parameter) -> block``: "embeddings", "layer i" (0 nearest the input) or "head"."""
    block = {id(p): "embeddings" for p in model.encoder.embeddings.parameters()}
    for i, layer in enumerate(model.encoder.layers):
        block.update({id(p): f"layer {i}" for p in layer.parameters()})
    block.update({id(p): "head" for p in model.head.parameters()})
    return block


def _expected_lr(model: EncoderClassifier, lr: float, decay: float) -> dict[str, float]:
    n = len(model.encoder.layers)
    rates = {"head": lr, "embeddings": lr * decay ** (n + 1)}
    rates.update({f"layer {i}": lr * decay ** (n - i) for i in range(n)})
    return rates


def _decays(model: EncoderClassifier) -> set[int]:
    """ids of the parameters that take weight decay: matrices outside the embeddings and the LayerNorms."""
    no_decay = {id(p) for p in model.encoder.embeddings.parameters()}
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters())
    return {id(p) for p in model.parameters() if p.ndim >= 2 and id(p) not in no_decay}


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1e-30)


def _read_groups(groups: Any, call: str, where: str) -> list[tuple[list[Any], Any, Any]]:
    """The learner's groups as ``(params, lr, weight_decay)``, with generators turned into lists."""
    expect(
        isinstance(groups, list | tuple) and all(isinstance(g, dict) for g in groups),
        f"{call} should return a list of dicts (optimizer parameter groups), found {type(groups).__name__} {where}",
    )
    read = []
    for n, group in enumerate(groups):
        expect("params" in group, f"{call}: group {n} has no 'params' key {where}; its keys: {sorted(group)}")
        for key in ("lr", "weight_decay"):
            expect(
                key in group,
                f"{call}: group {n} has no {key!r} {where}: every group needs its own {key!r}, or the "
                "optimizer's single default applies to it",
            )
            value = group[key]
            expect(
                isinstance(value, int | float) and not isinstance(value, bool),
                f"{call}: group {n}'s {key!r} should be a number, found {type(value).__name__} {value!r} {where}",
            )
        params = group["params"]
        try:
            params = [params] if isinstance(params, Tensor) else list(params)
        except TypeError:
            raise CheckFailed(
                f"{call}: group {n}'s 'params' should be a list of parameters, found {type(params).__name__} {where}"
            ) from None
        read.append((params, float(group["lr"]), float(group["weight_decay"])))
    return read


def _judge_groups(
    fn: Callable[..., Any], model: EncoderClassifier, lr: float, decay: float, weight_decay: float, where: str
) -> list[tuple[list[Any], float, float]]:
    n = len(model.encoder.layers)
    call = f"{_name(fn)}(model with {n} layers, lr={lr:g}, decay={decay:g}, weight_decay={weight_decay:g})"
    groups = _read_groups(call_learner(fn, model, lr, decay, weight_decay, what=call), call, where)
    names = {id(p): name for name, p in model.named_parameters()}
    block = _blocks(model)
    found: dict[int, tuple[float, float]] = {}
    for params, group_lr, group_wd in groups:
        for p in params:
            expect(
                isinstance(p, Tensor) and id(p) in names,
                f"{call}: a group holds {type(p).__name__} that is not a parameter of the model {where}",
            )
            expect(
                id(p) not in found,
                f"{call}: {names[id(p)]} is in two groups {where}: every parameter must be in exactly one "
                "(the optimizer refuses duplicates); was a block added twice, or the whole model added "
                "after its parts?",
            )
            found[id(p)] = (group_lr, group_wd)
    frozen = [name for name, p in model.named_parameters() if id(p) in found and not p.requires_grad]
    expect(
        not frozen,
        f"{call}: frozen parameters (requires_grad=False) were put into groups, e.g. {frozen[:2]} {where}: leave "
        "them out; only the parameters that train belong in the optimizer",
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    missing = [p for p in trainable if id(p) not in found]
    if missing:
        missing_blocks = sorted({block[id(p)] for p in missing})
        if missing_blocks == ["embeddings"]:
            raise CheckFailed(
                f"{call}: the embeddings are in no group {where}: they train too, at the smallest rate; "
                f"missing e.g. {[names[id(p)] for p in missing[:2]]}"
            )
        raise CheckFailed(
            f"{call}: {len(missing)} trainable parameters are in no group ({', '.join(missing_blocks)}), e.g. "
            f"{names[id(missing[0])]} {where}: every trainable parameter must be in exactly one group"
        )

    # Learning rates, block by block.
    rates = _expected_lr(model, lr, decay)
    by_block: dict[str, set[float]] = {}
    for p in trainable:
        by_block.setdefault(block[id(p)], set()).add(found[id(p)][0])
    mixed = [b for b, got in by_block.items() if len(got) > 1]
    if mixed:
        b = mixed[0]
        wrong = [p for p in trainable if block[id(p)] == b and not _same(found[id(p)][0], rates[b])]
        if wrong and all(p.ndim < 2 or id(p) not in _decays(model) for p in wrong) and b != "embeddings":
            raise CheckFailed(
                f"{call}: in {b} the biases and LayerNorm parameters got lr {found[id(wrong[0])][0]:.4g}, the "
                f"weight matrices another {where}: the parameters without weight decay need their block's rate "
                f"too ({rates[b]:.4g} for {b}); split each block by weight decay, not the whole model"
            )
        p = wrong[0] if wrong else next(p for p in trainable if block[id(p)] == b)
        raise CheckFailed(
            f"{call}: the parameters of {b} have different learning rates {sorted(by_block[b])} {where}; all of "
            f"{b} should get {rates[b]:.4g} (e.g. {names[id(p)]} got {found[id(p)][0]:.4g})"
        )
    got = {b: next(iter(r)) for b, r in by_block.items()}
    wrong_blocks = [b for b in got if not _same(got[b], rates[b])]
    if wrong_blocks:
        layers = [f"layer {i}" for i in range(n) if f"layer {i}" in got]

        def pattern(rate: Callable[[int], float]) -> bool:
            return bool(layers) and all(_same(got[b], rate(int(b.split()[1]))) for b in layers)

        table = ", ".join(f"{b} {got[b]:.3g} (expected {rates[b]:.3g})" for b in wrong_blocks[:3])
        if pattern(lambda i: lr * decay ** (i + 1)):
            message = (
                "the rates grow towards the input: the layer next to the embeddings (layer 0) should get the "
                "smallest rate of the layers and the top layer (nearest the head) the largest"
            )
        elif pattern(lambda i: lr * decay ** (n - 1 - i)):
            message = (
                "the exponent is off by one: the top layer got the head's rate lr; it should get lr·decay, "
                "one step below the head"
            )
        elif pattern(lambda i: lr * decay ** (n - i + 1)):
            message = "the exponent is off by one: the top layer got lr·decay², it should get lr·decay"
        elif "head" in wrong_blocks and _same(got["head"], lr * decay):
            message = "the head was decayed: the new head gets the full rate lr"
        elif wrong_blocks == ["embeddings"] and any(_same(got["embeddings"], got[b]) for b in [*layers, "head"]):
            message = (
                "the embeddings share a rate with another block: they sit below layer 0, one more step of decay down"
            )
        else:
            message = "head lr, the top layer lr·decay, each layer below one more factor of decay"
        raise CheckFailed(f"{call} {where}: {message}; found {table}")

    # Weight decay: matrices only.
    decays = _decays(model)
    for p in trainable:
        want = weight_decay if id(p) in decays else 0.0
        if _same(found[id(p)][1], want):
            continue
        what = names[id(p)]
        if id(p) in decays:
            raise CheckFailed(
                f"{call}: the weight matrix {what} got weight decay {found[id(p)][1]:g}, expected {weight_decay:g} "
                f"{where}: weight matrices outside the embeddings take the weight decay"
            )
        kind = "embedding table" if block[id(p)] == "embeddings" and p.ndim >= 2 else "bias or LayerNorm parameter"
        raise CheckFailed(
            f"{call}: the {kind} {what} got weight decay {found[id(p)][1]:g} {where}: biases, LayerNorm "
            "parameters and embedding tables take no weight decay (0.0)"
        )
    try:
        torch.optim.AdamW([{"params": ps, "lr": g_lr, "weight_decay": wd} for ps, g_lr, wd in groups if ps])
    except Exception as err:
        raise CheckFailed(f"torch.optim.AdamW refused the groups of {call}: {err} {where}") from err
    return groups


def layerwise_lr(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(model, lr, decay, weight_decay)`` on an :class:`~dlfund.models.encoder.EncoderClassifier`:
    it returns optimizer parameter groups (dicts with ``params``, ``lr`` and ``weight_decay``) in which

    - the head trains at ``lr``, encoder layer ``i`` of ``n`` (0 nearest the input) at
      ``lr · decay ** (n - i)``, and the embeddings at ``lr · decay ** (n + 1)``;
    - weight matrices outside the embeddings take ``weight_decay``; biases, LayerNorm parameters
      and embedding tables 0;
    - every trainable parameter is in exactly one group, and frozen ones in none.

    Verified on small random encoders with a random number of layers, ``decay`` and learning rate,
    trainable and partly frozen; the groups must also be accepted by ``torch.optim.AdamW``.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    n = int(torch.randint(3, 6, (), generator=gen))
    model = _tiny_classifier(n, gen)

    def uniform(low: float, high: float, digits: int) -> float:
        return round(float(torch.empty(()).uniform_(low, high, generator=gen)), digits)

    # never 1 and never a usual default, so each mistake changes some rate
    lr, weight_decay = uniform(2e-4, 9e-4, 6), uniform(0.02, 0.09, 3)
    decays = [uniform(0.6, 0.9, 2), uniform(0.3, 0.5, 2)]
    for decay in decays:
        _judge_groups(fn, model, lr, decay, weight_decay, where)
    frozen_below = int(torch.randint(1, n, (), generator=gen))
    freeze_layers(model, n - frozen_below)  # embeddings and the bottom layers frozen
    _judge_groups(fn, model, lr, decays[0], weight_decay, where)
    passed(
        f"layer-wise learning rates: every trainable parameter of a {n}-layer encoder in exactly one group, at "
        "its layer's rate and with weight decay on matrices only, frozen ones left out"
    )
