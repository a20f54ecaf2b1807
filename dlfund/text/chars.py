"""Characters as tokens (unit 9): Shakespeare's plays as plain text, split by play, and a char tokenizer.

``load_shakespeare()`` gives each play as Markdown (``# Title``, ``**SPEAKER**``, ``_stage direction_``,
lines ending in two spaces). :func:`plain_play` turns one into the plain "SPEAKER:\\nline" layout of
char-level language-model corpora; :func:`split_plays` holds whole plays out for validation, so the
validation text is unseen (not just a later stretch of a play seen in training).
"""

from __future__ import annotations

import re

import torch

from dlfund.data import load_shakespeare

__all__ = ["VALIDATION_PLAYS", "CharTokenizer", "plain_play", "random_windows", "shakespeare_corpus", "split_plays"]

VALIDATION_PLAYS = ("comedies/twelfth-night", "histories/richard-ii", "romances/the-tempest", "tragedies/hamlet")
"""The plays held out for validation: one of each main genre (about 9% of the text)."""

_HEADING = re.compile(r"^#+\s*(.*)$")
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_DIRECTION = re.compile(r"^_(.+)_\s*$")


def plain_play(markdown: str) -> str:
    """One play's Markdown -> plain text: ``SPEAKER:`` lines, speeches, stage directions in brackets.

    Headings (title, act, scene) become plain lines; bold and italic marks and the Markdown line
    breaks (two trailing spaces) are removed; blank lines separate speeches.
    """
    out: list[str] = []
    for raw in markdown.splitlines():
        line = raw.rstrip()
        if not line:
            if out and out[-1] != "":
                out.append("")
            continue
        if m := _HEADING.match(line):
            line = m.group(1)
        elif m := _SPEAKER.match(line):
            line = m.group(1).strip().rstrip(".").upper() + ":"
        elif m := _DIRECTION.match(line):
            line = f"[{m.group(1).strip()}]"
        line = line.replace("**", "").replace("\\", "")
        out.append(line)
    return "\n".join(out).strip() + "\n"


def split_plays(plays: dict[str, str], validation: tuple[str, ...]) -> tuple[str, str]:
    """Join plain-text plays into ``(train_text, validation_text)``, holding out the named plays.

    Raises ``KeyError`` for an unknown play name, and checks that no play is in both parts.
    """
    unknown = [name for name in validation if name not in plays]
    if unknown:
        raise KeyError(f"unknown play(s) {', '.join(unknown)}; known: {', '.join(plays)}")
    train_names = [name for name in plays if name not in validation]
    if set(train_names) & set(validation) or not train_names or not validation:
        raise ValueError("the training and validation plays must be non-empty and disjoint")
    train = "\n".join(plain_play(plays[name]) for name in train_names)
    val = "\n".join(plain_play(plays[name]) for name in validation)
    return train, val


def shakespeare_corpus(validation: tuple[str, ...] = VALIDATION_PLAYS) -> tuple[str, str]:
    """The 38 plays as plain text: ``(train_text, validation_text)``, the ``validation`` plays held out."""

    return split_plays(load_shakespeare(), validation)


class CharTokenizer:
    """Maps each character of a fixed alphabet to an id ``0..V-1`` (sorted by code point) and back."""

    def __init__(self, chars: str | list[str]) -> None:
        alphabet = sorted(set(chars))
        if not alphabet:
            raise ValueError("a tokenizer needs at least one character")
        self.chars = alphabet
        self.stoi = {c: i for i, c in enumerate(alphabet)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """The tokenizer whose alphabet is every character that occurs in ``text``."""
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> torch.Tensor:
        """Text -> ids ``(len(text),)`` int64; a character outside the alphabet raises ``ValueError``."""
        if not text:
            return torch.zeros(0, dtype=torch.long)
        # one table lookup per character (fast for a whole corpus): code point -> id, -1 if unknown
        points = torch.frombuffer(bytearray(text.encode("utf-32-le")), dtype=torch.int32).long()
        table = torch.full((max(int(points.max()), max(map(ord, self.chars))) + 1,), -1, dtype=torch.long)
        table[torch.tensor([ord(c) for c in self.chars])] = torch.arange(self.vocab_size)
        ids = table[points]
        if (ids < 0).any():
            unknown = sorted({c for c in text if c not in self.stoi})
            raise ValueError(
                f"{len(unknown)} character(s) not in the tokenizer's alphabet of {self.vocab_size}: "
                f"{', '.join(repr(c) for c in unknown[:10])}"
            )
        return ids

    def decode(self, ids: torch.Tensor | list[int]) -> str:
        """Ids ``(T,)`` -> text; an id outside ``0..V-1`` raises ``ValueError``."""
        values = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        bad = [i for i in values if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"token id(s) {bad[:5]} outside 0..{self.vocab_size - 1}")
        return "".join(self.chars[i] for i in values)

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def random_windows(
    data: torch.Tensor,
    context_length: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows of a token stream ``(N,)``: inputs and next-token targets ``(B, T)``,
    ``T = context_length``."""
    if data.dim() != 1 or len(data) <= context_length:
        raise ValueError(
            f"need a 1-D token stream longer than context_length={context_length}, got shape {tuple(data.shape)}"
        )
    starts = torch.randint(len(data) - context_length, (batch_size,), generator=generator)
    offsets = torch.arange(context_length + 1)
    windows = data[starts[:, None] + offsets]  # (B, T + 1)
    windows = windows.to(device, non_blocking=True)
    return windows[:, :-1], windows[:, 1:]
