"""dlfund.text.bpe: the from-scratch byte-level BPE equals the ``tokenizers``-built ChatTokenizer."""

from __future__ import annotations

import pytest

from dlfund.text.bpe import ByteLevelBPE, bytes_to_unicode

EDGE_CASES = [
    "Hello world",
    "  two  spaces\n\nnewlines\t\ttabs  ",
    "1234567 3.14159 1,000,000 -42",
    "naïve café 日本語 😀 Ω≈ç√",
    "I'll don't 'twas O'er",
    "<|im_start|>user\nHi<|im_end|>\n",
    "a<|im_end|>b<|endoftext|>",
    "",
    " ",
    "\u00a0nbsp",
    "ﬁ ligature",
    "x" * 60,
    "tab\tend\n",
    "UPPER lower MiXeD",
    "emoji👍🏽family👨‍👩‍👧",
    "\r\nwindows\r\n",
]


def test_bytes_to_unicode_is_a_printable_bijection():
    table = bytes_to_unicode()
    assert len(table) == 256 and len(set(table.values())) == 256
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ" and table[ord("A")] == "A"
    assert all(c.isprintable() and not c.isspace() for c in table.values())


def toy() -> ByteLevelBPE:
    chars = list(bytes_to_unicode().values())
    merges = [("a", "b"), ("ab", "c"), ("Ġ", "ab"), ("b", "c")]
    tokens = chars + ["ab", "abc", "Ġab", "bc", "<|end|>"]
    return ByteLevelBPE(tokens, merges, special_tokens=["<|end|>"])


def test_merges_follow_rank_not_position():
    bpe = toy()
    assert bpe.merge("abc") == ["abc"]  # (a, b) rank 0 first, then (ab, c)
    assert bpe.merge("bca") == ["bc", "a"]
    assert bpe.merge("Ġabc") == ["Ġ", "abc"]  # (ab, c) rank 1 beats (Ġ, ab) rank 2
    assert bpe.merge("Ġab") == ["Ġab"]
    assert bpe.tokenize("abc abc<|end|>1") == ["abc", "Ġ", "abc", "<|end|>", "1"]
    assert bpe.decode(bpe.encode("abc abc<|end|>1")) == "abc abc<|end|>1"


def test_digits_are_split_one_by_one_and_specials_first():
    bpe = toy()
    assert bpe.pre_tokenize("x 123") == ["x", " ", "1", "2", "3"]
    assert bpe.split_special("a<|end|><|end|>b") == ["a", "<|end|>", "<|end|>", "b"]
    with pytest.raises(TypeError, match="expects a str"):
        bpe.encode(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([10**6])
    with pytest.raises(ValueError, match="not in the vocabulary"):
        ByteLevelBPE(list(bytes_to_unicode().values()), [], special_tokens=["<|x|>"])


@pytest.fixture(scope="module")
def real():
    from dlfund.text.llama_tokenizer import ChatTokenizer

    return ByteLevelBPE.from_gguf(), ChatTokenizer.from_gguf()


def test_equals_chat_tokenizer_on_shakespeare_and_edge_cases(real):
    from dlfund.text.chars import shakespeare_corpus

    ours, ref = real
    _, val = shakespeare_corpus()
    lines = [line for line in val.splitlines() if line.strip()][:3000]
    assert len(lines) == 3000
    for line in lines + EDGE_CASES:
        ids = ours.encode(line)
        assert ids == ref.encode(line), line
        assert ours.decode(ids) == line == ref.decode(ids)
    chunk = "\n".join(lines[:200])  # a long text, newlines and all, in one call
    assert ours.encode(chunk) == ref.encode(chunk)


def test_chat_template_tokens(real):
    ours, ref = real
    text = ref.chat([{"role": "user", "content": "What is 2+3?"}])
    ids = ours.encode(text)
    assert ids == ref.encode(text)
    assert ids.count(ref.im_start_id) == 3 and ids.count(ref.im_end_id) == 2
    assert ours.tokens[ids[-1]] == "Ċ" and ours.decode(ids[-4:]) == "<|im_start|>assistant\n"
