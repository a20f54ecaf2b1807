"""dlfund.models.rnn and dlfund.models.seq2seq: shapes, padding invariance, masks, gradients, overfitting."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlfund.models.rnn import (
    BagOfEmbeddings,
    RNNClassifier,
    predict,
    train_text_classifier,
)
from dlfund.models.seq2seq import (
    EOS,
    SOS,
    AdditiveAttention,
    PairBatches,
    Seq2Seq,
    decode_pairs,
    exact_match,
    seq2seq_loss,
    target_vocab,
    train_seq2seq,
)
from dlfund.text.words import SequenceBatches, Vocab, pad_batch, padding_mask


def random_batch(vocab_size=20, lengths=(7, 3, 5, 1), seed=0):
    gen = torch.Generator().manual_seed(seed)
    seqs = [torch.randint(2, vocab_size, (n,), generator=gen).tolist() for n in lengths]
    return seqs, *pad_batch(seqs, pad_id=0)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_classifier_shapes_and_padding_invariance(cell, bidirectional):
    torch.manual_seed(0)
    model = RNNClassifier(20, 8, 6, 3, cell=cell, bidirectional=bidirectional, num_layers=2).eval()
    seqs, ids, lengths = random_batch()
    logits = model(ids, lengths)
    assert logits.shape == (4, 3)
    for i, s in enumerate(seqs):  # each sequence alone gives the same logits as inside the padded batch
        alone = model(torch.tensor([s]), torch.tensor([len(s)]))
        torch.testing.assert_close(alone[0], logits[i], atol=1e-6, rtol=1e-5)
    more_padding = torch.cat([ids, torch.zeros(4, 5, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(more_padding, lengths), logits, atol=1e-6, rtol=1e-5)
    garbage = ids.masked_fill(~padding_mask(lengths), 7)  # padded positions hold real-looking ids
    torch.testing.assert_close(model(garbage, lengths), logits, atol=1e-6, rtol=1e-5)


def test_classifier_gradients_reach_every_parameter_but_not_the_pad_row():
    torch.manual_seed(0)
    model = RNNClassifier(20, 8, 6, 2, cell="lstm", bidirectional=True)
    _, ids, lengths = random_batch()
    nn.functional.cross_entropy(model(ids, lengths), torch.tensor([0, 1, 0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.embedding.weight.grad[0].abs().sum() == 0


def test_classifier_rejects_bad_input():
    with pytest.raises(ValueError, match="cell must be one of rnn, lstm, gru"):
        RNNClassifier(10, 4, 4, 2, cell="transformer")  # type: ignore[arg-type]
    model = RNNClassifier(10, 4, 4, 2)
    with pytest.raises(ValueError, match="expected ids \\(B, T\\) and lengths \\(B,\\)"):
        model(torch.zeros(5, dtype=torch.long), torch.tensor([5]))


def test_bag_of_embeddings_ignores_padding():
    torch.manual_seed(0)
    model = BagOfEmbeddings(20, 8, 2)
    seqs, ids, lengths = random_batch()
    out = model(ids, lengths)
    for i, s in enumerate(seqs):
        torch.testing.assert_close(model(torch.tensor([s]))[0], out[i])


def test_classifier_learns_a_separable_task():
    """Label = whether token 3 occurs: a GRU learns it from 200 examples."""
    gen = torch.Generator().manual_seed(0)
    seqs = [
        torch.randint(4, 12, (int(torch.randint(2, 9, (), generator=gen)),), generator=gen).tolist() for _ in range(200)
    ]
    labels = []
    for s in seqs:
        if torch.rand((), generator=gen) < 0.5:
            s[int(torch.randint(0, len(s), (), generator=gen))] = 3
        labels.append(int(3 in s))
    batches = SequenceBatches(seqs, labels, batch_size=32, pad_id=0, shuffle=True, seed=0)
    torch.manual_seed(0)
    model = RNNClassifier(12, 8, 16, 2, cell="gru")
    history = train_text_classifier(model, batches, batches, epochs=25, lr=1e-2, verbose=False)
    pred, true = predict(model, batches)
    assert history["train_loss"][-1] < 0.5 * history["train_loss"][0]
    assert (pred == true).float().mean() > 0.95


# --- attention ----------------------------------------------------------------------------------


def test_attention_weights_sum_to_one_and_are_zero_on_padding():
    torch.manual_seed(0)
    att = AdditiveAttention(5, 6, 7)
    lengths = torch.tensor([4, 1, 3])
    mask = padding_mask(lengths, 4)
    query, keys = torch.randn(3, 5), torch.randn(3, 4, 6)
    context, weights = att(query, keys, mask)
    assert context.shape == (3, 6) and weights.shape == (3, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert torch.all(weights[~mask] == 0)
    assert weights[1, 0] == 1
    noisy = keys + 50 * torch.randn(3, 4, 6) * (~mask)[..., None]
    torch.testing.assert_close(att(query, noisy, mask)[0], context)
    manual = torch.einsum("bs,bsd->bd", weights, keys)
    torch.testing.assert_close(context, manual)
    unmasked = att(query, keys)[1]
    assert unmasked[~mask].min() > 0  # without a mask, padding gets weight: the mask matters


def test_attention_gradients_match_finite_differences():
    torch.manual_seed(0)
    att = AdditiveAttention(3, 4, 5).double()
    mask = padding_mask(torch.tensor([3, 2]), 3)
    query = torch.randn(2, 3, dtype=torch.double, requires_grad=True)
    keys = torch.randn(2, 3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda q, k: att(q, k, mask), (query, keys))


# --- seq2seq --------------------------------------------------------------------------------------


def tiny_task():
    pairs = [(list(w), list(w[::-1])) for w in ("abc", "ba", "cab", "aab", "bc", "ca", "abca", "c")]
    src_vocab = Vocab.build([s for s, _ in pairs])
    tgt_vocab = target_vocab("abc")
    return pairs, src_vocab, tgt_vocab


def make(src_vocab, tgt_vocab, attention=True):
    torch.manual_seed(0)
    return Seq2Seq(
        len(src_vocab),
        len(tgt_vocab),
        embed_dim=8,
        hidden_size=16,
        attention=attention,
        sos_id=tgt_vocab.stoi[SOS],
        eos_id=tgt_vocab.stoi[EOS],
    )


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_shapes_and_source_padding_invariance(attention):
    pairs, src_vocab, tgt_vocab = tiny_task()
    model = make(src_vocab, tgt_vocab, attention).eval()
    src, lengths, tgt_in, tgt_out = next(iter(PairBatches(pairs, src_vocab, tgt_vocab, batch_size=8)))
    logits = model(src, lengths, tgt_in)
    assert logits.shape == (8, tgt_in.shape[1], len(tgt_vocab))
    padded = torch.cat([src, torch.full((8, 3), 3)], dim=1)  # extra padding, holding real-looking ids
    torch.testing.assert_close(model(padded, lengths, tgt_in), logits, atol=1e-6, rtol=1e-5)
    tokens, weights = model.greedy_decode(src, lengths, max_len=6)
    assert tokens.shape[0] == 8 and tokens.shape[1] <= 6
    if attention:
        assert weights.shape == (8, tokens.shape[1], src.shape[1])
        assert torch.all(weights[~padding_mask(lengths)[:, None, :].expand_as(weights)] == 0)
    else:
        assert weights is None


def test_seq2seq_batches_shift_targets_by_one():
    pairs, src_vocab, tgt_vocab = tiny_task()
    src, lengths, tgt_in, tgt_out = next(iter(PairBatches(pairs, src_vocab, tgt_vocab, batch_size=2)))
    assert tgt_in[0].tolist()[0] == tgt_vocab.stoi[SOS]
    assert tgt_vocab.decode(tgt_out[0]) == ["c", "b", "a", EOS]
    assert torch.equal(tgt_in[:, 1:], tgt_out[:, :-1])
    assert lengths.tolist() == [3, 2]


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_overfits_a_tiny_batch(attention):
    pairs, src_vocab, tgt_vocab = tiny_task()
    model = make(src_vocab, tgt_vocab, attention)
    batches = PairBatches(pairs, src_vocab, tgt_vocab, batch_size=8)
    before = seq2seq_loss(model, next(iter(batches))).item()
    losses = train_seq2seq(model, batches, epochs=150, lr=3e-2, verbose=False)
    assert losses[-1] < 0.05 * before
    predictions = decode_pairs(model, pairs, src_vocab, tgt_vocab)
    assert exact_match(predictions, pairs).all(), predictions


def test_exact_match_counts_whole_sequences():
    pairs = [(["x"], ["1", "2"]), (["y"], ["3"])]
    assert exact_match([["1", "2"], ["3", "3"]], pairs).tolist() == [True, False]
    with pytest.raises(ValueError, match="1 predictions for 2 pairs"):
        exact_match([["1"]], pairs)
