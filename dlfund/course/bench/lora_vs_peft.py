"""``dlfund`` LoRA vs Hugging Face ``peft`` LoRA on the same LLaMA: trainable parameters, step time, memory.

``peft`` wraps ``transformers`` models, so the reference side is a ``LlamaForCausalLM`` built from the
*same weights* as our :class:`~dlfund.models.llama.Llama` (the parameter names already follow the
Hugging Face layout). Before timing, the two base models must give the same logits, and the two LoRA
models the same number of trainable parameters. One training step = forward, cross-entropy over
every position, backward, AdamW step; bf16 autocast on a GPU that supports it.

Where ``peft`` or ``transformers`` is not importable (they are not course dependencies) the benchmark
is skipped with one printed line.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from dlfund.course.bench.common import Row, peak_mb, seconds_per_call
from dlfund.data import DataUnavailableError
from dlfund.models.llama import Llama, LlamaConfig
from dlfund.models.llama_weights import load_gguf
from dlfund.peft.lora import inject_lora, parameter_report
from dlfund.peft.trainable import cast_frozen

__all__ = ["bench_lora_vs_peft", "hf_llama"]

TARGETS = ("q_proj", "v_proj")


def hf_llama(model: Llama) -> Any:
    """A ``transformers`` ``LlamaForCausalLM`` with ``model``'s configuration and weights (float32, eval mode)."""
    from transformers import LlamaConfig as HFConfig
    from transformers import LlamaForCausalLM

    c = model.config
    hf_config = HFConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.dim,
        intermediate_size=c.hidden_dim,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads,
        max_position_embeddings=c.context_length,
        rms_norm_eps=c.norm_eps,
        tie_word_embeddings=c.tie_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_base},
        attn_implementation="sdpa",
    )
    hf = LlamaForCausalLM(hf_config)
    state = {("lm_head.weight" if k == "lm_head.weight" else f"model.{k}"): v for k, v in model.state_dict().items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (c.tie_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(
            f"weights do not map onto LlamaForCausalLM: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return hf.to(next(model.parameters()).device).eval()


def _base_model(size: dict[str, Any], device: torch.device) -> tuple[Llama, str]:
    if size.get("lora_model") == "smollm2":
        try:
            return load_gguf(device=device), "SmolLM2-135M"
        except (DataUnavailableError, FileNotFoundError, OSError) as err:
            print(f"LoRA vs peft: SmolLM2 weights unavailable ({err}); using random weights of SmolLM2's shape")
            torch.manual_seed(0)
            return Llama(LlamaConfig.smollm2_135m()).to(device), "SmolLM2-135M shape, random weights"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=size["lora_vocab"],
        dim=size["lora_dim"],
        n_layers=size["lora_layers"],
        n_heads=size["lora_heads"],
        n_kv_heads=size["lora_kv_heads"],
        hidden_dim=2 * size["lora_dim"],
        context_length=size["lora_seq"],
    )
    return Llama(config).to(device), f"tiny LLaMA D={config.dim}, {config.n_layers} layers, random weights"


def bench_lora_vs_peft(size: dict[str, Any], device: torch.device) -> list:
    """One row: a LoRA training step of ``dlfund`` vs ``peft`` (ms), with parameter counts and peak memory."""

    name = "LoRA step: dlfund vs peft"
    try:
        import transformers  # noqa: F401
        from peft import LoraConfig, get_peft_model
    except ImportError as err:
        print(f"LoRA vs peft: skipped, {err.name or 'peft/transformers'} is not installed")
        return [
            Row(
                name,
                "",
                "train step ms",
                float("nan"),
                float("nan"),
                float("nan"),
                "peft or transformers is not installed: skipped",
            )
        ]
    ours, what = _base_model(size, device)
    ours.eval()
    theirs = hf_llama(ours)
    batch, seq, r = size["lora_batch"], size["lora_seq"], size["lora_rank"]
    idx = torch.randint(
        0,
        ours.config.vocab_size,
        (batch, seq + 1),
        device=device,
        generator=torch.Generator(device=device).manual_seed(0),
    )
    x, y = idx[:, :-1], idx[:, 1:]
    with torch.no_grad():
        difference = (ours(x) - theirs(input_ids=x).logits).abs().max().item()
    if difference > 1e-3:
        raise AssertionError(f"dlfund's Llama and LlamaForCausalLM differ by {difference:.2e} on the same weights")
    inject_lora(ours, TARGETS, r=r, alpha=2 * r)
    theirs = get_peft_model(
        theirs, LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(TARGETS), lora_dropout=0.0, bias="none")
    )
    counts = (parameter_report(ours).trainable, sum(p.numel() for p in theirs.parameters() if p.requires_grad))
    if counts[0] != counts[1]:
        raise AssertionError(f"trainable parameters differ: dlfund {counts[0]:,}, peft {counts[1]:,}")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if bf16:  # the frozen base in bf16 on both sides, LoRA in float32
        for m in (ours, theirs):
            cast_frozen(m, torch.bfloat16)
    ours.train(), theirs.train()

    def step(model: torch.nn.Module, forward: Any) -> Any:
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

        def run() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = forward()
            F.cross_entropy(logits.float().flatten(0, 1), y.flatten()).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return run

    runs = (step(ours, lambda: ours(x)), step(theirs, lambda: theirs(input_ids=x).logits))
    ms = [1000 * seconds_per_call(run, device, size["min_run_s"]) for run in runs]
    memory = [peak_mb(run, device) for run in runs]
    note = f"trainable {counts[0]:,} = {counts[1]:,}; base logits differ by {difference:.1e}"
    if memory[0] is not None and memory[1] is not None:
        note += f"; peak memory {memory[0]:.0f} MB vs {memory[1]:.0f} MB"
    setting = f"{what}, r={r} on {'+'.join(TARGETS)}, B={batch}, T={seq}" + (", bf16" if bf16 else ", fp32")
    return [Row(name, setting, "train step ms", ms[0], ms[1], ms[0] / ms[1], note)]
