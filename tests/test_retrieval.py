"""The vector index of unit 13's retrieval notebook: normalisation, exact top-k, ties, errors, recall@k."""

from __future__ import annotations

import random

import pytest
import torch

from dlfund.text.retrieval import build_index, drop_words, normalize_rows, recall_at_k, search


def test_index_rows_have_unit_length_and_the_input_is_untouched():
    x = torch.randn(50, 16) * torch.rand(50, 1) * 10
    before = x.clone()
    index = build_index(x)
    assert torch.allclose(index.norm(dim=1), torch.ones(50), atol=1e-6)
    assert torch.allclose(index * x.norm(dim=1, keepdim=True), x, atol=1e-5)  # same directions
    assert torch.equal(x, before)
    assert index.dtype == torch.float32


@pytest.mark.parametrize("seed", range(5))
def test_search_equals_a_brute_force_sort(seed):
    g = torch.Generator().manual_seed(seed)
    index_raw, queries = torch.randn(200, 24, generator=g), torch.randn(7, 24, generator=g) * 3
    scores, idx = search(build_index(index_raw), queries, k=10)
    cos = torch.nn.functional.cosine_similarity(queries[:, None], index_raw[None], dim=-1)  # (7, 200)
    for q in range(7):
        order = sorted(range(200), key=lambda j: -cos[q, j].item())[:10]
        assert idx[q].tolist() == order
        assert torch.allclose(scores[q], cos[q, order], atol=1e-5)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])


def test_a_single_query_and_a_batch_agree():
    index = build_index(torch.randn(30, 8))
    q = torch.randn(4, 8)
    scores, idx = search(index, q, k=3)
    for i in range(4):
        s1, i1 = search(index, q[i], k=3)
        assert i1.shape == (3,) and torch.equal(i1, idx[i]) and torch.allclose(s1, scores[i])


def test_ties_keep_the_lower_row_first():
    rows = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [5.0, 0.0]])  # 1, 2, 4 same direction
    _, idx = search(build_index(rows), torch.tensor([1.0, 0.0]), k=4)
    assert idx.tolist() == [1, 2, 4, 0]


def test_a_query_finds_its_own_row_first():
    x = torch.randn(100, 32)
    _, idx = search(build_index(x), x * 7, k=1)
    assert idx[:, 0].tolist() == list(range(100))


def test_errors_say_what_is_wrong():
    index = build_index(torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"k must be between 1 and the 5 rows"):
        search(index, torch.randn(4), k=6)
    with pytest.raises(ValueError, match=r"k must be between 1"):
        search(index, torch.randn(4), k=0)
    with pytest.raises(ValueError, match=r"queries must be"):
        search(index, torch.randn(2, 3), k=2)
    with pytest.raises(ValueError, match=r"zero vector"):
        build_index(torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"zero vector"):
        search(index, torch.zeros(4), k=1)
    with pytest.raises(ValueError, match=r"NaN or infinity"):
        build_index(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"shape \(N, D\)"):
        build_index(torch.randn(4))
    with pytest.raises(ValueError, match=r"zero vector"):
        normalize_rows(torch.zeros(2))


def test_recall_at_k():
    found = torch.tensor([[3, 1, 2], [0, 4, 5], [7, 8, 9]])
    true = torch.tensor([3, 4, 1])
    assert recall_at_k(found, true, 1) == pytest.approx(1 / 3)
    assert recall_at_k(found, true, 2) == pytest.approx(2 / 3)
    assert recall_at_k(found, true, 3) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"k must be between 1 and the 3 results"):
        recall_at_k(found, true, 4)
    with pytest.raises(ValueError, match=r"indices must be \(Q, K\)"):
        recall_at_k(found, true[:2], 1)


def test_drop_words():
    line = "Now, fair Hippolyta, our nuptial hour"
    out = drop_words(line, 2, random.Random(0))
    assert len(out.split()) == 4 and all(w in line.split() for w in out.split())
    words = out.split()
    assert [line.split().index(w) for w in words] == sorted(line.split().index(w) for w in words)  # order kept
    assert drop_words(line, 0, random.Random(0)) == line
    assert drop_words(line, 2, random.Random(5)) == drop_words(line, 2, random.Random(5))
    with pytest.raises(ValueError, match=r"can drop 0 to 5"):
        drop_words(line, 6, random.Random(0))
