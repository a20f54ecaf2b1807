"""Every step of unit 9's attention computes the same function, and matches PyTorch's attention."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models.attention import (
    CausalSelfAttention,
    FusedMultiHeadAttention,
    LinearSelfAttention,
    MultiHeadAttention,
    RawSelfAttention,
    attention_weights,
    causal_mask,
    load_attention_weights,
    merge_heads,
    naive_attention,
    split_heads,
)

DIM, HEADS = 24, 4


def _weights(dim: int, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(dim, dim, generator=gen) / dim**0.5 for name in ("q", "k", "v", "out")}


def _build(kind: str, causal: bool, heads: int) -> nn.Module:
    return {
        "raw": lambda: RawSelfAttention(DIM, causal=causal),
        "linear": lambda: LinearSelfAttention(DIM, causal=causal),
        "causal": lambda: CausalSelfAttention(DIM),
        "multihead": lambda: MultiHeadAttention(DIM, heads, causal=causal),
        "fused": lambda: FusedMultiHeadAttention(DIM, heads, causal=causal),
    }[kind]()


def _torch_reference(x: torch.Tensor, w: dict[str, torch.Tensor], heads: int, causal: bool) -> torch.Tensor:
    ref = nn.MultiheadAttention(DIM, heads, bias=False, batch_first=True)
    load_attention_weights(ref, w["q"], w["k"], w["v"], w["out"])
    mask = ~causal_mask(x.shape[1]) if causal else None  # nn.MultiheadAttention: True = not allowed
    return ref(x, x, x, attn_mask=mask, need_weights=False)[0]


SINGLE_HEAD_CASES = [
    (kind, causal)
    for kind in ("raw", "linear", "causal", "multihead", "fused")
    for causal in (True, False)
    if causal or kind != "causal"
]  # CausalSelfAttention is always causal


@pytest.mark.parametrize(("kind", "causal"), SINGLE_HEAD_CASES)
def test_single_head_versions_agree_with_torch(kind: str, causal: bool) -> None:
    """With one head and an identity output projection every step is the same function as torch's."""
    torch.manual_seed(0)
    w = _weights(DIM)
    module = _build(kind, causal, heads=1)
    load_attention_weights(module, w["q"], w["k"], w["v"])
    x = torch.randn(3, 11, DIM)
    expected = _torch_reference(x, {**w, "out": torch.eye(DIM)}, 1, causal)
    torch.testing.assert_close(module(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("kind", ["multihead", "fused"])
def test_multi_head_versions_agree_with_torch(kind: str, causal: bool) -> None:
    torch.manual_seed(1)
    w = _weights(DIM, seed=1)
    module = _build(kind, causal, heads=HEADS)
    load_attention_weights(module, w["q"], w["k"], w["v"], w["out"])
    x = torch.randn(2, 9, DIM)
    torch.testing.assert_close(module(x), _torch_reference(x, w, HEADS, causal), atol=1e-5, rtol=0)


def test_multi_head_is_single_heads_side_by_side() -> None:
    """Head i of MultiHeadAttention is a single-head attention on features i·d..(i+1)·d, then o_proj."""
    torch.manual_seed(2)
    w = _weights(DIM, seed=2)
    mha = MultiHeadAttention(DIM, HEADS)
    load_attention_weights(mha, w["q"], w["k"], w["v"], w["out"])
    x = torch.randn(2, 7, DIM)
    d = DIM // HEADS
    outs = []
    for i in range(HEADS):
        rows = slice(i * d, (i + 1) * d)
        q, k, v = x @ w["q"][rows].T, x @ w["k"][rows].T, x @ w["v"][rows].T
        outs.append(naive_attention(q, k, v, causal=True))
    expected = torch.cat(outs, dim=-1) @ w["out"].T
    torch.testing.assert_close(mha(x), expected, atol=1e-5, rtol=0)


def test_weights_round_trip_and_naive_matches_sdpa() -> None:
    w = _weights(DIM, seed=3)
    fused = FusedMultiHeadAttention(DIM, HEADS)
    load_attention_weights(fused, w["q"], w["k"], w["v"], w["out"])
    for name, value in attention_weights(fused).items():
        assert torch.equal(value, w[name])
    q, k, v = torch.randn(3, 2, 4, 10, 8).unbind(0)
    for causal in (True, False):
        torch.testing.assert_close(
            naive_attention(q, k, v, causal=causal),
            F.scaled_dot_product_attention(q, k, v, is_causal=causal),
            atol=1e-5,
            rtol=0,
        )


def test_split_merge_heads() -> None:
    x = torch.arange(2 * 3 * 8.0).reshape(2, 3, 8)
    heads = split_heads(x, 2)
    assert heads.shape == (2, 2, 3, 4)
    assert torch.equal(heads[:, 1], x[..., 4:])  # head 1 holds the second half of the features
    assert torch.equal(merge_heads(heads), x)
    with pytest.raises(ValueError, match="not divisible by heads=3"):
        split_heads(x, 3)


def test_causal_attention_ignores_the_future() -> None:
    torch.manual_seed(4)
    for module in (
        RawSelfAttention(DIM, causal=True),
        CausalSelfAttention(DIM),
        MultiHeadAttention(DIM, HEADS),
        FusedMultiHeadAttention(DIM, HEADS),
    ):
        x = torch.randn(2, 10, DIM)
        changed = x.clone()
        changed[:, 6] += 5.0
        a, b = module(x), module(changed)
        torch.testing.assert_close(a[:, :6], b[:, :6], atol=1e-6, rtol=0)
        assert (a[:, 6:] - b[:, 6:]).abs().max() > 1e-3


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"expects input of shape \(B, T, 24\), got \(2, 5, 23\)"):
        MultiHeadAttention(DIM, HEADS)(torch.randn(2, 5, 23))
    with pytest.raises(ValueError, match="not divisible by heads=5"):
        FusedMultiHeadAttention(DIM, 5)
    with pytest.raises(ValueError, match="has biases"):
        load_attention_weights(MultiHeadAttention(DIM, HEADS, bias=True), *_weights(DIM).values())
    with pytest.raises(ValueError, match="no output projection"):
        load_attention_weights(LinearSelfAttention(DIM), *_weights(DIM).values())


def test_notebook_steps_match_the_library() -> None:
    """The classes notebook 01 builds step by step, under the library's names, compute what the library's compute."""
    path = manifest.get_unit(9).notebook_path("01-attention-step-by-step")
    library_classes = (
        RawSelfAttention,
        LinearSelfAttention,
        CausalSelfAttention,
        MultiHeadAttention,
        FusedMultiHeadAttention,
    )
    nb = definitions(path, names=tuple(cls.__name__ for cls in library_classes))
    torch.manual_seed(5)
    w = _weights(DIM, seed=5)
    x = torch.randn(2, 8, DIM)
    pairs = [
        (nb[cls.__name__](*args), cls(*args))
        for cls, args in zip(library_classes, [(DIM,), (DIM,), (DIM,), (DIM, HEADS), (DIM, HEADS)])
    ]
    for mine, library in pairs:
        mine.load_state_dict(library.state_dict())  # the notebook keeps the library's parameter names
        load_attention_weights(
            library,
            w["q"],
            w["k"],
            w["v"],
            None if isinstance(library, LinearSelfAttention | RawSelfAttention) else w["out"],
        )
        mine.load_state_dict(library.state_dict())
        torch.testing.assert_close(mine(x), library(x), atol=1e-5, rtol=0)
