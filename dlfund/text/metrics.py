"""Pieces of the metrics that score generated text (unit 14): normalisation, exact match, n-grams, BLEU's parts.

Exact match compares whole strings; BLEU and ROUGE count the n-grams (runs of ``n`` consecutive words) a
prediction shares with a reference. Their numbers depend on details that are easy to get wrong, so the
pieces live here, tested against ``torchmetrics``:

- :func:`words` tokenises as ``torchmetrics``' ``ROUGEScore`` does by default: lowercase, every run of
  characters other than ``a-z`` and ``0-9`` separates words (so ``"Mat."`` and ``"mat"`` are one word);
- :func:`normalise` and :func:`exact_match`: the same words joined by single spaces, compared whole;
- :func:`ngram_counts`, :func:`modified_precision` (BLEU's *clipped* n-gram precision) and
  :func:`brevity_penalty`, the parts a sentence BLEU is assembled from.

BLEU splits on whitespace only (``torchmetrics``' ``BLEUScore`` does too); ROUGE uses :func:`words`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["brevity_penalty", "exact_match", "modified_precision", "ngram_counts", "normalise", "words"]

_SEPARATOR = re.compile(r"[^a-z0-9]+")


def words(text: str) -> list[str]:
    """The lowercase words and numbers of ``text`` (``"The Mat, 2x!"`` -> ``["the", "mat", "2x"]``)."""
    return _SEPARATOR.sub(" ", text.lower()).split()


def normalise(text: str) -> str:
    """``text`` with case, punctuation and spacing removed: its :func:`words` joined by single spaces."""
    return " ".join(words(text))


def exact_match(prediction: str, reference: str, *, normalised: bool = True) -> bool:
    """Whether ``prediction`` equals ``reference``: after :func:`normalise` (default), or character for
    character when ``normalised`` is False."""
    if normalised:
        return normalise(prediction) == normalise(reference)
    return prediction == reference


def ngram_counts(tokens: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    """How often each run of ``n`` consecutive tokens occurs in ``tokens`` (empty when fewer than ``n``)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def modified_precision(prediction: Sequence[str], references: Sequence[Sequence[str]], n: int) -> tuple[int, int]:
    """BLEU's clipped n-gram precision as ``(matches, total)``: ``total`` n-grams in ``prediction``, each
    counted as a match at most as often as it occurs in the reference where it occurs most.

    Without the clipping, ``"the the the the"`` would have a unigram precision of 1 against ``"the cat"``;
    clipped it is 1/4. ``total`` is 0 when the prediction is shorter than ``n`` tokens."""
    predicted = ngram_counts(prediction, n)
    most: Counter[tuple[str, ...]] = Counter()
    for reference in references:
        most |= ngram_counts(reference, n)  # | keeps the larger count of each n-gram
    return sum((predicted & most).values()), sum(predicted.values())


def brevity_penalty(prediction_length: int, reference_length: int) -> float:
    """BLEU's penalty for a prediction shorter than the reference: ``exp(1 - r / c)`` when ``c <= r``, else 1.

    Precision alone would reward saying little (one sure word has precision 1); the penalty takes that
    back. ``c = 0`` gives 0."""
    if prediction_length > reference_length:
        return 1.0
    if prediction_length == 0:
        return 0.0
    return math.exp(1 - reference_length / prediction_length)
