"""Direct Preference Optimization (Rafailov et al., 2023) from scratch (unit 13).

DPO trains a policy ``πθ`` on preference pairs ``(x, y_w, y_l)`` (chosen ``y_w``, rejected ``y_l``) against a
frozen reference ``π_ref`` (the instruction-finetuned model), with no reward model and no sampling:

    loss = −log σ(β [(log πθ(y_w|x) − log π_ref(y_w|x)) − (log πθ(y_l|x) − log π_ref(y_l|x))])

``log π(y|x)`` is the log-probability of the whole response: the sum over the response tokens only (the
prompt is given, not generated). ``β (log πθ(y|x) − log π_ref(y|x))`` is the *implicit reward* of ``y``; the
loss is the Bradley–Terry likelihood that the chosen answer's reward beats the rejected one's.

With LoRA the reference costs no second model: it is the same model with its LoRA update switched off
(:func:`lora_disabled`), once a finished LoRA (the instruction finetuning) has been merged into the
weights and a fresh one started at zero (:func:`restart_lora`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.models.llama import Llama
from dlfund.peft.finetune import hidden_states
from dlfund.peft.lora import lora_layers
from dlfund.text.instructions import IGNORE_INDEX

__all__ = [
    "DPOOutput",
    "dpo_loss",
    "lora_disabled",
    "preference_accuracy",
    "response_logprobs",
    "restart_lora",
    "sequence_logprobs",
]

Tensor = torch.Tensor


def sequence_logprobs(logits: Tensor, labels: Tensor, mask: Tensor) -> Tensor:
    """``log π(y|x)`` per sequence: the sum of ``log softmax(logits)[labels]`` where ``mask`` is True.

    ``logits (B, T, V)``, ``labels (B, T)`` (the token that follows each position), ``mask (B, T)`` bool
    (True on response tokens; False on the prompt and on padding, whose labels may be anything). Returns
    ``(B,)`` in float32 or wider. A sum, not a mean: a response's probability is the product of its tokens'.
    """
    if logits.shape[:2] != labels.shape or labels.shape != mask.shape:
        raise ValueError(
            f"shapes differ: logits {tuple(logits.shape)}, labels {tuple(labels.shape)}, mask {tuple(mask.shape)}"
        )
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    safe = labels.masked_fill(~mask, 0)  # any valid index: masked positions are zeroed below
    picked = logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def response_logprobs(model: Llama, idx: Tensor, targets: Tensor) -> Tensor:
    """``log π(y|x)`` ``(B,)`` of batches made by :func:`~dlfund.text.instructions.collate`.

    ``idx, targets (B, T)``; positions whose target is :data:`IGNORE_INDEX` (prompt, padding) are left
    out. The same as ``sequence_logprobs(model(idx), targets, targets != IGNORE_INDEX)``, but the output
    head runs on the response positions only (a fraction of the logits memory).
    """
    keep = targets != IGNORE_INDEX
    h = hidden_states(model, idx)[keep]  # (N, D)
    logp = torch.log_softmax(model.lm_head(h).float(), dim=-1)
    picked = logp.gather(-1, targets[keep].unsqueeze(-1)).squeeze(-1)  # (N,)
    rows = keep.nonzero()[:, 0]  # the sequence of each kept position
    return torch.zeros(idx.shape[0], device=idx.device, dtype=picked.dtype).index_add(0, rows, picked)


@dataclass
class DPOOutput:
    """What :func:`dpo_loss` returns: the mean loss and each pair's implicit rewards (no gradient)."""

    loss: Tensor
    """Scalar: the mean over the pairs of ``−log σ(margin)``."""
    chosen_rewards: Tensor
    """``(B,)`` ``β (log πθ(y_w|x) − log π_ref(y_w|x))``."""
    rejected_rewards: Tensor
    """``(B,)`` ``β (log πθ(y_l|x) − log π_ref(y_l|x))``."""

    @property
    def margins(self) -> Tensor:
        """``(B,)`` chosen minus rejected reward: positive where the policy prefers the chosen answer
        more than the reference does."""
        return self.chosen_rewards - self.rejected_rewards


def dpo_loss(
    policy_chosen: Tensor,
    policy_rejected: Tensor,
    ref_chosen: Tensor,
    ref_rejected: Tensor,
    beta: float,
) -> DPOOutput:
    """The DPO loss of ``B`` pairs from their sequence log-probabilities, each ``(B,)``.

    The reference log-probabilities are detached (the reference is frozen: no gradient may reach it even
    when they were computed with autograd on). ``beta > 0`` sets how far the policy may move from the
    reference: the implicit rewards are ``β × log-ratio``, so a small β needs a large log-ratio to reach the
    same loss.
    """
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    chosen = beta * (policy_chosen - ref_chosen.detach())
    rejected = beta * (policy_rejected - ref_rejected.detach())
    loss = -F.logsigmoid(chosen - rejected).mean()  # logsigmoid: stable where σ underflows
    return DPOOutput(loss, chosen.detach(), rejected.detach())


def preference_accuracy(chosen_logps: Tensor, rejected_logps: Tensor) -> float:
    """The fraction of pairs whose chosen answer is more probable than the rejected one (ties count as
    wrong). With log-probabilities of one model: how often it ranks the pair as people did; with implicit
    rewards: how often it moved towards the chosen answer more than the reference."""
    if chosen_logps.shape != rejected_logps.shape or chosen_logps.numel() == 0:
        raise ValueError(
            f"need two equal, non-empty shapes, got {tuple(chosen_logps.shape)} and {tuple(rejected_logps.shape)}"
        )
    return (chosen_logps > rejected_logps).float().mean().item()


@contextlib.contextmanager
def lora_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, every (unmerged) :class:`~dlfund.peft.lora.LoRALinear` of ``model`` computes its
    frozen weight only: the model is its own reference, at no extra memory."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers to disable")
    if any(layer.merged for layer in layers):
        raise ValueError("a merged LoRA is part of the weights and cannot be switched off: unmerge it first")
    scalings = [layer.scaling for layer in layers]
    try:
        for layer in layers:
            layer.scaling = 0.0
        yield model
    finally:
        for layer, s in zip(layers, scalings):
            layer.scaling = s


@torch.no_grad()
def restart_lora(model: nn.Module) -> int:
    """Merge every LoRA update into its frozen weight and start a new one at zero (``B = 0``), unmerged.

    After this the model computes what it computed before (up to float rounding), and switching the new
    LoRA off (:func:`lora_disabled`) gives that same model: the reference for a second stage of training.
    Returns the number of LoRA layers restarted.
    """
    layers = lora_layers(model)
    if not layers:
        raise ValueError("the model has no LoRA layers to restart")
    for layer in layers:
        layer.merge()
        layer.reset_lora_parameters()
        layer.merged = False  # the old update stays in the weight; the new one starts at zero
    return len(layers)
