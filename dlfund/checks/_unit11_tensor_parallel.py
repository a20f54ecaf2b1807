"""The check of unit 11's tensor-parallel MLP exercise (re-exported by :mod:`dlfund.checks.unit11`).

The lecture runs Megatron-style tensor parallelism with PyTorch's ``parallelize_module``; the exercise
simulates it by hand on a list of N "ranks", in the math layout ``y = GELU(x W1 + b1) W2 + b2`` with
``W1`` of shape ``(d_in, h)`` and ``W2`` of shape ``(h, d_out)``:

- ``shard_mlp(w1, b1, w2, n)`` gives rank ``r`` a block of the hidden units: the matching columns of
  ``W1``, entries of ``b1`` and rows of ``W2``;
- ``tp_mlp(x, shards, b2)`` computes each rank's partial output from its shard alone, sums them (the
  all-reduce) and adds ``b2`` once.

The check draws fresh sizes, all different (so a transpose or a split along the wrong axis shows in a
shape), for N = 2, 3 and 4 ranks, in float64; it checks ``tp_mlp`` on its own shards first (so a
mistake there is not blamed on the sharding), then the learner's shards, then both together, and names
the usual mistakes by recomputing each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.distributed.tensor.parallel import parallelize_module

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.checks._library_use import refusing

__all__ = ["reference_tp_mlp", "tensor_parallel_mlp"]

Tensor = torch.Tensor
Shard = tuple[Tensor, Tensor, Tensor]
TOL = 1e-9  # float64: the order of the sum over hidden units changes only the last bits

_DISTRIBUTED_API = {
    "parallelize_module": parallelize_module,
    "distribute_tensor": distribute_tensor,
    "DTensor.from_local": DTensor.from_local,
    "init_device_mesh": init_device_mesh,
}


def _full_mlp(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> Tensor:
    return F.gelu(x @ w1 + b1) @ w2 + b2


def reference_tp_mlp(x: Tensor, shards: list[Shard], b2: Tensor, *, variant: str = "") -> Tensor:
    """The tensor-parallel MLP on ``shards`` (``(w1_r, b1_r, w2_r)`` per rank): ``(B, d_in) → (B, d_out)``.

    ``variant`` recomputes a usual mistake instead (the check uses them to name what it sees)."""
    if variant == "split x":  # each rank its share of the batch, as in data parallelism
        rows = x.chunk(len(shards))
        return torch.cat([F.gelu(x_r @ w1 + b1) @ w2 for x_r, (w1, b1, w2) in zip(rows, shards)]) + b2
    partials = []
    for rank, (w1, b1, w2) in enumerate(shards):
        pre = x @ w1 + b1
        hidden = pre if variant in ("activation after the all-reduce", "no activation") else F.gelu(pre)
        if variant == "tanh gelu":
            hidden = F.gelu(pre, approximate="tanh")
        partial = hidden @ w2
        if variant == "b2 on every rank":
            partial = partial + b2
        partials.append(partial)
        if variant == "only rank 0" and rank == 0:
            break
    total = torch.stack(partials).sum(dim=0)
    if variant == "mean":
        total = total / len(shards)
    if variant == "activation after the all-reduce":
        return F.gelu(total + b2)
    return total if variant == "b2 on every rank" else total + b2


TP_MISTAKES = {
    "b2 on every rank": "b2 was added on every rank, so the sum holds it N times: add it once, after the "
    "all-reduce (or on one rank only)",
    "activation after the all-reduce": "GELU was applied after summing the partial outputs: each rank applies "
    "it to its own hidden units, before its slice of W2 (GELU acts on each number alone, the sum does not "
    "commute with it)",
    "no activation": "no GELU at all: each rank applies it to its hidden units before multiplying by its rows of W2",
    "mean": "the partial outputs were averaged: the all-reduce must SUM them (each is a part of the product, "
    "not an estimate of it)",
    "only rank 0": "only rank 0's partial output was used: the all-reduce sums every rank's",
    "tanh gelu": "this is the tanh approximation of GELU: use the exact one, torch.nn.functional.gelu(h)",
    "split x": "each rank used only its share of the batch: that is data parallelism; in tensor parallelism "
    "every rank sees the whole batch x and holds only a part of the WEIGHTS",
}


def _draw(seed: int, n: int) -> dict[str, Any]:
    """A full MLP with sizes all different for ``n`` ranks, and its correct shards."""
    g = torch.Generator().manual_seed(seed * 7 + n)
    batch, d_in, d_out, per_rank = (int(torch.randint(lo, lo + 3, (1,), generator=g)) for lo in (3, 6, 9, 12))
    hidden = n * per_rank  # 24 … 56: never a multiple that equals another size

    def rand(*shape: int, scale: float = 1.0) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64) * scale

    w1, b1 = rand(d_in, hidden, scale=d_in**-0.5), rand(hidden, scale=0.5)
    w2, b2 = rand(hidden, d_out, scale=hidden**-0.5), rand(d_out) + 1.0  # b2 well away from 0
    blocks = [slice(r * per_rank, (r + 1) * per_rank) for r in range(n)]
    shards = [(w1[:, s].clone(), b1[s].clone(), w2[s].clone()) for s in blocks]
    return {"x": rand(batch, d_in), "w1": w1, "b1": b1, "w2": w2, "b2": b2, "shards": shards, "n": n}


def _as_output(found: Any, call: str, shape: tuple[int, ...]) -> Tensor:
    expect(
        not isinstance(found, DTensor),
        f"{call} returned a DTensor: torch.distributed.tensor is what the exercise simulates by hand, not a tool "
        "to use here; compute with plain tensors",
    )
    expect(isinstance(found, Tensor), f"{call} should return a tensor, found {type(found).__name__}")
    expect(
        tuple(found.shape) == shape,
        f"{call} should return the full output, shape (batch, d_out) = {shape}; found {tuple(found.shape)} (every "
        "rank sees the whole batch x, and the all-reduce sums full-shape partial outputs)",
    )
    expect(found.dtype == torch.float64, f"{call} should keep the inputs' dtype float64, found {found.dtype}")
    return found.detach()


def _check_tp(fn: Callable[..., Any], case: dict[str, Any], seed: int) -> None:
    x, shards, b2 = case["x"], case["shards"], case["b2"]
    call = (
        f"tp_mlp(x {tuple(x.shape)}, shards of {case['n']} ranks, b2 {tuple(b2.shape)}) with hidden size "
        f"{case['w1'].shape[1]} (seed={seed})"
    )
    given = (x.clone(), [tuple(t.clone() for t in s) for s in shards], b2.clone())
    with refusing(_DISTRIBUTED_API, "tensor parallelism by hand"):
        found = call_learner(fn, *given, what=call)
    found = _as_output(found, call, (x.shape[0], b2.shape[0]))
    unchanged = torch.equal(given[0], x) and torch.equal(given[2], b2)
    unchanged &= all(torch.equal(a, b) for s, t in zip(given[1], shards) for a, b in zip(s, t))
    expect(unchanged, f"{call} changed its inputs in place")
    want = _full_mlp(x, case["w1"], case["b1"], case["w2"], b2)
    if (found - want).abs().max() <= TOL:
        return
    for variant, why in TP_MISTAKES.items():
        if (found - reference_tp_mlp(x, shards, b2, variant=variant)).abs().max() <= TOL:
            raise CheckFailed(f"{call}: {why}")
    raise CheckFailed(
        f"{call}: the output should equal the full MLP GELU(x W1 + b1) W2 + b2; the largest difference is "
        f"{(found - want).abs().max():.3g} (each rank: GELU(x @ w1_r + b1_r) @ w2_r; then sum over ranks; then + b2)"
    )


def _hidden_units(part: Tensor, full: Tensor, dim: int) -> list[int]:
    """For each slice of ``part`` along ``dim``, the index of the equal slice of ``full`` (-1: none)."""
    out = []
    for i in range(part.shape[dim]):
        piece = part.select(dim, i)
        hits = [j for j in range(full.shape[dim]) if torch.equal(full.select(dim, j), piece)]
        out.append(hits[0] if hits else -1)
    return out


def _check_shards(fn: Callable[..., Any], case: dict[str, Any], seed: int) -> list[Shard]:
    w1, b1, w2, n = case["w1"], case["b1"], case["w2"], case["n"]
    (d_in, hidden), d_out, k = w1.shape, w2.shape[1], w1.shape[1] // n
    call = f"shard_mlp(w1 {tuple(w1.shape)}, b1 {tuple(b1.shape)}, w2 {tuple(w2.shape)}, n={n}) (seed={seed})"
    given = (w1.clone(), b1.clone(), w2.clone())
    with refusing(_DISTRIBUTED_API, "tensor parallelism by hand"):
        found = call_learner(fn, *given, n, what=call)
    expect(
        all(torch.equal(a, b) for a, b in zip(given, (w1, b1, w2))),
        f"{call} changed its inputs in place",
    )
    expect(
        isinstance(found, (list, tuple)) and len(found) == n,
        f"{call} should return a list of {n} shards, one per rank; found "
        f"{type(found).__name__}{f' of length {len(found)}' if isinstance(found, (list, tuple)) else ''}",
    )
    shards: list[Shard] = []
    for r, shard in enumerate(found):
        expect(
            isinstance(shard, (list, tuple)) and len(shard) == 3 and all(isinstance(t, Tensor) for t in shard),
            f"{call}: rank {r}'s shard should be a tuple of 3 tensors (w1_r, b1_r, w2_r); found {shard!r:.80}",
        )
        if isinstance(shard[0], DTensor) or isinstance(shard[2], DTensor):
            raise CheckFailed(f"{call}: rank {r}'s shard holds DTensors: split plain tensors by hand")
        s1, sb, s2 = (tuple(t.shape) for t in shard)
        expect(
            not (len(s1) == 2 and s1[1] == hidden and s1[0] < d_in),
            f"{call}: rank {r}'s w1 has shape {s1}: W1 was split by rows (its input features); column-parallel "
            f"means each rank keeps ALL input features and a block of the hidden units (columns), shape {(d_in, k)}",
        )
        expect(
            s1 != (d_in, hidden),
            f"{call}: rank {r}'s w1 is the whole W1 {s1}: each rank keeps only h/N = {k} of its columns",
        )
        expect(s1 == (d_in, k), f"{call}: rank {r}'s w1 should have shape {(d_in, k)}, found {s1}")
        expect(
            sb != (hidden,),
            f"{call}: rank {r}'s b1 is the whole b1 {sb}: slice b1 with the same hidden units as W1's columns, "
            f"shape {(k,)}",
        )
        expect(sb == (k,), f"{call}: rank {r}'s b1 should have shape {(k,)}, found {sb}")
        expect(
            not (len(s2) == 2 and s2[0] == hidden and s2[1] < d_out),
            f"{call}: rank {r}'s w2 has shape {s2}: W2 was split by columns (its output features); row-parallel "
            f"means a block of its rows (the hidden units), shape {(k, d_out)}",
        )
        expect(s2 == (k, d_out), f"{call}: rank {r}'s w2 should have shape {(k, d_out)}, found {s2}")
        shards.append((shard[0].detach(), shard[1].detach(), shard[2].detach()))
    units = [_hidden_units(s[0], w1, 1) for s in shards]
    expect(
        all(j >= 0 for u in units for j in u),
        f"{call}: a column of some rank's w1 is not a column of W1: each rank's w1 must be W1's columns unchanged",
    )
    every = sorted(j for u in units for j in u)
    expect(
        every == list(range(hidden)),
        f"{call}: the ranks' columns of W1 should cover every hidden unit once; some are missing or repeated",
    )
    for r, ((_, sb, s2), u) in enumerate(zip(shards, units)):
        expect(
            torch.equal(sb, b1[u]),
            f"{call}: rank {r}'s b1 does not belong to its columns of W1 (hidden units {u[:4]}…): slice b1 with "
            "the same indices as the columns",
        )
        expect(
            torch.equal(s2, w2[u]),
            f"{call}: rank {r}'s rows of W2 are not the hidden units of its columns of W1 ({u[:4]}…): rank r must "
            "multiply its hidden units by THEIR rows of W2 (same indices, same order)",
        )
    return shards


def tensor_parallel_mlp(shard_mlp: Callable[..., Any], tp_mlp: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check the learner's ``shard_mlp(w1 (d_in, h), b1 (h,), w2 (h, d_out), n) -> [(w1_r, b1_r, w2_r)] * n``
    and ``tp_mlp(x (B, d_in), shards, b2 (d_out,)) -> (B, d_out)`` against the full MLP, for 2, 3 and 4 ranks."""
    seed = fresh_seed(seed)
    for n in (2, 3, 4):
        case = _draw(seed, n)
        _check_tp(tp_mlp, case, seed)
        shards = _check_shards(shard_mlp, case, seed)
        together = {**case, "shards": shards}
        _check_tp(tp_mlp, together, seed)  # the learner's own shards through the learner's own tp_mlp
    passed(
        f"tensor-parallel MLP: your shards and your sum over 2, 3 and 4 ranks equal the full MLP on fresh sizes "
        f"(seed={seed})"
    )
