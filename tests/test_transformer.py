"""The shared transformer toolkit: one config vocabulary, causal attention over a KV cache, and one
generation (``stream`` / ``generate``) that behaves the same for unit 9's GPT and unit 12's Llama."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dlfund.models.attention import naive_attention
from dlfund.models.gpt import GPT, GPTConfig
from dlfund.models.llama import Llama, LlamaConfig
from dlfund.models.transformer import Decoder, DecoderConfig, KVCache, Step, causal_attention

V = 23


def gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(
        GPTConfig(vocab_size=V, context_length=32, n_layers=2, n_heads=2, dim=16, dropout=0.1, positions="rope")
    ).eval()


def llama() -> Llama:
    torch.manual_seed(0)
    return Llama(
        LlamaConfig(vocab_size=V, context_length=32, dim=16, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=32)
    ).eval()


MODELS = {"gpt": gpt, "llama": llama}
PROMPT = torch.randint(0, V, (3, 5), generator=torch.Generator().manual_seed(1))


def greedy_by_hand(model: Decoder, idx: torch.Tensor, n: int) -> torch.Tensor:
    """Greedy decoding written out: the whole sequence through the model at every step."""
    with torch.no_grad():
        for _ in range(n):
            idx = torch.cat([idx, model(idx)[:, -1].argmax(-1, keepdim=True)], dim=1)
    return idx


# ----------------------------------------------------------------------------- one vocabulary


def test_gpt_and_llama_share_config_fields_and_module_names() -> None:
    shared = [f.name for f in dataclasses.fields(DecoderConfig)]
    for cls in (GPTConfig, LlamaConfig):
        assert [f.name for f in dataclasses.fields(cls)][: len(shared)] == shared
    assert GPTConfig(vocab_size=5, dim=8, n_heads=2).hidden_dim == 32  # GPT-2's 4·dim by default
    with pytest.raises(ValueError, match="GPTConfig.context_length must be positive"):
        GPTConfig(vocab_size=5, context_length=0)

    def names(model: Decoder) -> set[str]:
        return {n for n, _ in model.named_modules() if n.count(".") <= 3}

    common = {
        "embed_tokens",
        "layers",
        "layers.0.input_layernorm",
        "layers.0.self_attn",
        "layers.0.self_attn.o_proj",
        "layers.0.post_attention_layernorm",
        "layers.0.mlp",
        "layers.0.mlp.up_proj",
        "layers.0.mlp.down_proj",
        "norm",
        "lm_head",
    }
    assert common <= names(gpt()) and common <= names(llama())


def test_generation_is_written_once() -> None:
    for method in ("stream", "generate", "new_caches", "first_new_position", "num_parameters"):
        assert getattr(GPT, method) is getattr(Llama, method) is getattr(Decoder, method)


# ------------------------------------------------------------------------------ causal attention


@pytest.mark.parametrize("t_q", [1, 3, 7])
def test_causal_attention_over_cached_keys_is_the_last_rows_of_full_attention(t_q: int) -> None:
    q, k, v = torch.randn(3, 2, 4, 7, 8, generator=torch.Generator().manual_seed(0)).unbind(0)
    full = naive_attention(q, k, v, causal=True)  # (B, h, 7, d)
    torch.testing.assert_close(causal_attention(q[..., -t_q:, :], k, v), full[..., -t_q:, :], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="queries must be among the keys"):
        causal_attention(q, k[..., :3, :], v[..., :3, :])


# ------------------------------------------------------------------------------------ generation


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_generate_is_greedy_by_default_and_returns_prompt_plus_new_tokens(make) -> None:
    model = make()
    out = model.generate(PROMPT, 10)
    assert out.shape == (3, 15) and out.dtype == PROMPT.dtype and torch.equal(out[:, :5], PROMPT)
    assert torch.equal(out, greedy_by_hand(model, PROMPT, 10))
    assert torch.equal(model.generate(PROMPT, 10, use_cache=False), out)
    assert torch.equal(model.generate(PROMPT, 0), PROMPT)
    model.train()  # eval inside (no dropout), the training flag restored
    assert torch.equal(model.generate(PROMPT, 10), out) and model.training


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_cached_and_uncached_streams_give_the_same_tokens_and_logits(make) -> None:
    model = make()
    kwargs = dict(temperature=1.0, top_k=10)
    cached = list(model.stream(PROMPT, 20, generator=torch.Generator().manual_seed(3), **kwargs))
    plain = list(model.stream(PROMPT, 20, use_cache=False, generator=torch.Generator().manual_seed(3), **kwargs))
    assert len(cached) == len(plain) == 20 and all(isinstance(s, Step) for s in cached)
    assert cached[0].token.shape == (3,) and cached[0].logits.shape == (3, V)
    for a, b in zip(cached, plain):
        assert torch.equal(a.token, b.token)
        torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    tokens = torch.stack([s.token for s in cached], dim=1)
    sampled = model.generate(PROMPT, 20, generator=torch.Generator().manual_seed(3), **kwargs)
    assert torch.equal(sampled[:, 5:], tokens)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_stop_tokens_end_generation_when_every_row_has_stopped(make) -> None:
    model = make()
    n = 10
    free = model.generate(PROMPT, n)[:, 5:]  # (B, n) greedy, no stop
    stops = {int(free[0, 2]), int(free[1, 4]), int(free[2, 7])}  # every row meets one
    first = [min(j for j in range(n) if int(free[r, j]) in stops) for r in range(3)]
    out = model.generate(PROMPT, n, stop_tokens=stops)
    assert out.shape == (3, 5 + max(first) + 1)
    for r, j in enumerate(first):
        assert torch.equal(out[r, 5 : 5 + j + 1], free[r, : j + 1])  # up to and with its stop token
        assert (out[r, 5 + j :] == free[r, j]).all()  # then filled with it
    steps = list(model.stream(PROMPT, n, stop_tokens=stops))
    assert len(steps) == max(first) + 1
    assert model.generate(PROMPT, n, stop_tokens=[int(t) for t in free[:, 0]]).shape == (3, 6)


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_generation_errors_are_raised_at_the_call(make) -> None:
    model = make()
    name = type(model).__name__
    with pytest.raises(ValueError, match=r"non-empty prompt of shape \(B, T\)"):
        model.stream(PROMPT[:, :0], 3)
    with pytest.raises(ValueError, match=r"non-empty prompt of shape \(B, T\)"):
        model.generate(PROMPT[0], 3)
    with pytest.raises(TypeError, match=f"{name} expects integer token ids"):
        model.stream(PROMPT.float(), 3)
    with pytest.raises(ValueError, match="max_new_tokens must be ≥ 0"):
        model.stream(PROMPT, -1)
    with pytest.raises(ValueError, match="must fit in context_length=32"):
        model.stream(PROMPT, 28)
    with pytest.raises(ValueError, match="temperature must be ≥ 0"):
        model.stream(PROMPT, 3, temperature=-1.0)
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        model.stream(PROMPT, 3, top_p=1.5)
    long = torch.randint(0, V, (1, 30))
    assert model.generate(long, 5, use_cache=False).shape == (1, 35)  # without the cache: cropped
    with pytest.raises(ValueError, match="longer than the model's context_length=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match=r"one KVCache per layer \(2\), got 1"):
        model(PROMPT, [KVCache()])
