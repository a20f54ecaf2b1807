"""Instruction finetuning of a :class:`~dlfund.models.llama.Llama`: full, LoRA, LLaMA-Adapter, prompt or
prefix tuning (unit 13).

One training loop for every method, on Lightning Fabric: the method only decides which parameters
require gradients (and whether the frozen base may be stored in bf16). The loss is next-token
cross-entropy on the response tokens only; since only those positions are scored, the output head
(a 576 × 49,152 matrix for SmolLM2) runs on those positions only.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from dlfund.models.llama import Llama
from dlfund.peft.adapter import add_adapter
from dlfund.peft.lora import inject_lora, parameter_report
from dlfund.peft.prompt import add_prefix, add_soft_prompt
from dlfund.peft.trainable import cast_frozen
from dlfund.text.instructions import (
    IGNORE_INDEX,
    SYSTEM_PROMPT,
    Example,
    collate,
    normalize,
    prompt_text,
)
from dlfund.utils.timing import synchronize

if TYPE_CHECKING:
    from dlfund.text.llama_tokenizer import ChatTokenizer

__all__ = [
    "Method",
    "TrainResult",
    "batches",
    "build",
    "exact_match",
    "hidden_states",
    "pick_precision",
    "response_loss",
    "state_bytes",
    "train",
]

Tensor = torch.Tensor


def hidden_states(model: Llama, idx: Tensor) -> Tensor:
    """The final-norm hidden states ``(B, T, D)`` of tokens ``idx (B, T)``: ``model(idx)`` without the head
    (:meth:`Llama.hidden_states`, which a prompt-tuned model overrides to read its soft prompt first)."""
    return model.hidden_states(idx)


def response_loss(model: Llama, idx: Tensor, targets: Tensor) -> Tensor:
    """Mean cross-entropy over the positions whose target is not :data:`IGNORE_INDEX` (the response).

    ``idx, targets (B, T)``. The head runs only on the scored positions: the same loss as
    ``F.cross_entropy(model(idx).flatten(0, 1), targets.flatten(), ignore_index=-100)``, with a
    fraction of the logits memory.
    """
    keep = targets != IGNORE_INDEX
    if not bool(keep.any()):
        raise ValueError("no response tokens in this batch: every target is IGNORE_INDEX")
    h = hidden_states(model, idx)[keep]  # (N, D)
    return F.cross_entropy(model.lm_head(h).float(), targets[keep])


def batches(
    encoded: Sequence[tuple[list[int], list[bool]]],
    batch_size: int,
    *,
    pad_id: int,
    seed: int = 0,
    max_len: int | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless shuffled batches ``(idx, targets)`` (a new order every epoch, from ``seed``)."""
    if not encoded:
        raise ValueError("no training examples")
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(encoded), generator=gen).tolist()
        for i in range(0, len(order) - batch_size + 1 if len(order) >= batch_size else 1, batch_size):
            yield collate([encoded[j] for j in order[i : i + batch_size]], pad_id, max_len)


# ------------------------------------------------------------------------------------------ methods


@dataclass
class Method:
    """A finetuning method: its name, how to prepare a copy of the base model, and its learning rate."""

    name: str
    kind: str  # "full" | "lora" | "adapter" | "prompt" | "prefix"
    lr: float
    options: dict[str, object] = field(default_factory=dict)


def build(base: Llama, method: Method) -> Llama:
    """A deep copy of ``base`` prepared for ``method``; the base model itself is not changed.

    ``method.options`` are the keyword arguments of the method's function: :func:`inject_lora`,
    :func:`add_adapter`, :func:`add_soft_prompt` (which returns a new model sharing the copy's weights)
    or :func:`add_prefix`.
    """
    model = copy.deepcopy(base)
    if method.kind == "full":
        model.requires_grad_(True)
    elif method.kind == "lora":
        inject_lora(model, **method.options)  # type: ignore[arg-type]
    elif method.kind == "adapter":
        add_adapter(model, **method.options)  # type: ignore[arg-type]
    elif method.kind == "prompt":
        model = add_soft_prompt(model, **method.options)  # type: ignore[arg-type]
    elif method.kind == "prefix":
        add_prefix(model, **method.options)  # type: ignore[arg-type]
    else:
        raise ValueError(
            f"unknown method kind {method.kind!r}: expected 'full', 'lora', 'adapter', 'prompt' or 'prefix'"
        )
    return model


def pick_precision(device: torch.device) -> str:
    """``"bf16-mixed"`` on a GPU that supports bf16, else ``"32-true"``."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def state_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Memory that does not depend on the batch, from the tensors themselves (any device):
    ``weights`` (all parameters, in their dtypes), ``grads`` (one per trainable parameter, its dtype),
    ``adamw`` (two float32 moments per trainable parameter), and ``total``."""
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    grads = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    adamw = sum(2 * p.numel() * 4 for p in params if p.requires_grad)
    return {"weights": weights, "grads": grads, "adamw": adamw, "total": weights + grads + adamw}


@dataclass
class TrainResult:
    """What :func:`train` measured."""

    losses: list[float]
    seconds_per_step: float
    """The median over the steps after the first (warm-up) step."""
    peak_memory_mb: float | None
    """CUDA's ``max_memory_allocated`` during training (weights included); ``None`` on other devices."""
    precision: str
    trainable: int
    total: int


def train(
    model: Llama,
    data: Iterator[tuple[Tensor, Tensor]],
    *,
    steps: int,
    lr: float,
    device: torch.device,
    precision: str | None = None,
    weight_decay: float = 0.0,
    warmup: int = 0,
    bf16_base: bool = True,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model``'s trainable parameters for ``steps`` AdamW steps with Lightning Fabric.

    ``precision`` defaults to :func:`pick_precision`. With ``bf16_base`` and a bf16 precision, the
    *frozen* parameters are stored in bf16 (the trainable ones stay float32): a frozen weight needs no
    float32 master copy; the model then mixes dtypes, so evaluate it under
    ``torch.autocast(device.type, dtype=torch.bfloat16)`` too. The learning rate warms up linearly over
    ``warmup`` steps, then stays.
    """
    from lightning.fabric import Fabric

    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    precision = precision or pick_precision(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("the model has no trainable parameters")
    if bf16_base and precision.startswith("bf16"):
        cast_frozen(model, torch.bfloat16)
    fabric = Fabric(accelerator="cuda" if device.type == "cuda" else "cpu", devices=1, precision=precision)
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / (warmup + 1)))
    model.train()
    _, optimizer = fabric.setup(model, optimizer)  # moves model; keeps our own reference
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    losses, times = [], []
    for step in range(steps):
        idx, targets = next(data)
        idx, targets = fabric.to_device(idx), fabric.to_device(targets)
        start = time.perf_counter()
        with fabric.autocast():
            loss = response_loss(model, idx, targets)
        fabric.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler.step()
        synchronize(device)
        times.append(time.perf_counter() - start)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    model.eval()
    report = parameter_report(model)
    return TrainResult(
        losses=losses,
        seconds_per_step=statistics.median(times[1:] or times),
        peak_memory_mb=peak,
        precision=precision,
        trainable=report.trainable,
        total=report.total,
    )


# ------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def exact_match(
    model: Llama,
    tokenizer: ChatTokenizer,
    examples: Sequence[Example],
    *,
    max_new_tokens: int = 16,
    system: str | None = SYSTEM_PROMPT,
    device: torch.device | None = None,
    autocast: bool = False,
    prompts: Sequence[str] | None = None,
) -> tuple[float, list[str]]:
    """The fraction of ``examples`` whose greedy answer equals the response (after :func:`normalize`),
    and the answers. Generation stops at ``<|im_end|>``; the KV cache makes each new token cheap.

    Each example is asked with :func:`prompt_text` (``system`` as its system message), or with its entry in
    ``prompts`` when given (e.g. a few-shot prompt, :func:`~dlfund.text.instructions.few_shot_prompt`)."""
    if not examples:
        raise ValueError("exact_match needs at least one example")
    if prompts is not None and len(prompts) != len(examples):
        raise ValueError(f"{len(prompts)} prompts for {len(examples)} examples: give one prompt per example")
    device = device or next(model.parameters()).device
    answers = []
    for i, ex in enumerate(examples):
        text = prompt_text(tokenizer, ex, system) if prompts is None else prompts[i]
        idx = torch.tensor([tokenizer.encode(text)], device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model.generate(idx, max_new_tokens, stop_tokens=[tokenizer.im_end_id])
        answers.append(tokenizer.decode([t for t in out[0, idx.shape[1] :].tolist() if t != tokenizer.im_end_id]))
    score = sum(normalize(a) == normalize(e.response) for a, e in zip(answers, examples)) / len(examples)
    return score, answers
