"""The unit-9 GPT: shapes, causality, positions (RoPE), KV-cache parity, sampling, overfitting a batch."""

from __future__ import annotations

import math

import pytest
import torch

from dlfund.models.gpt import GPT, GPTConfig, sinusoidal_positions
from dlfund.models.transformer import KVCache, apply_rope, rope_tables, sample_next
from dlfund.text.chars import CharTokenizer, plain_play, random_windows, split_plays
from dlfund.train.lm import evaluate_lm, train_lm


def tiny(positions: str = "learned", **kwargs) -> GPT:
    torch.manual_seed(0)
    settings = {
        "vocab_size": 17,
        "context_length": 32,
        "n_layers": 2,
        "n_heads": 2,
        "dim": 16,
        "dropout": 0.0,
        "positions": positions,
    }
    settings.update(kwargs)
    return GPT(GPTConfig(**settings)).eval()


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope", "none"])
def test_shapes_and_causality(positions: str) -> None:
    model = tiny(positions)
    idx = torch.randint(0, 17, (3, 20))
    logits = model(idx)
    assert logits.shape == (3, 20, 17)
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 17
    later = model(changed)
    torch.testing.assert_close(logits[:, :12], later[:, :12], atol=1e-6, rtol=0)
    assert (logits[:, 12:] - later[:, 12:]).abs().max() > 1e-4


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_a_bidirectional_model_sees_both_sides(positions: str) -> None:
    """``causal=False``: changing a later token changes the earlier positions' logits too; same parameters."""
    encoder, decoder = tiny(positions, causal=False), tiny(positions)
    assert encoder.num_parameters() == decoder.num_parameters()
    decoder.load_state_dict(encoder.state_dict())  # same weights: only the mask differs
    idx = torch.randint(0, 17, (3, 20))
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 17
    assert (encoder(idx)[:, :12] - encoder(changed)[:, :12]).abs().max() > 1e-4
    torch.testing.assert_close(decoder(idx)[:, :12], decoder(changed)[:, :12], atol=1e-6, rtol=0)
    # one block: the last position sees every position under both masks, so its logits agree
    one_encoder, one_decoder = tiny(positions, causal=False, n_layers=1), tiny(positions, n_layers=1)
    torch.testing.assert_close(one_encoder(idx)[:, -1], one_decoder(idx)[:, -1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cannot use a KV cache"):
        encoder.generate(idx[:, :5], 3, use_cache=True)


def test_without_positions_the_last_token_ignores_order() -> None:
    """No positions, one layer: the prediction after a sequence ignores the order of the earlier tokens.

    (With more layers the earlier tokens' own states depend on their causal prefixes, so order leaks in
    through the mask: causal models without positions are not fully order-blind, only weakly informed.)
    """
    idx = torch.randint(0, 17, (1, 10))
    shuffled = torch.cat([idx[:, :-1][:, torch.randperm(9)], idx[:, -1:]], dim=1)
    none, learned = tiny("none", n_layers=1), tiny("learned", n_layers=1)
    torch.testing.assert_close(none(idx)[:, -1], none(shuffled)[:, -1], atol=1e-5, rtol=0)
    assert (learned(idx)[:, -1] - learned(shuffled)[:, -1]).abs().max() > 1e-4


def test_rope_scores_depend_on_relative_position_only() -> None:
    cos, sin = rope_tables(64, 8)
    q, k = torch.randn(8), torch.randn(8)

    def score(m: int, n: int) -> torch.Tensor:
        return apply_rope(q, cos[m], sin[m]) @ apply_rope(k, cos[n], sin[n])

    torch.testing.assert_close(score(5, 2), score(40, 37), atol=1e-5, rtol=0)
    torch.testing.assert_close(score(0, 0), q @ k, atol=1e-5, rtol=0)
    assert abs(score(5, 2) - score(5, 3)) > 1e-4
    torch.testing.assert_close(apply_rope(q, cos[9], sin[9]).norm(), q.norm())  # a rotation


def test_sinusoidal_table() -> None:
    table = sinusoidal_positions(10, 6)
    assert table.shape == (10, 6)
    assert torch.equal(table[0], torch.tensor([0.0, 1.0] * 3))
    torch.testing.assert_close(table[3, 0], torch.tensor(math.sin(3.0)))


@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "rope"])
def test_kv_cache_gives_the_same_logits_and_tokens(positions: str) -> None:
    model = tiny(positions)
    prompt = torch.randint(0, 17, (2, 5))
    cached = list(model.stream(prompt, 20, temperature=1.0, generator=torch.Generator().manual_seed(3)))
    plain = list(model.stream(prompt, 20, temperature=1.0, use_cache=False, generator=torch.Generator().manual_seed(3)))
    assert len(cached) == len(plain) == 20 and cached[0].logits.shape == (2, 17) and cached[0].token.shape == (2,)
    assert all(torch.equal(a.token, b.token) for a, b in zip(cached, plain))
    torch.testing.assert_close(
        torch.stack([s.logits for s in cached], 1), torch.stack([s.logits for s in plain], 1), atol=1e-5, rtol=0
    )
    # the cache grows by one position per token
    caches = model.new_caches()
    model(prompt, caches)
    model(prompt[:, :1], caches)
    assert len(caches[0]) == 6 and caches[0].k.shape == (2, 2, 6, 8)


def test_kv_cache_chunked_prefill_matches() -> None:
    model = tiny("rope")
    idx = torch.randint(0, 17, (1, 12))
    caches = [KVCache() for _ in model.layers]
    first = model(idx[:, :7], caches)
    second = model(idx[:, 7:], caches)  # 5 new queries against 12 keys
    torch.testing.assert_close(torch.cat([first, second], dim=1), model(idx), atol=1e-5, rtol=0)


def test_clear_errors() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="longer than the model's context_length=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ValueError, match="must fit in context_length=32"):
        model.generate(torch.zeros(1, 30, dtype=torch.long), 5, use_cache=True)
    assert model.generate(torch.zeros(1, 30, dtype=torch.long), 5, use_cache=False).shape == (1, 35)
    with pytest.raises(ValueError, match=r"shape \(B, T\)"):
        model(torch.zeros(33, dtype=torch.long))
    with pytest.raises(ValueError, match="positions must be one of"):
        GPTConfig(vocab_size=5, positions="absolute")
    with pytest.raises(ValueError, match="head size 3 must be even"):
        GPTConfig(vocab_size=5, dim=6, n_heads=2, positions="rope")


def test_sample_next() -> None:
    logits = torch.tensor([[0.0, 3.0, 1.0, -2.0]])
    assert sample_next(logits, temperature=0).item() == 1
    gen = torch.Generator().manual_seed(0)
    draws = torch.stack([sample_next(logits, top_k=2, generator=gen) for _ in range(300)])
    assert set(draws.unique().tolist()) == {1, 2}  # top-2 only
    cold = torch.stack([sample_next(logits, temperature=0.05, generator=gen) for _ in range(50)])
    assert (cold == 1).all()
    with pytest.raises(ValueError, match="temperature must be"):
        sample_next(logits, temperature=-1)


def test_tokenizer_and_plays() -> None:
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.decode(tok.encode("low\n")) == "low\n"
    with pytest.raises(ValueError, match="'Z', 'q'"):
        tok.encode("qZ")
    with pytest.raises(ValueError, match="outside 0..8"):
        tok.decode([9])
    md = "# Play\n\n## ACT I\n\n_Enter A_\n\n**A**  \nHello,  \nworld.\n"
    assert plain_play(md) == "Play\n\nACT I\n\n[Enter A]\n\nA:\nHello,\nworld.\n"
    train, val = split_plays({"x/a": md, "x/b": md.replace("Hello", "Bye")}, ("x/b",))
    assert "Bye" in val and "Bye" not in train
    with pytest.raises(KeyError, match="unknown play"):
        split_plays({"x/a": md}, ("x/zz",))
    x, y = random_windows(torch.arange(100), 8, 4, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])


def test_overfits_a_tiny_corpus() -> None:
    text = "to be or not to be, that is the question. " * 20
    tok = CharTokenizer.from_text(text)
    data = tok.encode(text)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, context_length=16, n_layers=2, n_heads=2, dim=32, dropout=0.0))
    before = evaluate_lm(model, data, context_length=16, batch_size=8, batches=2, device="cpu")
    history = train_lm(
        model,
        data,
        data,
        context_length=16,
        batch_size=16,
        lr=1e-2,
        max_steps=150,
        warmup_steps=10,
        eval_every=150,
        eval_batches=2,
        verbose=False,
    )
    assert before > math.log(tok.vocab_size) - 0.5
    assert history.final_val_loss < 0.3, history.val_loss


def test_notebook_gpt_matches_the_library() -> None:
    """The GPT notebook 03 builds step by step, under the library's class and parameter names, computes
    what dlfund.models.gpt.GPT computes."""
    from dlfund.course import manifest
    from dlfund.course.notebooks import definitions

    path = manifest.get_unit(9).notebook_path("03-gpt-on-shakespeare")
    nb = definitions(path, names=("GPTSelfAttention", "MLP", "GPTBlock", "GPT"))
    library = tiny(dropout=0.0)
    mine = nb["GPT"](17, 32, 2, 2, 16, 0.0).eval()
    mine.load_state_dict(library.state_dict())  # strict: every parameter name matches
    assert [type(m).__name__ for m in mine.modules()] == [type(m).__name__ for m in library.modules()]
    idx = torch.randint(0, 17, (2, 20))
    torch.testing.assert_close(mine(idx), library(idx), atol=1e-5, rtol=0)


def test_train_lm_stops_at_the_time_limit() -> None:
    data = torch.randint(0, 17, (2000,))
    model = tiny()
    history = train_lm(
        model,
        data,
        data,
        context_length=16,
        batch_size=4,
        lr=1e-3,
        max_steps=10**6,
        time_limit_s=0.5,
        warmup_steps=5,
        eval_every=10**6,
        eval_batches=1,
        verbose=False,
    )
    assert history.stopped_by == "time" and 0.5 <= history.seconds[-1] < 5
    assert len(history.val_loss) == 1 and history.total_steps > 1


def test_shakespeare_validation_plays_are_unseen() -> None:
    from dlfund.data import load_shakespeare
    from dlfund.text.chars import VALIDATION_PLAYS, shakespeare_corpus

    plays = load_shakespeare()
    train, val = shakespeare_corpus()
    for name in VALIDATION_PLAYS:
        speech = plain_play(plays[name])[3000:3200]  # a passage from inside the held-out play
        assert speech in val and speech not in train
    assert "**" not in train and "  \n" not in train  # the Markdown is gone
