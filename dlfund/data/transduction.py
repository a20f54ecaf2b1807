"""A generated transduction task for sequence-to-sequence models: number words → digits.

``"three hundred forty two thousand five hundred six"`` → ``"342506"``. The input is a sequence of
words, the output a sequence of digit characters; inputs grow with the number of digits, so a model
can be compared across input lengths. Everything is generated from a seed, offline.
"""

from __future__ import annotations

import random

ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SCALES = ("", "thousand", "million", "billion", "trillion")


def _below_thousand(n: int) -> list[str]:
    words: list[str] = []
    hundreds, rest = divmod(n, 100)
    if hundreds:
        words += [ONES[hundreds], "hundred"]
    if rest >= 20:
        words.append(TENS[rest // 10])
        if rest % 10:
            words.append(ONES[rest % 10])
    elif rest:
        words.append(ONES[rest])
    return words


def number_to_words(n: int) -> str:
    """English words for ``0 <= n < 10**15`` (short scale, no "and", no hyphens): 342506 →
    ``"three hundred forty two thousand five hundred six"``."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"number_to_words expects an int, got {type(n).__name__}")
    if not 0 <= n < 1000 ** len(SCALES):
        raise ValueError(f"number_to_words handles 0 <= n < 10**{3 * len(SCALES)}, got {n}")
    if n == 0:
        return "zero"
    words: list[str] = []
    for power in range(len(SCALES) - 1, -1, -1):
        group = (n // 1000**power) % 1000
        if group:
            words += _below_thousand(group) + ([SCALES[power]] if power else [])
    return " ".join(words)


def number_pairs(
    count: int, max_digits: int, *, seed: int, exclude: set[int] | frozenset[int] = frozenset()
) -> list[tuple[str, str]]:
    """``count`` distinct (words, digits) pairs. The number of digits is drawn uniformly from
    1..``max_digits`` (so long inputs are as common as short ones), then the number uniformly among
    those with that many digits, never one in ``exclude``. Deterministic given ``seed``."""
    if not 1 <= max_digits <= 3 * len(SCALES):
        raise ValueError(f"max_digits must be in 1..{3 * len(SCALES)}, got {max_digits}")
    available = 10**max_digits - len(exclude)
    if count > available // 2:
        raise ValueError(f"asked for {count} distinct numbers of at most {max_digits} digits: too many to draw")
    rng = random.Random(seed)
    seen: set[int] = set()
    out: list[tuple[str, str]] = []
    while len(out) < count:
        digits = rng.randint(1, max_digits)
        n = rng.randrange(10 ** (digits - 1) if digits > 1 else 0, 10**digits)
        if n in seen or n in exclude:
            continue
        seen.add(n)
        out.append((number_to_words(n), str(n)))
    return out


def number_splits(
    n_train: int, n_val: int, n_test: int, max_digits: int, *, seed: int
) -> tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str]]]:
    """Train/validation/test pairs: distinct numbers dealt out at random, so no number is in two splits
    (the test numbers are never trained on) and every split has the same mix of lengths."""
    pairs = number_pairs(n_train + n_val + n_test, max_digits, seed=seed)
    random.Random(seed + 1).shuffle(pairs)
    return pairs[:n_train], pairs[n_train : n_train + n_val], pairs[n_train + n_val :]
