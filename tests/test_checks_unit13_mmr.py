"""The unit-13 maximal-marginal-relevance check accepts right answers and names every usual mistake."""

from __future__ import annotations

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import unit13


def mmr_variant(mistake: str = ""):
    """A learner's mmr with one typical mistake switched on."""

    def mmr(query, candidates, k, lam):
        if k > len(candidates) and mistake != "no error for k > n":
            raise ValueError(f"k={k} > {len(candidates)} candidates")
        if mistake == "in place":
            candidates /= candidates.norm(dim=1, keepdim=True)
            c = candidates
        elif mistake == "dot products":
            c = candidates
        else:
            c = candidates / candidates.norm(dim=1, keepdim=True)
        q = query if mistake in ("dot products", "query not normalised") else query / query.norm()
        relevance, similarity = c @ q, c @ c.T
        chosen: list[int] = []
        for _ in range(min(k, len(candidates))):
            best, best_score = -1, -float("inf")
            for i in range(len(c)):
                if i in chosen and mistake != "picked twice":
                    continue
                if not chosen:
                    redundancy = 0.0
                elif mistake == "mean redundancy":
                    redundancy = similarity[i, chosen].mean().item()
                else:
                    redundancy = similarity[i, chosen].max().item()
                if mistake == "swapped lam":
                    score = (1 - lam) * relevance[i].item() - lam * redundancy
                elif mistake == "relevance only":
                    score = relevance[i].item()
                else:
                    score = lam * relevance[i].item() - (1 - lam) * redundancy
                if score > best_score:
                    best, best_score = i, score
            chosen.append(best)
        if mistake == "sorted":
            return sorted(chosen)
        if mistake == "one too few":
            return chosen[:-1]
        if mistake == "float tensor":
            return torch.tensor(chosen, dtype=torch.float32)
        return torch.tensor(chosen) if mistake == "" else chosen

    return mmr


def test_accepts_the_reference_variant_and_a_list(capsys):
    unit13.mmr(mmr_variant(), seed=0)
    assert capsys.readouterr().out.startswith("✓ mmr")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit13.mmr(solution(13, "ex07-mmr", "mmr"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ mmr")


def test_rejects_the_stub():
    rejects(unit13.mmr, stub, match=r"mmr\(.* is not implemented yet")


MISTAKES = [
    ("dot products", r"plain dot products: MMR compares directions"),
    ("query not normalised", r"query was not normalised"),
    ("swapped lam", r"lam and 1 - lam are swapped"),
    ("mean redundancy", r"MEAN similarity to the chosen"),
    ("relevance only", r"k most relevant candidates: the redundancy term had no effect"),
    ("picked twice", r"a candidate was picked twice"),
    ("sorted", r"right candidates in the wrong order"),
    ("in place", r"changed its inputs in place"),
    ("one too few", r"should return k = \d indices, found \d"),
    ("float tensor", r"integer indices"),
    ("no error for k > n", r"more picks than candidates should raise ValueError"),
]


@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistake, match, seed):
    rejects(unit13.mmr, mmr_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistake, match):
    for seed in range(50):
        rejects(unit13.mmr, mmr_variant(mistake), match=match, seed=seed)


def test_rejects_wrong_types_and_crashes_without_crashing():
    rejects(unit13.mmr, lambda q, c, k, lam: None, match=r"should return a list \(or 1-D tensor\) of indices")
    rejects(unit13.mmr, lambda q, c, k, lam: torch.zeros(k, 2, dtype=torch.long), match=r"1-D tensor")
    rejects(unit13.mmr, lambda q, c, k, lam: ["a"] * k, match=r"integer indices")
    rejects(unit13.mmr, lambda q, c, k, lam: [len(c)] * k, match=r"index outside")
    rejects(unit13.mmr, lambda q, c, k, lam: q @ c, match=r"raised RuntimeError")

    def crashes_on_big_k(q, c, k, lam):
        if k > len(c):
            raise IndexError("list index out of range")
        return mmr_variant()(q, c, k, lam)

    rejects(unit13.mmr, crashes_on_big_k, match=r"raised IndexError.*should raise a ValueError")


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(13, "ex07-mmr", "mmr")
    for seed in range(200):
        unit13.mmr(fn, seed=seed)
