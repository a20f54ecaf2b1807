"""The check of unit 9's masked-language-model corruption exercise (re-exported by :mod:`dlfund.checks.unit09`).

The lecture blanks every chosen character with the mask token. BERT's rule, which the exercise asks
for, chooses each ordinary position with probability ``p`` and then corrupts the chosen ones three
ways: 80% become the mask id, 10% a random ordinary token, 10% stay as they are; the labels hold the
original token at the chosen positions and ``-100`` (cross-entropy's ``ignore_index``) elsewhere.

The rule is random, so the check judges it by its statistics on large fresh batches (shares within
six standard errors of what the rule gives), by invariants that hold on every draw (special tokens
untouched, labels only where chosen, unchosen inputs unchanged, nothing changed in place), and by
reproducibility: the same generator seed must give the same result whatever the global random state,
and different seeds different results. A second call with a vocabulary of only two ordinary tokens
makes a mask id drawn as a "random token" visible in the mask share.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed

__all__ = ["mlm_masking"]

Tensor = torch.Tensor
IGNORE = -100
MASK_SHARE, RANDOM_SHARE, KEEP_SHARE = 0.8, 0.1, 0.1


def _case(g: torch.Generator, *, tiny: bool) -> dict[str, Any]:
    """A batch of padded rows ``[start] ordinary ... [end] [pad] ...`` and the vocabulary it is written in.

    The main case has 28–40 ids with the special ones (padding, start, end, mask) in the middle, so that
    the lowest and highest ids are ordinary tokens, and about 60,000 positions, so that every ordinary id
    is drawn as a random token many times; the tiny case has only two ordinary ids."""
    if tiny:
        vocab_size, pad, start, end, mask = 6, 0, 1, 2, 5
        rows, length = 50, 2000
    else:
        vocab_size = int(torch.randint(28, 41, (1,), generator=g))
        pad, start, end, mask = (torch.randperm(vocab_size - 2, generator=g)[:4] + 1).tolist()
        rows, length = int(torch.randint(48, 61, (1,), generator=g)), int(torch.randint(1000, 1201, (1,), generator=g))
    special = (pad, start, end)
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in (*special, mask)])
    ids = ordinary[torch.randint(len(ordinary), (rows, length), generator=g)]
    lengths = torch.randint(length // 2, length - 1, (rows,), generator=g)
    ids[:, 0] = start
    ids[torch.arange(rows), lengths] = end
    ids[torch.arange(length)[None, :] > lengths[:, None]] = pad
    p = (0.2, 0.25, 0.3, 0.35)[int(torch.randint(4, (1,), generator=g))]
    return {
        "ids": ids,
        "vocab_size": vocab_size,
        "special_ids": special,
        "mask_id": mask,
        "ordinary": ordinary,
        "p": p,
    }


def _call(fn: Callable[..., Any], case: dict[str, Any], generator_seed: int, call: str) -> tuple[Tensor, Tensor]:
    """The learner's ``(inputs, labels)``, with the type, shape and dtype checks and the in-place check."""
    ids = case["ids"]
    given = ids.clone()
    found = call_learner(
        fn,
        given,
        mask_id=case["mask_id"],
        special_ids=case["special_ids"],
        vocab_size=case["vocab_size"],
        p=case["p"],
        generator=torch.Generator().manual_seed(generator_seed),
        what=call,
    )
    expect(torch.equal(given, ids), f"{call} changed `ids` in place: corrupt a copy, the caller keeps its batch")
    expect(
        isinstance(found, tuple | list) and len(found) == 2,
        f"{call} should return a pair (inputs, labels), found {type(found).__name__}"
        + (f" of length {len(found)}" if isinstance(found, tuple | list) else ""),
    )
    out = []
    for name, tensor in zip(("inputs", "labels"), found, strict=True):
        expect(isinstance(tensor, Tensor), f"{call}: {name} should be a tensor, found {type(tensor).__name__}")
        expect(
            tensor.shape == ids.shape,
            f"{call}: {name} should have the shape of ids {tuple(ids.shape)}, found {tuple(tensor.shape)}",
        )
        expect(tensor.dtype == torch.long, f"{call}: {name} should be int64 token ids, found {tensor.dtype}")
        out.append(tensor.detach().cpu())
    inputs, labels = out
    expect(
        not bool((inputs == IGNORE).any()),
        f"{call}: the inputs hold -100, a label value: return (inputs, labels) in that order",
    )
    bad = labels[(labels != IGNORE) & ((labels < 0) | (labels >= case["vocab_size"]))]
    expect(
        len(bad) == 0,
        f"{call}: labels should be token ids or -100, found {sorted(set(bad.tolist()))[:4]}",
    )
    return inputs, labels


def _within(found: float, expected: float, n: int) -> bool:
    """Within six standard errors of a share ``expected`` measured on ``n`` draws (plus a hair for rounding)."""
    return abs(found - expected) <= 6 * math.sqrt(expected * (1 - expected) / max(n, 1)) + 2e-3


def _check_labels(case: dict[str, Any], inputs: Tensor, labels: Tensor, call: str) -> Tensor:
    """Labels: the original id where chosen, -100 elsewhere; special positions never chosen. Returns ``chosen``."""
    ids, mask, special = case["ids"], case["mask_id"], case["special_ids"]
    is_special = torch.isin(ids, torch.tensor(special))
    labelled = labels != IGNORE
    ordinary_share = float(labelled[~is_special].double().mean())
    if ordinary_share > 0.9:
        zeros = not bool((labels == IGNORE).any()) and bool(((labels == 0) & (ids != 0)).any())
        raise CheckFailed(
            f"{call}: {ordinary_share:.0%} of the ordinary positions carry a label: "
            + (
                "the positions that were not chosen should hold -100 (cross_entropy's ignore_index), found 0"
                if zeros
                else "only the chosen positions get one (their original token); every other label is -100, so "
                "that the loss counts the corrupted positions only"
            )
        )
    touched = labelled | (inputs != ids)
    expect(
        not bool(touched[is_special].any()),
        f"{call}: {int(touched[is_special].sum())} special positions (padding, start, end: ids "
        f"{', '.join(map(str, special))}) were chosen or changed: they are not text, never choose them",
    )
    wrong = labelled & (labels != ids)
    if bool(wrong.any()):
        as_mask = bool((labels[wrong] == mask).double().mean() > 0.5)
        raise CheckFailed(
            f"{call}: {int(wrong.sum())} labels differ from the original token at their position"
            + (
                " (they hold the mask id): the label is what the model must recover, the ORIGINAL token, not "
                "the corrupted input"
                if as_mask
                else ": a chosen position's label is the original token there"
            )
        )
    expect(
        torch.equal(inputs[~labelled], ids[~labelled]),
        f"{call}: {int((inputs != ids)[~labelled].sum())} positions without a label were changed in the inputs: "
        "only chosen positions are corrupted, and each of them gets the original token as its label",
    )
    return labelled


def _check_shares(case: dict[str, Any], inputs: Tensor, chosen: Tensor, call: str) -> None:
    ids, mask, p = case["ids"], case["mask_id"], case["p"]
    ordinary = case["ordinary"]
    eligible = ~torch.isin(ids, torch.tensor(case["special_ids"]))
    n_eligible, n_chosen = int(eligible.sum()), int(chosen.sum())
    share = n_chosen / n_eligible
    expect(
        _within(share, p, n_eligible),
        f"{call}: chose {share:.3f} of the {n_eligible} ordinary positions, expected about p = {p}"
        + (" (was 0.15 hard-coded instead of using p?)" if _within(share, 0.15, n_eligible) else ""),
    )
    new = inputs[chosen]
    old = ids[chosen]
    n = len(ordinary)
    as_mask = float((new == mask).double().mean())
    is_random = (new != mask) & (new != old)
    kept = float((new == old).double().mean())
    drawn = new[is_random]
    not_ordinary = drawn[~torch.isin(drawn, ordinary)]
    expect(
        len(not_ordinary) == 0,
        f"{call}: {len(not_ordinary)} chosen positions were replaced by special ids "
        f"({sorted(set(not_ordinary.tolist()))[:4]}): a random replacement is an ordinary token, never padding, "
        "start, end or the mask",
    )
    expect(
        as_mask < 0.95,
        f"{call}: {as_mask:.0%} of the chosen positions became the mask id: BERT's rule replaces 80% by the mask, "
        "10% by a random token and keeps 10% as they are, so that the model cannot rely on seeing the mask",
    )
    random_share = float(is_random.double().mean())
    random_expected = RANDOM_SHARE * (1 - 1 / n)  # a random draw equal to the original looks kept
    kept_expected = KEEP_SHARE + RANDOM_SHARE / n
    expect(
        _within(random_share, random_expected, n_chosen) and _within(kept, kept_expected, n_chosen),
        f"{call}: of the {n_chosen} chosen positions {as_mask:.3f} became the mask, {random_share:.3f} a random "
        f"token and {kept:.3f} were kept; expected about 0.8, {random_expected:.3f} and {kept_expected:.3f} "
        "(80/10/10 of the chosen, a random draw equal to the original looking kept)"
        + (
            ": the random share is 10% of the remaining 20%, not half of it"
            if _within(random_share, 0.02 * (1 - 1 / n), n_chosen)
            else ""
        ),
    )
    expect(
        _within(as_mask, MASK_SHARE, n_chosen),
        f"{call}: {as_mask:.3f} of the chosen positions became the mask id, expected about 0.8",
    )
    missing = sorted(set(ordinary.tolist()) - set(drawn.tolist()))
    expect(
        not missing,
        f"{call}: the random replacements never used the ordinary id(s) {missing[:5]} in {len(drawn)} draws: draw "
        f"uniformly from every ordinary id (0 to {case['vocab_size'] - 1} except the special ones and the mask)",
    )


def _check_tiny(fn: Callable[..., Any], g: torch.Generator, call_of: Callable[[dict[str, Any]], str]) -> None:
    """Two ordinary ids: a mask id among the random draws shows as a mask share of 0.8 + 0.1/3."""
    case = _case(g, tiny=True)
    call = call_of(case)
    inputs, labels = _call(fn, case, int(torch.randint(2**31, (1,), generator=g)), call)
    chosen = _check_labels(case, inputs, labels, call)
    new = inputs[chosen]
    n_chosen = len(new)
    allowed = torch.cat([case["ordinary"], torch.tensor([case["mask_id"]])])
    expect(
        bool(torch.isin(new, allowed).all()),
        f"{call}: chosen positions were replaced by special ids: a random replacement is an ordinary token",
    )
    as_mask = float((new == case["mask_id"]).double().mean())
    expect(
        _within(as_mask, MASK_SHARE, n_chosen),
        f"{call}: {as_mask:.3f} of the chosen positions hold the mask id, expected 0.8"
        + (
            ": the random token can be the mask id (draw it from the ordinary ids only, the mask excluded)"
            if _within(as_mask, MASK_SHARE + RANDOM_SHARE / 3, n_chosen)
            else ""
        ),
    )


def _describe(case: dict[str, Any], seed: int) -> str:
    b, t = case["ids"].shape
    return (
        f"mlm_corrupt(ids of shape ({b}, {t}), mask_id={case['mask_id']}, special_ids={case['special_ids']}, "
        f"vocab_size={case['vocab_size']}, p={case['p']}, generator) (seed={seed})"
    )


def mlm_masking(mlm_corrupt: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check the learner's BERT corruption rule.

    ``mlm_corrupt(ids (B, T) int64, *, mask_id: int, special_ids: Sequence[int], vocab_size: int, p: float,
    generator: torch.Generator) -> (inputs (B, T) int64, labels (B, T) int64)``.
    """
    seed = fresh_seed(seed)
    g = torch.Generator().manual_seed(seed)
    case = _case(g, tiny=False)
    call = _describe(case, seed)
    generator_seed = int(torch.randint(2**31, (1,), generator=g))
    state = torch.get_rng_state()
    try:
        torch.manual_seed(seed)
        inputs, labels = _call(mlm_corrupt, case, generator_seed, call)
        chosen = _check_labels(case, inputs, labels, call)
        _check_shares(case, inputs, chosen, call)
        torch.manual_seed(seed + 1)  # another global state: the result must not depend on it
        again = _call(mlm_corrupt, case, generator_seed, call)
        expect(
            torch.equal(again[0], inputs) and torch.equal(again[1], labels),
            f"{call}: two calls with generators seeded alike gave different results: draw every random number "
            "from `generator` (torch.rand(..., generator=generator)), not from the global random state",
        )
        other = _call(mlm_corrupt, case, generator_seed + 1, call)
        expect(
            not torch.equal(other[1], labels),
            f"{call}: generators seeded differently gave the same result: the random numbers must come from "
            "`generator`, not from a seed fixed inside the function",
        )
        _check_tiny(mlm_corrupt, g, lambda c: _describe(c, seed) + " [a vocabulary with two ordinary ids]")
    finally:
        torch.set_rng_state(state)
    passed(
        f"BERT corruption: {chosen.double()[~torch.isin(case['ids'], torch.tensor(case['special_ids']))].mean():.3f} "
        f"of the ordinary positions chosen at p = {case['p']}, 80/10/10 mask/random/keep, special tokens "
        f"untouched, reproducible from the generator (seed={seed})"
    )
