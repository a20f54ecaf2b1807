"""dlfund.peft.dpo and dlfund.text.preferences: the DPO loss, sequence log-probabilities, preference pairs."""

from __future__ import annotations

import math
import random

import pytest
import torch

from dlfund.models.llama import Llama, LlamaConfig
from dlfund.peft import dpo, lora
from dlfund.text import instructions as ins
from dlfund.text import preferences as prefs


def tiny(seed: int = 0) -> Llama:
    torch.manual_seed(seed)
    return Llama(
        LlamaConfig(vocab_size=61, dim=32, n_layers=3, n_heads=4, n_kv_heads=2, hidden_dim=64, context_length=64)
    ).eval()


def by_hand_logprob(logits: list[list[float]], labels: list[int], mask: list[bool]) -> float:
    """log π(y|x) of one sequence with Python floats: log of a softmax, one position at a time."""
    total = 0.0
    for row, label, keep in zip(logits, labels, mask):
        if keep:
            total += row[label] - math.log(sum(math.exp(v) for v in row))
    return total


def by_hand_loss(pc: list[float], pr: list[float], rc: list[float], rr: list[float], beta: float) -> float:
    """The mean of −log σ(z) = log(1 + e^(−z)) over the pairs, with Python floats."""
    z = [beta * ((a - c) - (b - d)) for a, b, c, d in zip(pc, pr, rc, rr)]
    return sum(math.log1p(math.exp(-v)) for v in z) / len(z)


def toy(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 7, 11, generator=g, dtype=torch.float64) * 2
    labels = torch.randint(0, 11, (4, 7), generator=g)
    mask = torch.zeros(4, 7, dtype=torch.bool)
    for b, (start, end) in enumerate([(2, 5), (3, 7), (1, 2), (4, 6)]):  # prompt, response, padding
        mask[b, start:end] = True
    return logits, labels, mask


@pytest.mark.parametrize("seed", range(3))
def test_toy_case_matches_an_independent_computation(seed: int) -> None:
    logits, labels, mask = toy(seed)
    got = dpo.sequence_logprobs(logits, labels, mask)
    want = [by_hand_logprob(logits[b].tolist(), labels[b].tolist(), mask[b].tolist()) for b in range(4)]
    assert torch.allclose(got, torch.tensor(want, dtype=got.dtype), atol=1e-9, rtol=0)
    ref = dpo.sequence_logprobs(logits + 0.5 * torch.randn_like(logits), labels, mask)
    pc, pr, rc, rr = got[:2], got[2:], ref[:2], ref[2:]
    out = dpo.dpo_loss(pc, pr, rc, rr, beta=0.3)
    assert abs(out.loss.item() - by_hand_loss(pc.tolist(), pr.tolist(), rc.tolist(), rr.tolist(), 0.3)) <= 1e-6
    assert torch.allclose(out.chosen_rewards, 0.3 * (pc - rc)) and torch.allclose(out.rejected_rewards, 0.3 * (pr - rr))
    assert torch.allclose(out.margins, out.chosen_rewards - out.rejected_rewards)


def test_masked_positions_do_not_count() -> None:
    logits, labels, mask = toy(5)
    base = dpo.sequence_logprobs(logits, labels, mask)
    changed_logits, changed_labels = logits.clone(), labels.clone()
    changed_logits[~mask] = 100 * torch.randn_like(changed_logits[~mask])
    changed_labels[~mask] = 3
    assert torch.equal(dpo.sequence_logprobs(changed_logits, changed_labels, mask), base)
    assert (base < 0).all()  # a sum of log-probabilities of at least one token each
    with pytest.raises(ValueError, match="shapes differ"):
        dpo.sequence_logprobs(logits, labels[:, :-1], mask[:, :-1])


def test_policy_equal_to_reference_gives_log_two_and_beta_scales_the_margin() -> None:
    pc, pr = torch.tensor([-3.0, -7.5]), torch.tensor([-4.0, -2.0])
    out = dpo.dpo_loss(pc, pr, pc, pr, beta=0.1)
    assert abs(out.loss.item() - math.log(2)) < 1e-7 and torch.equal(out.margins, torch.zeros(2))
    rc, rr = pc - 1.0, pr + 1.0  # the policy prefers the chosen answers more than the reference does
    small, large = dpo.dpo_loss(pc, pr, rc, rr, 0.1), dpo.dpo_loss(pc, pr, rc, rr, 1.0)
    assert torch.allclose(large.margins, 10 * small.margins) and (small.margins > 0).all()
    assert large.loss < small.loss < math.log(2)  # a larger β turns the same log-ratios into larger rewards
    swapped = dpo.dpo_loss(pr, pc, rr, rc, 0.1)  # chosen and rejected exchanged
    assert torch.allclose(swapped.margins, -small.margins) and swapped.loss > math.log(2)
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(pc, pr, rc, rr, 0.0)


def test_gradient_reaches_the_policy_only() -> None:
    pc, pr = torch.tensor([-3.0, -5.0], requires_grad=True), torch.tensor([-4.0, -2.0], requires_grad=True)
    rc, rr = torch.tensor([-3.5, -5.0], requires_grad=True), torch.tensor([-3.0, -2.5], requires_grad=True)
    out = dpo.dpo_loss(pc, pr, rc, rr, 0.5)
    out.loss.backward()
    assert rc.grad is None and rr.grad is None and not out.chosen_rewards.requires_grad
    assert (pc.grad < 0).all() and (pr.grad > 0).all()  # descent raises the chosen, lowers the rejected
    assert torch.allclose(pc.grad, -pr.grad)


def test_response_logprobs_of_a_model_and_the_lora_reference() -> None:
    model = tiny()
    encoded = [([1, 5, 9, 2, 7, 3], [False, False, False, True, True, True]), ([4, 8, 6, 2], [False, True, True, True])]
    idx, targets = ins.collate(encoded, pad_id=0)
    keep = targets != ins.IGNORE_INDEX
    with torch.no_grad():
        want = dpo.sequence_logprobs(model(idx), targets, keep)
        got = dpo.response_logprobs(model, idx, targets)
    assert torch.allclose(got, want, atol=1e-5)
    lora.inject_lora(model, r=4, alpha=8)
    for layer in lora.lora_layers(model):
        torch.nn.init.normal_(layer.lora_B)  # a trained-looking LoRA
    with torch.no_grad():
        adapted = dpo.response_logprobs(model, idx, targets)
        with dpo.lora_disabled(model):
            assert torch.allclose(dpo.response_logprobs(model, idx, targets), got, atol=1e-5)
        assert torch.equal(dpo.response_logprobs(model, idx, targets), adapted)  # switched back on
        assert not torch.allclose(adapted, got, atol=1e-3)
        assert dpo.restart_lora(model) == 6
        assert torch.allclose(dpo.response_logprobs(model, idx, targets), adapted, atol=1e-4)  # merged in
        with dpo.lora_disabled(model):  # the new reference is the merged model
            assert torch.allclose(dpo.response_logprobs(model, idx, targets), adapted, atol=1e-4)
    assert all((layer.lora_B == 0).all() and not layer.merged for layer in lora.lora_layers(model))
    with pytest.raises(ValueError, match="no LoRA"), dpo.lora_disabled(tiny()):
        pass


def test_preference_accuracy() -> None:
    assert dpo.preference_accuracy(torch.tensor([1.0, 2.0, 0.0, 3.0]), torch.tensor([0.0, 2.0, 1.0, -1.0])) == 0.5
    with pytest.raises(ValueError):
        dpo.preference_accuracy(torch.tensor([]), torch.tensor([]))


def test_preference_pairs_are_deterministic_wrong_or_verbose_and_split_by_example() -> None:
    splits = ins.instruction_splits(60, 30, seed=2)
    train = prefs.preference_pairs(splits["train"], seed=7)
    assert train == prefs.preference_pairs(splits["train"], seed=7) != prefs.preference_pairs(splits["train"], seed=8)
    assert len(train) == 2 * 60 and [p.kind for p in train[:4]] == ["wrong", "verbose", "wrong", "verbose"]
    for p in train:
        assert p.chosen == p.example.response and ins.normalize(p.rejected) != ins.normalize(p.chosen)
        if p.kind == "verbose":
            assert p.chosen in p.rejected and len(p.rejected) > len(p.chosen)
        elif p.example.task in ("add", "subtract", "count"):
            assert int(p.rejected) != int(p.chosen) and int(p.rejected) >= 1
        elif p.example.task in ("sort", "reverse"):
            assert sorted(p.rejected.replace(",", "").split()) == sorted(p.chosen.replace(",", "").split())
        else:
            assert p.rejected in p.example.instruction  # another speaker of the passage
    held = prefs.preference_pairs(splits["test"], seed=7, kinds=("wrong",))
    assert {p.kind for p in held} == {"wrong"}
    assert not {p.example.instruction for p in train} & {p.example.instruction for p in held}
    with pytest.raises(ValueError, match="unknown kind"):
        prefs.preference_pairs(splits["train"], seed=0, kinds=("rude",))


def test_wrong_answers_cover_every_task() -> None:
    rng = random.Random(0)
    for ex in ins.generate(120, seed=4):
        assert ins.normalize(prefs.wrong_answer(ex, rng)) != ins.normalize(ex.response)
