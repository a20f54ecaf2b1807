"""The unit-07 supervised contrastive (SupCon) check accepts right answers and names every usual mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub

from dlfund.checks import unit07


def supcon_variant(mistake: str = ""):
    """A learner's vectorised supcon_loss with one typical mistake switched on."""

    def supcon_loss(z, labels, temperature):
        m = len(labels)
        labels = labels if mistake == "in place" else labels.clone()
        if mistake == "no normalisation":
            u = z
        else:
            u = F.normalize(z, dim=0 if mistake == "wrong axis" else 1)
        tau = {"no temperature": 1.0, "temperature multiplied": 1 / temperature}.get(mistake, temperature)
        sim = u @ u.T / tau
        eye = torch.eye(m, dtype=torch.bool)
        if mistake != "self in denominator":
            sim = sim.masked_fill(eye, -1e9)
        log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
        if mistake == "self positive":
            log_prob = torch.where(eye, u @ u.T / tau - torch.logsumexp(sim, dim=1, keepdim=True), log_prob)
        positive = labels[:, None] == labels[None, :]
        if mistake == "labels ignored":
            positive = torch.roll(torch.eye(m, dtype=torch.bool), m // 2, dims=1)
        elif mistake != "self positive":
            positive = positive & ~eye
        count = positive.sum(dim=1)
        if mistake == "nan product":
            summed = (positive * sim.masked_fill(eye, float("-inf")).log_softmax(dim=1)).sum(dim=1)
        else:
            summed = torch.where(positive, log_prob, 0.0).sum(dim=1)
        has = count > 0
        if mistake == "pooled":
            return -summed[has].sum() / count.sum()
        if mistake == "L_in":
            per_anchor = -torch.log(torch.where(positive, log_prob.exp(), 0.0).sum(dim=1)[has] / count[has])
        elif mistake == "sum over positives":
            per_anchor = -summed[has]
        elif mistake == "no-positive anchors counted":
            return (-summed / count.clamp(min=1)).mean()
        elif mistake == "nan for no positive":
            return (-summed / count).mean()
        else:
            per_anchor = -summed[has] / count[has]
        if mistake == "sum over anchors":
            return per_anchor.sum()
        if mistake == "item":
            return torch.tensor(per_anchor.mean().item() if has.any() else 0.0)
        if mistake == "float":
            return per_anchor.mean().item() if has.any() else 0.0
        if mistake == "per anchor":
            return per_anchor
        if mistake == "in place":
            labels.add_(1)  # shifting the labels keeps the loss, but the caller's labels are changed
        return per_anchor.mean() if has.any() else z.sum() * 0

    return supcon_loss


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_the_solution(seed, capsys):
    unit07.supervised_contrastive(solution(7, "ex05-supervised-contrastive", "supcon_loss"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ supervised contrastive loss")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_a_correct_vectorised_variant_and_a_float32_one(seed):
    unit07.supervised_contrastive(supcon_variant(), seed=seed)
    unit07.supervised_contrastive(lambda z, y, t: supcon_variant()(z.float(), y, t), seed=seed)


def test_rejects_the_stub():
    rejects(unit07.supervised_contrastive, stub, match=r"supcon_loss.* is not implemented yet")


MISTAKES = [
    ("self positive", r"counted itself as a positive"),
    ("self in denominator", r"similarity with itself is in the denominator"),
    ("no normalisation", r"rows of z were not normalised"),
    ("wrong axis", r"normalised along the wrong axis"),
    ("no temperature", r"temperature is missing"),
    ("temperature multiplied", r"multiplied by the temperature"),
    ("L_in", r"L_in form"),
    ("sum over positives", r"summed over its positives"),
    ("pooled", r"all \(anchor, positive\) pairs were averaged together"),
    ("sum over anchors", r"per-anchor losses were summed"),
    ("labels ignored", r"plain NT-Xent"),
    ("no-positive anchors counted", r"anchors without any positive were counted in the mean as 0"),
    ("nan for no positive", r"NaN; an anchor without positives divides 0 by 0"),
    ("nan product", r"NaN; multiplying a masked -inf by a 0"),
    ("item", r"carries no gradient"),
    ("float", r"should return the loss as a 0-dim tensor"),
    ("per anchor", r"should return one number, a 0-dim tensor"),
    ("in place", r"changed its inputs in place"),
]


@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistake, match, seed):
    rejects(unit07.supervised_contrastive, supcon_variant(mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistake", "match"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_rejects_typical_mistakes_on_every_seed(mistake, match):
    for seed in range(50):
        rejects(unit07.supervised_contrastive, supcon_variant(mistake), match=match, seed=seed)


def test_never_crashes_on_strange_answers():
    for answer in (None, "x", torch.tensor([1.0, 2.0]), torch.tensor(float("nan")), torch.tensor(3)):
        rejects(unit07.supervised_contrastive, lambda z, y, t, a=answer: a, match=r"supcon_loss")

    def raises(z, y, t):
        raise IndexError("boom")

    rejects(unit07.supervised_contrastive, raises, match=r"raised IndexError: boom")


def test_rejects_plain_nt_xent_from_the_library():
    from dlfund.train.contrastive import nt_xent_loss

    def via_library(z, labels, temperature):
        half = len(labels) // 2
        return nt_xent_loss(z[:half], z[half:], temperature)

    rejects(unit07.supervised_contrastive, via_library, match=r"plain NT-Xent|expected the loss|supcon_loss")


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fn = solution(7, "ex05-supervised-contrastive", "supcon_loss")
    for seed in range(200):
        unit07.supervised_contrastive(fn, seed=seed)
