"""The from-scratch BERT encoder (dlfund.models.encoder) against references, on random and the real MiniLM weights."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfund import data
from dlfund.models.encoder import (
    Encoder,
    EncoderClassifier,
    EncoderConfig,
    checkpoint_name,
    count_parameters,
    embed_texts,
    finetune,
    freeze_layers,
    load_encoder,
    load_tokenizer,
    load_weights,
    mean_pool,
    tokenize,
)

TINY = EncoderConfig(
    vocab_size=50,
    hidden_size=24,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=40,
    max_position_embeddings=16,
    layer_norm_eps=1e-12,
)


@pytest.fixture(scope="module")
def minilm_folder():
    if not data.verify("minilm-l6-v2"):
        pytest.skip("minilm-l6-v2 is not in the cache (run `dlfund data fetch minilm-l6-v2`)")
    return data.minilm_dir()


@pytest.fixture(scope="module")
def minilm(minilm_folder):
    return load_encoder(minilm_folder), load_tokenizer(minilm_folder)


def reference_forward(encoder: Encoder, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same computation with PyTorch's own nn.TransformerEncoderLayer (post-norm, GELU), weights copied."""
    cfg, emb = encoder.config, encoder.embeddings
    t = ids.shape[1]
    x = emb.word.weight[ids] + emb.position.weight[:t][None] + emb.token_type.weight[0]
    x = F.layer_norm(x, (cfg.hidden_size,), emb.norm.weight, emb.norm.bias, cfg.layer_norm_eps)
    for mine in encoder.layers:
        ref = nn.TransformerEncoderLayer(
            cfg.hidden_size,
            cfg.num_attention_heads,
            cfg.intermediate_size,
            dropout=0.0,
            activation="gelu",
            layer_norm_eps=cfg.layer_norm_eps,
            batch_first=True,
            norm_first=False,
        )
        with torch.no_grad():
            a = mine.attn
            ref.self_attn.in_proj_weight.copy_(torch.cat([a.q.weight, a.k.weight, a.v.weight]))
            ref.self_attn.in_proj_bias.copy_(torch.cat([a.q.bias, a.k.bias, a.v.bias]))
            ref.self_attn.out_proj.weight.copy_(a.out.weight)
            ref.self_attn.out_proj.bias.copy_(a.out.bias)
            for theirs, ours in (
                (ref.linear1, mine.up),
                (ref.linear2, mine.down),
                (ref.norm1, mine.norm1),
                (ref.norm2, mine.norm2),
            ):
                theirs.weight.copy_(ours.weight)
                theirs.bias.copy_(ours.bias)
        x = ref.train()(x, src_key_padding_mask=~mask)  # train mode with dropout 0: the plain (non-fused) path
    return x


def test_tiny_encoder_matches_pytorch_layers() -> None:
    torch.manual_seed(0)
    model = Encoder(TINY).eval()
    ids = torch.randint(1, TINY.vocab_size, (3, 9))
    mask = torch.arange(9)[None] < torch.tensor([9, 5, 2])[:, None]
    with torch.no_grad():
        ours, ref = model(ids, mask), reference_forward(model, ids, mask)
    assert (ours - ref)[mask].abs().max() < 1e-5


def test_minilm_matches_pytorch_layers(minilm) -> None:
    model, tok = minilm
    ids, mask = tokenize(tok, ["A gorgeous, witty, seductive movie.", "Dull.", "It's not bad at all, really."])
    with torch.no_grad():
        ours, ref = model(ids, mask), reference_forward(model, ids, mask)
    assert ours.shape == (3, ids.shape[1], 384)
    assert (ours - ref)[mask].abs().max() < 1e-5
    assert (mean_pool(ours, mask) - mean_pool(ref, mask)).abs().max() < 1e-5


def test_minilm_matches_transformers(minilm, minilm_folder) -> None:
    transformers = pytest.importorskip("transformers")
    model, tok = minilm
    hf = transformers.AutoModel.from_pretrained(str(minilm_folder)).eval()
    ids, mask = tokenize(tok, ["A gorgeous, witty, seductive movie.", "Dull.", "It's not bad at all, really."])
    with torch.no_grad():
        theirs = hf(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        ours = model(ids, mask)
    assert (ours - theirs)[mask].abs().max() < 1e-5


def test_padding_does_not_change_the_embedding(minilm) -> None:
    model, tok = minilm
    texts = ["A quiet, moving film.", "The longest review in this batch, so the first one gets padded a lot."]
    with torch.no_grad():
        alone = model.embed(*tokenize(tok, texts[:1]))
        ids, mask = tokenize(tok, texts)
        batched = model.embed(ids, mask)
        # garbage tokens in the padded positions must not matter either
        noisy = ids.masked_fill(~mask, 1234)
        noisy_emb = model.embed(noisy, mask)
    assert int((~mask[0]).sum()) > 5
    assert (batched[0] - alone[0]).abs().max() < 1e-5
    assert (noisy_emb - batched).abs().max() < 1e-5


def test_paraphrases_are_closer_than_unrelated_sentences(minilm) -> None:
    model, tok = minilm
    texts = [
        "A man is playing a guitar.",
        "Someone plays an acoustic guitar.",
        "The stock market fell sharply today.",
        "This film is a delight from start to finish.",
        "I enjoyed every minute of this movie.",
    ]
    with torch.no_grad():
        e = F.normalize(model.embed(*tokenize(tok, texts)), dim=-1)
    sim = e @ e.T
    assert sim[0, 1] > sim[0, 2] + 0.3
    assert sim[3, 4] > sim[3, 2] + 0.3 and sim[3, 4] > sim[3, 0]


def test_mean_pool_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert torch.equal(mean_pool(hidden, mask), torch.tensor([[2.0, 3.0]]))
    with pytest.raises(ValueError, match="does not match"):
        mean_pool(hidden, mask[:, :2])


def test_tokenize_truncates_and_keeps_sep(minilm) -> None:
    _, tok = minilm
    ids, mask = tokenize(tok, ["word " * 50, "short"], max_length=8)
    assert ids.shape == (2, 8) and ids[0, 0] == 101 and ids[0, -1] == 102
    assert mask[1].sum() == 3 and ids[1, 3:].eq(0).all()
    with pytest.raises(TypeError, match="single str"):
        tokenize(tok, "a text")


def test_too_long_input_is_refused() -> None:
    model = Encoder(TINY)
    with pytest.raises(ValueError, match="17 tokens but the encoder has only 16 positions"):
        model(torch.ones(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="at least one real token"):
        model(torch.ones(2, 3, dtype=torch.long), torch.tensor([[True, False, False], [False] * 3]))


def checkpoint_of(model: Encoder) -> dict[str, torch.Tensor]:
    """The tiny model's weights under Hugging Face BertModel names (the inverse of checkpoint_name)."""
    inverse = {}
    layer_names = [
        "attention.self.query",
        "attention.self.key",
        "attention.self.value",
        "attention.output.dense",
        "attention.output.LayerNorm",
        "intermediate.dense",
        "output.dense",
        "output.LayerNorm",
    ]
    emb_names = ["word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"]
    for kind in ("weight", "bias"):
        for n in emb_names:
            if not (n.endswith("embeddings") and kind == "bias"):
                inverse[checkpoint_name(f"embeddings.{n}.{kind}")] = f"embeddings.{n}.{kind}"
        for i in range(len(model.layers)):
            for n in layer_names:
                inverse[checkpoint_name(f"encoder.layer.{i}.{n}.{kind}")] = f"encoder.layer.{i}.{n}.{kind}"
    state = model.state_dict()
    assert set(inverse) == set(state)
    return {inverse[k]: v.clone() for k, v in state.items()}


def test_loader_round_trip_and_clear_errors() -> None:
    torch.manual_seed(0)
    source = Encoder(TINY)
    ckpt = checkpoint_of(source)
    ckpt["embeddings.position_ids"] = torch.arange(16)[None]  # unused tensors are allowed
    target = Encoder(TINY)
    load_weights(target, {"bert." + k if k.startswith("encoder") else k: v for k, v in ckpt.items()})
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)

    missing = dict(ckpt)
    del missing["encoder.layer.1.output.dense.weight"]
    with pytest.raises(KeyError, match=r"lacks 1 of the encoder's tensors.*layers\.1\.down\.weight"):
        load_weights(Encoder(TINY), missing)
    wrong = dict(ckpt, **{"encoder.layer.0.attention.self.query.weight": torch.zeros(24, 12)})
    with pytest.raises(ValueError, match=r"attention\.self\.query\.weight' has shape \(24, 12\).*expects \(24, 24\)"):
        load_weights(Encoder(TINY), wrong)
    extra = dict(ckpt, **{"cls.predictions.bias": torch.zeros(3)})
    with pytest.raises(KeyError, match="not BERT encoder weights.*cls.predictions.bias"):
        load_weights(Encoder(TINY), extra)
    deeper = dict(ckpt, **{"encoder.layer.2.output.dense.bias": torch.zeros(24)})
    with pytest.raises(KeyError, match="layers.2.down.bias.*has 2 layers"):
        load_weights(Encoder(TINY), deeper)


def test_config_errors(tmp_path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "gpt2"}')
    with pytest.raises(ValueError, match="BERT-style"):
        EncoderConfig.from_json(path)
    with pytest.raises(ValueError, match="not divisible"):
        EncoderConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder(tmp_path / "nowhere")


def test_freeze_layers_counts() -> None:
    model = EncoderClassifier(Encoder(TINY), 2)
    per_layer = count_parameters(model.encoder.layers[0])
    head = count_parameters(model.head)
    total = count_parameters(model)
    freeze_layers(model, 0)
    assert count_parameters(model, trainable_only=True) == head
    freeze_layers(model, 1)
    assert count_parameters(model, trainable_only=True) == head + per_layer
    assert model.encoder.layers[1].up.weight.requires_grad and not model.encoder.layers[0].up.weight.requires_grad
    assert not model.encoder.embeddings.word.weight.requires_grad
    freeze_layers(model, None)
    assert count_parameters(model, trainable_only=True) == total
    with pytest.raises(ValueError, match="between 0 and 2"):
        freeze_layers(model, 3)


def test_classifier_trains_on_a_tiny_task() -> None:
    """Padding-aware logits, and a gradient step lowers the loss."""
    torch.manual_seed(0)
    model = EncoderClassifier(Encoder(TINY), 2, dropout=0.0)
    ids = torch.randint(1, 50, (8, 6))
    lengths = torch.tensor([6, 4, 3, 6, 2, 5, 6, 1])
    ids = ids.masked_fill(torch.arange(6)[None] >= lengths[:, None], 0)
    y = (ids[:, 0] > 25).long()
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(ids, lengths)[1], model(ids[1:2, :4], lengths[1:2])[0], atol=1e-5)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(ids, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.5


def test_embed_texts_keeps_the_order(minilm) -> None:
    model, tok = minilm
    texts = ["A long review that goes on and on about the plot.", "Great.", "Not good at all."]
    emb = embed_texts(model, tok, texts, batch_size=2)
    with torch.no_grad():
        one_by_one = torch.cat([model.embed(*tokenize(tok, [t])) for t in texts])
    assert emb.shape == (3, 384) and (emb - one_by_one).abs().max() < 1e-5


def test_finetune_needs_trainable_parameters() -> None:
    model = EncoderClassifier(Encoder(TINY), 2)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to finetune"):
        finetune(model, [], [], epochs=1, lr=1e-3)


def test_notebook_raw_forward_matches_the_library(minilm) -> None:
    """Unit 10 notebook 01 writes the forward pass from the raw checkpoint tensors; it equals Encoder."""
    from safetensors.torch import load_file

    from dlfund.course import manifest
    from dlfund.course.notebooks import definitions

    nb = definitions(manifest.get_unit(10).notebook_path("01-loading-minilm"), names=("encoder_raw",))
    model, tok = minilm
    state = load_file(str(data.minilm_dir() / "model.safetensors"))
    ids, mask = tokenize(tok, ["Not a bad film.", "A waste of two hours and a fine cast."])
    with torch.no_grad():
        raw, ours = nb["encoder_raw"](state, ids, mask, model.config), model(ids, mask)
    assert (raw - ours)[mask].abs().max() < 1e-5
