"""dlfund.peft: the LoRA layer and injection, LLaMA-Adapter v1/v2, and the finetuning loop (tiny models)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dlfund.models.llama import GroupedQueryAttention, Llama, LlamaConfig
from dlfund.peft import adapter, lora
from dlfund.peft.finetune import (
    Method,
    build,
    exact_match,
    hidden_states,
    response_loss,
    state_bytes,
    train,
)
from dlfund.peft.trainable import cast_frozen, train_only
from dlfund.text import instructions
from dlfund.text.llama_tokenizer import ChatTokenizer


def tiny(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(
        LlamaConfig(vocab_size=61, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, hidden_dim=64, context_length=64)
    ).eval()


IDX = torch.randint(0, 61, (3, 12), generator=torch.Generator().manual_seed(1))


# --------------------------------------------------------------------------------------------- LoRA


def test_lora_output_unchanged_at_initialisation_and_only_lora_trains() -> None:
    model, base = tiny(), tiny()
    names = lora.inject_lora(model, ("q_proj", "v_proj"), r=4, alpha=8)
    assert names == [f"layers.{i}.self_attn.{p}" for i in range(3) for p in ("q_proj", "v_proj")]
    with torch.no_grad():
        assert torch.equal(model(IDX), base(IDX))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    report = lora.parameter_report(model)
    assert report.trainable == 3 * 4 * ((32 + 32) + (32 + 16)) and 0 < report.percent < 100
    assert "parameters trainable" in str(report)


def test_frozen_base_unchanged_after_a_step_and_B_moves() -> None:
    model = tiny()
    lora.inject_lora(model, "*_proj", r=2, alpha=4)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    model.train()
    F.cross_entropy(model(IDX).flatten(0, 1), IDX.flatten()).backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if not p.requires_grad)
    assert model.layers[0].mlp.down_proj.lora_B.abs().max() > 0


def _trained_lora(r: int = 4) -> Llama:
    model = tiny()
    lora.inject_lora(model, ("q_proj", "k_proj", "v_proj", "o_proj"), r=r, alpha=2 * r)
    torch.manual_seed(3)
    for layer in lora.lora_layers(model):
        torch.nn.init.normal_(layer.lora_B, std=0.2)
    return model


def test_merged_forward_equals_unmerged_and_unmerge_restores_w() -> None:
    model = _trained_lora()
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if n.endswith("weight")}
    with torch.no_grad():
        unmerged = model(IDX)
        assert lora.merge_lora(model) == 12
        assert all(layer.merged for layer in lora.lora_layers(model))
        merged = model(IDX)
        lora.merge_lora(model)  # idempotent
        assert torch.allclose(model(IDX), unmerged, atol=1e-5)
    assert torch.allclose(merged, unmerged, atol=1e-5)
    lora.unmerge_lora(model)
    lora.unmerge_lora(model)
    for n, p in model.named_parameters():
        if n.endswith("weight"):
            assert torch.allclose(p, weights[n], atol=1e-6), n


def test_lora_layer_scaling_dropout_and_errors() -> None:
    layer = lora.LoRALinear(8, 6, r=2, alpha=6, dropout=0.5)
    assert layer.scaling == 3.0 and "r=2" in repr(layer)
    with pytest.raises(ValueError, match="rank r must be at least 1"):
        lora.LoRALinear(8, 6, r=0)
    with pytest.raises(ValueError, match="no nn.Linear matches"):
        lora.inject_lora(tiny(), ("query",))
    with pytest.raises(ValueError, match="shares its weight with the token embeddings"):
        lora.inject_lora(tiny(), ("lm_head",))
    with pytest.raises(ValueError, match="call inject_lora first"):
        lora.mark_only_lora_trainable(tiny())


def test_save_and_load_only_the_adapter(tmp_path) -> None:
    model = _trained_lora()
    path = tmp_path / "a.safetensors"
    size = lora.save_lora(model, path)
    from safetensors.torch import load_file

    saved = load_file(path)
    assert set(saved) == set(lora.lora_state_dict(model)) and all(k.endswith(("lora_A", "lora_B")) for k in saved)
    assert size < sum(p.numel() * 4 for p in model.parameters()) / 5
    fresh = tiny()
    lora.inject_lora(fresh, ("q_proj", "k_proj", "v_proj", "o_proj"), r=4, alpha=8)
    assert lora.load_lora(fresh, path) == sorted(saved)
    with torch.no_grad():
        assert torch.allclose(fresh(IDX), model(IDX), atol=1e-6)
    other = tiny()
    lora.inject_lora(other, ("q_proj", "v_proj"), r=4, alpha=8)
    with pytest.raises(KeyError, match="do not fit this model"):
        lora.load_lora(other, path)
    rank8 = tiny()
    lora.inject_lora(rank8, ("q_proj", "k_proj", "v_proj", "o_proj"), r=8, alpha=16)
    with pytest.raises(ValueError, match="a different rank"):
        lora.load_lora(rank8, path)
    lora.merge_lora(model)
    with pytest.raises(ValueError, match="unmerge the model before saving"):
        lora.save_lora(model, path)


# ------------------------------------------------------------------------------------------ Adapter


@pytest.mark.parametrize("version", [1, 2])
def test_adapter_is_the_base_model_at_initialisation(version: int) -> None:
    model, base = tiny(), tiny()
    layers = adapter.add_adapter(model, version=version, prompt_len=3, n_layers=2)
    assert layers == [1, 2]
    with torch.no_grad():
        assert torch.equal(model(IDX), base(IDX))
        caches = model.new_caches()
        stepwise = torch.cat([model(IDX[:1, t : t + 1], caches) for t in range(IDX.shape[1])], dim=1)
    assert torch.allclose(stepwise, base(IDX[:1]), atol=1e-5)


@pytest.mark.parametrize("version", [1, 2])
def test_only_adapter_parameters_train(version: int) -> None:
    model = tiny()
    adapter.add_adapter(model, version=version, prompt_len=3, n_layers=2)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    allowed = ("adapter_prompt", "adapter_gate") + (
        ("adapter_bias", "adapter_scale", "norm.weight", "layernorm.weight") if version == 2 else ()
    )
    assert trainable and all(n.endswith(allowed) for n in trainable)
    if version == 2:
        assert any("layernorm" in n for n in trainable) and any(n.endswith("adapter_scale") for n in trainable)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(2):
        F.cross_entropy(model(IDX).flatten(0, 1), IDX.flatten()).backward()
        opt.step(), opt.zero_grad()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n not in trainable), n
    assert set(adapter.adapter_state_dict(model)) == trainable


def test_gate_gets_a_gradient_at_init_and_prompts_do_not() -> None:
    model = tiny()
    adapter.add_adapter(model, prompt_len=3)
    F.cross_entropy(model(IDX).flatten(0, 1), IDX.flatten()).backward()
    attn = model.layers[-1].self_attn
    assert attn.adapter_gate.grad.abs().max() > 0 and attn.adapter_prompt.grad.abs().max() == 0


def test_adapter_overrides_only_attend_and_shares_the_projections() -> None:
    """LLaMA-Adapter changes one method of GroupedQueryAttention; projections, RoPE, cache and o_proj are shared."""
    overridden = {
        name
        for name, value in vars(adapter.AdapterAttention).items()
        if callable(value) and name in vars(GroupedQueryAttention)
    }
    assert overridden == {"__init__", "attend"}
    model = tiny()
    attn = model.layers[2].self_attn
    adapter.add_adapter(model, prompt_len=3, n_layers=1)
    new = model.layers[2].self_attn
    assert all(getattr(new, p) is getattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj"))
    assert new.adapter_prompt.device == attn.q_proj.weight.device and new.adapter_prompt.dtype == torch.float32
    assert torch.equal(new.adapter_gate, torch.zeros(4)) and new.adapter_prompt.abs().sum() > 0
    with torch.no_grad():
        new.adapter_gate.uniform_(-0.5, 0.5)  # gates open: the prompts change the output
        x, rope = torch.randn(2, 7, 32), (model.rope_cos[:7], model.rope_sin[:7])
        q, k, v = new.project(x, rope)
        expected = attn.attend(q, k, v) + new.adapter_gate.view(1, -1, 1, 1) * new.prompt_attention(q)
        torch.testing.assert_close(new.attend(q, k, v), expected)
        assert not torch.allclose(new(x, rope), attn(x, rope), atol=1e-4)
    prompt = IDX[:2, :6]  # generation: cached == recomputed
    assert torch.equal(model.generate(prompt, 8), model.generate(prompt, 8, use_cache=False))


def test_adapter_errors() -> None:
    with pytest.raises(ValueError, match="version must be 1 or 2"):
        adapter.add_adapter(tiny(), version=3)
    with pytest.raises(ValueError, match="n_layers must be between 1"):
        adapter.add_adapter(tiny(), n_layers=9)
    model = tiny()
    adapter.add_adapter(model)
    with pytest.raises(ValueError, match="already has an adapter"):
        adapter.add_adapter(model)


# ------------------------------------------------------------------------------------- finetuning


def test_response_loss_equals_masked_cross_entropy() -> None:
    model = tiny()
    targets = torch.randint(0, 61, IDX.shape)
    targets[:, :5] = -100
    ref = F.cross_entropy(model(IDX).flatten(0, 1), targets.flatten(), ignore_index=-100)
    assert torch.allclose(response_loss(model, IDX, targets), ref, atol=1e-6)
    assert torch.allclose(model.lm_head(hidden_states(model, IDX)), model(IDX), atol=1e-6)
    with pytest.raises(ValueError, match="no response tokens"):
        response_loss(model, IDX, torch.full_like(IDX, -100))


@pytest.mark.parametrize(
    "method",
    [
        Method("full", "full", 3e-3),
        Method("lora", "lora", 3e-2, {"r": 4, "alpha": 8}),
        Method("v1", "adapter", 3e-2, {"version": 1, "prompt_len": 4}),
        Method("v2", "adapter", 3e-2, {"version": 2}),
    ],
)
def test_train_lowers_the_loss_and_leaves_the_base_alone(method: Method) -> None:
    base = tiny()
    snapshot = copy.deepcopy(base.state_dict())
    model = build(base, method)
    targets = IDX.roll(-1, dims=1)
    result = train(model, iter([(IDX, targets)] * 15), steps=15, lr=method.lr, device=torch.device("cpu"))
    assert result.precision == "32-true" and result.peak_memory_mb is None
    assert result.losses[-1] < result.losses[0]
    assert all(torch.equal(v, base.state_dict()[k]) for k, v in snapshot.items())
    sizes = state_bytes(model)
    assert sizes["total"] == sizes["weights"] + sizes["grads"] + sizes["adamw"]
    assert sizes["grads"] == 4 * result.trainable
    with pytest.raises(ValueError, match="unknown method kind"):
        build(base, Method("x", "bitfit", 1.0))


@pytest.mark.parametrize("method", ["lora", "adapter v1", "adapter v2"])
def test_one_rule_decides_what_trains_and_what_is_saved(method: str) -> None:
    """Freezing and saving use one function of the model: unfreezing a base weight by hand changes neither
    the rule nor the checkpoint."""
    model = tiny()
    if method == "lora":
        lora.inject_lora(model, ("q_proj", "v_proj"), r=2)
        names, save = lora.lora_parameter_names(model), lora.lora_state_dict
    else:
        adapter.add_adapter(model, version=int(method[-1]), prompt_len=3, n_layers=2)
        names, save = adapter.adapter_parameter_names(model), adapter.adapter_state_dict
    assert names == {n for n, p in model.named_parameters() if p.requires_grad}
    model.layers[0].mlp.up_proj.weight.requires_grad_(True)  # a hand-made change
    assert set(save(model)) == names, "the checkpoint follows the rule, not requires_grad"
    with pytest.raises(KeyError, match="has no parameters nope"):
        train_only(model, {"nope"})


def test_cast_frozen_keeps_tied_weights_tied_and_trainable_ones_in_float32() -> None:
    model = tiny()
    lora.inject_lora(model, ("q_proj",), r=2)
    assert model.lm_head.weight is model.embed_tokens.weight
    cast = cast_frozen(model, torch.bfloat16)
    assert cast == sum(1 for p in model.parameters() if not p.requires_grad)
    assert model.lm_head.weight is model.embed_tokens.weight and model.lm_head.weight.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters() if p.requires_grad)
    assert cast_frozen(model, torch.bfloat16) == 0


def test_after_bf16_training_the_model_is_evaluated_under_autocast() -> None:
    """train() in bf16-mixed stores the frozen base in bf16 and keeps the adapter in float32 (on a GPU it does
    so by default; Fabric runs bf16-mixed on a CPU too). A forward pass outside autocast then mixes dtypes,
    the error unit 13's adapter lecture first met on a GPU; under autocast the model works."""
    model = build(tiny(), Method("v1", "adapter", 3e-2, {"version": 1, "prompt_len": 4}))
    targets = IDX.roll(-1, dims=1)
    result = train(
        model, iter([(IDX, targets)] * 2), steps=2, lr=3e-2, device=torch.device("cpu"), precision="bf16-mixed"
    )
    assert result.precision == "bf16-mixed"
    dtypes = {p.dtype for p in model.parameters()}
    assert dtypes == {torch.bfloat16, torch.float32}, "frozen in bf16, trainable in float32"
    with torch.no_grad(), pytest.raises(RuntimeError, match="(?i)bfloat16|dtype"):
        response_loss(model, IDX, targets)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(response_loss(model, IDX, targets))


def test_exact_match_with_given_prompts() -> None:
    tok = ChatTokenizer.from_gguf()
    torch.manual_seed(0)
    model = Llama(
        LlamaConfig(vocab_size=len(tok), dim=16, n_layers=1, n_heads=2, n_kv_heads=1, hidden_dim=32, context_length=256)
    ).eval()
    examples = instructions.generate(3, seed=0, tasks=("add",))
    plain = exact_match(model, tok, examples, max_new_tokens=3)
    same = exact_match(
        model, tok, examples, max_new_tokens=3, prompts=[instructions.prompt_text(tok, e) for e in examples]
    )
    assert plain == same  # the default prompt is the zero-shot prompt
    shot = instructions.few_shot_prompt(tok, examples[0], examples[1:])
    assert len(exact_match(model, tok, examples[:1], max_new_tokens=3, prompts=[shot])[1]) == 1
    with pytest.raises(ValueError, match="2 prompts for 3 examples"):
        exact_match(model, tok, examples, prompts=["a", "b"])
