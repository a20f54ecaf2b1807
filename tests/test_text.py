"""dlfund.text.words (cleaning, tokenising, Vocab, padding, group split) and the number-words task."""

from __future__ import annotations

import pytest
import torch

from dlfund.data.transduction import number_pairs, number_splits, number_to_words
from dlfund.text.words import (
    PAD,
    UNK,
    SequenceBatches,
    Vocab,
    clean,
    group_split,
    pad_batch,
    padding_mask,
    tokenize,
)


def test_clean_and_tokenize():
    assert clean("  Harry &amp; Tonto’s\tFILM ") == "harry & tonto's film"
    assert tokenize("It's great, isn't it?!") == ["it's", "great", ",", "isn't", "it", "?", "!"]
    assert tokenize("A 179-minute film.") == ["a", "179", "-", "minute", "film", "."]
    with pytest.raises(TypeError, match="expects a str"):
        clean(None)  # type: ignore[arg-type]


def test_vocab_build_orders_by_frequency_and_maps_unknown_tokens():
    corpus = [["b", "a", "b"], ["c", "b", "a"], ["d"]]
    vocab = Vocab.build(corpus, min_freq=2)
    assert vocab.itos == [PAD, UNK, "b", "a"]
    assert (vocab.pad_id, vocab.unk_id) == (0, 1)
    assert vocab.encode(["a", "zzz", "b"]) == [3, 1, 2]
    assert vocab["zzz"] == vocab.unk_id and "zzz" not in vocab and "a" in vocab
    assert vocab.decode([3, 2, 0, 0]) == ["a", "b"]
    assert vocab.decode(torch.tensor([3, 0]), skip_pad=False) == ["a", PAD]
    assert len(Vocab.build(corpus, max_size=3)) == 3
    assert Vocab.build(corpus).itos[2:] == ["b", "a", "c", "d"]  # ties alphabetical: deterministic


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        (("abc",), {}, TypeError, "expects a list of token strings, got str"),
        (({"a": 1},), {}, TypeError, "expects a list of token strings, got dict"),
        (([PAD, UNK, 3],), {}, TypeError, "tokens must be str, found int"),
        (([PAD, UNK, "a", "a"],), {}, ValueError, "unique, found duplicates: \\['a'\\]"),
        ((["a", UNK],), {}, ValueError, "pad token '<pad>' is not in the vocabulary"),
        (([PAD, UNK],), {"pad": "[PAD]"}, ValueError, "pad token '\\[PAD\\]' is not in the vocabulary"),
        (([PAD, "a"],), {}, ValueError, "unk token '<unk>' is not in the vocabulary"),
    ],
)
def test_vocab_rejects_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        Vocab(*args, **kwargs)


def test_vocab_misuse_is_explained():
    vocab = Vocab.build([["a"]])
    with pytest.raises(TypeError, match="tokenize it first"):
        vocab.encode("a b")  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="id 7 is outside the vocabulary"):
        vocab.decode([7])
    with pytest.raises(TypeError, match="got a str"):
        Vocab.build(["a b", "c"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="min_freq"):
        Vocab.build([["a"]], min_freq=0)


def test_pad_batch_and_mask():
    ids, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]] and lengths.tolist() == [3, 1]
    assert padding_mask(lengths).tolist() == [[True, True, True], [True, False, False]]
    ids, lengths = pad_batch([[5, 6, 7], [8]], pad_id=0, max_len=2)
    assert ids.tolist() == [[5, 6], [8, 0]] and lengths.tolist() == [2, 1]
    with pytest.raises(ValueError, match="empty sequence at index 1"):
        pad_batch([[1], []], pad_id=0)
    with pytest.raises(ValueError, match="no sequences"):
        pad_batch([], pad_id=0)


def test_sequence_batches_cover_every_example_once_and_pad_per_batch():
    seqs = [[1] * n for n in range(1, 11)]
    batches = SequenceBatches(seqs, list(range(10)), batch_size=4, pad_id=0, shuffle=True, seed=1)
    assert len(batches) == 3
    seen = []
    for ids, lengths, labels in batches:
        assert ids.shape == (len(labels), int(lengths.max()))
        assert torch.equal((ids != 0).sum(1), lengths)
        seen += labels.tolist()
    assert sorted(seen) == list(range(10))
    with pytest.raises(ValueError, match="10 sequences but 9 labels"):
        SequenceBatches(seqs, list(range(9)), batch_size=4, pad_id=0)


def test_group_split_keeps_groups_apart():
    groups = [f"m{i % 37}" for i in range(1000)]
    train, val, test = group_split(groups, (0.8, 0.1, 0.1), seed=3)
    assert sorted(train + val + test) == list(range(1000))
    sets = [{groups[i] for i in part} for part in (train, val, test)]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert 0.7 < len(train) / 1000 < 0.9 and val and test
    assert group_split(groups, seed=3) == (train, val, test)
    assert group_split(groups, seed=4) != (train, val, test)
    with pytest.raises(ValueError, match="sum to 1"):
        group_split(groups, (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="at least 3 groups"):
        group_split(["a", "a", "b"])


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (15, "fifteen"),
        (40, "forty"),
        (305, "three hundred five"),
        (12019, "twelve thousand nineteen"),
        (2000005, "two million five"),
        (342506, "three hundred forty two thousand five hundred six"),
        (1_000_000_000_001, "one trillion one"),
    ],
)
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_number_to_words_rejects_bad_input():
    with pytest.raises(ValueError, match="0 <= n < 10\\*\\*15"):
        number_to_words(-1)
    with pytest.raises(TypeError, match="expects an int"):
        number_to_words(3.0)  # type: ignore[arg-type]


def test_number_pairs_are_deterministic_distinct_and_split_without_overlap():
    pairs = number_pairs(300, 5, seed=0)
    assert pairs == number_pairs(300, 5, seed=0) != number_pairs(300, 5, seed=1)
    assert len({d for _, d in pairs}) == 300
    assert all(number_to_words(int(d)) == w for w, d in pairs)
    assert {len(d) for _, d in pairs} == {1, 2, 3, 4, 5}
    train, val, test = number_splits(200, 50, 50, 6, seed=0)
    sets = [{d for _, d in s} for s in (train, val, test)]
    assert [len(s) for s in sets] == [200, 50, 50]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    with pytest.raises(ValueError, match="too many"):
        number_pairs(10, 1, seed=0)
