"""SmolLM2's byte-level BPE tokenizer and ChatML chat template, read from its GGUF file (unit 12).

The GGUF file carries the whole tokenizer: 49,152 token strings (GPT-2's byte-to-unicode alphabet,
``Ġ`` for a space), 48,900 merges in priority order, each token's type (3 = control/special), and
the chat template. :class:`ChatTokenizer` rebuilds it with the ``tokenizers`` library: split digits
one by one, then GPT-2's byte-level regex split, then BPE merges inside each piece. Unit 12 writes the
merge loop from scratch (:mod:`dlfund.text.bpe`) and checks it against this one.

ChatML wraps each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``; a generation prompt
ends with ``<|im_start|>assistant\\n`` and the model ends its answer with ``<|im_end|>``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from dlfund.data import gguf_reader, smollm2_gguf_path

__all__ = ["ChatTokenizer", "GGUFVocabulary", "read_gguf_vocabulary", "DEFAULT_SYSTEM_PROMPT"]

DEFAULT_SYSTEM_PROMPT = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
"""The system message SmolLM2's chat template inserts when a conversation has none."""

CONTROL = 3
"""GGUF token type of control (special) tokens such as ``<|im_start|>``."""


@dataclass(frozen=True)
class GGUFVocabulary:
    """The tokenizer facts of a GGUF file."""

    tokens: list[str]
    merges: list[tuple[str, str]]
    token_types: list[int]
    bos_id: int | None
    eos_id: int | None
    pre: str | None
    """llama.cpp's name of the pre-tokenizer (``"smollm"``: digits split one by one, then GPT-2's regex)."""
    chat_template: str | None


def _field_strings(reader, key: str) -> list[str]:
    field = reader.fields[key]
    return [bytes(field.parts[i]).decode("utf-8") for i in field.data]


def _field_scalar(reader, key: str):
    field = reader.fields.get(key)
    if field is None:
        return None
    from gguf import GGUFValueType

    part = field.parts[field.data[0]]
    return bytes(part).decode("utf-8") if field.types[0] == GGUFValueType.STRING else int(part[0])


def read_gguf_vocabulary(path: str | os.PathLike[str]) -> GGUFVocabulary:
    """Read tokens, merges, types, special ids and the chat template from a GGUF file."""

    reader = gguf_reader(path)
    if "tokenizer.ggml.tokens" not in reader.fields or "tokenizer.ggml.merges" not in reader.fields:
        raise ValueError(f"{path}: no BPE tokenizer inside (expected tokenizer.ggml.tokens and tokenizer.ggml.merges)")
    if _field_scalar(reader, "tokenizer.ggml.model") != "gpt2":
        raise ValueError(
            f"{path}: tokenizer model {_field_scalar(reader, 'tokenizer.ggml.model')!r}, expected 'gpt2' "
            "(byte-level BPE)"
        )
    types = reader.fields["tokenizer.ggml.token_type"]
    merges = []
    for line in _field_strings(reader, "tokenizer.ggml.merges"):
        left, sep, right = line.partition(" ")
        if not sep:
            raise ValueError(f"{path}: malformed merge {line!r} (expected two tokens separated by a space)")
        merges.append((left, right))
    return GGUFVocabulary(
        tokens=_field_strings(reader, "tokenizer.ggml.tokens"),
        merges=merges,
        token_types=[int(types.parts[i][0]) for i in types.data],
        bos_id=_field_scalar(reader, "tokenizer.ggml.bos_token_id"),
        eos_id=_field_scalar(reader, "tokenizer.ggml.eos_token_id"),
        pre=_field_scalar(reader, "tokenizer.ggml.pre"),
        chat_template=_field_scalar(reader, "tokenizer.chat_template"),
    )


class ChatTokenizer:
    """Text <-> token ids for SmolLM2, plus the ChatML template. Build with :meth:`from_gguf`."""

    def __init__(self, vocab: GGUFVocabulary) -> None:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        if vocab.pre not in (None, "smollm", "gpt2"):
            raise ValueError(f"pre-tokenizer {vocab.pre!r} is not supported (expected 'smollm' or 'gpt2')")
        self.vocab = vocab
        bpe = models.BPE(vocab={t: i for i, t in enumerate(vocab.tokens)}, merges=vocab.merges)
        tok = Tokenizer(bpe)
        steps = [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]
        if vocab.pre == "smollm":
            steps.insert(0, pre_tokenizers.Digits(individual_digits=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        self.special_tokens = [t for t, kind in zip(vocab.tokens, vocab.token_types, strict=True) if kind == CONTROL]
        tok.add_special_tokens(self.special_tokens)
        self._tok = tok
        self.im_start_id = self.token_id("<|im_start|>")
        self.im_end_id = self.token_id("<|im_end|>")
        self.eos_id = vocab.eos_id if vocab.eos_id is not None else self.im_end_id

    @classmethod
    def from_gguf(cls, path: str | os.PathLike[str] | None = None) -> ChatTokenizer:
        """The tokenizer inside a GGUF file (default: the course's SmolLM2-135M-Instruct)."""
        if path is None:
            path = smollm2_gguf_path()
        return cls(read_gguf_vocabulary(path))

    def __len__(self) -> int:
        return len(self.vocab.tokens)

    def token_id(self, token: str) -> int:
        """The id of one vocabulary entry (e.g. ``"<|im_end|>"``); a clear error if it is not one."""
        i = self._tok.token_to_id(token)
        if i is None:
            raise KeyError(f"{token!r} is not in the vocabulary")
        return i

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens written in the text (``<|im_start|>``) become their ids."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        """The text of ``ids`` (bytes reassembled into UTF-8)."""
        return self._tok.decode(list(ids), skip_special_tokens=skip_special)

    def tokens(self, text: str) -> list[str]:
        """The vocabulary strings ``text`` splits into (``Ġ`` marks a leading space)."""
        return self._tok.encode(text, add_special_tokens=False).tokens

    def chat(
        self,
        messages: Sequence[dict[str, str]],
        *,
        add_generation_prompt: bool = True,
        system: str | None = DEFAULT_SYSTEM_PROMPT,
    ) -> str:
        """The ChatML text of a conversation, as SmolLM2's template writes it.

        ``messages`` are ``{"role": "system" | "user" | "assistant", "content": str}``. When the first
        message is not a system message, ``system`` is inserted first (``None`` inserts nothing).
        """
        parts = []
        for i, m in enumerate(messages):
            if set(m) != {"role", "content"} or m["role"] not in ("system", "user", "assistant"):
                raise ValueError(f"message {i} must be {{'role': system|user|assistant, 'content': str}}, got {m!r}")
            if i == 0 and m["role"] != "system" and system is not None:
                parts.append(f"<|im_start|>system\n{system}<|im_end|>\n")
            parts.append(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n")
        if add_generation_prompt:
            parts.append("<|im_start|>assistant\n")
        return "".join(parts)
