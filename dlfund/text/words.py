"""Text as data: cleaning, tokenising, a vocabulary with ``<pad>``/``<unk>``, padded batches, group splits.

The pieces are small on purpose (unit 8 builds each one in a notebook first):

- :func:`clean` and :func:`tokenize` turn a raw review into a list of lower-case tokens;
- :class:`Vocab` maps tokens to ids, with id 0 for ``<pad>`` and id 1 for ``<unk>`` (tokens it has
  not seen, or saw too rarely);
- :func:`pad_batch` stacks id sequences of different lengths into one ``(B, T)`` tensor plus their
  lengths; :class:`SequenceBatches` yields such batches from a whole data set;
- :func:`group_split` splits rows into train/validation/test so that every group (e.g. a movie)
  lands in exactly one split, and asserts that no group leaks across.
"""

from __future__ import annotations

import html
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Sequence

import torch

from dlfund.data import load_movie_reviews

PAD = "<pad>"
UNK = "<unk>"

_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-"})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def clean(text: str) -> str:
    """Undo HTML escapes (``&amp;``), unify quotes and dashes, lower-case, collapse whitespace."""
    if not isinstance(text, str):
        raise TypeError(f"clean() expects a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", html.unescape(text)).translate(_QUOTES)
    return " ".join(text.lower().split())


def tokenize(text: str) -> list[str]:
    """Words (an apostrophe suffix kept: ``it's``, ``marker's``) and single punctuation marks of ``clean(text)``."""
    return _TOKEN.findall(clean(text))


class Vocab:
    """A token ↔ id mapping. Special tokens come first (``<pad>`` = 0, ``<unk>`` = 1 by default).

    ``Vocab(tokens)`` takes the full, ordered token list; :meth:`build` counts a corpus instead.
    Looking up a token that is not in the vocabulary gives the ``<unk>`` id.
    """

    def __init__(self, tokens: Sequence[str], *, pad: str = PAD, unk: str = UNK) -> None:
        if isinstance(tokens, str) or not isinstance(tokens, Sequence):
            raise TypeError(f"Vocab expects a list of token strings, got {type(tokens).__name__}")
        bad = [t for t in tokens if not isinstance(t, str)]
        if bad:
            raise TypeError(f"Vocab tokens must be str, found {type(bad[0]).__name__} {bad[0]!r}")
        duplicates = [t for t, n in Counter(tokens).items() if n > 1]
        if duplicates:
            raise ValueError(f"Vocab tokens must be unique, found duplicates: {duplicates[:5]}")
        for name, special in (("pad", pad), ("unk", unk)):
            if special not in tokens:
                raise ValueError(
                    f"the {name} token {special!r} is not in the vocabulary (first tokens: {list(tokens[:5])})"
                )
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        self.pad, self.unk = pad, unk
        self.pad_id, self.unk_id = self.stoi[pad], self.stoi[unk]

    @classmethod
    def build(
        cls,
        corpus: Iterable[Sequence[str]],
        *,
        min_freq: int = 1,
        max_size: int | None = None,
        specials: Sequence[str] = (PAD, UNK),
    ) -> Vocab:
        """Count the tokens of ``corpus`` (an iterable of token lists); keep those seen ``min_freq`` times,
        most frequent first (ties alphabetical, so the result is deterministic), at most ``max_size`` in all."""
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        counts: Counter[str] = Counter()
        for tokens in corpus:
            if isinstance(tokens, str):
                raise TypeError("Vocab.build expects token lists (e.g. [tokenize(t) for t in texts]), got a str")
            counts.update(tokens)
        kept = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in specials), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            kept = kept[: max(0, max_size - len(specials))]
        return cls([*specials, *kept], pad=specials[0], unk=specials[1])

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        return self.stoi.get(token, self.unk_id)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Token list → id list (unknown tokens → ``unk_id``)."""
        if isinstance(tokens, str):
            raise TypeError("encode expects a list of tokens, got a str: tokenize it first")
        return [self.stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int], *, skip_pad: bool = True) -> list[str]:
        """Id list (or 1-D tensor) → token list; padding is dropped unless ``skip_pad=False``."""
        out = []
        for i in ids.tolist() if isinstance(ids, torch.Tensor) else ids:
            if not 0 <= i < len(self.itos):
                raise IndexError(f"id {i} is outside the vocabulary (size {len(self.itos)})")
            if not (skip_pad and i == self.pad_id):
                out.append(self.itos[i])
        return out

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens: {self.itos[:6]}...)"


def pad_batch(
    sequences: Sequence[Sequence[int]], pad_id: int, *, max_len: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack id sequences into ``ids (B, T)`` (right-padded with ``pad_id``) and ``lengths (B,)``.

    ``T`` is the longest length, or ``max_len`` when given (longer sequences are cut to it).
    Empty sequences are refused: an RNN cannot summarise zero tokens.
    """
    if len(sequences) == 0:
        raise ValueError("pad_batch got no sequences")
    cut = [list(s)[:max_len] if max_len is not None else list(s) for s in sequences]
    lengths = torch.tensor([len(s) for s in cut], dtype=torch.long)
    if int(lengths.min()) == 0:
        raise ValueError(f"pad_batch got an empty sequence at index {int(lengths.argmin())}")
    ids = torch.full((len(cut), int(lengths.max())), pad_id, dtype=torch.long)
    for row, s in enumerate(cut):
        ids[row, : len(s)] = torch.tensor(s, dtype=torch.long)
    return ids, lengths


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """``(B, T)`` bool mask, ``True`` at real tokens and ``False`` at padding."""
    t = int(lengths.max()) if max_len is None else max_len
    return torch.arange(t, device=lengths.device)[None, :] < lengths[:, None]


class SequenceBatches:
    """Minibatches ``(ids (B, T), lengths (B,), labels (B,))`` of encoded sequences, padded per batch.

    With ``shuffle=True`` each epoch draws a new order from ``seed``; batches are moved to ``device``.
    """

    def __init__(
        self,
        sequences: Sequence[Sequence[int]],
        labels: Sequence[int] | torch.Tensor,
        *,
        batch_size: int,
        pad_id: int,
        shuffle: bool = False,
        seed: int = 0,
        max_len: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if len(sequences) != len(labels):
            raise ValueError(f"{len(sequences)} sequences but {len(labels)} labels")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.sequences, self.labels = list(sequences), torch.as_tensor(labels, dtype=torch.long)
        self.batch_size, self.pad_id, self.shuffle, self.max_len = batch_size, pad_id, shuffle, max_len
        self.device = torch.device(device)
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.sequences) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        n = len(self.sequences)
        order = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            ids, lengths = pad_batch([self.sequences[i] for i in idx.tolist()], self.pad_id, max_len=self.max_len)
            yield ids.to(self.device), lengths.to(self.device), self.labels[idx].to(self.device)


def group_split(
    groups: Sequence[Hashable], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), *, seed: int = 0
) -> tuple[list[int], list[int], list[int]]:
    """Row indices of a train/validation/test split in which each group lies in exactly one split.

    Groups (not rows) are shuffled with ``seed`` and dealt out until each split holds about its
    fraction of the *rows*. Returns sorted index lists; asserts that no group appears in two splits.
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(f"fractions must be three non-negative numbers that sum to 1, got {fractions}")
    sizes = Counter(groups)
    if len(sizes) < 3:
        raise ValueError(f"a group split needs at least 3 groups, found {len(sizes)}")
    names = sorted(sizes, key=str)
    random.Random(seed).shuffle(names)
    n, assigned, split_of = len(groups), 0, {}
    bounds = (fractions[0] * n, (fractions[0] + fractions[1]) * n)
    for g in names:
        split_of[g] = 0 if assigned < bounds[0] else 1 if assigned < bounds[1] else 2
        assigned += sizes[g]
    parts: tuple[list[int], list[int], list[int]] = ([], [], [])
    for i, g in enumerate(groups):
        parts[split_of[g]].append(i)
    seen = [{groups[i] for i in part} for part in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2]), "a group leaked across splits"
    return parts


def review_splits(seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict[str, dict[str, list]]:
    """The movie reviews (``dlfund.data.load_movie_reviews``) tokenised and split by movie.

    Returns ``{"train" | "val" | "test": {"text", "tokens", "label", "movie": lists}}``; no movie is
    in two splits. Units 8 and 10 use the same split (same ``seed``), so their numbers compare.
    """

    rows = load_movie_reviews()
    parts = group_split([r["movie_name"] for r in rows], fractions, seed=seed)
    return {
        name: {
            "text": [rows[i]["text"] for i in idx],
            "tokens": [tokenize(rows[i]["text"]) for i in idx],
            "label": [rows[i]["label"] for i in idx],
            "movie": [rows[i]["movie_name"] for i in idx],
        }
        for name, idx in zip(("train", "val", "test"), parts)
    }
