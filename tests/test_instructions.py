"""dlfund.text.instructions: the generated instruction dataset, its template and response-only labels."""

from __future__ import annotations

import pytest
import torch

from dlfund.text import instructions as ins


def test_splits_are_deterministic_disjoint_and_cover_every_task() -> None:
    a = ins.instruction_splits(120, 60, seed=3)
    assert a == ins.instruction_splits(120, 60, seed=3)
    assert a != ins.instruction_splits(120, 60, seed=4)
    train, test = {e.instruction for e in a["train"]}, {e.instruction for e in a["test"]}
    assert len(train) == 120 and len(test) == 60 and not train & test
    assert {e.task for e in a["train"]} == set(ins.TASKS) == {e.task for e in a["test"]}


def test_answers_are_exact() -> None:
    for e in ins.generate(60, seed=0):
        if e.task in ("add", "subtract"):
            a, op, b = e.instruction.removeprefix("What is ").removesuffix("?").split()
            assert int(e.response) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        elif e.task == "sort":
            nums = [int(n) for n in e.instruction.split(": ")[1].split(", ")]
            assert e.response == ", ".join(map(str, sorted(nums)))
        elif e.task == "count":
            items = e.instruction.split(": ", 1)[1].removesuffix("?").split(", ")
            assert int(e.response) == len(items) and 2 <= len(items) <= 5 and all(w.isalpha() for w in items)
        elif e.task == "reverse":
            words = e.instruction.split(": ", 1)[1].split()
            assert e.response.split() == words[::-1] and 3 <= len(words) <= 4
        else:
            passage, question = e.instruction.split("\n\n")
            line = question.split('who says "', 1)[1][:-2]
            speakers = [p.split(": ", 1)[0] for p in passage.splitlines() if p.split(": ", 1)[1] == line]
            assert speakers == [e.response]


def test_held_out_shakespeare_comes_from_other_plays() -> None:
    train, held = ins.shakespeare_speeches(False), ins.shakespeare_speeches(True)
    assert {p for p, _, _ in train}.isdisjoint({p for p, _, _ in held})
    assert {p for p, _, _ in held} == {
        "comedies/twelfth-night",
        "histories/richard-ii",
        "romances/the-tempest",
        "tragedies/hamlet",
    }


def test_generate_errors() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        ins.generate(3, 0, tasks=("poetry",))
    with pytest.raises(ValueError, match="could not draw"):
        ins.generate(20000, 0, tasks=("add",))


def test_collate_scores_only_the_response() -> None:
    encoded = [([1, 2, 3, 4, 5], [False, False, False, True, True]), ([7, 8, 9], [False, True, True])]
    idx, targets = ins.collate(encoded, pad_id=0)
    assert idx.tolist() == [[1, 2, 3, 4], [7, 8, 0, 0]]
    assert targets.tolist() == [[-100, -100, 4, 5], [8, 9, -100, -100]]
    with pytest.raises(ValueError, match="at least one example"):
        ins.collate([], pad_id=0)


def test_template_and_encoding_with_the_real_tokenizer() -> None:
    from dlfund.text.llama_tokenizer import ChatTokenizer

    tok = ChatTokenizer.from_gguf()
    ex = ins.Example("add", "What is 12 + 30?", "42")
    text = ins.prompt_text(tok, ex)
    assert text.startswith("<|im_start|>system\n" + ins.SYSTEM_PROMPT) and text.endswith("<|im_start|>assistant\n")
    ids, mask = ins.encode_example(tok, ex)
    response = [i for i, m in zip(ids, mask) if m]
    assert tok.decode(response) == "42<|im_end|>" and response[-1] == tok.im_end_id
    assert not any(mask[: len(tok.encode(text))])
    idx, targets = ins.collate([(ids, mask)], pad_id=tok.im_end_id)
    assert torch.equal(targets[targets != -100], torch.tensor(response))


def test_normalize() -> None:
    assert ins.normalize("  42. ") == "42" and ins.normalize("Hamlet") == "Hamlet"
