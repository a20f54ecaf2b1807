"""dlfund.peft.prompt: prompt tuning and prefix tuning on tiny Llamas; ``peft`` as an oracle where installed."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from dlfund.models.llama import Llama, LlamaConfig, repeat_kv
from dlfund.models.transformer import apply_rope
from dlfund.peft import prompt
from dlfund.peft.finetune import Method, batches, build, exact_match, hidden_states, response_loss, train
from dlfund.peft.lora import parameter_report
from dlfund.text.instructions import Example

CONFIG = LlamaConfig(vocab_size=61, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, hidden_dim=64, context_length=64)


def tiny(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(CONFIG).eval()


IDX = torch.randint(0, 61, (3, 12), generator=torch.Generator().manual_seed(1))


def prompted(n: int = 5) -> prompt.PromptTunedLlama:
    model = prompt.add_soft_prompt(tiny(), prompt_len=n, init_ids=[3, 4, 5])
    with torch.no_grad():
        model.soft_prompt.add_(torch.randn(model.soft_prompt.shape, generator=torch.Generator().manual_seed(2)))
    return model.eval()


def prefixed(n: int = 4, n_layers: int | None = None) -> Llama:
    model = tiny()
    prompt.add_prefix(model, prefix_len=n, n_layers=n_layers, init_ids=[7, 8])
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in prompt.prefix_parameter_names(model):
            model.get_parameter(p).add_(torch.randn(model.get_parameter(p).shape, generator=gen))
    return model


# ------------------------------------------------------------------------------------------ prompt tuning


def concatenated_reference(model: prompt.PromptTunedLlama, idx: torch.Tensor) -> torch.Tensor:
    """An independent prompt-tuned forward pass: the prompt concatenated to the embeddings, one causal
    pass over n + T positions, the text's logits kept (what Lester et al. and ``peft`` do)."""
    n, t = model.prompt_len, idx.shape[1]
    x = torch.cat([model.soft_prompt[None].expand(idx.shape[0], -1, -1), model.embed_tokens(idx)], dim=1)
    rope = (model.rope_cos[: n + t], model.rope_sin[: n + t])
    for layer in model.layers:
        x = layer(x, rope)
    return model.lm_head(model.norm(x))[:, n:]


def test_prompt_tuning_equals_concatenating_the_prompt_and_shapes() -> None:
    model = prompted()
    assert model.soft_prompt.shape == (5, CONFIG.dim)
    with torch.no_grad():
        out = model(IDX)
        assert out.shape == (3, 12, CONFIG.vocab_size)
        assert (out - concatenated_reference(model, IDX)).abs().max() < 1e-5
        assert (out - tiny()(IDX)).abs().max() > 1e-3  # the prompt does change the output


def test_prompt_tuning_kv_cache_and_generation_agree_with_the_full_pass() -> None:
    model = prompted()
    with torch.no_grad():
        full = model(IDX)
        caches = model.new_caches()
        pieces = [model(IDX[:, :5], caches), model(IDX[:, 5:6], caches), model(IDX[:, 6:], caches)]
        assert len(caches[0]) == 5 + 12  # the prompt sits in the cache before the text
    assert (torch.cat(pieces, dim=1) - full).abs().max() < 1e-5
    cached = model.generate(IDX[:1], 6)
    uncached = model.generate(IDX[:1], 6, use_cache=False)
    assert torch.equal(cached, uncached)


def test_zero_length_prompt_and_prefix_are_the_base_model() -> None:
    base = tiny()
    with torch.no_grad():
        expected = base(IDX)
        assert torch.equal(prompt.add_soft_prompt(tiny(), prompt_len=0)(IDX), expected)
        model = tiny()
        prompt.add_prefix(model, prefix_len=0)
        assert torch.equal(model(IDX), expected)


def test_a_zero_valued_prefix_is_not_the_base_model() -> None:
    """Unlike LLaMA-Adapter's zero gate, zero keys and values still take softmax weight (score 0): they
    dilute every query's attention to the text."""
    model = tiny()
    prompt.add_prefix(model, prefix_len=3)
    with torch.no_grad():
        for p in prompt.prefix_parameter_names(model):
            model.get_parameter(p).zero_()
        assert (model(IDX) - tiny()(IDX)).abs().max() > 1e-3


def test_prompt_gradients_reach_only_the_prompt_and_the_base_is_shared_not_changed() -> None:
    base = tiny()
    model = build(base, Method("prompt", "prompt", 1e-2, {"prompt_len": 4, "init_ids": [1, 2]}))
    assert isinstance(model, prompt.PromptTunedLlama) and not isinstance(base, prompt.PromptTunedLlama)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"soft_prompt"}
    assert parameter_report(model).trainable == 4 * CONFIG.dim
    targets = IDX.roll(-1, dims=1)
    F.cross_entropy(model(IDX).flatten(0, 1), targets.flatten()).backward()
    assert model.soft_prompt.grad is not None and model.soft_prompt.grad.abs().max() > 0
    assert all(p.grad is None for n, p in model.named_parameters() if n != "soft_prompt")
    assert model.embed_tokens.weight.data_ptr() != base.embed_tokens.weight.data_ptr()  # build copies the base
    assert torch.equal(model.soft_prompt.detach(), base.embed_tokens.weight[[1, 2, 1, 2]])  # init: real tokens
    assert set(prompt.prompt_state_dict(model)) == {"soft_prompt"}


def test_prompt_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prompt_len must be"):
        prompt.add_soft_prompt(tiny(), prompt_len=-1)
    with pytest.raises(TypeError, match="plain dlfund Llama"):
        prompt.add_soft_prompt(prompted(), prompt_len=2)
    with pytest.raises(ValueError, match="init_ids is empty"):
        prompt.add_soft_prompt(tiny(), prompt_len=2, init_ids=[])


# ------------------------------------------------------------------------------------------ prefix tuning


def manual_prefix_layer(attn: prompt.PrefixAttention, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor]):
    """One prefix-tuned attention layer written out: softmax over [prefix; text] with an explicit mask."""
    b, t, _ = x.shape
    h, hk, d = attn.n_heads, attn.n_kv_heads, attn.head_dim
    q = apply_rope(attn.q_proj(x).view(b, t, h, d).transpose(1, 2), *rope)
    k = apply_rope(attn.k_proj(x).view(b, t, hk, d).transpose(1, 2), *rope)
    v = attn.v_proj(x).view(b, t, hk, d).transpose(1, 2)
    n = attn.prefix_len
    k = torch.cat([attn.prefix_key[None].expand(b, -1, -1, -1), k], 2)
    v = torch.cat([attn.prefix_value[None].expand(b, -1, -1, -1), v], 2)
    k, v = repeat_kv(k, h // hk), repeat_kv(v, h // hk)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (B, h, T, n + T)
    allowed = torch.ones(t, n + t, dtype=torch.bool)
    allowed[:, n:] = torch.ones(t, t, dtype=torch.bool).tril()
    y = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v
    return attn.o_proj(y.transpose(1, 2).reshape(b, t, h * d))


def test_prefix_attention_equals_the_written_out_computation_and_shapes() -> None:
    model = prefixed()
    attn = model.layers[1].self_attn
    assert isinstance(attn, prompt.PrefixAttention)
    assert attn.prefix_key.shape == attn.prefix_value.shape == (CONFIG.n_kv_heads, 4, CONFIG.head_dim)
    x = torch.randn(3, 9, CONFIG.dim, generator=torch.Generator().manual_seed(4))
    rope = (model.rope_cos[:9], model.rope_sin[:9])
    with torch.no_grad():
        assert (attn(x, rope) - manual_prefix_layer(attn, x, rope)).abs().max() < 1e-5


def test_prefix_kv_cache_agrees_with_the_full_pass() -> None:
    model = prefixed()
    with torch.no_grad():
        full = model(IDX)
        caches = model.new_caches()
        pieces = [model(IDX[:, :5], caches), model(IDX[:, 5:6], caches), model(IDX[:, 6:], caches)]
        assert len(caches[0]) == 12  # the cache holds the text only
    assert (torch.cat(pieces, dim=1) - full).abs().max() < 1e-5


def test_prefix_gradients_reach_only_the_prefix_in_the_chosen_layers() -> None:
    model = build(tiny(), Method("prefix", "prefix", 1e-2, {"prefix_len": 4, "n_layers": 2}))
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert names == {f"layers.{i}.self_attn.{p}" for i in (1, 2) for p in ("prefix_key", "prefix_value")}
    assert not isinstance(model.layers[0].self_attn, prompt.PrefixAttention)
    assert parameter_report(model).trainable == 2 * 2 * CONFIG.n_kv_heads * 4 * CONFIG.head_dim
    F.cross_entropy(model(IDX).flatten(0, 1), IDX.roll(-1, 1).flatten()).backward()
    for n, p in model.named_parameters():
        assert (p.grad is not None and p.grad.abs().max() > 0) if n in names else p.grad is None, n


def test_prefix_init_reads_the_models_own_keys_and_values() -> None:
    model, base = tiny(), tiny()
    prompt.add_prefix(model, prefix_len=3, init_ids=[9, 10, 11])
    caches = base.new_caches()
    with torch.no_grad():
        base(torch.tensor([[9, 10, 11]]), caches)
    assert torch.equal(model.layers[2].self_attn.prefix_key, caches[2].k[0])
    assert torch.equal(model.layers[0].self_attn.prefix_value, caches[0].v[0])


def test_prefix_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prefix_len must be"):
        prompt.add_prefix(tiny(), prefix_len=-2)
    with pytest.raises(ValueError, match="n_layers must be"):
        prompt.add_prefix(tiny(), prefix_len=2, n_layers=4)
    model = tiny()
    prompt.add_prefix(model, prefix_len=2)
    with pytest.raises(ValueError, match="already has a prefix"):
        prompt.add_prefix(model, prefix_len=2)


# ------------------------------------------------------------------------------------ the training loop


@pytest.mark.parametrize(
    "method",
    [
        Method("prompt", "prompt", 0.05, {"prompt_len": 4, "init_ids": [5]}),
        Method("prefix", "prefix", 0.05, {"prefix_len": 4}),
    ],
)
def test_finetune_trains_and_scores_the_new_methods(method: Method) -> None:
    base = tiny()
    model = build(base, method)
    encoded = [(list(range(i, i + 10)), [False] * 5 + [True] * 5) for i in range(1, 9)]
    idx, targets = next(batches(encoded, 8, pad_id=0, seed=0))
    with torch.no_grad():
        before = response_loss(model, idx, targets).item()
    result = train(model, batches(encoded, 8, pad_id=0, seed=0), steps=15, lr=method.lr, device=torch.device("cpu"))
    with torch.no_grad():
        after = response_loss(model, idx, targets).item()
        assert torch.allclose(model.lm_head(hidden_states(model, idx)), model(idx), atol=1e-6)
    assert after < before and result.trainable < result.total
    with torch.no_grad():
        assert torch.equal(base(IDX), tiny()(IDX))  # the base model did not train

    class Tok:  # the few methods exact_match needs
        im_end_id = 0

        def encode(self, text: str) -> list[int]:
            return [1, 2, 3]

        def decode(self, ids: list[int]) -> str:
            return " ".join(map(str, ids))

        def chat(self, messages, system=None) -> str:
            return "x"

    score, answers = exact_match(model, Tok(), [Example("add", "1 + 1", "2")], max_new_tokens=3)
    assert 0.0 <= score <= 1.0 and len(answers) == 1


# ------------------------------------------------------------------------------------- peft as an oracle


def hf_pair():
    """Our tiny model and the same weights in a transformers ``LlamaForCausalLM``."""
    pytest.importorskip("transformers")
    from dlfund.course.bench.lora_vs_peft import hf_llama

    ours = tiny()
    return ours, hf_llama(ours)


def test_prompt_tuning_matches_peft() -> None:
    """peft's PromptTuning on the same weights: the same trainable count, and with the same prompt the
    same logits on the text positions (peft returns the prompt's positions first)."""
    peft = pytest.importorskip("peft")
    ours, hf = hf_pair()
    n = 5
    theirs = peft.get_peft_model(hf, peft.PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    model = prompt.add_soft_prompt(ours, prompt_len=n, init_ids=[2, 3])
    assert theirs.get_nb_trainable_parameters()[0] == parameter_report(model).trainable == n * CONFIG.dim
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(model.soft_prompt)
        expected = theirs(input_ids=IDX).logits[:, n:]
        diff = (model.eval()(IDX) - expected).abs().max().item()
    assert diff <= 1e-4, f"prompt-tuned logits differ from peft's by {diff:.2e}"


def test_prefix_tuning_matches_peft() -> None:
    """peft's PrefixTuning: the same trainable count (one prefix per key/value head under GQA), and the same
    logits once each prefix key is rotated back by n positions (peft's keys are cache entries read by a
    text shifted to positions n ..; ours carry no rotation and the text stays at 0 ..)."""
    peft = pytest.importorskip("peft")
    ours, hf = hf_pair()
    n, L, hk, d = 4, CONFIG.n_layers, CONFIG.n_kv_heads, CONFIG.head_dim
    theirs = peft.get_peft_model(hf, peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=n))
    count = theirs.get_nb_trainable_parameters()[0]
    if count == n * L * 2 * CONFIG.dim:
        pytest.skip("this peft version gives every query head a prefix (it predates grouped-query attention support)")
    prompt.add_prefix(ours, prefix_len=n)
    assert count == parameter_report(ours).trainable == n * L * 2 * hk * d
    table = torch.randn(n, L * 2 * hk * d, generator=torch.Generator().manual_seed(5))
    # peft's layout: (n, L·2·h_kv·d) viewed (n, 2L, h_kv, d), permuted to (2L, h_kv, n, d): layer i's keys are
    # entry 2i, its values 2i + 1
    per_layer = table.view(n, 2 * L, hk, d).permute(1, 2, 0, 3)
    back = (ours.rope_cos[n : n + 1], -ours.rope_sin[n : n + 1])  # rotation by -n positions
    with torch.no_grad():
        theirs.prompt_encoder["default"].embedding.weight.copy_(table)
        for i, layer in enumerate(ours.layers):
            layer.self_attn.prefix_key.copy_(apply_rope(per_layer[2 * i], *back))
            layer.self_attn.prefix_value.copy_(per_layer[2 * i + 1])
        diff = (ours(IDX) - theirs(input_ids=IDX).logits).abs().max().item()
    assert diff <= 1e-4, f"prefix-tuned logits differ from peft's by {diff:.2e}"


def test_llama_adapter_v1_is_gated_prefix_tuning_in_the_top_layers() -> None:
    """With its gates shut LLaMA-Adapter is the base model; prefix tuning with the same number of
    positions per layer trains a full key and value per key/value head instead of one D-vector."""
    from dlfund.peft.adapter import add_adapter

    a, p = tiny(), tiny()
    add_adapter(a, version=1, prompt_len=4, n_layers=2)
    prompt.add_prefix(p, prefix_len=4, n_layers=2)
    with torch.no_grad():
        assert torch.equal(a(IDX), tiny()(IDX)) and not torch.equal(p(IDX), tiny()(IDX))
    assert parameter_report(a).trainable == 2 * (4 * CONFIG.dim + CONFIG.n_heads)
    assert parameter_report(p).trainable == 2 * 2 * 4 * CONFIG.n_kv_heads * CONFIG.head_dim
    assert copy.deepcopy(p).layers[2].self_attn.prefix_len == 4
