"""dlfund.text.metrics: normalisation, exact match and BLEU's pieces, against torchmetrics on the same inputs."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torchmetrics.functional.text import bleu_score, rouge_score
from torchmetrics.functional.text.bleu import _bleu_score_update
from torchmetrics.functional.text.rouge import _normalize_and_tokenize_text

from dlfund.text import metrics

VOCAB = ["the", "cat", "sat", "on", "mat", "a", "dog", "lay", "rug", "and"]


def sentence(rng: random.Random, lo: int = 1, hi: int = 12) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(rng.randint(lo, hi)))


def test_words_and_normalise():
    assert metrics.words("The Mat, 2x!  ok") == ["the", "mat", "2x", "ok"]
    assert metrics.words("") == [] and metrics.words(" ,.! ") == []
    assert metrics.normalise("  Romeo.\n") == "romeo"
    assert metrics.normalise("14,30, 76") == "14 30 76"


@pytest.mark.parametrize(
    "text", ["Hello, World!", "it's 3:45 p.m.", "  spaces\tand\nlines ", "ÉCOLE d'été", "", "a-b_c"]
)
def test_words_tokenise_as_torchmetrics_rouge(text):
    assert metrics.words(text) == list(_normalize_and_tokenize_text(text))


def test_exact_match():
    assert metrics.exact_match("Olivia.", "olivia")
    assert not metrics.exact_match("Olivia.", "olivia", normalised=False)
    assert metrics.exact_match("Olivia", "Olivia", normalised=False)
    assert not metrics.exact_match("56", "55")
    assert metrics.exact_match("", " . ")


def test_ngram_counts():
    assert metrics.ngram_counts(["a", "b", "a", "b"], 2) == {("a", "b"): 2, ("b", "a"): 1}
    assert metrics.ngram_counts(["a"], 2) == {}
    with pytest.raises(ValueError, match="at least 1"):
        metrics.ngram_counts(["a"], 0)


def test_modified_precision_clips_counts():
    assert metrics.modified_precision(["the", "the", "the", "the"], [["the", "cat"]], 1) == (1, 4)
    # the clip is the largest count in any one reference, not their sum
    assert metrics.modified_precision(["the", "the", "the"], [["the", "cat"], ["the", "the", "dog"]], 1) == (2, 3)
    assert metrics.modified_precision(["a", "b"], [["a", "b", "c"]], 3) == (0, 0)


@pytest.mark.parametrize("seed", range(5))
def test_modified_precision_equals_torchmetrics(seed):
    rng = random.Random(seed)
    for _ in range(20):
        pred = sentence(rng)
        refs = [sentence(rng) for _ in range(rng.randint(1, 3))]
        num, den = torch.zeros(4), torch.zeros(4)
        _bleu_score_update([pred], [refs], num, den, torch.tensor(0.0), torch.tensor(0.0), 4)
        for n in range(1, 5):
            assert metrics.modified_precision(pred.split(), [r.split() for r in refs], n) == (num[n - 1], den[n - 1])


def test_brevity_penalty():
    assert metrics.brevity_penalty(5, 4) == 1.0
    assert metrics.brevity_penalty(4, 4) == 1.0
    assert metrics.brevity_penalty(2, 4) == pytest.approx(math.exp(-1))
    assert metrics.brevity_penalty(0, 4) == 0.0


@pytest.mark.parametrize("seed", range(3))
def test_bleu_assembled_from_the_pieces_equals_torchmetrics(seed):
    """A sentence BLEU built from modified_precision and brevity_penalty is torchmetrics' BLEUScore."""
    rng = random.Random(seed)
    for _ in range(30):
        pred, ref = sentence(rng, 4, 14), sentence(rng, 4, 14)
        counts = [metrics.modified_precision(pred.split(), [ref.split()], n) for n in range(1, 5)]
        if min(m for m, _ in counts) == 0:
            ours = 0.0
        else:
            log_p = sum(math.log(m / t) for m, t in counts) / 4
            ours = metrics.brevity_penalty(len(pred.split()), len(ref.split())) * math.exp(log_p)
        assert ours == pytest.approx(float(bleu_score([pred], [[ref]])), abs=1e-6)


def test_rouge_n_from_ngram_counts_equals_torchmetrics():
    rng = random.Random(7)
    for _ in range(30):
        pred, ref = sentence(rng), sentence(rng)
        p, r = metrics.words(pred), metrics.words(ref)
        for n in (1, 2):
            hits = sum((metrics.ngram_counts(p, n) & metrics.ngram_counts(r, n)).values())
            total_p, total_r = max(len(p) - n + 1, 0), max(len(r) - n + 1, 0)
            f = 0.0 if hits == 0 else 2 * hits / (total_p + total_r)
            found = rouge_score(pred, ref, rouge_keys=f"rouge{n}")[f"rouge{n}_fmeasure"]
            assert f == pytest.approx(float(found), abs=1e-6)
