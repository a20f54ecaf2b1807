"""The unit-13 shot-selection check accepts right answers and names every usual mistake."""

from __future__ import annotations

import random
import re

import pytest
from check_helpers import rejects, solution, stub

from dlfund.checks import unit13
from dlfund.text.instructions import draw_shots


def shots_variant(mistake: str = ""):
    """A learner's similar_shots with one typical mistake switched on."""

    def tokens(text: str) -> set[str]:
        if mistake == "split on spaces":
            return set(text.lower().split())
        return set(re.findall(r"\w+|[^\w\s]", text if mistake == "case sensitive" else text.lower()))

    def similar_shots(query, pool, k):
        q_text = query.instruction + (" " + query.response if mistake == "uses the question's answer" else "")
        q = tokens(q_text)

        def score(e) -> float:
            text = e.instruction + (" " + e.response if mistake == "uses the pool's answers" else "")
            t = tokens(text)
            return len(q & t) if mistake == "overlap count" else len(q & t) / len(q | t)

        candidates = [e for e in pool if mistake == "includes the question" or e.instruction != query.instruction]
        if len(candidates) < k and mistake != "no error when short":
            raise ValueError(f"only {len(candidates)} candidates for {k} shots")
        if mistake == "mutates the pool":
            pool.sort(key=score, reverse=True)
            candidates = [e for e in pool if e.instruction != query.instruction]
        if mistake == "ties to the later":
            return sorted(candidates, key=score)[-k:]
        ranked = sorted(candidates, key=score, reverse=mistake != "least similar")
        n = k - 1 if mistake == "one too few" else k
        chosen = ranked[:n]
        if mistake == "returns instructions":
            return [e.instruction for e in chosen[::-1]]
        return chosen if mistake == "most similar first" else chosen[::-1]

    return similar_shots


def random_shots(query, pool, k):
    """Random shots, as notebook 05 draws them."""
    return draw_shots(pool, k, random.Random(0), exclude={query.instruction})


SHOTS_MISTAKES = [
    ({"mistake": "includes the question"}, r"question itself was picked as a shot"),
    ({"mistake": "least similar"}, r"LEAST similar"),
    ({"mistake": "most similar first"}, r"wrong order: the most similar came first"),
    ({"mistake": "overlap count"}, r"not the count\s+of shared tokens"),
    ({"mistake": "case sensitive"}, r"lowercase both texts"),
    ({"mistake": "split on spaces"}, r"commas.*not text.split\(\)"),
    ({"mistake": "uses the question's answer"}, r"shares words with the question's ANSWER"),
    ({"mistake": "uses the pool's answers"}, r"its own answer shares the question's words"),
    ({"mistake": "ties to the later"}, r"on a tie the\s+earlier one wins"),
    ({"mistake": "mutates the pool"}, r"changed the pool"),
    ({"mistake": "one too few"}, r"asked for k=\d shots, found \d"),
    ({"mistake": "no error when short"}, r"instead of raising a ValueError"),
    ({"mistake": "returns instructions"}, r"list of the pool's Example objects, found a list of str"),
]
IDS = [m[0]["mistake"] for m in SHOTS_MISTAKES]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit13.similar_shots(solution(13, "ex04-similar-shots", "similar_shots"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ similar_shots picks")


def test_accepts_a_tuple_and_the_variant_without_mistakes():
    unit13.similar_shots(shots_variant(), seed=5)
    unit13.similar_shots(lambda q, p, k: tuple(shots_variant()(q, p, k)), seed=6)


def test_rejects_the_stub_random_shots_and_crashes():
    rejects(unit13.similar_shots, stub, match=r"not implemented yet")
    rejects(unit13.similar_shots, random_shots, match=r"LEAST similar|not the \d most similar")
    rejects(unit13.similar_shots, lambda q, p, k: None, match=r"found a NoneType")
    rejects(unit13.similar_shots, lambda q, p, k: 1 / 0, match=r"raised ZeroDivisionError")


def test_a_wrong_error_when_short_is_named():
    def wrong_error(q, p, k):
        if len(p) <= k:
            raise IndexError("too few")
        return shots_variant()(q, p, k)

    rejects(unit13.similar_shots, wrong_error, match=r"raised IndexError.*expected a ValueError")


@pytest.mark.parametrize(("kwargs", "match"), SHOTS_MISTAKES, ids=IDS)
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(kwargs, match, seed):
    rejects(unit13.similar_shots, shots_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), SHOTS_MISTAKES, ids=IDS)
def test_rejects_typical_mistakes_on_every_seed(kwargs, match):
    for seed in range(50):
        rejects(unit13.similar_shots, shots_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(13, "ex04-similar-shots", "similar_shots")
    for seed in range(200):
        unit13.similar_shots(fn, seed=seed)
