"""Preference pairs for DPO (unit 13), built offline from the generated instruction tasks.

A preference pair is one prompt and two answers, one *chosen* and one *rejected*. Here the chosen answer is
always the exact, concise answer of an :class:`~dlfund.text.instructions.Example`; the rejected one is
either

- ``"wrong"``: a plausible wrong answer of the same form (off by one or ten, two numbers swapped, the words
  in their original order, another speaker of the passage), or
- ``"verbose"``: the right answer padded with words the instruction forbids (``Sure! The answer is 55.``).

Everything is deterministic given the seed. Pairs inherit their example's split: build the training pairs
from training examples and the held-out pairs from held-out ones, so no prompt is in both (a split *by
example*; splitting a list of pairs at random would put the two pairs of one prompt on both sides).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dlfund.text.instructions import SYSTEM_PROMPT, Example, encode_example

if TYPE_CHECKING:
    from dlfund.text.llama_tokenizer import ChatTokenizer

__all__ = ["KINDS", "PreferencePair", "encode_pair", "preference_pairs", "verbose_answer", "wrong_answer"]

KINDS = ("wrong", "verbose")
_PADDING = (
    "The answer is {}.",
    "Sure! The answer is {}.",
    "{}. I hope this helps!",
    "Let me think about it. The answer is {}.",
)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (the example's instruction) with a chosen and a rejected answer."""

    example: Example
    chosen: str
    rejected: str
    kind: str
    """How the rejected answer was made: ``"wrong"`` or ``"verbose"``."""


def wrong_answer(example: Example, rng: random.Random) -> str:
    """A wrong answer of the same form as ``example.response`` (never equal to it)."""
    task, response = example.task, example.response
    if task in ("add", "subtract", "count"):
        n = int(response)
        offsets = (1, 2) if task == "count" else (1, 2, 10)
        candidates = [n + s * d for d in offsets for s in (1, -1) if n + s * d >= 1]
        return str(rng.choice(candidates))
    if task == "sort":
        nums = response.split(", ")
        i = rng.randrange(len(nums) - 1)
        nums[i], nums[i + 1] = nums[i + 1], nums[i]  # distinct numbers: a swap is always out of order
        return ", ".join(nums)
    if task == "reverse":
        original = example.instruction.split(": ", 1)[1]
        if original != response:
            return original  # forgot to reverse
        words = response.split()
        return " ".join(words[1:] + words[:1])
    if task == "speaker":
        passage = example.instruction.split("\n\n", 1)[0]
        others = sorted({line.split(": ", 1)[0] for line in passage.splitlines()} - {response})
        return rng.choice(others)  # someone else in the passage
    raise ValueError(f"no wrong answer for task {task!r}")


def verbose_answer(example: Example, rng: random.Random) -> str:
    """The right answer padded with words the system prompt asks the model to leave out."""
    return rng.choice(_PADDING).format(example.response)


def preference_pairs(examples: Sequence[Example], seed: int, kinds: Sequence[str] = KINDS) -> list[PreferencePair]:
    """One pair of each kind in ``kinds`` per example (in the examples' order), deterministic given ``seed``."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown kind(s) {unknown or kinds}: expected some of {', '.join(KINDS)}")
    rng = random.Random(seed)
    make = {"wrong": wrong_answer, "verbose": verbose_answer}
    return [PreferencePair(ex, ex.response, make[k](ex, rng), k) for ex in examples for k in kinds]


def encode_pair(
    tokenizer: ChatTokenizer, pair: PreferencePair, system: str | None = SYSTEM_PROMPT
) -> tuple[tuple[list[int], list[bool]], tuple[list[int], list[bool]]]:
    """The chosen and the rejected sequence, each as :func:`~dlfund.text.instructions.encode_example` makes
    it (ids of prompt + answer + ``<|im_end|>``, mask True on the answer): the same prompt tokens in both."""
    ex = pair.example
    chosen = encode_example(tokenizer, Example(ex.task, ex.instruction, pair.chosen), system)
    rejected = encode_example(tokenizer, Example(ex.task, ex.instruction, pair.rejected), system)
    return chosen, rejected
