"""The unit-11 tensor-parallel MLP check accepts right answers and names every usual mistake."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub
from torch.distributed.tensor.parallel import parallelize_module

from dlfund.checks import unit11


def shard_variant(mistake: str = ""):
    """A learner's shard_mlp with one typical mistake switched on."""

    def shard_mlp(w1, b1, w2, n):
        cols = list(torch.arange(w1.shape[1]).chunk(n))
        if mistake == "rows of W1":
            return [(a, b, c) for a, b, c in zip(w1.chunk(n, dim=0), b1.chunk(n), w2.chunk(n, dim=0))]
        if mistake == "whole W1":
            return [(w1, b1[c], w2[c]) for c in cols]
        if mistake == "whole b1":
            return [(w1[:, c], b1, w2[c]) for c in cols]
        if mistake == "columns of W2":
            return [(w1[:, c], b1[c], w2[:, c2]) for c, c2 in zip(cols, torch.arange(w2.shape[1]).chunk(n))]
        if mistake == "W2 blocks reversed":
            return [(w1[:, c], b1[c], w2[c2]) for c, c2 in zip(cols, cols[::-1])]
        if mistake == "b1 from another block":
            return [(w1[:, c], b1[cols[(r + 1) % n]], w2[c]) for r, c in enumerate(cols)]
        if mistake == "w2 rows shuffled":
            return [(w1[:, c], b1[c], w2[c.flip(0)]) for c in cols]
        if mistake == "in place":
            w1.mul_(2)
        if mistake == "too few":
            cols = cols[:-1]
        if mistake == "strided":  # a consistent split by every n-th hidden unit: also right
            cols = [torch.arange(r, w1.shape[1], n) for r in range(n)]
        return [(w1[:, c], b1[c], w2[c]) for c in cols]

    return shard_mlp


def tp_variant(mistake: str = ""):
    """A learner's tp_mlp with one typical mistake switched on."""

    def tp_mlp(x, shards, b2):
        partials = []
        for rank, (w1, b1, w2) in enumerate(shards):
            x_r = x.chunk(len(shards))[rank] if mistake == "split x" else x
            pre = x_r @ w1 + b1
            if mistake in ("activation after", "no activation"):
                hidden = pre
            elif mistake == "tanh gelu":
                hidden = F.gelu(pre, approximate="tanh")
            else:
                hidden = F.gelu(pre)
            partials.append(hidden @ w2 + (b2 if mistake == "b2 every rank" else 0))
        if mistake == "only rank 0":
            total = partials[0]
        elif mistake == "mean":
            total = sum(partials) / len(partials)
        elif mistake == "concatenate":
            return torch.cat(partials, dim=1) + b2.repeat(len(partials))
        elif mistake == "split x":
            return torch.cat(partials) + b2
        else:
            total = sum(partials)
        if mistake == "activation after":
            return F.gelu(total + b2)
        if mistake == "b2 every rank":
            return total
        if mistake == "float32":
            return (total + b2).float()
        if mistake == "in place":
            b2.add_(1.0)
            return total + b2 - 1.0
        return total + b2

    return tp_mlp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accepts_a_right_answer(seed, capsys):
    unit11.tensor_parallel_mlp(shard_variant(), tp_variant(), seed=seed)
    assert "2, 3 and 4 ranks" in capsys.readouterr().out


def test_accepts_any_consistent_split_of_the_hidden_units():
    unit11.tensor_parallel_mlp(shard_variant("strided"), tp_variant(), seed=4)


MISTAKES = [
    (("", "b2 every rank"), r"b2 was added on every rank"),
    (("", "activation after"), r"GELU was applied after summing"),
    (("", "no activation"), r"no GELU at all"),
    (("", "mean"), r"partial outputs were averaged: the all-reduce must SUM"),
    (("", "only rank 0"), r"only rank 0's partial output"),
    (("", "tanh gelu"), r"tanh approximation of GELU"),
    (("", "concatenate"), r"should return the full output.*full-shape partial outputs"),
    (("", "split x"), r"only its share of the batch: that is data parallelism"),
    (("", "float32"), r"keep the inputs' dtype float64"),
    (("", "in place"), r"changed its inputs in place"),
    (("rows of W1", ""), r"W1 was split by rows"),
    (("whole W1", ""), r"whole W1 .*only h/N"),
    (("whole b1", ""), r"whole b1 .*slice b1 with the same hidden units"),
    (("columns of W2", ""), r"W2 was split by columns"),
    (("W2 blocks reversed", ""), r"rows of W2 are not the hidden units of its columns of W1"),
    (("w2 rows shuffled", ""), r"rows of W2 are not the hidden units of its columns of W1"),
    (("b1 from another block", ""), r"b1 does not belong to its columns of W1"),
    (("too few", ""), r"list of \d shards, one per rank"),
    (("in place", ""), r"changed its inputs in place"),
]
IDS = [m[0][0] or m[0][1] for m in MISTAKES]


@pytest.mark.parametrize(("mistakes", "match"), MISTAKES, ids=IDS)
@pytest.mark.parametrize("seed", range(3))
def test_rejects_typical_mistakes(mistakes, match, seed):
    shard_mistake, tp_mistake = mistakes
    rejects(unit11.tensor_parallel_mlp, shard_variant(shard_mistake), tp_variant(tp_mistake), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("mistakes", "match"), MISTAKES, ids=IDS)
def test_rejects_typical_mistakes_on_every_seed(mistakes, match):
    shard_mistake, tp_mistake = mistakes
    for seed in range(50):
        rejects(
            unit11.tensor_parallel_mlp, shard_variant(shard_mistake), tp_variant(tp_mistake), match=match, seed=seed
        )


def test_rejects_stubs_junk_and_the_distributed_api_without_crashing():
    rejects(unit11.tensor_parallel_mlp, stub, stub, match=r"not implemented yet")
    rejects(unit11.tensor_parallel_mlp, shard_variant(), lambda x, s, b: None, match=r"should return a tensor")
    rejects(unit11.tensor_parallel_mlp, shard_variant(), lambda x, s, b: x @ x.T, match=r"full output")
    rejects(unit11.tensor_parallel_mlp, lambda *a: "shards", tp_variant(), match=r"list of 2 shards")
    rejects(unit11.tensor_parallel_mlp, lambda w1, b1, w2, n: [w1] * n, tp_variant(), match=r"tuple of 3 tensors")
    rejects(unit11.tensor_parallel_mlp, shard_variant(), parallelize_module, match=r"library's own parallelize_module")


@pytest.mark.seeds
def test_the_solution_passes_on_every_seed():
    fns = solution(11, "ex04-tensor-parallel-mlp", "shard_mlp", "tp_mlp")
    for seed in range(200):
        unit11.tensor_parallel_mlp(*fns, seed=seed)
