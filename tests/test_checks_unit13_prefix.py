"""The unit-13 prefix-attention check accepts right answers and names every usual mistake."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import unit13
from dlfund.models.llama import GroupedQueryAttention, LlamaConfig
from dlfund.models.transformer import apply_rope, causal_attention
from dlfund.peft.prompt import PrefixAttention


def prefix_variant(mistake: str = ""):
    """A learner's prefix_attention with one typical mistake switched on (written with torch's fused kernel,
    as a learner would, not like the check's written-out reference)."""

    def prefix_attention(q, k, v, prefix_k, prefix_v, cos, sin):
        b, h, t, d = q.shape
        h_kv, p = prefix_k.shape[0], prefix_k.shape[1]
        groups = h // h_kv
        if mistake == "in place":
            q.mul_(1.0)
            k[..., 0] = k[..., 0] * 1.5
        if mistake != "no rope":
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if mistake == "rope prefix":
            prefix_k = apply_rope(prefix_k, cos[:p], sin[:p])
        if mistake == "not expanded":
            pk, pv = prefix_k[None], prefix_v[None]
        elif mistake == "batch mixed":
            pk = prefix_k.repeat_interleave(b, 0).view(b, h_kv, p, d)
            pv = prefix_v.repeat_interleave(b, 0).view(b, h_kv, p, d)
        else:
            pk, pv = prefix_k.expand(b, -1, -1, -1), prefix_v.expand(b, -1, -1, -1)
        if mistake == "separate":
            rep = lambda x: x.repeat_interleave(groups, 1)
            text = torch.nn.functional.scaled_dot_product_attention(q, rep(k), rep(v), is_causal=True)
            return text + torch.nn.functional.scaled_dot_product_attention(q, rep(pk), rep(pv))
        if mistake == "appended":
            keys, values = torch.cat([k, pk], 2), torch.cat([v, pv], 2)
        elif mistake == "no prefix":
            keys, values = k, v
        else:
            keys, values = torch.cat([pk, k], 2), torch.cat([pv, v], 2)
        if mistake == "tiled":
            keys, values = keys.repeat(1, groups, 1, 1), values.repeat(1, groups, 1, 1)
        else:
            keys, values = keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1)
        if mistake == "masked":
            return torch.nn.functional.scaled_dot_product_attention(q, keys, values, is_causal=True)
        scale = {"scale by width": 1 / math.sqrt(h * d), "no scale": 1.0}.get(mistake)
        if scale is not None:
            n = keys.shape[2]
            allowed = torch.ones(t, n, dtype=torch.bool).tril(diagonal=n - t)
            return torch.nn.functional.scaled_dot_product_attention(q, keys, values, attn_mask=allowed, scale=scale)
        return causal_attention(q, keys, values)  # bottom-right aligned: every query sees the whole prefix

    return prefix_attention


def library_in_disguise(q, k, v, prefix_k, prefix_v, cos, sin):
    """The library's PrefixAttention.attend called on the rotated inputs: refused."""
    config = LlamaConfig(
        vocab_size=8,
        dim=q.shape[1] * q.shape[3],
        n_layers=1,
        n_heads=q.shape[1],
        n_kv_heads=k.shape[1],
        hidden_dim=8,
        context_length=64,
    )
    attn = PrefixAttention(config, prefix_k.shape[1])
    with torch.no_grad():
        attn.prefix_key.copy_(prefix_k), attn.prefix_value.copy_(prefix_v)
    return attn.attend(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution_and_a_variant_without_mistakes(seed, capsys):
    unit13.prefix_attention(solution(13, "ex05-prefix-attention", "prefix_attention"), seed=seed)
    unit13.prefix_attention(prefix_variant(), seed=seed)
    assert capsys.readouterr().out.startswith("✓ prefix attention")


def test_rejects_the_stub_and_the_library():
    rejects(unit13.prefix_attention, stub, match=r"prefix_attention.* is not implemented yet")
    rejects(unit13.prefix_attention, library_in_disguise, match=r"library's own dlfund.peft.prompt.PrefixAttention")


def test_rejects_wrong_shapes_and_types_without_crashing():
    rejects(unit13.prefix_attention, lambda *a: None, match=r"should return a tensor")
    rejects(unit13.prefix_attention, lambda q, *a: q[:, :2], match=r"should return shape \(B, h, T, d\)")
    rejects(unit13.prefix_attention, lambda q, *a: q / 0 * 0, match=r"inf or nan")
    rejects(unit13.prefix_attention, lambda *a: 1 / 0, match=r"ZeroDivisionError")


MISTAKES = [
    ("masked", r"the prefix is under the causal mask"),
    ("no prefix", r"the prefix is not attended to at all"),
    ("rope prefix", r"prefix keys were rotated by RoPE"),
    ("no rope", r"RoPE is missing"),
    ("appended", r"prepend it"),
    ("separate", r"its own softmax"),
    ("tiled", r"repeated as a tile"),
    ("not expanded", r"works for one: expand the prefix to the batch"),
    ("batch mixed", r"copied to the batch in the wrong order"),
    ("scale by width", r"√\(h·d\)"),
    ("no scale", r"not divided by √d"),
    ("in place", r"changed its input (q|k) in place"),
]


@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistake, match, seed):
    rejects(unit13.prefix_attention, prefix_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistake, match):
    for seed in range(50):
        rejects(unit13.prefix_attention, prefix_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(13, "ex05-prefix-attention", "prefix_attention")
    for seed in range(200):
        unit13.prefix_attention(fn, seed=seed)


def test_the_check_reference_is_the_librarys_layer():
    """The check's written-out answer equals the library's PrefixAttention on the same inputs (so the
    exercise teaches what the lecture's models do)."""
    gen = torch.Generator().manual_seed(0)
    config = LlamaConfig(vocab_size=8, dim=48, n_layers=1, n_heads=8, n_kv_heads=2, hidden_dim=8, context_length=64)
    attn = PrefixAttention(config, 5)
    with torch.no_grad():
        attn.prefix_key.normal_(generator=gen), attn.prefix_value.normal_(generator=gen)
    q, k, v = (
        torch.randn(3, 8, 7, 6, generator=gen),
        torch.randn(3, 2, 7, 6, generator=gen),
        torch.randn(3, 2, 7, 6, generator=gen),
    )
    cos, sin = torch.randn(7, 6, generator=gen).cos(), torch.randn(7, 6, generator=gen).sin()
    from dlfund.checks._unit13_prefix import _attention

    with torch.no_grad():
        expected = attn.attend(apply_rope(q, cos, sin), apply_rope(k, cos, sin), v)
        assert torch.allclose(_attention(q, k, v, attn.prefix_key, attn.prefix_value, cos, sin), expected, atol=1e-5)
    assert isinstance(attn, GroupedQueryAttention)
