"""The unit-09 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import CheckFailed, unit09
from dlfund.models.attention import merge_heads as ref_merge
from dlfund.models.attention import split_heads as ref_split
from dlfund.models.transformer import KVCache

# --- ex01: the causal mask ----------------------------------------------------------------------


def causal_variant(
    *, diagonal: int = 0, fill: float = float("-inf"), after: bool = False, scale: bool = True, upper: bool = False
):
    """A learner's causal_attention with one typical mistake switched on."""

    def causal_attention(q, k, v):
        t = q.shape[-2]
        scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
        allowed = torch.ones(t, t, dtype=torch.bool).tril(diagonal=diagonal)
        if upper:
            allowed = torch.ones(t, t, dtype=torch.bool).triu(diagonal=diagonal)
        if after:
            return scores.softmax(-1).masked_fill(~allowed, 0.0) @ v
        return scores.masked_fill(~allowed, fill).softmax(-1) @ v

    return causal_attention


@pytest.mark.parametrize("seed", [0, 1])
def test_causal_mask_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit09.causal_mask(solution(9, "ex01-causal-mask", "causal_attention"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ causal attention")


def test_causal_mask_accepts_reference() -> None:
    unit09.causal_mask(causal_variant(), seed=5)
    unit09.causal_mask(
        lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True), seed=6
    )


def test_causal_mask_rejects_stub() -> None:
    rejects(unit09.causal_mask, stub, match=r"is not implemented yet.*hint: write this function")


CAUSAL_MISTAKES = [
    ({"diagonal": 1}, r"off by one and lets position i see position i \+ 1"),
    ({"diagonal": -1}, r"returned NaN at position\(s\) \[0\].*Position i must see itself"),
    ({"diagonal": 100}, r"no mask was applied"),
    ({"fill": 0.0}, r"set to 0 instead of -inf"),
    ({"after": True}, r"masked after the softmax"),
    ({"scale": False}, r"not scaled: divide q·k by √d"),
    ({"upper": True}, r"(triu instead of tril|returned NaN)"),
]


@pytest.mark.parametrize(("kwargs", "match"), CAUSAL_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_causal_mask_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    rejects(unit09.causal_mask, causal_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), CAUSAL_MISTAKES)
def test_causal_mask_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit09.causal_mask, causal_variant(**kwargs), match=match, seed=seed)


def test_causal_mask_reports_future_leaks_it_does_not_recognise() -> None:
    def leaky(q, k, v):  # every position also reads the last token: no known mistake, but future information
        out = causal_variant()(q, k, v)
        return out + 0.1 * v[..., -1:, :]

    rejects(unit09.causal_mask, leaky, match=r"information from the future: changing token \d+'s key and value")


def test_causal_mask_rejects_wrong_shape() -> None:
    rejects(unit09.causal_mask, lambda q, k, v: (q @ k.transpose(-2, -1)).softmax(-1), match=r"expected shape")


# --- ex02: splitting and merging heads -----------------------------------------------------------


def test_multi_head_accepts_solution(capsys: pytest.CaptureFixture[str]) -> None:
    split, merge = solution(9, "ex02-multi-head", "split_heads", "merge_heads")
    for seed in (0, 1, 2):
        unit09.multi_head(split, merge, seed=seed)
    assert "✓ multi-head split/merge" in capsys.readouterr().out


def test_multi_head_accepts_library() -> None:
    unit09.multi_head(ref_split, ref_merge, seed=3)


def test_multi_head_rejects_stub() -> None:
    rejects(unit09.multi_head, stub, ref_merge, match=r"is not implemented yet")
    rejects(unit09.multi_head, ref_split, stub, match=r"is not implemented yet")


def _direct_reshape(x, heads):
    b, t, d = x.shape
    return x.reshape(b, heads, t, d // heads)


def _no_transpose(x, heads):
    b, t, d = x.shape
    return x.view(b, t, heads, d // heads)


def _strided(x, heads):
    b, t, d = x.shape
    return x.view(b, t, d // heads, heads).permute(0, 3, 1, 2)


def _merge_no_transpose(x):
    b, h, t, d = x.shape
    return x.reshape(b, t, h * d)


def _merge_view(x):
    b, h, t, d = x.shape
    return x.transpose(1, 2).view(b, t, h * d)


def _split_no_check(x, heads):
    b, t, d = x.shape
    return (
        x.reshape(b, t, heads, -1).transpose(1, 2)
        if d % heads == 0
        else x[..., : d - d % heads].reshape(b, t, heads, -1).transpose(1, 2)
    )


HEAD_MISTAKES = [
    (_direct_reshape, ref_merge, r"reshaped straight to \(B, h, T, d\), which mixes tokens and heads"),
    (_no_transpose, ref_merge, r"= \(B, T, h, d\).*transpose\(1, 2\)"),
    (_strided, ref_merge, r"every h-th feature"),
    (ref_split, _merge_no_transpose, r"without moving the heads back"),
    (ref_split, _merge_view, r"not contiguous in memory, so .view cannot merge the heads: use .reshape"),
    (_split_no_check, ref_merge, r"did not raise: D=\d+ is not divisible by heads"),
]


@pytest.mark.parametrize(("split", "merge", "match"), HEAD_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_multi_head_rejects_typical_mistakes(split, merge, match: str, seed: int) -> None:
    rejects(unit09.multi_head, split, merge, match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("split", "merge", "match"), HEAD_MISTAKES)
def test_multi_head_rejects_typical_mistakes_on_every_seed(split, merge, match: str) -> None:
    for seed in range(50):
        rejects(unit09.multi_head, split, merge, match=match, seed=seed)


def test_transposed_heads_are_caught_even_when_the_round_trip_works() -> None:
    """Split and merge that are each other's inverse but put features in the wrong heads."""

    def split(x, heads):
        b, t, d = x.shape
        if d % heads:
            raise ValueError("D not divisible")
        return x.view(b, t, d // heads, heads).permute(0, 3, 1, 2)

    def merge(x):
        b, h, t, d = x.shape
        return x.permute(0, 2, 3, 1).reshape(b, t, h * d)

    x = torch.randn(2, 3, 8)
    assert torch.equal(merge(split(x, 2)), x)
    rejects(unit09.multi_head, split, merge, match=r"every h-th feature")


# --- ex03: the KV cache ----------------------------------------------------------------------------


def test_kv_cache_accepts_solution(capsys: pytest.CaptureFixture[str]) -> None:
    cache_cls, generate = solution(9, "ex03-kv-cache", "MyKVCache", "generate_greedy_cached")
    # the solution's generate_greedy_cached refers to the notebook's MyKVCache by name
    for seed in (0, 1):
        unit09.kv_cache(cache_cls, generate, seed=seed)
    assert "✓ KV cache" in capsys.readouterr().out


def _generate(cache_cls, *, feed: str = "last", prefill: bool = True, shared: bool = False, record: str = "before"):
    """Greedy generation with ``cache_cls``, or one typical mistake: ``feed="all"`` feeds the whole
    sequence every step, without cache; ``feed="previous"`` feeds the token before the new one;
    ``shared`` gives every block the same cache; ``record="after"`` keeps each step's logits one step late."""

    def generate(model, idx, n):
        caches = [cache_cls()] * len(model.layers) if shared else [cache_cls() for _ in model.layers]
        steps = []
        with torch.no_grad():
            logits = model(idx if prefill else idx[:, -1:], caches)[:, -1]
            for step in range(n):
                if record == "before":
                    steps.append(logits)
                nxt = logits.argmax(-1, keepdim=True)
                fed = idx[:, -1:] if feed == "previous" else nxt
                idx = torch.cat([idx, nxt], dim=1)
                if step < n - 1 or record == "after":
                    logits = model(idx)[:, -1] if feed == "all" else model(fed, caches)[:, -1]
                if record == "after":
                    steps.append(logits)
        return idx, torch.stack(steps, dim=1)

    generate.__name__ = "generate_greedy_cached"
    return generate


class NotAppended(KVCache):
    """Keeps only the newest keys and values: the cache is never appended."""

    def append(self, k, v):
        self.k, self.v = k, v
        return k, v


class WrongAxis(KVCache):
    def append(self, k, v):
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=-1), torch.cat([self.v, v], dim=-1)
        return self.k, self.v


class ForgetsLength(KVCache):
    def __len__(self):
        return 0


def test_kv_cache_accepts_library_cache() -> None:
    unit09.kv_cache(KVCache, _generate(KVCache), seed=2)


def test_kv_cache_rejects_stub() -> None:
    class Stub:
        def __init__(self):
            stub()

    rejects(unit09.kv_cache, Stub, _generate(KVCache), match=r"Stub\(\) is not implemented yet")
    rejects(unit09.kv_cache, KVCache, stub, match=r"is not implemented yet")


KV_MISTAKES = [
    (NotAppended, {}, r"returned only the new keys.*the cache was not appended"),
    (WrongAxis, {}, r"concatenate along the time axis, dim=-2"),
    (ForgetsLength, {}, r"len\(cache\) should be 6, found 0"),
    (KVCache, {"feed": "all"}, r"the model read \d+ tokens in all"),
    (KVCache, {"prefill": False}, r"logits of step 0 differ.*run model\(idx, caches\) once on the prompt"),
    (KVCache, {"shared": True}, r"the same KVCache object was given to blocks 0 and 1.*one per block"),
    (KVCache, {"feed": "previous"}, r"logits of step 1 differ.*only the newest token fed, once"),
    (KVCache, {"record": "after"}, r"logits of step 0 differ"),
]


@pytest.mark.parametrize(("cache_cls", "kwargs", "match"), KV_MISTAKES)
@pytest.mark.parametrize("seed", range(2))
def test_kv_cache_rejects_typical_mistakes(cache_cls, kwargs: dict, match: str, seed: int) -> None:
    rejects(unit09.kv_cache, cache_cls, _generate(cache_cls, **kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("cache_cls", "kwargs", "match"), KV_MISTAKES)
def test_kv_cache_rejects_typical_mistakes_on_every_seed(cache_cls, kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit09.kv_cache, cache_cls, _generate(cache_cls, **kwargs), match=match, seed=seed)


def test_kv_cache_catches_a_cache_that_drops_old_positions_in_generation() -> None:
    """A cache that passes the unit test but keeps only a window of 4 positions fails in generation."""

    class Window(KVCache):
        def append(self, k, v):
            super().append(k, v)
            if len(self) > 6:
                self.k, self.v = self.k[..., -4:, :], self.v[..., -4:, :]
            return self.k, self.v

    with pytest.raises(
        CheckFailed,
        match=r"(logits of step \d+ differ|longer than the model's context_length|"
        r"raised)",
    ):
        unit09.kv_cache(Window, _generate(Window), seed=0)


@pytest.mark.seeds
def test_solutions_pass_on_every_seed() -> None:
    causal = solution(9, "ex01-causal-mask", "causal_attention")
    split, merge = solution(9, "ex02-multi-head", "split_heads", "merge_heads")
    cache_cls, generate = solution(9, "ex03-kv-cache", "MyKVCache", "generate_greedy_cached")
    for seed in range(200):
        unit09.causal_mask(causal, seed=seed)
        unit09.multi_head(split, merge, seed=seed)
        unit09.kv_cache(cache_cls, generate, seed=seed)


# --- ex04: sliding-window and prefix-LM masks ------------------------------------------------------


def masks_variant(kind: str = "right"):
    """A learner's (sliding_window_mask, prefix_lm_mask, masked_attention) with one typical mistake."""

    def positions(t):
        return torch.arange(t)[:, None], torch.arange(t)[None, :]

    def sliding_window_mask(t, w):
        i, j = positions(t)
        if kind == "window_wide":  # w tokens before the query, plus the query
            return (j <= i) & (j >= i - w)
        if kind == "window_forward":  # a band around the query
            return (i - j).abs() < w
        if kind == "window_inverted":  # True where hidden
            return ~((j <= i) & (j > i - w))
        if kind == "window_float":
            return ((j <= i) & (j > i - w)).float()
        return (j <= i) & (j > i - w)

    def prefix_lm_mask(t, p):
        i, j = positions(t)
        if kind == "prefix_causal":  # the prefix forgotten
            return j <= i
        if kind == "prefix_rows_all":  # prefix queries also read the continuation
            return (j <= i) | (i < p)
        if kind == "prefix_off_by_one":
            return (j <= i) | (j <= p)
        return (j <= i) | (j < p)

    def masked_attention(q, k, v, allowed):
        scores = q @ k.transpose(-2, -1) / (1.0 if kind == "no_scale" else math.sqrt(q.shape[-1]))
        if kind == "after_softmax":
            return scores.softmax(-1).masked_fill(~allowed, 0.0) @ v
        if kind == "fill_zero":
            return scores.masked_fill(~allowed, 0.0).softmax(-1) @ v
        if kind == "attention_inverted":  # hides the allowed keys
            return scores.masked_fill(allowed, float("-inf")).softmax(-1) @ v
        if kind == "leak_last":  # every output also reads the last token
            out = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
            return out + 1e-3 * v[..., -1:, :]
        return scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v

    return sliding_window_mask, prefix_lm_mask, masked_attention


MASK_MISTAKES = [
    ("window_wide", r"sees? w \+ 1 tokens"),
    ("window_forward", r"looks forward: query i sees keys after i"),
    ("window_inverted", r"is inverted: True must mark the keys a query may attend to"),
    ("window_float", r"should return a bool mask .*found dtype torch.float32"),
    ("prefix_causal", r"is the plain causal mask: the prefix tokens should see each other"),
    ("prefix_rows_all", r"lets the prefix queries see the whole sequence"),
    ("prefix_off_by_one", r"makes a prefix of p \+ 1 tokens"),
    ("after_softmax", r"masked after the softmax"),
    ("fill_zero", r"set to 0 instead of -inf"),
    ("attention_inverted", r"(read the wrong way round|returned NaN)"),
    ("no_scale", r"not scaled: divide q·k by √d"),
    ("leak_last", r"changing token \d+'s key and value moved the output at position\(s\) \[.*whose mask hides"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attention_masks_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    fns = solution(9, "ex04-window-prefix-masks", "sliding_window_mask", "prefix_lm_mask", "masked_attention")
    unit09.attention_masks(*fns, seed=seed)
    unit09.attention_masks(*masks_variant(), seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ attention masks")


def test_attention_masks_accepts_fused_attention() -> None:
    window, prefix, _ = masks_variant()

    def fused(q, k, v, allowed):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)

    unit09.attention_masks(window, prefix, fused, seed=4)


def test_attention_masks_rejects_stub() -> None:
    rejects(unit09.attention_masks, stub, stub, stub, match=r"is not implemented yet.*hint: write this function")
    window, prefix, attention = masks_variant()
    rejects(unit09.attention_masks, window, stub, attention, match=r"stub\(\d+, \d+\) is not implemented")
    rejects(unit09.attention_masks, window, prefix, stub, match=r"stub\(q, k, v, window w=\d+\)")


def test_attention_masks_never_crashes_on_odd_answers() -> None:
    window, prefix, attention = masks_variant()
    rejects(unit09.attention_masks, lambda t, w: None, prefix, attention, match=r"should return a tensor")
    rejects(unit09.attention_masks, lambda t, w: torch.ones(t, t + 1).bool(), prefix, attention, match=r"\(T, T\)")
    rejects(unit09.attention_masks, window, prefix, lambda q, k, v, m: q[..., 0], match=r"expected shape")


@pytest.mark.parametrize(("kind", "match"), MASK_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_attention_masks_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit09.attention_masks, *masks_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kind", "match"), MASK_MISTAKES)
def test_attention_masks_rejects_typical_mistakes_on_every_seed(kind: str, match: str) -> None:
    for seed in range(50):
        rejects(unit09.attention_masks, *masks_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_attention_masks_solution_passes_on_every_seed() -> None:
    fns = solution(9, "ex04-window-prefix-masks", "sliding_window_mask", "prefix_lm_mask", "masked_attention")
    for seed in range(200):
        unit09.attention_masks(*fns, seed=seed)
