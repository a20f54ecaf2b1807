"""Library tests for dlfund.models.vit: shapes, gradients, parity with torch's own layers, parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfund.models.vit import (
    EncoderBlock,
    FeedForward,
    MultiHeadSelfAttention,
    PatchEmbedding,
    ViT,
)

TINY = {"image_size": 12, "patch_size": 4, "in_channels": 1, "num_classes": 5, "dim": 16, "depth": 2, "heads": 4}


# --- patch embedding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image_size", "patch_size", "in_channels", "dim"), [(28, 4, 1, 32), (28, 7, 1, 8), (12, 3, 3, 10)]
)
def test_patch_embedding_equals_strided_conv(image_size: int, patch_size: int, in_channels: int, dim: int) -> None:
    torch.manual_seed(0)
    embed = PatchEmbedding(image_size, patch_size, in_channels, dim)
    assert embed.num_patches == (image_size // patch_size) ** 2
    conv = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)
    with torch.no_grad():  # the documented way of copying the weights
        conv.weight.copy_(embed.proj.weight.reshape(dim, in_channels, patch_size, patch_size))
        conv.bias.copy_(embed.proj.bias)
    x = torch.randn(3, in_channels, image_size, image_size)
    out = embed(x)
    assert out.shape == (3, embed.num_patches, dim)
    torch.testing.assert_close(out, conv(x).flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, embed.to_conv()(x).flatten(2).transpose(1, 2), atol=1e-5, rtol=1e-5)


def test_patches_are_row_major_and_channel_first() -> None:
    embed = PatchEmbedding(image_size=4, patch_size=2, in_channels=2, dim=3)
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).reshape(1, 2, 4, 4)
    patches = embed.patches(x)
    assert patches.shape == (1, 4, 8)
    # patch 1 is the top-right 2×2 block; channel 0's four pixels first, row by row, then channel 1's
    assert patches[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]
    torch.testing.assert_close(patches, F.unfold(x, kernel_size=2, stride=2).transpose(1, 2))


def test_patch_embedding_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="divisible by patch_size"):
        PatchEmbedding(image_size=10, patch_size=4)
    embed = PatchEmbedding(image_size=8, patch_size=4, in_channels=1, dim=4)
    with pytest.raises(ValueError, match=r"divisible by patch_size=4, got 8×10"):
        embed(torch.randn(1, 1, 8, 10))
    with pytest.raises(ValueError, match=r"expected images \(N, 1, H, W\), got shape \(1, 3, 8, 8\)"):
        embed(torch.randn(1, 3, 8, 8))


def test_the_exercise_check_refuses_the_library_patch_embedding() -> None:
    from dlfund.checks import CheckFailed
    from dlfund.checks._unit07_vit import patch_embedding

    with pytest.raises(CheckFailed, match="the library's own PatchEmbedding"):
        patch_embedding(PatchEmbedding, seed=3)


# --- attention ----------------------------------------------------------------------------------


def test_attention_equals_nn_multihead_attention() -> None:
    torch.manual_seed(0)
    dim, heads = 24, 4
    ours = MultiHeadSelfAttention(dim, heads).eval()
    theirs = nn.MultiheadAttention(dim, heads, batch_first=True).eval()
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.proj.weight)
        theirs.out_proj.bias.copy_(ours.proj.bias)
    x = torch.randn(3, 7, dim)
    expected, expected_weights = theirs(x, x, x, need_weights=True, average_attn_weights=False)
    fused, none = ours(x)
    written_out, weights = ours(x, return_attention=True)
    assert none is None
    torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(written_out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, expected_weights, atol=1e-5, rtol=1e-5)


def test_attention_equals_manual_softmax_reference() -> None:
    torch.manual_seed(1)
    dim, heads = 12, 3
    attn = MultiHeadSelfAttention(dim, heads)
    x = torch.randn(2, 5, dim)
    out, weights = attn(x, return_attention=True)
    q, k, v = (x @ attn.qkv.weight.T + attn.qkv.bias).split(dim, dim=-1)
    split = lambda t: t.reshape(2, 5, heads, dim // heads).transpose(1, 2)  # (B, h, T, hd)
    q, k, v = split(q), split(k), split(v)
    reference = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dim // heads), dim=-1)
    torch.testing.assert_close(weights, reference, atol=1e-6, rtol=1e-5)
    merged = (reference @ v).transpose(1, 2).reshape(2, 5, dim)
    torch.testing.assert_close(out, merged @ attn.proj.weight.T + attn.proj.bias, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, 5), atol=1e-6, rtol=0)


def test_attention_rejects_indivisible_heads() -> None:
    with pytest.raises(ValueError, match="dim must be divisible by heads: got dim=10, heads=4"):
        MultiHeadSelfAttention(10, 4)


def test_encoder_block_is_pre_norm_residual() -> None:
    torch.manual_seed(2)
    block = EncoderBlock(dim=8, heads=2, mlp_dim=16).eval()
    x = torch.randn(2, 5, 8)
    y, _ = block(x)
    h = x + block.attn(block.norm1(x))[0]
    torch.testing.assert_close(y, h + block.mlp(block.norm2(h)))
    assert isinstance(block.mlp, FeedForward) and block.mlp.fc1.out_features == 16


# --- the ViT ------------------------------------------------------------------------------------


def vit_parameters(
    image_size: int,
    patch_size: int,
    in_channels: int,
    num_classes: int,
    dim: int,
    depth: int,
    heads: int,
    mlp_ratio: float = 2.0,
) -> int:
    """Count by hand: patch projection, class token, positions, blocks, final norm, head."""
    patches = (image_size // patch_size) ** 2
    hidden = int(mlp_ratio * dim)
    embed = (in_channels * patch_size**2 + 1) * dim + dim + (patches + 1) * dim
    block = 2 * 2 * dim + (dim + 1) * 3 * dim + (dim + 1) * dim + (dim + 1) * hidden + (hidden + 1) * dim
    return embed + depth * block + 2 * dim + (dim + 1) * num_classes


@pytest.mark.parametrize(
    "settings",
    [
        TINY,
        {**TINY, "patch_size": 6, "in_channels": 3, "heads": 2, "depth": 1},
        {"image_size": 28, "patch_size": 7, "in_channels": 1, "num_classes": 10, "dim": 32, "depth": 3, "heads": 4},
    ],
)
def test_vit_shapes_features_and_parameter_count(settings: dict) -> None:
    torch.manual_seed(0)
    model = ViT(**settings)
    n_tokens = (settings["image_size"] // settings["patch_size"]) ** 2 + 1
    x = torch.randn(3, settings["in_channels"], settings["image_size"], settings["image_size"])
    logits = model(x)
    assert logits.shape == (3, settings["num_classes"])
    assert model.tokens(x).shape == (3, n_tokens, settings["dim"])
    features = model.features(x)
    assert features.shape == (3, settings["dim"])
    torch.testing.assert_close(model.head(features), logits)
    assert isinstance(model.head, nn.Linear)
    assert sum(p.numel() for p in model.parameters()) == vit_parameters(**settings)


def test_vit_attention_maps() -> None:
    torch.manual_seed(0)
    model = ViT(**TINY).eval()
    x = torch.randn(2, 1, 12, 12)
    logits, attentions = model(x, return_attention=True)
    torch.testing.assert_close(logits, model(x), atol=1e-5, rtol=1e-5)  # the written-out path = the fused path
    assert len(attentions) == TINY["depth"]
    for weights in attentions:
        assert weights.shape == (2, TINY["heads"], 10, 10)
        assert (weights >= 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, TINY["heads"], 10), atol=1e-5, rtol=0)


def test_vit_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = ViT(**TINY, dropout=0.1)
    x, y = torch.randn(4, 1, 12, 12), torch.randint(0, 5, (4,))
    F.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_vit_class_token_and_positions_matter() -> None:
    """Without positions a ViT could not tell a patch grid from a shuffled one; with them it can."""
    torch.manual_seed(0)
    model = ViT(**TINY).eval()
    x = torch.randn(1, 1, 12, 12)
    shuffled = x.reshape(1, 1, 3, 4, 3, 4).flip(2).reshape(1, 1, 12, 12)  # patch rows in reverse order
    assert not torch.allclose(model(x), model(shuffled), atol=1e-4)
    with torch.no_grad():
        model.pos_embed.zero_()
    torch.testing.assert_close(model(x), model(shuffled), atol=1e-5, rtol=1e-5)  # permutation invariant


def test_vit_rejects_wrong_image_size() -> None:
    model = ViT(**TINY)
    with pytest.raises(ValueError, match=r"expected 12×12 images \(9 patches\), got shape \(1, 1, 16, 16\)"):
        model(torch.randn(1, 1, 16, 16))


def test_vit_learns_a_tiny_task() -> None:
    """A few AdamW steps on a fixed batch drive the loss down: the model can fit."""
    torch.manual_seed(0)
    model = ViT(**TINY)
    x, y = torch.randn(16, 1, 12, 12), torch.randint(0, 5, (16,))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# --- parity with the notebook that builds the ViT step by step -----------------------------------


def notebook_definitions() -> dict:
    from dlfund.course import manifest
    from dlfund.course.notebooks import definitions

    path = manifest.get_unit(7).notebook_path("06-vision-transformer")
    return definitions(path, names=("patchify", "SelfAttention", "MyViT"))


def test_notebook_vit_matches_the_library() -> None:
    nb = notebook_definitions()
    torch.manual_seed(0)
    x = torch.randn(3, 1, 12, 12)
    torch.testing.assert_close(nb["patchify"](x, 4), PatchEmbedding(12, 4, 1, 8).patches(x))

    mine, library = nb["SelfAttention"](16, 4), MultiHeadSelfAttention(16, 4)
    library.load_state_dict(mine.state_dict())
    tokens = torch.randn(2, 10, 16)
    out, weights = mine(tokens)
    lib_out, lib_weights = library(tokens, return_attention=True)
    torch.testing.assert_close(out, lib_out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(weights, lib_weights, atol=1e-6, rtol=1e-5)

    settings = {**TINY, "mlp_ratio": 2.0}
    my_vit, lib_vit = nb["MyViT"](**settings), ViT(**settings)
    lib_vit.load_state_dict(my_vit.state_dict())
    logits, attentions = my_vit(x)
    lib_logits, lib_attentions = lib_vit(x, return_attention=True)
    torch.testing.assert_close(logits, lib_logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(attentions, lib_attentions, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
