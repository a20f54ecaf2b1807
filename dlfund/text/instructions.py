"""A generated instruction dataset with exact answers (unit 13), its chat template and response-only labels.

No instruction dataset ships offline, so we make one from a seed: short tasks whose answer is one exact
string, which makes evaluation a plain string comparison (exact match) instead of a judgement.

- ``add``, ``subtract``: a two-digit and a one-digit number (``What is 47 + 8?`` → ``55``);
- ``sort``: four numbers in increasing order;
- ``count``: how many words are in a short list (2 to 5 words taken from a line of Shakespeare);
- ``reverse``: three or four words of a Shakespeare line in reverse order (a string transform);
- ``speaker``: a three-speech passage from a play and the question *who says this line?* — a
  question/answer pair built from real text (the answer is in the passage; the model must read it).

In-context learning (notebook 05) asks the unchanged model with *shots*: solved training examples placed
before the question as earlier turns of the conversation (:func:`few_shot_prompt`, :func:`draw_shots`).

The held-out split is built from the same generator but takes its Shakespeare lines from *other
plays* (:data:`dlfund.text.chars.VALIDATION_PLAYS`), and no instruction appears in both splits.
Everything is deterministic given the seed.

The template is SmolLM2's ChatML; the loss covers only the response tokens and the closing
``<|im_end|>`` (so the model learns to stop), never the prompt.
"""

from __future__ import annotations

import random
import re
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch

from dlfund.data.loaders import load_shakespeare
from dlfund.text.chars import VALIDATION_PLAYS, plain_play

if TYPE_CHECKING:
    from dlfund.text.llama_tokenizer import ChatTokenizer

__all__ = [
    "IGNORE_INDEX",
    "SYSTEM_PROMPT",
    "TASKS",
    "Example",
    "collate",
    "draw_shots",
    "encode_example",
    "few_shot_messages",
    "few_shot_prompt",
    "generate",
    "instruction_splits",
    "normalize",
    "prompt_text",
    "shakespeare_speeches",
]

TASKS = ("add", "subtract", "sort", "count", "reverse", "speaker")
SYSTEM_PROMPT = "Answer with the exact answer only."
IGNORE_INDEX = -100
"""The target value that ``F.cross_entropy(..., ignore_index=-100)`` skips: prompt and padding positions."""


@dataclass(frozen=True)
class Example:
    """One instruction and its one exact answer."""

    task: str
    instruction: str
    response: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# ------------------------------------------------------------------------------------- real text


def _title(name: str) -> str:
    """``KING HENRY VI`` -> ``King Henry VI``: title case, Roman numerals kept."""
    return " ".join(w if re.fullmatch(r"[IVX]+", w) else w.capitalize() for w in name.split())


@lru_cache(maxsize=2)
def shakespeare_speeches(held_out: bool) -> tuple[tuple[str, str, str], ...]:
    """``(play, speaker, first line)`` of every speech, from the held-out plays or from the others.

    Speakers are in title case (``First Citizen``, ``King Henry VI``); lines are the first verse line of each speech,
    3 to 12 words long, stage directions removed.
    """

    out = []
    for name, markdown in load_shakespeare().items():
        if (name in VALIDATION_PLAYS) != held_out:
            continue
        for block in plain_play(markdown).split("\n\n"):
            lines = [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("[")]
            if len(lines) < 2 or not lines[0].endswith(":") or lines[0][:-1] != lines[0][:-1].upper():
                continue
            speaker, line = _title(lines[0][:-1].strip()), lines[1]
            if 3 <= len(line.split()) <= 12 and '"' not in line and 1 <= len(speaker) <= 24:
                out.append((name, speaker, line))
    if not out:
        raise ValueError("no speeches found in the Shakespeare plays")
    return tuple(out)


# ------------------------------------------------------------------------------------- the tasks


def _words(line: str) -> list[str]:
    """The words of a line, without punctuation (``"Ay, my lord."`` -> ``["Ay", "my", "lord"]``)."""
    return [w for w in (t.strip(".,;:!?'-()[]") for t in line.split()) if w.isalpha()]


def _task(kind: str, rng: random.Random, speeches: Sequence[tuple[str, str, str]]) -> Example:
    if kind == "add":
        a, b = rng.randint(10, 99), rng.randint(2, 9)
        return Example(kind, f"What is {a} + {b}?", str(a + b))
    if kind == "subtract":
        a, b = rng.randint(11, 99), rng.randint(2, 9)
        return Example(kind, f"What is {a} - {b}?", str(a - b))
    if kind == "sort":
        nums = rng.sample(range(1, 100), 4)
        return Example(
            kind,
            "Sort these numbers from smallest to largest: " + ", ".join(map(str, nums)),
            ", ".join(map(str, sorted(nums))),
        )
    if kind == "count":
        while len(words := _words(rng.choice(speeches)[2])) < 2:
            pass
        n = rng.randint(2, min(5, len(words)))
        start = rng.randint(0, len(words) - n)
        items = words[start : start + n]
        return Example(kind, "How many words are in this list: " + ", ".join(items) + "?", str(n))
    if kind == "reverse":
        while len(words := _words(rng.choice(speeches)[2])) < 3:
            pass
        phrase = words[: rng.randint(3, min(4, len(words)))]
        return Example(kind, "Write these words in reverse order: " + " ".join(phrase), " ".join(reversed(phrase)))
    if kind == "speaker":
        while True:
            i = rng.randrange(len(speeches) - 2)
            passage = speeches[i : i + 3]
            if len({p[0] for p in passage}) != 1:  # one play
                continue
            j = rng.randrange(3)
            others = [p for k, p in enumerate(passage) if k != j]
            if passage[j][1] in {p[1] for p in others} or passage[j][2] in {p[2] for p in others}:
                continue  # the answer must be unique in the passage
            text = "\n".join(f"{speaker}: {line}" for _, speaker, line in passage)
            return Example(kind, f'{text}\n\nIn this passage, who says "{passage[j][2]}"?', passage[j][1])
    raise ValueError(f"unknown task {kind!r}: expected one of {', '.join(TASKS)}")


def generate(
    n: int,
    seed: int,
    *,
    tasks: Sequence[str] = TASKS,
    held_out_text: bool = False,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Example]:
    """``n`` examples with distinct instructions, the tasks in turn, none of whose instructions is in
    ``exclude``. Shakespeare tasks read the held-out plays when ``held_out_text``."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown task(s) {unknown or tasks}: expected some of {', '.join(TASKS)}")
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = random.Random(seed)
    speeches = shakespeare_speeches(held_out_text) if {"count", "reverse", "speaker"} & set(tasks) else ()
    out: list[Example] = []
    seen = set(exclude)
    attempts = 0
    while len(out) < n:
        ex = _task(tasks[len(out) % len(tasks)], rng, speeches)
        attempts += 1
        if attempts > 50 * n + 1000:
            raise ValueError(f"could not draw {n} distinct examples (got {len(out)}): ask for fewer")
        if ex.instruction not in seen:
            seen.add(ex.instruction)
            out.append(ex)
    return out


def instruction_splits(
    n_train: int, n_test: int, seed: int = 0, *, tasks: Sequence[str] = TASKS
) -> dict[str, list[Example]]:
    """``{"train": [...], "test": [...]}``: the test split is drawn first (Shakespeare from the held-out
    plays); training examples never repeat a test instruction."""
    test = generate(n_test, seed + 1, tasks=tasks, held_out_text=True)
    train = generate(n_train, seed, tasks=tasks, exclude={e.instruction for e in test})
    return {"train": train, "test": test}


# ------------------------------------------------------------------------- template and labels


def prompt_text(tokenizer: ChatTokenizer, example: Example, system: str | None = SYSTEM_PROMPT) -> str:
    """The ChatML prompt of one example, ending where the assistant's answer starts."""
    return tokenizer.chat([{"role": "user", "content": example.instruction}], system=system)


def few_shot_messages(query: Example, shots: Sequence[Example]) -> list[dict[str, str]]:
    """The conversation of a k-shot prompt: each shot as a user turn (its instruction) followed by an
    assistant turn (its answer), in the given order, then the query's instruction as the last user turn.

    The query's own answer is never part of it: that is what the model must produce.
    """
    messages = []
    for shot in shots:
        messages.append({"role": "user", "content": shot.instruction})
        messages.append({"role": "assistant", "content": shot.response})
    messages.append({"role": "user", "content": query.instruction})
    return messages


def few_shot_prompt(
    tokenizer: ChatTokenizer, query: Example, shots: Sequence[Example], system: str | None = SYSTEM_PROMPT
) -> str:
    """The ChatML text of :func:`few_shot_messages`, ending where the assistant's answer starts.

    With no shots it is :func:`prompt_text`: the zero-shot prompt the finetuned models are scored with.
    """
    return tokenizer.chat(few_shot_messages(query, shots), system=system)


def draw_shots(pool: Sequence[Example], k: int, rng: random.Random, *, exclude: Collection[str] = ()) -> list[Example]:
    """``k`` distinct examples of ``pool`` drawn at random by ``rng`` (in the drawn order), skipping any whose
    instruction is in ``exclude`` (the question being asked, or every held-out instruction).

    ``pool`` should be a training split: shots drawn from the test split would show the model test answers.
    """
    candidates = [e for e in pool if e.instruction not in exclude]
    if not 0 <= k <= len(candidates):
        raise ValueError(f"cannot draw {k} shots from {len(candidates)} candidate examples")
    return rng.sample(candidates, k)


def encode_example(
    tokenizer: ChatTokenizer, example: Example, system: str | None = SYSTEM_PROMPT
) -> tuple[list[int], list[bool]]:
    """Token ids of prompt + response + ``<|im_end|>``, and a mask that is True on the response part."""
    prompt = tokenizer.encode(prompt_text(tokenizer, example, system))
    response = tokenizer.encode(example.response) + [tokenizer.im_end_id]
    return prompt + response, [False] * len(prompt) + [True] * len(response)


def collate(
    encoded: Sequence[tuple[list[int], list[bool]]], pad_id: int, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch for next-token training: ``idx (B, T)`` and ``targets (B, T)``.

    ``targets[b, t]`` is the token after position ``t`` where that token is part of the response,
    else :data:`IGNORE_INDEX` (prompt, padding). Sequences are right-padded with ``pad_id`` (a causal
    model never looks right, so padding after the end changes nothing before it).
    """
    if not encoded:
        raise ValueError("collate needs at least one example")
    rows = []
    for ids, mask in encoded:
        if len(ids) != len(mask) or len(ids) < 2:
            raise ValueError(f"each example needs ids and mask of equal length ≥ 2, got {len(ids)} and {len(mask)}")
        if max_len is not None:
            ids, mask = ids[: max_len + 1], mask[: max_len + 1]
        rows.append((ids, mask))
    t = max(len(ids) for ids, _ in rows) - 1
    idx = torch.full((len(rows), t), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), t), IGNORE_INDEX, dtype=torch.long)
    for b, (ids, mask) in enumerate(rows):
        ids_t = torch.tensor(ids)
        idx[b, : len(ids) - 1] = ids_t[:-1]
        targets[b, : len(ids) - 1] = ids_t[1:].masked_fill(~torch.tensor(mask[1:]), IGNORE_INDEX)
    return idx, targets


def normalize(answer: str) -> str:
    """What exact match compares: the answer without surrounding spaces and a final full stop."""
    answer = answer.strip()
    return answer[:-1].rstrip() if answer.endswith(".") else answer
