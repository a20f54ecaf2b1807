"""The unit-9 BERT corruption check accepts right answers and names every usual mistake."""

from __future__ import annotations

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import unit09


def corrupt_variant(mistake: str = ""):
    """A learner's mlm_corrupt with one typical mistake switched on."""

    def mlm_corrupt(ids, *, mask_id, special_ids, vocab_size, p, generator):
        g = None if mistake == "global generator" else generator
        if mistake == "seed fixed inside":
            g = torch.Generator().manual_seed(0)
        special = torch.isin(ids, torch.tensor(special_ids))
        share = 0.15 if mistake == "hard-coded 0.15" else p
        chosen = torch.rand(ids.shape, generator=g) < share
        if mistake != "specials chosen":
            chosen &= ~special
        how = torch.rand(ids.shape, generator=g)
        excluded = [] if mistake == "random from the whole vocabulary" else list(special_ids)
        if mistake not in ("random may be the mask", "random from the whole vocabulary"):
            excluded.append(mask_id)
        allowed = torch.tensor([i for i in range(vocab_size) if i not in excluded])
        high = len(allowed) - 1 if mistake == "off by one" else len(allowed)
        random_tokens = allowed[torch.randint(high, ids.shape, generator=g)]
        target = ids if mistake != "in place" else ids
        inputs = target if mistake == "in place" else target.clone()
        to_mask = chosen & (how < 0.8)
        if mistake == "all masked":
            to_mask = chosen
        to_random = chosen & (how >= 0.8) & (how < 0.9)
        if mistake == "10% of the rest":
            to_random = chosen & ~to_mask & (torch.rand(ids.shape, generator=g) < 0.1)
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        inputs[to_random] = random_tokens[to_random]
        inputs[to_mask] = mask_id
        if mistake == "labels everywhere":
            labels = ids.clone()
        if mistake == "zero labels":
            labels = torch.where(chosen, ids, torch.zeros_like(ids))
        if mistake == "labels are the inputs":
            labels = torch.where(chosen, inputs, torch.full_like(ids, -100))
        if mistake == "swapped":
            return labels, inputs
        if mistake == "float labels":
            return inputs, labels.float()
        return inputs, labels

    return mlm_corrupt


MISTAKES = [
    ("labels everywhere", r"carry a label: only the chosen positions get one"),
    ("zero labels", r"should hold -100 \(cross_entropy's ignore_index\), found 0"),
    ("labels are the inputs", r"they hold the mask id\): the label is .* the ORIGINAL token"),
    ("specials chosen", r"special positions .* were chosen or changed"),
    ("hard-coded 0.15", r"expected about p = .*hard-coded"),
    ("all masked", r"became the mask id: BERT's rule replaces 80%"),
    ("10% of the rest", r"random share is 10% of the remaining 20%"),
    ("random from the whole vocabulary", r"replaced by special ids"),
    ("random may be the mask", r"the random token can be the mask id"),
    ("off by one", r"never used the ordinary id"),
    ("global generator", r"generators seeded alike gave different results"),
    ("seed fixed inside", r"generators seeded differently gave the same result"),
    ("in place", r"changed `ids` in place"),
    ("swapped", r"return \(inputs, labels\) in that order"),
    ("float labels", r"labels should be int64"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit09.mlm_masking(solution(9, "ex05-mlm-masking", "mlm_corrupt"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ BERT corruption")


def test_accepts_the_variant_without_mistakes():
    unit09.mlm_masking(corrupt_variant(), seed=5)


def test_rejects_the_stub():
    rejects(unit09.mlm_masking, stub, match=r"mlm_corrupt\(.* is not implemented yet")


@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("seed", range(2))
def test_rejects_typical_mistakes(mistake, match, seed):
    rejects(unit09.mlm_masking, corrupt_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistake, match):
    for seed in range(50):
        rejects(unit09.mlm_masking, corrupt_variant(mistake), match=match, seed=seed)


def test_rejects_wrong_types_without_crashing():
    rejects(unit09.mlm_masking, lambda ids, **kw: ids, match=r"should return a pair \(inputs, labels\)")
    rejects(unit09.mlm_masking, lambda ids, **kw: (ids, None), match=r"labels should be a tensor")
    rejects(unit09.mlm_masking, lambda ids, **kw: (ids[:, 1:], ids[:, 1:]), match=r"should have the shape of ids")
    rejects(unit09.mlm_masking, lambda ids, **kw: 1 / 0, match=r"raised ZeroDivisionError")


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(9, "ex05-mlm-masking", "mlm_corrupt")
    for seed in range(200):
        unit09.mlm_masking(fn, seed=seed)
