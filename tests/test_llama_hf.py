"""Loading LLaMA checkpoints: a tiny GGUF (q/k permuted as llama.cpp writes them) and a Hugging Face folder,
and, where ``transformers`` is installed, logits parity with ``LlamaForCausalLM`` on the same weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dlfund.models.llama import Llama, LlamaConfig
from dlfund.models.llama_weights import (
    WeightsError,
    config_to_hf,
    load_gguf,
    load_hf,
    permute_qk,
    save_hf,
    unpermute_qk,
)
from dlfund.text.bpe import bytes_to_unicode

TINY = {
    "vocab_size": 300,
    "dim": 32,
    "n_layers": 2,
    "n_heads": 4,
    "n_kv_heads": 2,
    "hidden_dim": 64,
    "context_length": 64,
    "rope_base": 10000.0,
    "norm_eps": 1e-5,
}
GGUF_BLOCK = {
    v: k
    for k, v in {
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }.items()
}


def tiny_model(seed: int = 0, **overrides) -> Llama:
    torch.manual_seed(seed)
    model = Llama(LlamaConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # random norms too, so a swapped or missing norm shows
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return model


def write_gguf(model: Llama, path: Path) -> Path:
    """``model`` as llama.cpp's converter writes it: F32 tensors, q/k rows permuted, llama metadata, a tokenizer."""
    import gguf

    c = model.config
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-random-llama")
    w.add_block_count(c.n_layers)
    w.add_context_length(c.context_length)
    w.add_embedding_length(c.dim)
    w.add_feed_forward_length(c.hidden_dim)
    w.add_head_count(c.n_heads)
    w.add_head_count_kv(c.n_kv_heads)
    w.add_rope_freq_base(c.rope_base)
    w.add_rope_dimension_count(c.head_dim)
    w.add_layer_norm_rms_eps(c.norm_eps)
    w.add_vocab_size(c.vocab_size)
    chars = list(bytes_to_unicode().values())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    tokens = chars + ["Ġt", "he", "Ġthe", "<|im_start|>", "<|im_end|>"]
    tokens += [f"<unused{i}>" for i in range(c.vocab_size - len(tokens))]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3 if t.startswith("<") and len(t) > 1 else 1 for t in tokens])
    w.add_token_merges([f"{a} {b}" for a, b in merges])
    w.add_bos_token_id(tokens.index("<|im_start|>"))
    w.add_eos_token_id(tokens.index("<|im_end|>"))
    state = {n: p.detach().float() for n, p in model.named_parameters()}
    w.add_tensor("token_embd.weight", state.pop("embed_tokens.weight").numpy())
    w.add_tensor("output_norm.weight", state.pop("norm.weight").numpy())
    if "lm_head.weight" in state:
        w.add_tensor("output.weight", state.pop("lm_head.weight").numpy())
    for name, t in state.items():  # layers.{i}.{kind}.weight
        _, i, *kind, last = name.split(".")
        kind = ".".join(kind)
        if kind == "self_attn.q_proj":
            t = permute_qk(t, c.n_heads)
        elif kind == "self_attn.k_proj":
            t = permute_qk(t, c.n_kv_heads)
        w.add_tensor(f"blk.{i}.{GGUF_BLOCK[kind]}.{last}", np.ascontiguousarray(t.numpy()))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def tokens(seed: int = 1, shape=(2, 12)) -> torch.Tensor:
    return torch.randint(0, TINY["vocab_size"], shape, generator=torch.Generator().manual_seed(seed))


def test_permute_and_unpermute_are_inverse():
    w = torch.randn(4 * 8, 5)
    assert torch.equal(unpermute_qk(permute_qk(w, 4), 4), w)
    assert not torch.equal(permute_qk(w, 4), w)
    with pytest.raises(WeightsError, match="cannot hold 4 heads"):
        unpermute_qk(torch.randn(12, 5), 4)


@pytest.mark.parametrize("tied", [True, False])
def test_gguf_round_trip(tmp_path, tied):
    model = tiny_model(tie_embeddings=tied)
    loaded = load_gguf(write_gguf(model, tmp_path / "tiny.gguf"))
    assert loaded.config == model.config
    x = tokens()
    assert torch.allclose(loaded(x), model(x), atol=1e-5)


def test_gguf_without_unpermuting_gives_other_logits(tmp_path, monkeypatch):
    model = tiny_model()
    with torch.no_grad():  # sharper attention, so that scores matter
        for layer in model.layers:
            layer.self_attn.q_proj.weight.mul_(25)
            layer.self_attn.k_proj.weight.mul_(25)
    path = write_gguf(model, tmp_path / "tiny.gguf")
    from dlfund.models import llama_weights

    monkeypatch.setattr(llama_weights, "unpermute_qk", lambda w, n: w)
    wrong = load_gguf(path)
    with torch.no_grad():
        assert (wrong(tokens()) - model(tokens())).abs().max() > 1e-2


def test_gguf_tokenizer_of_the_tiny_file(tmp_path):
    from dlfund.text.bpe import ByteLevelBPE
    from dlfund.text.llama_tokenizer import ChatTokenizer

    path = write_gguf(tiny_model(), tmp_path / "tiny.gguf")
    ref, ours = ChatTokenizer.from_gguf(path), ByteLevelBPE.from_gguf(path)
    text = "<|im_start|>user\nthe theme 42<|im_end|>"
    assert ours.encode(text) == ref.encode(text)
    assert "Ġthe" in ours.tokenize(text) and ref.decode(ref.encode(text)) == text


@pytest.mark.parametrize("tied", [True, False])
def test_hf_folder_round_trip(tmp_path, tied):
    from safetensors.torch import load_file

    model = tiny_model(tie_embeddings=tied)
    folder = save_hf(model, tmp_path / "ckpt")
    names = set(load_file(str(folder / "model.safetensors")))
    assert "model.embed_tokens.weight" in names and "model.layers.1.mlp.down_proj.weight" in names
    assert ("lm_head.weight" in names) is (not tied)
    loaded = load_hf(folder)
    assert loaded.config == model.config
    assert torch.equal(loaded(tokens()), model(tokens()))
    save_hf(tiny_model(seed=5, tie_embeddings=tied), folder)  # overwrite in place, atomically
    assert not torch.equal(load_hf(folder)(tokens()), model(tokens()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary folders left behind


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling"),
        ({"attention_bias": True}, "attention_bias=true is not supported"),
        ({"mlp_bias": True}, "mlp_bias=true is not supported"),
        ({"hidden_act": "gelu"}, "hidden_act 'gelu' is not supported"),
        ({"head_dim": 16}, "head_dim=16 with 4 heads does not make hidden_size=32"),
        ({"model_type": "mistral"}, "model_type 'mistral', expected 'llama'"),
        ({"num_key_value_heads": 3}, "multiple of n_kv_heads=3"),
    ],
)
def test_hf_unsupported_configs_are_clear_errors(tmp_path, change, match):
    folder = save_hf(tiny_model(), tmp_path / "ckpt")
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, **change}))
    with pytest.raises(WeightsError, match=match):
        load_hf(folder)


def test_hf_missing_files_and_wrong_shapes(tmp_path):
    with pytest.raises(WeightsError, match="no config.json"):
        load_hf(tmp_path)
    folder = save_hf(tiny_model(), tmp_path / "ckpt")
    raw = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**raw, "intermediate_size": 48}))
    with pytest.raises(WeightsError, match=r"mlp.gate_proj.weight has shape \(64, 32\), the model expects \(48, 32\)"):
        load_hf(folder)


# ---------------------------------------------------------------------------- transformers as the oracle


def hf_llama(config: LlamaConfig):
    transformers = pytest.importorskip("transformers")
    raw = config_to_hf(config)
    raw.pop("architectures")
    raw.pop("model_type")
    raw.pop("torch_dtype")
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**raw))


@pytest.mark.parametrize("tied", [True, False])
def test_logits_equal_transformers_on_a_saved_folder(tmp_path, tied):
    """transformers saves a random GQA model; load_hf reads it; full and KV-cache logits match."""
    config = LlamaConfig(**{**TINY, "tie_embeddings": tied})
    torch.manual_seed(0)
    ref = hf_llama(config).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    ref.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ours = load_hf(tmp_path / "hf")
    assert ours.config == config
    x = tokens(shape=(2, 20))
    with torch.no_grad():
        expected = ref(x).logits
        full = ours(x)
        caches = ours.new_caches()
        pieces = [ours(x[:, :7], caches), ours(x[:, 7:8], caches), ours(x[:, 8:], caches)]
    diff_full = (full - expected).abs().max().item()
    diff_cache = (torch.cat(pieces, dim=1) - expected).abs().max().item()
    print(f"tiny GQA (tied={tied}): max |logits diff| full {diff_full:.2e}, KV cache {diff_cache:.2e}")
    assert diff_full <= 1e-4 and diff_cache <= 1e-4


def test_transformers_reads_our_save_hf(tmp_path):
    transformers = pytest.importorskip("transformers")
    model = tiny_model(tie_embeddings=False)
    ref = transformers.LlamaForCausalLM.from_pretrained(save_hf(model, tmp_path / "ours")).eval()
    with torch.no_grad():
        assert (ref(tokens()).logits - model(tokens())).abs().max() <= 1e-4


def test_real_smollm2_logits_equal_transformers(tmp_path):
    """The dequantised SmolLM2-135M written as an HF folder, read by LlamaForCausalLM: logits within 1e-4 (fp32).

    (They are in fact identical here: the same operations in the same order, RoPE frequencies included.)"""
    transformers = pytest.importorskip("transformers")
    from dlfund.text.llama_tokenizer import ChatTokenizer

    ours = load_gguf()
    ref = transformers.LlamaForCausalLM.from_pretrained(save_hf(ours, tmp_path / "smollm2"), dtype=torch.float32).eval()
    from dlfund.text.chars import shakespeare_corpus

    tok = ChatTokenizer.from_gguf()
    chat = tok.encode(tok.chat([{"role": "user", "content": "What is the capital of France?"}]))
    x = torch.tensor([chat + tok.encode(shakespeare_corpus()[1][:3000])[:300]])  # positions up to ~340
    with torch.no_grad():
        diff = (ours(x) - ref(x).logits).abs().max().item()
    print(f"SmolLM2-135M, {x.shape[1]} tokens: max |logits diff| vs LlamaForCausalLM {diff:.2e}")
    assert diff <= 1e-4


def test_dequantised_weights_are_cached_by_content(tmp_path, monkeypatch, capsys):
    from dlfund.models import llama_weights

    monkeypatch.setenv("DLFUND_DATA_DIR", str(tmp_path / "cache"))
    model = tiny_model()
    path = write_gguf(model, tmp_path / "tiny.gguf")
    load_gguf(path)  # an arbitrary file: not cached by default
    assert not (tmp_path / "cache").exists()
    first = load_gguf(path, cache=True)
    cached = llama_weights.dequantised_cache_path(path)
    assert cached.is_file() and cached.parent == tmp_path / "cache" / "dequantised"
    assert [p.name for p in cached.parent.iterdir()] == [cached.name]  # no temporary file left

    def no_dequantising(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(llama_weights, "gguf_state_dict", no_dequantising)
    second = load_gguf(path, cache=True)
    with torch.no_grad():
        assert torch.equal(first(tokens()), second(tokens())) and torch.allclose(
            second(tokens()), model(tokens()), atol=1e-5
        )
    monkeypatch.undo()
    monkeypatch.setenv("DLFUND_DATA_DIR", str(tmp_path / "cache"))
    write_gguf(tiny_model(seed=7), path)  # new content: a new cache entry
    assert llama_weights.dequantised_cache_path(path) != cached
    with torch.no_grad():
        assert torch.allclose(load_gguf(path, cache=True)(tokens()), tiny_model(seed=7)(tokens()), atol=1e-5)


def test_unwritable_cache_is_said_once_and_loading_continues(tmp_path, monkeypatch, capsys):
    from dlfund.models import llama_weights

    monkeypatch.setenv("DLFUND_DATA_DIR", str(tmp_path / "cache"))
    path = write_gguf(tiny_model(), tmp_path / "tiny.gguf")

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(llama_weights, "atomic_open", read_only)
    load_gguf(path, cache=True)
    assert capsys.readouterr().out.count("could not cache the dequantised weights") == 1
