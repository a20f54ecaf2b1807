"""The unit-08 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import unit08
from dlfund.models.seq2seq import AdditiveAttention

# --- ex01: additive attention ---------------------------------------------------------------------


def attention_variant(
    *, mask: str = "before", dim: int = -1, tanh: bool = True, context: str = "keys", detach: bool = False
):
    """A learner's additive_attention with one typical mistake switched on."""

    def additive_attention(query, keys, m, W_q, W_k, v):
        hidden = (query @ W_q.T)[:, None, :] + keys @ W_k.T
        scores = (torch.tanh(hidden) if tanh else hidden) @ v
        if detach:
            scores = scores.detach()
        if mask == "before":
            scores = scores.masked_fill(~m, float("-inf"))
        elif mask == "multiply":
            scores = scores * m
        elif mask == "large":
            scores = scores.masked_fill(~m, -1e9)
        weights = scores.softmax(dim=dim)
        if mask == "after":
            weights = weights * m
        values = keys @ W_k.T if context == "projected" else keys
        return torch.einsum("bs,bsd->bd", weights, values), weights

    return additive_attention


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attention_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit08.additive_attention(solution(8, "ex01-additive-attention", "additive_attention"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ additive attention")


def test_attention_accepts_reference_and_large_negative_mask() -> None:
    unit08.additive_attention(attention_variant(), seed=5)
    unit08.additive_attention(attention_variant(mask="large"), seed=6)  # -1e9 instead of -inf is fine


def test_attention_rejects_the_library_module() -> None:
    """dlfund.models.seq2seq.AdditiveAttention, with the check's tensors in place of its parameters: the
    library's module is there to compare with afterwards, writing the attention is the exercise."""

    def functional(query, keys, m, W_q, W_k, v):
        att = AdditiveAttention(query.shape[1], keys.shape[2], W_q.shape[0])
        del att.query.weight, att.key.weight, att.v.weight
        att.query.weight, att.key.weight, att.v.weight = W_q, W_k, v[None]
        return att(query, keys, m)

    rejects(unit08.additive_attention, functional, match=r"library's own AdditiveAttention: write yours", seed=7)


def test_attention_rejects_stub() -> None:
    rejects(unit08.additive_attention, stub, match=r"stub\(query .* is not implemented yet.*hint: write this function")


ATTENTION_MISTAKES = [
    (
        {"mask": "none"},
        r"padded positions got weight .*equal a softmax without any mask.*float\('-inf'\) before the softmax",
    ),
    ({"mask": "multiply"}, r"padded positions got weight"),
    ({"mask": "after"}, r"zeroed on padding after the softmax, so rows sum to .* not 1"),
    ({"dim": 0}, r"(softmax ran over the batch dimension \(dim=0\)|padded positions got weight)"),
    ({"tanh": False}, r"match scores without the tanh"),
    ({"context": "projected"}, r"context should have shape \(B, Dk\).*sum the keys, not their projections"),
    ({"detach": True}, r"no gradient reached (query|W_q|W_k|v)"),
]


@pytest.mark.parametrize(("kwargs", "match"), ATTENTION_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_attention_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    rejects(unit08.additive_attention, attention_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), ATTENTION_MISTAKES)
def test_attention_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit08.additive_attention, attention_variant(**kwargs), match=match, seed=seed)


def test_attention_softmax_over_batch_is_named() -> None:
    """A softmax over dim 0 with the mask applied: each row no longer sums to 1."""
    msg = rejects(unit08.additive_attention, attention_variant(dim=0), match=r".", seed=11)
    assert "dim=0" in msg or "padded positions got weight" in msg


def test_attention_rejects_wrong_return_type() -> None:
    rejects(
        unit08.additive_attention,
        lambda q, k, m, a, b, v: attention_variant()(q, k, m, a, b, v)[0],
        match=r"should return a tuple \(context, weights\)",
    )


# --- ex02: GRU cell -----------------------------------------------------------------------------


def _init(kind: str, shape: tuple[int, ...], input_size: int, hidden_size: int) -> torch.Tensor:
    """How a learner draws a fresh parameter: right (uniform ±1/√H), or a typical initialisation mistake."""
    k = 1 / hidden_size**0.5
    if kind == "zeros":
        return torch.zeros(shape)
    if kind == "randn":
        return torch.randn(shape)
    if kind == "positive":
        return torch.rand(shape) * k
    if kind == "input_size":
        return torch.empty(shape).uniform_(-(input_size**-0.5), input_size**-0.5)
    if kind == "tiny":
        return torch.randn(shape) * 0.01
    return torch.empty(shape).uniform_(-k, k)


def gru_variant(
    *,
    order: str = "rzn",
    reset_after: bool = True,
    swap_mix: bool = False,
    names: bool = True,
    zero_state: bool = True,
    init: str = "uniform",
):
    """A learner's MyGRUCell with one typical mistake switched on."""

    class MyGRUCell(nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            self.hidden_size = hidden_size
            prefix = "" if names else "w_"
            for name, shape in (
                ("weight_ih", (3 * hidden_size, input_size)),
                ("weight_hh", (3 * hidden_size, hidden_size)),
                ("bias_ih", (3 * hidden_size,)),
                ("bias_hh", (3 * hidden_size,)),
            ):
                self.register_parameter(prefix + name, nn.Parameter(_init(init, shape, input_size, hidden_size)))

        def forward(self, x, h=None):
            if h is None:
                h = (
                    torch.zeros(x.shape[0], self.hidden_size)
                    if zero_state
                    else torch.ones(x.shape[0], self.hidden_size)
                )
            return unit08.reference_gru(
                x,
                h,
                self.weight_ih,
                self.weight_hh,
                self.bias_ih,
                self.bias_hh,
                order=order,
                reset_after=reset_after,
                swap_mix=swap_mix,
            )

    return MyGRUCell


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gru_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit08.gru_cell(solution(8, "ex02-gru-cell", "MyGRUCell"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ GRU cell")


def test_gru_accepts_reference_variant() -> None:
    unit08.gru_cell(gru_variant(), seed=4)


def test_gru_rejects_stub() -> None:
    class Stub(nn.Module):
        def __init__(self, input_size, hidden_size):
            super().__init__()
            stub()

    rejects(unit08.gru_cell, Stub, match=r"Stub\(\d+, \d+\) is not implemented yet")


GRU_MISTAKES = [
    ({"order": "zrn"}, r"reset and update gates are swapped"),
    ({"order": "nrz"}, r"order \(n, r, z\)"),
    ({"reset_after": False}, r"reset gate multiplies h before W_hn"),
    ({"swap_mix": True}, r"z and 1 - z are swapped"),
    ({"names": False}, r"has no parameter 'weight_ih' \(found \['w_bias_hh'"),
    ({"zero_state": False}, r"with no state given, start from zeros"),
    ({"init": "zeros"}, r"every fresh parameter has the same value"),
    ({"init": "randn"}, r"outside ±1/√hidden_size"),
    ({"init": "positive"}, r"average .*not about 0"),
    ({"init": "input_size"}, r"outside ±1/√hidden_size .*uses hidden_size, not input_size"),
    ({"init": "tiny"}, r"standard deviation .*initialise like nn.GRUCell"),
]


@pytest.mark.parametrize(("kwargs", "match"), GRU_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_gru_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    torch.manual_seed(seed)
    rejects(unit08.gru_cell, gru_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), GRU_MISTAKES)
def test_gru_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        torch.manual_seed(seed)
        rejects(unit08.gru_cell, gru_variant(**kwargs), match=match, seed=seed)


def test_gru_rejects_pytorchs_own_cell() -> None:
    class Wrapped(nn.GRUCell):
        pass

    rejects(unit08.gru_cell, Wrapped, match=r"PyTorch's own nn.GRUCell .*library's own cell, write yours")


@pytest.mark.seeds
def test_solutions_pass_on_every_seed() -> None:
    attention = solution(8, "ex01-additive-attention", "additive_attention")
    cell = solution(8, "ex02-gru-cell", "MyGRUCell")
    for seed in range(200):
        torch.manual_seed(seed)
        unit08.additive_attention(attention, seed=seed)
        unit08.gru_cell(cell, seed=seed)


def test_gru_rejects_detached_parameters() -> None:
    class Detached(gru_variant()):
        def forward(self, x, h=None):
            return unit08.reference_gru(x, h, self.weight_ih.detach(), self.weight_hh, self.bias_ih, self.bias_hh)

    rejects(unit08.gru_cell, Detached, match=r"no gradient reached weight_ih")


def test_gru_rejects_wrong_shapes() -> None:
    class Transposed(gru_variant()):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.weight_ih = nn.Parameter(torch.zeros(input_size, 3 * hidden_size))

    rejects(unit08.gru_cell, Transposed, match=r"weight_ih should have shape \(\d+, \d\) .*found \(\d, \d+\)")


# --- ex03: Luong attention ------------------------------------------------------------------------


def luong_variant(
    *,
    mask: str = "before",
    dim: int = -1,
    transpose: bool = False,
    scaled: bool = False,
    context: str = "keys",
    detach: bool = False,
):
    """A learner's luong_attention with one typical mistake switched on."""

    def luong_attention(query, keys, m, W=None):
        projected = query if W is None else query @ (W.T if transpose else W)
        scores = torch.bmm(keys, projected.unsqueeze(-1)).squeeze(-1)
        if scaled:
            scores = scores / keys.shape[-1] ** 0.5
        if detach:
            scores = scores.detach()
        if mask == "before":
            scores = scores.masked_fill(~m, float("-inf"))
        elif mask == "multiply":
            scores = scores * m
        weights = scores.softmax(dim=dim)
        if mask == "after":
            weights = weights * m
        values = keys @ W.T if context == "projected" and W is not None else keys
        return torch.einsum("bs,bsd->bd", weights, values), weights

    return luong_attention


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_luong_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit08.luong_attention(solution(8, "ex03-luong-attention", "luong_attention"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ Luong attention")


def test_luong_accepts_reference_variant() -> None:
    unit08.luong_attention(luong_variant(), seed=5)


def test_luong_rejects_stub() -> None:
    rejects(unit08.luong_attention, stub, match=r"stub\(query .* is not implemented yet.*hint: write this function")


def test_luong_rejects_wrong_return_type() -> None:
    rejects(
        unit08.luong_attention,
        lambda q, k, m, W=None: luong_variant()(q, k, m, W)[1],
        match=r"should return a tuple \(context, weights\)",
    )


def test_luong_rejects_pytorchs_fused_attention() -> None:
    def fused(q, k, m, W=None):
        projected = q if W is None else q @ W
        context = F.scaled_dot_product_attention(projected[:, None, :], k, k, attn_mask=m[:, None, :], scale=1.0)
        return context[:, 0], None

    rejects(unit08.luong_attention, fused, match=r"called F.scaled_dot_product_attention, PyTorch's own attention")
    q, k = torch.randn(2, 1, 4), torch.randn(2, 3, 4)
    assert F.scaled_dot_product_attention(q, k, k).shape == (2, 1, 4)  # restored after the check


def test_luong_rejects_fully_detached_outputs() -> None:
    def detached(q, k, m, W=None):
        return tuple(t.detach() for t in luong_variant()(q, k, m, W))

    rejects(unit08.luong_attention, detached, match=r"neither context nor weights require grad")


LUONG_MISTAKES = {
    "no mask": (
        {"mask": "none"},
        r"padded positions got weight .*equal a softmax without any mask.*float\('-inf'\) before the softmax",
    ),
    "mask multiplied into the scores": ({"mask": "multiply"}, r"padded positions got weight"),
    "mask applied after the softmax": ({"mask": "after"}, r"zeroed on padding after the softmax, so rows sum to"),
    "softmax over the batch": ({"dim": 0}, r"softmax ran over the batch dimension \(dim=0\)"),
    "W transposed": ({"transpose": True}, r"W is used transposed: W has shape \(Dq, Dk\)"),
    "scaled by √d": ({"scaled": True}, r"the scores were divided by √d: Luong's scores are not scaled"),
    "context from the projected keys": ({"context": "projected"}, r"context was built from the projected keys"),
    "scores detached": ({"detach": True}, r"no gradient reached (query|W)"),
}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", list(LUONG_MISTAKES))
def test_luong_rejects_typical_mistakes(name: str, seed: int) -> None:
    kwargs, match = LUONG_MISTAKES[name]
    rejects(unit08.luong_attention, luong_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("name", list(LUONG_MISTAKES))
def test_luong_rejects_typical_mistakes_on_every_seed(name: str) -> None:
    kwargs, match = LUONG_MISTAKES[name]
    for seed in range(50):
        rejects(unit08.luong_attention, luong_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_luong_solution_passes_on_every_seed() -> None:
    fn = solution(8, "ex03-luong-attention", "luong_attention")
    for seed in range(200):
        unit08.luong_attention(fn, seed=seed)
