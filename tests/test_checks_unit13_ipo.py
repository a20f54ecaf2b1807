"""The unit-13 IPO check accepts right answers and names every usual mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub

from dlfund.checks import unit13
from dlfund.peft.dpo import dpo_loss


def ipo_variant(mistake: str = ""):
    """A learner's ipo_loss with one typical mistake switched on."""

    def ipo_loss(policy_logps, ref_logps, mask, beta):
        ref = ref_logps if mistake == "reference gradient" else ref_logps.detach()
        if mistake == "no reference":
            ref = torch.zeros_like(ref)
        keep = torch.ones_like(mask) if mistake == "no mask" else mask
        if mistake == "padding counted":  # everything from the first response token on
            keep = torch.cumsum(mask.int(), -1) > 0
        if mistake == "prompt counted":  # everything up to the last response token
            keep = torch.flip(torch.cumsum(torch.flip(mask.int(), [-1]), -1), [-1]) > 0
        logratio = ((policy_logps - ref) * keep).sum(-1)
        if mistake == "token mean":
            logratio = logratio / keep.sum(-1)
        chosen, rejected = (logratio[1], logratio[0]) if mistake == "swapped" else (logratio[0], logratio[1])
        h = chosen - rejected
        if mistake == "dpo":
            losses = -F.logsigmoid(beta * h)
        elif mistake == "target 1/beta":
            losses = (h - 1 / beta) ** 2
        elif mistake == "beta times h":
            losses = (beta * h - 0.5) ** 2
        elif mistake == "plus target":
            losses = (h + 1 / (2 * beta)) ** 2
        elif mistake == "absolute":
            losses = (h - 1 / (2 * beta)).abs()
        else:
            losses = (h - 1 / (2 * beta)) ** 2
        loss = losses.sum() if mistake == "sum over pairs" else losses.mean()
        if mistake == "item":
            return loss.item()
        if mistake == "detached":
            return loss.detach()
        if mistake == "per pair":
            return losses
        if mistake == "in place":
            policy_logps.data.mul_(1.0)
            mask[0, 0, 0] = ~mask[0, 0, 0]
        return loss

    return ipo_loss


IPO_MISTAKES = [
    ("swapped", r"chosen and rejected are exchanged"),
    ("no reference", r"the reference was not subtracted"),
    ("no mask", r"prompt and padding tokens were summed too"),
    ("padding counted", r"padding after each response was summed too"),
    ("prompt counted", r"the prompt tokens were summed too"),
    ("token mean", r"averaged over the response tokens: a sequence's log-probability is their sum"),
    ("target 1/beta", r"target margin is 1/beta here"),
    ("beta times h", r"beta multiplies h, as in DPO"),
    ("plus target", r"chosen and rejected are exchanged \(or the target was added to h"),
    ("absolute", r"distance to the target was not squared"),
    ("dpo", r"this is DPO's loss"),
    ("sum over pairs", r"pairs' losses were summed: return their mean"),
    ("reference gradient", r"a gradient reached the reference log-probabilities"),
    ("item", r"should return a scalar tensor .* found float"),
    ("detached", r"the loss carries no gradient"),
    ("per pair", r"should return one number, the mean over the pairs"),
    ("in place", r"changed its inputs in place"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit13.ipo_loss(solution(13, "ex06-ipo-loss", "ipo_loss"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ IPO loss")


def test_accepts_the_variant_factory_without_mistakes(capsys):
    unit13.ipo_loss(ipo_variant(), seed=11)
    assert "no gradient reaches the reference" in capsys.readouterr().out


def test_rejects_the_stub_and_crashes():
    rejects(unit13.ipo_loss, stub, match=r"ipo_loss.* is not implemented yet")
    rejects(unit13.ipo_loss, lambda p, r, m, b: p @ r, match=r"raised RuntimeError")
    rejects(unit13.ipo_loss, lambda p, r, m, b: "loss", match=r"should return a scalar tensor")
    rejects(unit13.ipo_loss, lambda p, r, m, b: None, match=r"should return a scalar tensor")


def test_the_library_dpo_loss_is_not_an_ipo_loss():
    def with_library(policy_logps, ref_logps, mask, beta):
        pc, pr = (policy_logps * mask).sum(-1)
        rc, rr = (ref_logps * mask).sum(-1)
        return dpo_loss(pc, pr, rc, rr, beta).loss

    rejects(unit13.ipo_loss, with_library, match=r"this is DPO's loss")


@pytest.mark.parametrize(("mistake", "match"), IPO_MISTAKES, ids=[m for m, _ in IPO_MISTAKES])
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistake, match, seed):
    rejects(unit13.ipo_loss, ipo_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), IPO_MISTAKES, ids=[m for m, _ in IPO_MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistake, match):
    for seed in range(50):
        rejects(unit13.ipo_loss, ipo_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(13, "ex06-ipo-loss", "ipo_loss")
    for seed in range(200):
        unit13.ipo_loss(fn, seed=seed)
