"""Byte-level BPE written from scratch (unit 12): the tokenizer of GPT-2, LLaMA 3 and SmolLM2.

Encoding ``text`` takes four steps:

1. **Special tokens first.** Strings such as ``<|im_start|>`` become their own id and are never split.
2. **Pre-tokenisation.** The rest is cut into pieces (SmolLM: every digit alone, then GPT-2's regex:
   ``'s``, `` word``, `` 123``, punctuation runs, whitespace). Merges never cross a piece boundary.
   Python's ``re`` lacks ``\\p{L}`` (any letter), so the regex runs in ``tokenizers.pre_tokenizers``.
3. **Bytes as printable characters.** Each piece's UTF-8 bytes are mapped one-to-one onto 256
   printable unicode characters (:func:`bytes_to_unicode`: a space becomes ``Ġ``), so that every
   string, in any script, is spelled with a 256-letter alphabet and nothing is ever unknown.
4. **Merges.** Repeatedly join the adjacent pair with the *lowest rank* (the earliest learned merge)
   until no adjacent pair is in the merge list; each resulting string is a vocabulary entry.

Decoding joins the token strings, maps the characters back to bytes and decodes UTF-8.
:class:`dlfund.text.llama_tokenizer.ChatTokenizer` does the same with the ``tokenizers`` library
(in Rust); a test checks that both give identical ids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from dlfund.data import smollm2_gguf_path
from dlfund.text.llama_tokenizer import CONTROL, read_gguf_vocabulary

__all__ = ["GPT2_PATTERN", "ByteLevelBPE", "bytes_to_unicode"]

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
"""GPT-2's pre-tokenisation regex: contractions, letters, numbers, other symbols (each with one leading
space), and whitespace (a run of spaces before a word leaves its last space to the word)."""


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character table: printable bytes map to themselves, the other 68 to ``chr(256 + n)``.

    ``bytes_to_unicode()[ord(" ")] == "Ġ"`` and ``[ord("\\n")] == "Ċ"``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ByteLevelBPE:
    """Byte-level BPE from a vocabulary (token strings in id order) and merges (in priority order).

    ``split_digits=True`` is SmolLM's pre-tokenizer (each digit its own piece before the regex).
    ``special_tokens`` are matched in the raw text before anything else.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        merges: Iterable[tuple[str, str]],
        *,
        special_tokens: Sequence[str] = (),
        split_digits: bool = True,
    ) -> None:
        from tokenizers import Regex, pre_tokenizers

        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}  # lower rank = learned earlier
        self.byte_to_char = bytes_to_unicode()
        self.char_to_byte = {c: b for b, c in self.byte_to_char.items()}
        if self.byte_to_char[ord("a")] not in self.ids or self.byte_to_char[ord(" ")] not in self.ids:
            raise ValueError("the vocabulary lacks the byte characters 'a' and 'Ġ': not a byte-level BPE vocabulary")
        self.special_tokens = sorted(special_tokens, key=len, reverse=True)  # longest first: no prefix wins
        self._special_set = set(self.special_tokens)
        for s in self.special_tokens:
            if s not in self.ids:
                raise ValueError(f"special token {s!r} is not in the vocabulary")
        self._special_re = (
            re.compile("(" + "|".join(re.escape(s) for s in self.special_tokens) + ")") if self.special_tokens else None
        )
        steps = [pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated")]
        if split_digits:
            steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
        self._pre = pre_tokenizers.Sequence(steps)
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str] | None = None) -> ByteLevelBPE:
        """The tokenizer inside a GGUF file (default: the course's SmolLM2-135M-Instruct)."""

        if path is None:
            path = smollm2_gguf_path()
        v = read_gguf_vocabulary(path)
        specials = [t for t, kind in zip(v.tokens, v.token_types, strict=True) if kind == CONTROL]
        return cls(v.tokens, v.merges, special_tokens=specials, split_digits=v.pre == "smollm")

    def __len__(self) -> int:
        return len(self.tokens)

    # ----------------------------------------------------------------------------------- the steps
    def split_special(self, text: str) -> list[str]:
        """``text`` cut around special tokens: ``"a<|im_end|>b" -> ["a", "<|im_end|>", "b"]`` (no empty strings)."""
        if self._special_re is None:
            return [text] if text else []
        return [part for part in self._special_re.split(text) if part]

    def pre_tokenize(self, text: str) -> list[str]:
        """The pieces of ordinary text (no special tokens) that merges stay inside."""
        return [piece for piece, _ in self._pre.pre_tokenize_str(text)]

    def to_chars(self, piece: str) -> str:
        """A piece's UTF-8 bytes spelled in the 256-character alphabet: ``" é" -> "ĠÃ©"``."""
        return "".join(self.byte_to_char[b] for b in piece.encode("utf-8"))

    def merge(self, word: str) -> list[str]:
        """Greedy BPE on one piece (in byte characters): join the lowest-rank adjacent pair until none is left."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word)
        while len(parts) > 1:
            best_rank, best_i = None, -1
            for i in range(len(parts) - 1):
                rank = self.ranks.get((parts[i], parts[i + 1]))
                if rank is not None and (best_rank is None or rank < best_rank):
                    best_rank, best_i = rank, i  # the leftmost pair wins a tie
            if best_rank is None:
                break
            parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
        self._cache[word] = parts
        return parts

    # ------------------------------------------------------------------------------------- the API
    def tokenize(self, text: str) -> list[str]:
        """The vocabulary strings of ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize expects a str, got {type(text).__name__}")
        out: list[str] = []
        for part in self.split_special(text):
            if part in self._special_set:
                out.append(part)
                continue
            for piece in self.pre_tokenize(part):
                out.extend(self.merge(self.to_chars(piece)))
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        try:
            return [self.ids[t] for t in self.tokenize(text)]
        except KeyError as err:  # a byte that valid UTF-8 never contains may lack a token of its own
            raise ValueError(f"{err.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: special tokens as written, everything else bytes -> UTF-8 (bad bytes become U+FFFD)."""
        out, pending = [], bytearray()
        for i in ids:
            if not 0 <= int(i) < len(self.tokens):
                raise ValueError(f"token id {i} is outside the vocabulary (0..{len(self.tokens) - 1})")
            token = self.tokens[int(i)]
            if token in self._special_set:
                out.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
                out.append(token)
            else:
                pending.extend(self.char_to_byte[c] for c in token)
        out.append(pending.decode("utf-8", errors="replace"))
        return "".join(out)
