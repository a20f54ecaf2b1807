"""The check of unit 13's shot-selection exercise (re-exported by :mod:`dlfund.checks.unit13`).

Notebook 05 draws its shots at random from the training split; the exercise picks, for each question,
the ``k`` training examples whose instructions are most similar to the question's (Jaccard similarity of
lowercased word-and-punctuation token sets), skips the question itself, and orders them so that the most
similar sits last, next to the question. The check builds a fresh pool of made-up instructions where every
usual mistake picks another set or order (a shot equal to the question, a long instruction sharing many
words, one matching only up to case, one whose words carry commas, answers that share words with the
question, a tie at the k-th place), compares the learner's shots with an independent computation and names
what went wrong from properties of the answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from typing import Any

from dlfund.checks._core import CheckFailed, call_learner, expect, fresh_seed, passed
from dlfund.text.instructions import Example

__all__ = ["similar_shots"]

_CONSONANTS, _VOWELS = "bdfgklmnprstvz", "aeiou"


def _tokens(text: str, variant: str = "") -> set[str]:
    """The token set the exercise defines: lowercase, runs of letters and digits, every other non-space
    character on its own (so ``"8?"`` gives ``"8"`` and ``"?"``, and ``+`` and ``-`` count). ``variant``
    recomputes a usual mistake instead."""
    if variant == "split":
        return set(text.lower().split())
    return set(re.findall(r"\w+|[^\w\s]", text if variant == "case" else text.lower()))


def _jaccard(a: str, b: str) -> float:
    ta, tb = _tokens(a), _tokens(b)
    return len(ta & tb) / len(ta | tb) if ta | tb else 0.0


def _reference(query: Example, pool: Sequence[Example], k: int, variant: str = "") -> list[Example]:
    """The k most similar candidates (ties: earlier in the pool), least similar first; ``variant`` recomputes
    a usual mistake (the check names a mistake when the learner's shots are exactly that mistake's)."""
    q = _tokens(query.instruction + (" " + query.response if variant == "answer" else ""), variant)

    def score(e: Example) -> float:
        t = _tokens(e.instruction + (" " + e.response if variant == "pool answers" else ""), variant)
        return float(len(q & t)) if variant == "count" else len(q & t) / len(q | t)

    candidates = [e for e in pool if e.instruction != query.instruction]
    if variant == "ties later":
        return sorted(candidates, key=score)[-k:]
    return sorted(candidates, key=lambda e: -score(e))[:k][::-1]


def _draw(seed: int) -> dict[str, Any]:
    """A question, a pool in which each usual mistake picks other shots, and ``k``."""
    rng = random.Random(seed)
    words: set[str] = set()
    while len(words) < 120:
        words.add("".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(rng.randint(2, 3))))
    fresh = iter(rng.sample(sorted(words), len(words)))

    def new(n: int) -> list[str]:
        return [next(fresh) for _ in range(n)]

    q = new(8)  # the question's words; items share words from q[1:7] only (q[0] is capitalised, q[7] has "?")
    answer = new(3)
    query = Example("made-up", " ".join([q[0].capitalize(), *q[1:7], q[7] + "?"]), " ".join(answer))
    k = rng.choice([4, 5])

    def item(text_words: list[str], response: list[str] | None = None) -> Example:
        return Example("made-up", " ".join(text_words), " ".join(response or new(rng.randint(1, 2))))

    def shared(n: int) -> list[str]:
        return rng.sample(q[1:7], n)

    best = item(shared(5) + new(1))  # Jaccard 5/10
    case = item([w.upper() for w in shared(4)] + new(1))  # 4/10, only when case is ignored
    punct = item([w + "," for w in shared(4)] + new(2))  # 4 shared + ","  + 2: 4/12, only when "," is split off
    tie_first, tie_later = item(shared(3) + new(2)), item(shared(3) + new(2))  # 3/11 each: the k-th place
    top = [best, case, punct, tie_first]
    if k == 5:
        top.insert(1, item(shared(5) + new(4)))  # 5/13
    long_item = item(shared(5) + new(20))  # 5 shared of 29 tokens: many shared words, low Jaccard
    answer_bait = item(answer + shared(1))  # shares the question's ANSWER
    pool_answer_bait = item(shared(1) + new(2), response=shared(4))  # its own answer shares the question's words
    fillers = [item(new(rng.randint(2, 4))) for _ in range(k + 2)]
    fillers += [item(shared(1) + new(rng.randint(8, 10))) for _ in range(2)]
    leak = Example(query.task, query.instruction, query.response)  # the question itself, in the pool
    pool = top + [tie_later, long_item, answer_bait, pool_answer_bait, leak] + fillers
    rng.shuffle(pool)
    i, j = pool.index(tie_first), pool.index(tie_later)
    if i > j:  # the tie's winner is the earlier one
        pool[i], pool[j] = pool[j], pool[i]
    return {
        "query": query,
        "pool": pool,
        "k": k,
        "case": case,
        "punct": punct,
        "tie_first": tie_first,
        "tie_later": tie_later,
        "long": long_item,
        "answer_bait": answer_bait,
        "pool_answer_bait": pool_answer_bait,
    }


def _names(shots: Sequence[Example]) -> list[str]:
    """The instructions of ``shots``, sorted: which examples were chosen, whatever their order."""
    return sorted(e.instruction for e in shots)


def _describe(shots: Sequence[Example], query: Example) -> str:
    return "; ".join(f"{e.instruction!r} ({_jaccard(query.instruction, e.instruction):.3f})" for e in shots)


def _diagnose(found: list[Example], expected: list[Example], d: dict[str, Any]) -> None:
    """Name the mistake behind a selection that differs from ``expected`` (same length, no query)."""
    query, k = d["query"], d["k"]
    sim = {id(e): _jaccard(query.instruction, e.instruction) for e in d["pool"]}

    def similarity(e: Example) -> float:
        return sim.get(id(e), _jaccard(query.instruction, e.instruction))

    if found == expected[::-1]:
        raise CheckFailed(
            "the right shots in the wrong order: the most similar came first; the prompt places them in the "
            "returned order, and the most similar should sit LAST, right before the question"
        )
    if _names(found) == _names(expected):
        raise CheckFailed(
            "the right shots in the wrong order: expected them from least to most similar (the most similar "
            f"last); expected {_describe(expected, query)}, found {_describe(found, query)}"
        )
    lowest = sorted(similarity(e) for e in d["pool"] if e.instruction != query.instruction)[:k]
    if sorted(map(similarity, found)) == lowest:
        raise CheckFailed(f"these are the {k} LEAST similar examples: keep the {k} with the highest similarity")
    messages = {
        "answer": f"{d['answer_bait'].instruction!r} was picked because it shares words with the question's ANSWER: "
        "at question time the answer is unknown (and using it leaks it); compare the question's instruction only",
        "pool answers": f"{d['pool_answer_bait'].instruction!r} was picked because its own answer shares the "
        "question's words: compare the question's instruction with each pool example's instruction only",
        "count": "a long instruction that shares several words but is mostly other words was picked: the similarity "
        "is the number of shared tokens divided by the number of tokens in either (Jaccard), not the count "
        "of shared tokens",
        "case": f"{d['case'].instruction!r} was left out although it shares words with the question written in "
        "capitals: lowercase both texts before taking their tokens",
        "split": f"{d['punct'].instruction!r} was left out although its words match the question's once the commas "
        'are split off: take tokens with re.findall(r"\\w+|[^\\w\\s]", text.lower()), not text.split()',
        "ties later": "two pool examples tie for the last place, and the later one in the pool was kept: on a tie the "
        "earlier one wins (sort by similarity, highest first; Python's sort keeps the pool order among ties)",
    }
    for variant, message in messages.items():
        if _names(found) == _names(_reference(query, d["pool"], k, variant)):
            raise CheckFailed(message)
    raise CheckFailed(
        f"these are not the {k} most similar examples: expected {_describe(expected, query)}, "
        f"found {_describe(found, query)}"
    )


def _as_shots(result: Any, pool: Sequence[Example]) -> list[Example]:
    if not isinstance(result, (list, tuple)) or not all(isinstance(e, Example) for e in result):
        shown = type(result).__name__
        if isinstance(result, (list, tuple)) and result:
            shown += f" of {type(result[0]).__name__}"
        raise CheckFailed(f"similar_shots should return a list of the pool's Example objects, found a {shown}")
    expect(
        all(e in pool for e in result),
        "similar_shots returned an example that is not in the pool: return the pool's own examples",
    )
    return list(result)


def similar_shots(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(query, pool, k) -> list[Example]``: the k most similar shots, most similar last."""
    seed = fresh_seed(seed)
    d = _draw(seed)
    query, pool, k = d["query"], d["pool"], d["k"]
    given = list(pool)
    result = call_learner(fn, query, given, k, what="similar_shots(query, pool, k)")
    expect(
        given == pool and all(a is b for a, b in zip(given, pool)),
        "similar_shots changed the pool it was given (its order or its items): sort a copy (sorted(...)), "
        f"never the pool itself [seed={seed}]",
    )
    found = _as_shots(result, pool)
    expect(
        all(e.instruction != query.instruction for e in found),
        "the question itself was picked as a shot: a pool example whose instruction equals the question's must be "
        f"skipped (it would show the model the answer it has to give) [seed={seed}]",
    )
    expect(len(found) == k, f"asked for k={k} shots, found {len(found)} [seed={seed}]")
    expected = _reference(query, pool, k)
    if found != expected:
        try:
            _diagnose(found, expected, d)
        except CheckFailed as err:
            raise CheckFailed(f"{err} [seed={seed}]") from None

    # too few candidates once the question is skipped: an error, not fewer shots
    leak = next(e for e in pool if e.instruction == query.instruction)
    short = [e for e in pool if e.instruction != query.instruction][: k - 1] + [leak]
    try:
        out = fn(query, list(short), k)
    except ValueError:
        out = None
    except NotImplementedError as err:
        raise CheckFailed(f"similar_shots is not implemented yet ({err})") from None
    except Exception as err:  # any other crash: say which error was expected
        raise CheckFailed(
            f"with fewer than k={k} candidates similar_shots raised {type(err).__name__} ({err}); expected a "
            f"ValueError [seed={seed}]"
        ) from err
    if out is not None:
        raise CheckFailed(
            f"the pool held only {k - 1} candidates besides the question itself, and similar_shots returned "
            f"{len(out) if isinstance(out, (list, tuple)) else type(out).__name__} shots instead of raising a "
            f"ValueError for k={k} [seed={seed}]"
        )
    passed(f"similar_shots picks the k most similar shots, most similar last (seed={seed})")
