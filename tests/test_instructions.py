"""dlfund.text.instructions: the generated instruction dataset, its template and response-only labels."""

from __future__ import annotations

import random

import pytest
import torch

from dlfund.text import instructions as ins
from dlfund.text.llama_tokenizer import ChatTokenizer


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


def test_few_shot_messages_alternate_and_end_with_the_question() -> None:
    shots = [ins.Example("add", "What is 10 + 2?", "12"), ins.Example("sort", "Sort these numbers: 3, 1", "1, 3")]
    query = ins.Example("add", "What is 20 + 5?", "25")
    messages = ins.few_shot_messages(query, shots)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages] == [
        "What is 10 + 2?",
        "12",
        "Sort these numbers: 3, 1",
        "1, 3",
        query.instruction,
    ]
    assert "25" not in [m["content"] for m in messages]  # the query's answer is never shown
    assert ins.few_shot_messages(query, []) == [{"role": "user", "content": query.instruction}]


def test_few_shot_prompt_grows_by_each_shots_turns() -> None:
    tok = ChatTokenizer.from_gguf()
    pool = ins.generate(12, seed=5)
    query, shots = pool[0], pool[1:4]
    zero = ins.few_shot_prompt(tok, query, [])
    assert zero == ins.prompt_text(tok, query)  # zero shots: the prompt the finetuned models are scored with
    three = ins.few_shot_prompt(tok, query, shots)
    assert three.endswith(f"<|im_start|>user\n{query.instruction}<|im_end|>\n<|im_start|>assistant\n")
    assert three.count("<|im_start|>system\n") == 1 and query.response not in three.split("<|im_start|>")[-2]
    turns = sum(
        len(
            tok.encode(
                tok.chat(
                    ins.few_shot_messages(s, [])[:1] + [{"role": "assistant", "content": s.response}],
                    add_generation_prompt=False,
                    system=None,
                )
            )
        )
        for s in shots
    )
    assert len(tok.encode(three)) == len(tok.encode(zero)) + turns


def test_draw_shots_is_seeded_distinct_and_skips_excluded() -> None:
    pool = ins.generate(30, seed=2)
    a = ins.draw_shots(pool, 8, random.Random(7))
    assert a == ins.draw_shots(pool, 8, random.Random(7)) != ins.draw_shots(pool, 8, random.Random(8))
    assert len({e.instruction for e in a}) == 8 and all(e in pool for e in a)
    banned = {e.instruction for e in pool[:29]}
    assert ins.draw_shots(pool, 1, random.Random(0), exclude=banned) == [pool[29]]
    assert ins.draw_shots(pool, 0, random.Random(0)) == []
    with pytest.raises(ValueError, match="cannot draw 2 shots from 1"):
        ins.draw_shots(pool, 2, random.Random(0), exclude=banned)
