"""Reference benchmarks: the course's from-scratch code beside the library code it teaches.

Each comparison runs in one process, on the same inputs and the same device, after checking that both
sides compute the same thing. ``dlfund bench`` prints one table of ratios and, with ``--record``,
writes it with its provenance to ``book/results/benchmarks/reference.<tier>.json``.

- attention: unit 9's explicit multi-head attention (the ``(B, h, T, T)`` weights in memory) vs the
  same module on ``F.scaled_dot_product_attention``, forward + backward, as the sequence grows;
- ViT: unit 7's ``dlfund.models.vit.ViT`` vs a ``timm`` VisionTransformer of the same shape (where timm
  is installed), training images per second;
- GPT precision: unit 9's GPT training step in fp32, bf16 autocast and (on CUDA) ``torch.compile``;
- LLaMA: unit 12's ``dlfund.models.llama.Llama`` vs ``transformers``' ``LlamaForCausalLM`` on the same
  weights (where transformers is installed): logits parity in float32 first, then forward + backward
  tokens per second (bf16 autocast on CUDA);
- MFU: model FLOPs utilisation of a SmolLM2-135M training step (:mod:`dlfund.perf.mfu`).
- LoRA: unit 13's LoRA vs ``peft``'s on the same LLaMA weights (where peft and transformers are
  installed), training step time, trainable parameters and peak memory (:mod:`dlfund.course.bench.lora_vs_peft`).

Comparisons whose course code is not written yet are listed as pending, with the unit they wait for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from dlfund.course import manifest
from dlfund.course.bench import common
from dlfund.course.bench.common import Row, peak_mb, seconds_per_call
from dlfund.course.bench.lora_vs_peft import bench_lora_vs_peft
from dlfund.models.attention import (
    FusedMultiHeadAttention,
    MultiHeadAttention,
    attention_weights,
    load_attention_weights,
)
from dlfund.models.gpt import GPT, GPTConfig
from dlfund.models.llama import Llama, LlamaConfig
from dlfund.models.llama_weights import load_gguf, save_hf
from dlfund.models.vit import ViT
from dlfund.perf.mfu import measure_mfu
from dlfund.train.vision import images_per_second
from dlfund.utils.device import pick_device

SIZES: dict[str, dict[str, Any]] = {
    "smoke": {
        "attn_lengths": (64, 256),
        "attn_dim": 64,
        "attn_heads": 4,
        "attn_batch": 2,
        "vit_batch": 32,
        "vit_dim": 48,
        "vit_depth": 2,
        "vit_heads": 4,
        "vit_steps": 3,
        "gpt_layers": 2,
        "gpt_dim": 64,
        "gpt_heads": 4,
        "gpt_block": 64,
        "gpt_batch": 8,
        "gpt_steps": 3,
        "llama": {
            "vocab_size": 256,
            "dim": 64,
            "n_layers": 2,
            "n_heads": 4,
            "n_kv_heads": 2,
            "hidden_dim": 128,
            "context_length": 128,
        },
        "llama_real_weights": False,
        "llama_seq": 64,
        "llama_batch": 4,
        "mfu_seq": 64,
        "mfu_batch": 2,
        "mfu_steps": 2,
        "mfu_compile": False,
        "lora_model": "tiny",
        "lora_vocab": 256,
        "lora_dim": 64,
        "lora_layers": 2,
        "lora_heads": 4,
        "lora_kv_heads": 2,
        "lora_seq": 64,
        "lora_batch": 4,
        "lora_rank": 8,
        "min_run_s": 0.05,
    },
    "full": {
        "attn_lengths": (512, 1024, 2048, 4096, 8192),
        "attn_dim": 512,
        "attn_heads": 8,
        "attn_batch": 4,
        "vit_batch": 512,
        "vit_dim": 192,
        "vit_depth": 6,
        "vit_heads": 6,
        "vit_steps": 30,
        "gpt_layers": 6,
        "gpt_dim": 384,
        "gpt_heads": 6,
        "gpt_block": 256,
        "gpt_batch": 64,
        "gpt_steps": 30,
        "llama": None,  # SmolLM2-135M's own sizes
        "llama_real_weights": True,
        "llama_seq": 1024,
        "llama_batch": 8,
        "mfu_seq": 1024,
        "mfu_batch": 16,
        "mfu_steps": 20,
        "mfu_compile": True,
        "lora_model": "smollm2",
        "lora_seq": 512,
        "lora_batch": 4,
        "lora_rank": 8,
        "min_run_s": 0.5,
    },
}

PENDING: tuple[tuple[str, int], ...] = ()
"""Comparisons waiting for a unit that is not built yet: ``(what, unit number)``; none since unit 13 landed."""


def bench_attention(size: dict[str, Any], device: torch.device) -> list[Row]:
    """Explicit multi-head attention vs the same weights on SDPA, forward + backward, per sequence length."""

    dim, heads, batch = size["attn_dim"], size["attn_heads"], size["attn_batch"]
    torch.manual_seed(0)
    ours = MultiHeadAttention(dim, heads, causal=True).to(device)
    fused = FusedMultiHeadAttention(dim, heads, causal=True).to(device)
    load_attention_weights(fused, **attention_weights(ours))  # the same function, two implementations
    rows = []
    for t in size["attn_lengths"]:
        x = torch.randn(batch, t, dim, device=device, requires_grad=True)
        try:
            difference = (ours(x) - fused(x)).abs().max().item()
        except torch.cuda.OutOfMemoryError:
            rows.append(
                Row(
                    "attention",
                    f"T={t}",
                    "fwd+bwd ms",
                    float("nan"),
                    float("nan"),
                    float("nan"),
                    "explicit attention ran out of memory",
                )
            )
            continue
        if difference > 1e-4:
            raise AssertionError(f"attention at T={t}: the two implementations differ by {difference:.2e}")

        def step(module: torch.nn.Module, inputs: torch.Tensor) -> Callable[[], None]:
            return lambda: module(inputs).sum().backward()

        ms = [1000 * seconds_per_call(step(m, x), device, size["min_run_s"]) for m in (ours, fused)]
        memory = [peak_mb(step(m, x), device) for m in (ours, fused)]
        note = f"max difference {difference:.1e}"
        if memory[0] is not None and memory[1] is not None:
            note += f"; peak memory {memory[0]:.0f} MB vs {memory[1]:.0f} MB"
        rows.append(
            Row(
                "attention: explicit vs SDPA",
                f"T={t}, B={batch}, D={dim}, h={heads}",
                "fwd+bwd ms",
                ms[0],
                ms[1],
                ms[0] / ms[1],
                note,
            )
        )
    return rows


def bench_vit(size: dict[str, Any], device: torch.device) -> list[Row]:
    """dlfund's ViT vs timm's VisionTransformer of the same shape: training images per second."""

    try:
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        return [
            Row(
                "ViT: dlfund vs timm",
                "",
                "train images/s",
                float("nan"),
                float("nan"),
                float("nan"),
                "timm is not installed: skipped",
            )
        ]
    dim, depth, heads = size["vit_dim"], size["vit_depth"], size["vit_heads"]
    ours = ViT(
        image_size=28, patch_size=4, in_channels=1, num_classes=10, dim=dim, depth=depth, heads=heads, mlp_ratio=2.0
    )
    ref = VisionTransformer(
        img_size=28,
        patch_size=4,
        in_chans=1,
        num_classes=10,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        mlp_ratio=2.0,
        class_token=True,
        global_pool="token",
    )
    params = [sum(p.numel() for p in m.parameters()) for m in (ours, ref)]
    rates = [images_per_second(m, size["vit_batch"], device, steps=size["vit_steps"]) for m in (ours, ref)]
    return [
        Row(
            "ViT: dlfund vs timm",
            f"28x28, patch 4, D={dim}, depth {depth}, batch {size['vit_batch']}",
            "train images/s",
            rates[0],
            rates[1],
            rates[0] / rates[1],
            f"parameters {params[0]:,} vs {params[1]:,}",
        )
    ]


def bench_gpt_precision(size: dict[str, Any], device: torch.device) -> list[Row]:
    """Unit 9's GPT training step: bf16 autocast and compile against fp32, tokens per second."""

    cfg = GPTConfig(
        vocab_size=96,
        context_length=size["gpt_block"],
        n_layers=size["gpt_layers"],
        n_heads=size["gpt_heads"],
        dim=size["gpt_dim"],
        dropout=0.0,
    )
    torch.manual_seed(0)
    base = GPT(cfg).to(device)
    idx = torch.randint(0, cfg.vocab_size, (size["gpt_batch"], cfg.context_length + 1), device=device)
    x, y = idx[:, :-1], idx[:, 1:]
    tokens = x.numel()

    def step(model: torch.nn.Module, bf16: bool) -> Callable[[], None]:
        def run() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            F.cross_entropy(logits.float().reshape(-1, cfg.vocab_size), y.reshape(-1)).backward()

        return run

    fp32 = tokens / seconds_per_call(step(base, False), device, size["min_run_s"])
    rows = [
        Row(
            "GPT step: bf16 autocast vs fp32",
            f"{cfg.n_layers} layers, D={cfg.dim}, T={cfg.context_length}",
            "tokens/s",
            tokens / seconds_per_call(step(base, True), device, size["min_run_s"]),
            fp32,
            0.0,
        )
    ]
    if device.type == "cuda":
        compiled = torch.compile(base)
        rate = tokens / seconds_per_call(step(compiled, True), device, size["min_run_s"])
        rows.append(
            Row(
                "GPT step: bf16 + compile vs fp32",
                rows[0].setting,
                "tokens/s",
                rate,
                fp32,
                0.0,
                "compile time excluded (one warm-up call)",
            )
        )
    else:
        rows.append(
            Row(
                "GPT step: bf16 + compile vs fp32",
                rows[0].setting,
                "tokens/s",
                float("nan"),
                fp32,
                float("nan"),
                "compile measured on CUDA only",
            )
        )
    for row in rows:
        if row.ratio == 0.0:
            row.ratio = row.ours / row.reference
    return rows


def bench_llama(size: dict[str, Any], device: torch.device) -> list[Row]:
    """dlfund's Llama vs transformers' LlamaForCausalLM on the same weights: parity, then fwd+bwd tokens/s."""
    import tempfile

    name = "LLaMA: dlfund vs transformers"
    try:
        from transformers import LlamaForCausalLM
    except ImportError:
        print("transformers is not installed: the LLaMA comparison is skipped")
        return [
            Row(
                name,
                "",
                "fwd+bwd tokens/s",
                float("nan"),
                float("nan"),
                float("nan"),
                "transformers is not installed: skipped",
            )
        ]
    if size["llama_real_weights"]:
        ours, what = load_gguf(), "SmolLM2-135M (dequantised GGUF)"
    else:
        torch.manual_seed(0)
        ours, what = Llama(LlamaConfig(**size["llama"])).eval(), "tiny random LLaMA (GQA)"
    with tempfile.TemporaryDirectory() as tmp:
        ref = LlamaForCausalLM.from_pretrained(save_hf(ours, f"{tmp}/model"), dtype=torch.float32).eval()
    ours.to(device)
    ref.to(device)
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, ours.config.vocab_size, (size["llama_batch"], size["llama_seq"] + 1), generator=gen)
    x, y = tokens[:, :-1].to(device), tokens[:, 1:].to(device)
    with torch.no_grad():
        probe = x[:1, : min(64, x.shape[1])]
        difference = (ours(probe).float() - ref(probe).logits.float()).abs().max().item()
    if difference > 1e-4:
        raise AssertionError(f"LLaMA logits differ from LlamaForCausalLM by {difference:.2e} (float32, same weights)")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def step(forward: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = forward(x)
            F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1)).backward()

        return run

    ours.train()
    ref.train()
    tokens_per_call = x.numel()
    rates = [
        tokens_per_call / seconds_per_call(step(f), device, size["min_run_s"]) for f in (ours, lambda t: ref(t).logits)
    ]
    memory = [peak_mb(step(f), device) for f in (ours, lambda t: ref(t).logits)]
    note = f"logits parity (float32) max difference {difference:.1e}"
    if memory[0] is not None and memory[1] is not None:
        note += f"; peak memory {memory[0]:.0f} MB vs {memory[1]:.0f} MB"
    return [
        Row(
            name,
            f"{what}, batch {x.shape[0]}×{x.shape[1]}, {'bf16 autocast' if bf16 else 'float32'}",
            "fwd+bwd tokens/s",
            rates[0],
            rates[1],
            rates[0] / rates[1],
            note,
        )
    ]


def bench_mfu(size: dict[str, Any], device: torch.device) -> list[Row]:
    """Model FLOPs utilisation of a SmolLM2-135M training step (smoke: a 2-layer model of the tier's sizes)."""

    config = LlamaConfig(**size["llama"]) if size["llama"] is not None else LlamaConfig.smollm2_135m()
    torch.manual_seed(0)
    result = measure_mfu(
        Llama(config),
        batch=size["mfu_batch"],
        seq_len=size["mfu_seq"],
        steps=size["mfu_steps"],
        warmup=1,
        device=device,
        compile=size["mfu_compile"] and device.type == "cuda",
    )
    what = "SmolLM2-135M" if size["llama"] is None else f"tiny LLaMA ({result.params:,} parameters)"
    if result.mfu is None:
        note = "MFU: no peak known for this CPU" if device.type != "cuda" else f"MFU: no peak known for {result.device}"
    else:
        note = f"MFU {result.mfu:.1%}"
    note += f"; FLOPs/token = 6N + 12·L·d·T = {result.flops_per_token / 1e9:.3g} G; {result.tokens_per_s:,.0f} tokens/s"
    return [
        Row(
            "MFU: LLaMA training step",
            f"{what}, batch {result.batch}×{result.seq_len}, "
            f"{'bf16' if result.bf16 else 'fp32'}{', compiled' if result.compiled else ''}",
            "TFLOP/s vs peak",
            result.achieved_flops / 1e12,
            float("nan") if result.peak_flops is None else result.peak_flops / 1e12,
            float("nan") if result.mfu is None else result.mfu,
            note,
        )
    ]


def run(tier: str = "smoke", device: torch.device | str | None = None) -> list[Row]:
    """Every comparison at the tier's sizes on ``device`` (default: the course's pick)."""

    if tier not in SIZES:
        raise ValueError(f"unknown tier {tier!r}: expected one of {', '.join(SIZES)}")
    device = torch.device(device) if device is not None else pick_device()
    size = SIZES[tier]
    return [
        *bench_attention(size, device),
        *bench_vit(size, device),
        *bench_gpt_precision(size, device),
        *bench_llama(size, device),
        *bench_mfu(size, device),
        *bench_lora_vs_peft(size, device),
    ]


def pending() -> list[dict[str, Any]]:
    """The comparisons of :data:`PENDING` whose unit is not built yet."""
    built = {u.number for u in manifest.UNITS}
    return [{"comparison": what, "needs_unit": unit} for what, unit in PENDING if unit not in built]


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table, with the comparisons still pending at the end."""
    return common.table(rows, [f"{q['comparison']} (needs unit {q['needs_unit']})" for q in pending()])


def record(rows: list[Row], tier: str, device: torch.device, wall_s: float) -> str:
    """Write the rows with provenance to ``book/results/benchmarks/reference.<tier>.json``; return its path."""
    return common.record("reference", rows, tier, device, wall_s, pending=pending(), references=reference_versions())


def reference_versions() -> dict[str, str | None]:
    """The versions of the reference libraries in this environment (``None``: not installed, rows skipped)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in ("transformers", "peft", "timm"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def recorded_markdown() -> list[str]:
    """Markdown of every recorded ``book/results/benchmarks/<suite>.<tier>.json`` (suites: ``reference``, and unit 11's
    ``fast-training``; none recorded: an empty list)."""
    lines: list[str] = []
    for path in sorted((manifest.RESULTS_DIR / "benchmarks").glob("*.json")):
        payload = json.loads(path.read_text(encoding="utf-8"))
        p = payload["provenance"]
        suite = path.name.split(".")[0]
        refs = "".join(f" · {k} {v}" for k, v in p.get("references", {}).items() if v)
        lines += [
            f"**{suite}, {p['tier']} sizes** · {p['device']} · torch {p['torch']}{refs} · {p['date'][:10]} · commit "
            f"{p['commit']} · ratio = ours / reference (ms: lower is better; rates: higher is better)",
            "",
            "| benchmark | setting | metric | ours | reference | ratio | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in payload["rows"]:
            cells = ["n/a" if r[k] is None else f"{r[k]:.4g}" for k in ("ours", "reference", "ratio")]
            lines.append(f"| {r['benchmark']} | {r['setting']} | {r['metric']} | {' | '.join(cells)} | {r['note']} |")
        lines += [f"- pending: {q['comparison']} (needs unit {q['needs_unit']})" for q in payload.get("pending", [])]
        lines.append("")
    return lines
