"""The LLaMA model, its GGUF loader and tokenizer (unit 12): tiny random models plus the real SmolLM2 weights."""

from __future__ import annotations

import math

import pytest
import torch

from dlfund.models.llama import Llama, LlamaConfig, RMSNorm, repeat_kv
from dlfund.models.llama_weights import (
    WeightsError,
    load_state_dict,
    permute_qk,
    unpermute_qk,
)
from dlfund.models.transformer import apply_rope, sample_next

TINY = dict(vocab_size=50, dim=32, n_layers=2, n_heads=4, n_kv_heads=2, hidden_dim=64, context_length=64)


def tiny(**overrides) -> Llama:
    torch.manual_seed(0)
    return Llama(LlamaConfig(**{**TINY, **overrides})).eval()


def test_forward_shapes_and_tied_head():
    model = tiny()
    logits = model(torch.randint(0, 50, (3, 7)))
    assert logits.shape == (3, 7, 50)
    assert model.lm_head.weight is model.embed_tokens.weight
    untied = tiny(tie_embeddings=False)
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    assert untied.num_parameters() - model.num_parameters() == 50 * 32


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(dim=30), "not divisible by n_heads"),
        (dict(n_kv_heads=3), "multiple of n_kv_heads"),
        (dict(dim=36, n_heads=4, n_kv_heads=2), "must be even"),
        (dict(n_layers=0), "n_layers must be positive"),
    ],
)
def test_config_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        LlamaConfig(**{**TINY, **bad})


def test_input_errors():
    model = tiny()
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="longer than the model's context_length=64"):
        model(torch.zeros(1, 65, dtype=torch.long))


def test_rmsnorm_formula_and_float32_inside():
    norm = RMSNorm(8, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 9.0))
    x = torch.randn(2, 3, 8)
    expected = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    xb = x.to(torch.bfloat16)
    out = norm.to(torch.bfloat16)(xb)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.1, rtol=0.02)


def test_kv_cache_gives_the_same_logits_as_recomputing():
    model = tiny()
    idx = torch.randint(0, 50, (2, 12))
    full = model(idx)
    caches = model.new_caches()
    pieces = [model(idx[:, :5], caches), model(idx[:, 5:6], caches), model(idx[:, 6:], caches)]
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    assert len(caches[0]) == 12
    assert caches[0].k.shape == (2, 2, 12, 8)  # the cache holds the 2 key/value heads, not 4


def test_greedy_stream_equals_argmax_of_full_forward():
    model = tiny()
    prompt = torch.randint(0, 50, (1, 6))
    tokens = model.generate(prompt, 10)
    seq = prompt
    for _ in range(10):
        nxt = model(seq)[:, -1].argmax(-1, keepdim=True)
        seq = torch.cat([seq, nxt], dim=1)
    assert torch.equal(tokens, seq)
    first = int(tokens[0, 6])
    assert model.generate(prompt, 10, stop_tokens=[first])[0, 6:].tolist() == [first]
    streamed = [int(step.token[0]) for step in model.stream(prompt, 3)]
    assert streamed == tokens[0, 6:9].tolist()


def test_gqa_equals_multi_head_attention_with_shared_heads_copied():
    """GQA with h_kv heads is multi-head attention whose key/value heads are repeated group-wise."""
    gqa = tiny()
    mha = tiny(n_kv_heads=4)
    state = gqa.state_dict()
    d = gqa.config.head_dim
    for name in list(state):
        if name.endswith(("k_proj.weight", "v_proj.weight")):  # (h_kv·d, D) -> (h·d, D)
            w = state[name].reshape(2, d, -1)
            state[name] = w.repeat_interleave(2, dim=0).reshape(4 * d, -1)
    mha.load_state_dict(state)
    idx = torch.randint(0, 50, (2, 9))
    torch.testing.assert_close(gqa(idx), mha(idx), atol=1e-5, rtol=1e-5)
    x = torch.arange(4.0).reshape(1, 2, 2, 1)
    assert repeat_kv(x, 2)[0, :, 0, 0].tolist() == [0.0, 0.0, 2.0, 2.0]  # heads of one group adjacent


def test_unpermute_inverts_llama_cpp_permutation_and_matters():
    w = torch.randn(4 * 8, 32)
    torch.testing.assert_close(unpermute_qk(permute_qk(w, 4), 4), w, atol=0, rtol=0)
    assert not torch.equal(permute_qk(w, 4), w)
    with pytest.raises(WeightsError, match="cannot hold 4 heads"):
        unpermute_qk(torch.randn(12, 32), 4)
    # loading permuted q/k without undoing it changes the attention scores: the trap is real. The
    # same row permutation of q and k leaves dot products unchanged; only RoPE's pairing makes it matter.
    model = tiny()
    attn = model.layers[0].self_attn
    x = torch.randn(1, 10, 32)
    rope = (model.rope_cos[:10], model.rope_sin[:10])

    def scores(q_w, k_w, rotate):
        q = (x @ q_w.T).reshape(1, 10, -1, 8).transpose(1, 2)  # (1, 4, 10, 8)
        k = (x @ k_w.T).reshape(1, 10, -1, 8).transpose(1, 2)  # (1, 2, 10, 8)
        if rotate:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return q @ repeat_kv(k, 2).transpose(-2, -1)

    q_w, k_w = attn.q_proj.weight.detach() * 20, attn.k_proj.weight.detach() * 20
    q_p, k_p = permute_qk(q_w, 4), permute_qk(k_w, 2)
    torch.testing.assert_close(scores(q_p, k_p, False), scores(q_w, k_w, False), atol=1e-4, rtol=1e-4)
    right, wrong = scores(q_w, k_w, True), scores(q_p, k_p, True)
    torch.testing.assert_close(wrong[..., 0, 0], right[..., 0, 0], atol=1e-4, rtol=1e-4)  # position 0: no rotation
    assert (wrong - right).abs().max() > 0.1 * right.abs().max()


def test_load_state_dict_is_strict_and_says_what_is_wrong():
    model = tiny()
    state = dict(model.state_dict())
    load_state_dict(tiny(), state)  # round trip works
    missing = {k: v for k, v in state.items() if "layers.1.mlp.up_proj" not in k}
    with pytest.raises(WeightsError, match=r"missing \['layers.1.mlp.up_proj.weight'\]"):
        load_state_dict(tiny(), missing)
    with pytest.raises(WeightsError, match=r"unexpected \['extra.weight'\]"):
        load_state_dict(tiny(), {**state, "extra.weight": torch.zeros(1)})
    with pytest.raises(WeightsError, match=r"norm.weight has shape \(31,\), the model expects \(32,\)"):
        load_state_dict(tiny(), {**state, "norm.weight": torch.ones(31)})
    with pytest.raises(WeightsError, match="differs from embed_tokens.weight"):
        load_state_dict(tiny(), {**state, "lm_head.weight": torch.randn(50, 32)})


def test_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    gen = torch.Generator().manual_seed(0)
    draws = {int(sample_next(logits, top_p=0.7, generator=gen)) for _ in range(200)}
    assert draws == {0, 1}
    assert {int(sample_next(logits, top_p=0.5, generator=gen)) for _ in range(50)} == {0}
    with pytest.raises(ValueError, match=r"top_p must be in \(0, 1\]"):
        sample_next(logits, top_p=0.0)


# ------------------------------------------------------------------------------- the real SmolLM2 file


@pytest.fixture(scope="module")
def tokenizer():
    from dlfund.text.llama_tokenizer import ChatTokenizer

    return ChatTokenizer.from_gguf()


def test_gguf_config_is_smollm2_135m():
    from dlfund.data import smollm2_gguf_path
    from dlfund.models.llama_weights import config_from_gguf

    config = config_from_gguf(smollm2_gguf_path())
    expected = LlamaConfig.smollm2_135m()
    assert math.isclose(config.norm_eps, expected.norm_eps, rel_tol=1e-6)
    config.norm_eps = expected.norm_eps
    assert config == expected


def test_tokenizer_round_trip_digits_and_special_tokens(tokenizer):
    text = "Hello world,  12345 ünïcode — 日本語!\n\tTo be, or not to be"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.tokens("in 2024") == ["in", "Ġ", "2", "0", "2", "4"]  # digits one by one
    ids = tokenizer.encode("<|im_start|>user\nhi<|im_end|>")
    assert ids[0] == tokenizer.token_id("<|im_start|>") == 1
    assert ids[-1] == tokenizer.im_end_id == 2
    assert len(tokenizer) == 49152
    with pytest.raises(TypeError, match="expects a str"):
        tokenizer.encode(["not", "text"])
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tokenizer.token_id("<|no such token|>")


def test_chat_template_matches_the_one_in_the_file(tokenizer):
    jinja2 = pytest.importorskip("jinja2")
    template = jinja2.Template(tokenizer.vocab.chat_template)
    conversations = [
        [{"role": "user", "content": "What is 2+3?"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Name a colour."},
        ],
    ]
    for messages in conversations:
        for gen in (True, False):
            assert tokenizer.chat(messages, add_generation_prompt=gen) == template.render(
                messages=messages, add_generation_prompt=gen
            )
    with pytest.raises(ValueError, match="message 0 must be"):
        tokenizer.chat([{"role": "robot", "content": "x"}])


def test_real_smollm2_answers_a_factual_question(tokenizer):
    from dlfund.models.llama_weights import load_gguf

    model = load_gguf()
    assert model.num_parameters() == 134_515_008
    prompt = tokenizer.chat([{"role": "user", "content": "What is the capital of France?"}])
    ids = torch.tensor([tokenizer.encode(prompt)])
    out = model.generate(ids, 20, stop_tokens=[tokenizer.im_end_id])
    answer = tokenizer.decode(out[0, ids.shape[1] :].tolist(), skip_special=True)
    assert "Paris" in answer, answer
