"""The check of unit 13's maximal-marginal-relevance exercise (re-exported by :mod:`dlfund.checks.unit13`).

The lecture retrieves the k lines most similar to a question; near-duplicates then crowd the prompt. Maximal
marginal relevance (MMR) picks them one at a time instead, each maximising

    lam * cos(query, c) - (1 - lam) * max over the already chosen s of cos(c, s),

so a candidate that repeats one already chosen loses its place to a relevant *and* different one. The check draws
fresh embeddings (clusters of near-duplicates at different distances from the query, rows of very different
lengths, a query far from unit length), asks for several (lam, k), compares with an independent computation and
names the usual mistakes by recomputing each of them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["mmr", "reference_mmr"]

Tensor = torch.Tensor
CONFIGS = ((0.6, 4), (0.25, 5), (1.0, 3), (0.45, 8))
"""The (lam, k) asked for on every call: a balance, diversity first, pure relevance, and many picks."""


def reference_mmr(query: Tensor, candidates: Tensor, k: int, lam: float, *, variant: str = "") -> list[int]:
    """MMR's picks (indices into ``candidates (N, D)``, in the order chosen) for ``query (D,)``.

    ``variant`` recomputes a usual mistake instead (the check uses them to name what it sees)."""
    q, c = query.double(), candidates.double()
    if variant != "dot products":
        c = c / c.norm(dim=1, keepdim=True)
        if variant != "query not normalised":
            q = q / q.norm()
    relevance, similarity = c @ q, c @ c.T  # (N,), (N, N)
    chosen: list[int] = []
    for _ in range(k):
        if chosen:
            to_chosen = similarity[:, chosen]
            redundancy = to_chosen.mean(dim=1) if variant == "mean redundancy" else to_chosen.max(dim=1).values
        else:
            redundancy = torch.zeros_like(relevance)
        if variant == "swapped lam":
            score = (1 - lam) * relevance - lam * redundancy
        elif variant == "relevance only":
            score = relevance.clone()
        else:
            score = lam * relevance - (1 - lam) * redundancy
        if chosen and variant != "picked twice":
            score[chosen] = -math.inf
        chosen.append(int(score.argmax()))
    return sorted(chosen) if variant == "sorted" else chosen


MISTAKES = {
    "dot products": "the similarities were plain dot products: MMR compares directions, so use cosine similarity "
    "(normalise the query and every candidate to length 1 first; these rows have very different lengths)",
    "query not normalised": "the query was not normalised: its length then scales the relevance term against the "
    "redundancy term, which changes the balance lam sets",
    "swapped lam": "lam and 1 - lam are swapped: lam weighs the relevance to the query, 1 - lam the redundancy with "
    "what was already chosen (lam = 1 is plain top-k by relevance)",
    "mean redundancy": "the redundancy was the MEAN similarity to the chosen candidates: MMR penalises the most "
    "similar one (the max), so one near-duplicate is enough to push a candidate down",
    "relevance only": "these are the k most relevant candidates: the redundancy term had no effect",
    "picked twice": "a candidate was picked twice: once chosen, a candidate is no longer a candidate",
    "sorted": "the right candidates in the wrong order: return them in the order MMR picks them (the first is the "
    "most relevant), not sorted by index",
}


def _as_indices(found: Any, call: str) -> list[int]:
    if isinstance(found, torch.Tensor):
        expect(
            found.ndim == 1 and not found.dtype.is_floating_point and found.dtype != torch.bool,
            f"{call} should return a 1-D tensor (or list) of integer indices, found a tensor of shape "
            f"{tuple(found.shape)} and dtype {found.dtype}",
        )
        return [int(i) for i in found.tolist()]
    expect(
        isinstance(found, (list, tuple)),
        f"{call} should return a list (or 1-D tensor) of indices, found {type(found).__name__}",
    )
    out = []
    for item in found:
        if isinstance(item, torch.Tensor) and item.numel() == 1 and not item.dtype.is_floating_point:
            item = int(item)
        expect(
            isinstance(item, numbers.Integral) and not isinstance(item, bool),
            f"{call} should return integer indices, found {item!r} ({type(item).__name__})",
        )
        out.append(int(item))
    return out


def _draw(seed: int) -> tuple[Tensor, Tensor]:
    """A query and candidates where every usual mistake picks differently from MMR."""
    g = torch.Generator().manual_seed(seed)
    dim = int(torch.randint(16, 33, (1,), generator=g))
    sizes = torch.randint(3, 6, (3,), generator=g).tolist()
    centres = torch.linalg.qr(torch.randn(dim, 3, generator=g, dtype=torch.float64)).Q.T  # 3 orthonormal directions
    # the query leans on cluster 0, less on cluster 1, little on cluster 2
    query = centres.T @ torch.tensor([0.8, 0.55, 0.25], dtype=torch.float64)
    query = query + 0.1 * torch.randn(dim, generator=g, dtype=torch.float64)
    rows = [centres[j] + 0.12 * torch.randn(n, dim, generator=g, dtype=torch.float64) for j, n in enumerate(sizes)]
    candidates = torch.cat(rows)
    candidates = candidates[torch.randperm(len(candidates), generator=g)]
    lengths = 0.2 + 4.8 * torch.rand(len(candidates), 1, generator=g, dtype=torch.float64)
    candidates = candidates / candidates.norm(dim=1, keepdim=True) * lengths
    query = query / query.norm() * (3 + 3 * torch.rand(1, generator=g, dtype=torch.float64))
    # the picks must not be in increasing index order, or a sorted answer would pass by chance
    lam, k = CONFIGS[0]
    first = reference_mmr(query, candidates, k, lam)
    if first == sorted(first):
        candidates = candidates.flip(0)
    return query.float(), candidates.float()


def _picks(fn: Callable[..., Any], query: Tensor, candidates: Tensor, lam: float, k: int, seed: int) -> list[int]:
    """The learner's picks for one (lam, k), checked for type, count, range and untouched inputs."""
    n, d = candidates.shape
    call = f"mmr(query ({d},), candidates ({n}, {d}), k={k}, lam={lam}) (seed={seed})"
    given_q, given_c = query.clone(), candidates.clone()
    found = _as_indices(call_learner(fn, given_q, given_c, k, lam, what=call), call)
    expect(
        torch.equal(given_q, query) and torch.equal(given_c, candidates),
        f"{call} changed its inputs in place (e.g. normalised them with /=): make normalised copies instead",
    )
    expect(len(found) == k, f"{call} should return k = {k} indices, found {len(found)}: {found}")
    expect(all(0 <= i < n for i in found), f"{call} returned an index outside 0..{n - 1}: {found}")
    return found


def _compare(found: list[list[int]], query: Tensor, candidates: Tensor, seed: int) -> None:
    """Name the mistake whose picks equal the learner's for every (lam, k), else say where they first differ."""
    want = [reference_mmr(query, candidates, k, lam) for lam, k in CONFIGS]
    if found == want:
        return
    where = next(i for i in range(len(CONFIGS)) if found[i] != want[i])
    (lam, k), n, d = CONFIGS[where], *candidates.shape
    call = f"mmr(query ({d},), candidates ({n}, {d}), k={k}, lam={lam}) (seed={seed})"
    for variant, why in MISTAKES.items():
        if found == [reference_mmr(query, candidates, k, lam, variant=variant) for lam, k in CONFIGS]:
            raise CheckFailed(f"{call}: {why}; expected {want[where]}, found {found[where]}")
    expect(
        len(set(found[where])) == k, f"{call}: {MISTAKES['picked twice']}; expected {want[where]}, found {found[where]}"
    )
    step = next(i for i, (a, b) in enumerate(zip(found[where], want[where])) if a != b)
    raise CheckFailed(
        f"{call}: pick {step + 1} should be candidate {want[where][step]} (the best lam * relevance - (1 - lam) * max "
        f"similarity to the {step} chosen before), found {found[where][step]}; expected {want[where]}, found "
        f"{found[where]}"
    )


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Compute on one thread: the check's tensors are tiny, and on a busy machine several threads make each
    small operation wait for the others."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def mmr(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check the learner's ``mmr(query (D,), candidates (N, D), k, lam) -> k indices`` in the order picked."""
    seed = fresh_seed(seed)
    with _single_threaded():
        _check(fn, seed)


def _check(fn: Callable[..., Any], seed: int) -> None:
    query, candidates = _draw(seed)
    _compare([_picks(fn, query, candidates, lam, k, seed) for lam, k in CONFIGS], query, candidates, seed)
    n, d = candidates.shape
    call = f"mmr(query ({d},), candidates ({n}, {d}), k={n + 1}, lam=0.5) (seed={seed})"
    try:
        fn(query.clone(), candidates.clone(), n + 1, 0.5)
    except ValueError:
        pass
    except NotImplementedError:
        raise CheckFailed(f"{call} is not implemented yet: replace the `raise NotImplementedError` line") from None
    except Exception as err:
        raise CheckFailed(
            f"{call} raised {type(err).__name__} ({err}): asking for more picks than there are candidates should "
            "raise a ValueError that says so"
        ) from err
    else:
        raise CheckFailed(
            f"{call} returned without an error: asking for more picks than candidates should raise ValueError"
        )
    relevance_only = reference_mmr(query, candidates, CONFIGS[0][1], CONFIGS[0][0], variant="relevance only")
    picked = reference_mmr(query, candidates, CONFIGS[0][1], CONFIGS[0][0])
    passed(
        f"mmr: the picks and their order right for lam in {[lam for lam, _ in CONFIGS]} on {n} candidates in "
        f"{d} dimensions (seed={seed}); at lam={CONFIGS[0][0]} MMR kept {len(set(picked) & set(relevance_only))} of "
        f"the {CONFIGS[0][1]} most relevant"
    )
