"""Checks for unit 10 (finetuning a pretrained transformer): mean pooling with the mask, and layer-wise freezing.

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
from dlfund.models.encoder import Encoder, EncoderClassifier, EncoderConfig, mean_pool

__all__ = ["mean_pooling", "freezing"]

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
