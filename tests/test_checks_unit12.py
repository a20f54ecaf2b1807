"""The unit-12 checks accept the committed solutions and the library, and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import unit12
from dlfund.models.llama import RMSNorm, repeat_kv
from dlfund.models.transformer import apply_rope, rope_tables

# --- ex01: RoPE ------------------------------------------------------------------------------------


def library_rope(x, positions, theta=10000.0):
    cos, sin = rope_tables(int(positions.max()) + 1, x.shape[-1], theta)
    return apply_rope(x, cos[positions], sin[positions])


def rope_variant(kind: str):
    def rope(x, positions, theta=10000.0):
        d = x.shape[-1]
        exponent = torch.arange(0, d, 2, dtype=torch.float32) / d
        if kind == "freq_i_over_d":
            exponent = exponent / 2
        if kind == "freq_4i_over_d":
            exponent = exponent * 2
        if kind == "positive_exponent":
            exponent = -exponent
        if kind == "no_positions":
            positions = torch.arange(x.shape[-2])
        if kind == "fixed_theta":
            theta = 10000.0
        angles = positions.float()[:, None] * theta ** (-exponent)
        cos, sin = angles.cos(), angles.sin()
        if kind == "adjacent":
            x1, x2 = x[..., 0::2], x[..., 1::2]
            return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)
        if kind == "backwards":
            sin = -sin
        if kind == "scaled":  # not a rotation: lengths change
            return rope_variant("right")(x, positions, theta) * 1.5
        if kind == "absolute":  # adds a position-dependent vector: not relative
            return x + positions.float()[:, None] * 0.1
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    return rope


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rope_accepts_solution_and_library(seed, capsys):
    unit12.rope(solution(12, "ex01-rope", "rope"), seed=seed)
    unit12.rope(rope_variant("right"), seed=seed + 20)
    assert capsys.readouterr().out.startswith("✓ rope")


def test_rope_rejects_stub():
    rejects(unit12.rope, stub, match=r"is not implemented yet.*hint: write this function")


ROPE_MISTAKES = [
    ("adjacent", r"rotates adjacent pairs \(0, 1\), \(2, 3\).*rotate half"),
    ("backwards", r"rotates the wrong way"),
    ("freq_i_over_d", r"frequencies theta\^\(-i/d\)"),
    ("no_positions", r"ignores `positions`"),
    ("scaled", r"vector lengths \(a rotation keeps them\)"),
    ("absolute", r"vector lengths|must depend on the distance m - n only"),
    ("freq_4i_over_d", r"frequencies theta\^\(-4i/d\)"),
    ("positive_exponent", r"frequencies theta\^\(\+2i/d\)"),
    ("fixed_theta", r"ignores `theta` \(uses 10000\)"),
]


def rope_mistake(kind: str):
    return library_rope if kind == "library" else rope_variant(kind)


ROPE_MISTAKES.append(("library", r"this is the library's own (apply_rope|rope_tables): write yours"))


@pytest.mark.parametrize(("kind", "match"), ROPE_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_rope_rejects_typical_mistakes(kind, match, seed):
    rejects(unit12.rope, rope_mistake(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), ROPE_MISTAKES)
def test_rope_rejects_typical_mistakes_on_every_seed(kind, match):
    for seed in range(50):
        rejects(unit12.rope, rope_mistake(kind), match=match, seed=seed)


# --- ex02: RMSNorm ---------------------------------------------------------------------------------


def norm_variant(kind: str):
    class Norm(nn.Module):
        def __init__(self, dim, eps=1e-5):
            super().__init__()
            self.eps = 1e-5 if kind == "fixed_eps" else eps
            self.weight = nn.Parameter(torch.ones(dim))
            if kind == "bias":
                self.bias = nn.Parameter(torch.zeros(dim))
            if kind == "init_zero":
                nn.init.zeros_(self.weight)

        def forward(self, x):
            x32 = x if kind == "no_upcast" else x.float()
            ms = x32.pow(2).mean(-1, keepdim=True)
            if kind == "no_eps":
                out = x32 * torch.rsqrt(ms)
            elif kind == "eps_outside":
                out = x32 / (ms.sqrt() + self.eps)
            elif kind == "layernorm":
                out = F.layer_norm(x32, x32.shape[-1:], eps=self.eps)
            elif kind == "sum":
                out = x32 * torch.rsqrt(x32.pow(2).sum(-1, keepdim=True) + self.eps)
            elif kind == "dim0":
                out = x32 * torch.rsqrt(x32.pow(2).mean(0, keepdim=True) + self.eps)
            elif kind == "detach":
                out = x32.detach() * torch.rsqrt(ms.detach() + self.eps)
            else:
                out = x32 * torch.rsqrt(ms + self.eps)
            if kind == "no_weight":
                return out
            if kind == "float_out":
                return self.weight * out
            return self.weight * out.to(x.dtype)

    return Norm


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rmsnorm_accepts_solution_and_library(seed, capsys):
    unit12.rms_norm(solution(12, "ex02-rmsnorm", "RMSNorm"), seed=seed)
    unit12.rms_norm(norm_variant("right"), seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ RMSNorm")


def test_rmsnorm_rejects_stub():
    rejects(unit12.rms_norm, stub, match=r"is not implemented yet")


class SubclassedNorm(RMSNorm):
    pass


def norm_mistake(kind: str):
    return {"library": RMSNorm, "subclass": SubclassedNorm, "torch": nn.RMSNorm}.get(kind) or norm_variant(kind)


NORM_MISTAKES = [
    ("no_eps", r"forgets eps"),
    ("eps_outside", r"adds eps outside the square root"),
    ("layernorm", r"subtracts the mean like LayerNorm"),
    ("sum", r"uses the sum of squares"),
    ("dim0", r"averages over the wrong dimension"),
    ("no_weight", r"forgets to multiply by weight"),
    ("bias", r"exactly one parameter, `weight` \(no bias"),
    ("init_zero", r"should start as ones"),
    ("detach", r"no gradient reached x"),
    ("float_out", r"should return the input's dtype bfloat16"),
    ("fixed_eps", r"ignores the eps argument \(uses 1e-5"),
    ("no_upcast", r"computed in bfloat16; upcast first"),
    ("library", r"this is the library's own RMSNorm: write yours"),
    ("subclass", r"this is the library's own RMSNorm: write yours"),
    ("torch", r"this is the library's own torch.nn.(RMSNorm|functional.rms_norm): write yours"),
]


@pytest.mark.parametrize(("kind", "match"), NORM_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_rmsnorm_rejects_typical_mistakes(kind, match, seed):
    rejects(unit12.rms_norm, norm_mistake(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), NORM_MISTAKES)
def test_rmsnorm_rejects_typical_mistakes_on_every_seed(kind, match):
    for seed in range(50):
        rejects(unit12.rms_norm, norm_mistake(kind), match=match, seed=seed)


# --- ex03: grouped-query attention -----------------------------------------------------------------


def gqa_variant(kind: str):
    def grouped_attention(q, k, v):
        groups = q.shape[1] // k.shape[1]
        if kind == "repeat":
            k, v = k.repeat(1, groups, 1, 1), v.repeat(1, groups, 1, 1)
        elif kind == "kv_only":
            return F.scaled_dot_product_attention(q[:, ::groups], k, v, is_causal=True)
        else:
            k, v = repeat_kv(k, groups), repeat_kv(v, groups)
        if kind == "not_causal":
            return F.scaled_dot_product_attention(q, k, v)
        if kind == "no_scale":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
        if kind == "scale_d":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1 / q.shape[-1])
        if kind == "detach":
            return F.scaled_dot_product_attention(q.detach(), k, v, is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    return grouped_attention


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gqa_accepts_solution_and_reference(seed, capsys):
    unit12.grouped_attention(solution(12, "ex03-grouped-query-attention", "grouped_attention"), seed=seed)
    unit12.grouped_attention(gqa_variant("right"), seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ grouped-query attention")


def test_gqa_rejects_stub():
    rejects(unit12.grouped_attention, stub, match=r"is not implemented yet")


GQA_MISTAKES = [
    ("repeat", r"key/value head i % h_kv.*repeat_interleave"),
    ("not_causal", r"attend to the future"),
    ("no_scale", r"forgets to scale the scores by 1/sqrt\(d\)"),
    ("scale_d", r"scales the scores by 1/d"),
    ("kv_only", r"should return \(B, h, T, d\)"),
    ("detach", r"no gradient reached q"),
]


@pytest.mark.parametrize(("kind", "match"), GQA_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_gqa_rejects_typical_mistakes(kind, match, seed):
    rejects(unit12.grouped_attention, gqa_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), GQA_MISTAKES)
def test_gqa_rejects_typical_mistakes_on_every_seed(kind, match):
    for seed in range(50):
        rejects(unit12.grouped_attention, gqa_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_solutions_pass_on_every_seed():
    rope = solution(12, "ex01-rope", "rope")
    norm = solution(12, "ex02-rmsnorm", "RMSNorm")
    gqa = solution(12, "ex03-grouped-query-attention", "grouped_attention")
    for seed in range(200):
        unit12.rope(rope, seed=seed)
        unit12.rms_norm(norm, seed=seed)
        unit12.grouped_attention(gqa, seed=seed)


# --- ex04: RoPE interpolated for a longer context --------------------------------------------------


def interpolation_variant(kind: str):
    """A learner's interpolated tables with one typical mistake."""

    def tables(length, head_dim, base, trained_context):
        scale = length / trained_context if kind == "always" else max(1.0, length / trained_context)
        if kind == "int_factor":
            scale = max(1, length // trained_context)
        if kind in ("base", "ntk"):
            base = base * (scale if kind == "base" else scale ** (head_dim / (head_dim - 2)))
        if kind == "fixed_base":
            base = 10000.0
        positions = torch.arange(length, dtype=torch.float32)
        if kind not in ("plain", "base", "ntk"):
            positions = positions * scale if kind == "times" else positions / scale
        if kind == "floor":
            positions = positions.floor()
        if kind == "half_positions":
            positions = positions.half().float()
        frequencies = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        angles = positions[:, None] * frequencies
        if kind == "half_angles":
            angles = angles.half().float()
        angles = angles.repeat_interleave(2, -1) if kind == "interleaved" else torch.cat([angles, angles], -1)
        cos, sin = angles.cos(), angles.sin()
        if kind == "half_out":
            return cos.half(), sin.half()
        return cos, sin

    if kind == "library":
        return rope_tables
    if kind == "library_wrapped":
        return lambda length, head_dim, base, trained_context: rope_tables(length, head_dim, base)
    return tables


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interpolated_rope_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit12.interpolated_rope(solution(12, "ex04-rope-interpolation", "interpolated_rope_tables"), seed=seed)
    unit12.interpolated_rope(interpolation_variant("right"), seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ interpolated RoPE")


def test_interpolated_rope_rejects_stub() -> None:
    rejects(unit12.interpolated_rope, stub, match=r"is not implemented yet")


def test_interpolated_tables_equal_the_library_within_the_trained_context() -> None:
    tables = solution(12, "ex04-rope-interpolation", "interpolated_rope_tables")
    for found, plain in zip(tables(40, 16, 5000.0, 64), rope_tables(40, 16, 5000.0)):
        assert torch.allclose(found, plain, atol=1e-6)


INTERPOLATION_MISTAKES = [
    ("plain", r"returns the plain tables \(rope_tables cannot interpolate\)"),
    ("library", r"this is the library's own rope_tables: it has no trained context and cannot interpolate"),
    ("library_wrapped", r"returns the plain tables \(rope_tables cannot interpolate\)"),
    ("times", r"multiplies the positions by length / trained_context"),
    ("int_factor", r"divides the positions by a whole number \(\d, from length // trained_context\)"),
    ("floor", r"rounds the scaled positions down to whole numbers"),
    ("base", r"multiplies the base by [\d.]+ instead of scaling the positions"),
    ("ntk", r"rescales the base \(NTK-aware scaling\) instead of the positions"),
    ("interleaved", r"lays the angles out for adjacent pairs"),
    ("half_positions", r"computes the scaled positions in float16"),
    ("half_angles", r"computes the (angles|scaled positions) in float16"),  # alike when only pair 0 turns fast
    ("half_out", r"cos should be float32 \(the model's tables\), found torch.float16: angles in 16 bits"),
    ("always", r"rescales the positions although \d+ positions fit in the trained context"),
    ("fixed_base", r"ignores `base` \(uses 10000\)"),
]


@pytest.mark.parametrize(("kind", "match"), INTERPOLATION_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_interpolated_rope_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit12.interpolated_rope, interpolation_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_interpolated_rope_rejects_typical_mistakes_on_every_seed() -> None:
    for seed in range(50):
        for kind, match in INTERPOLATION_MISTAKES:
            rejects(unit12.interpolated_rope, interpolation_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_interpolated_rope_solution_passes_on_every_seed() -> None:
    tables = solution(12, "ex04-rope-interpolation", "interpolated_rope_tables")
    for seed in range(200):
        unit12.interpolated_rope(tables, seed=seed)
