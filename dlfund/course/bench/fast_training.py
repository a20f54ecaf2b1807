"""Unit 11's measurements as one benchmark: ``dlfund bench --suite fast-training``.

Precision (fp32, tf32, fp16-mixed with a scaler, bf16-mixed, bf16-true) on unit 9's GPT and unit 7's
CNN, fp16 underflow, ``torch.compile``, gradient accumulation, the batch-size finder, activation
checkpointing, and DDP / FSDP with PyTorch, Lightning and Fabric as several processes, at the sizes of
the unit's manifest config for the tier. The rows are :class:`dlfund.course.bench.common.Row` (``ratio =
ours / reference``) and are printed and recorded the same way, to
``book/results/benchmarks/fast-training.<tier>.json`` with the same provenance.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import torch

from dlfund.course import manifest
from dlfund.course.bench import common
from dlfund.course.bench.common import Row
from dlfund.course.settings.unit11 import Unit11
from dlfund.models.gpt import GPT, GPTConfig
from dlfund.perf import distributed as d
from dlfund.perf.compiled import time_compile
from dlfund.perf.memory import SavedTensorMeter, checkpoint_comparison, find_batch_size
from dlfund.perf.precision import (
    PRECISIONS,
    activation_gradients,
    cnn_task,
    gpt_task,
    precision_context,
    supported,
    train_with_precision,
    underflow_fraction,
)
from dlfund.train.accumulate import accumulation_step, split_batch
from dlfund.utils.device import pick_device

NAN = float("nan")


def _sizes(tier: str) -> Unit11:
    return manifest.get_unit(11).tier_settings(tier)  # type: ignore[return-value]


def bench_precision(c: Unit11, device: torch.device, seed: int = 0) -> list[Row]:
    gpt = gpt_task(
        n_layers=c.gpt.layers,
        dim=c.gpt.dim,
        n_heads=c.gpt.heads,
        context_length=c.gpt.context,
        batch_size=c.gpt.batch,
        lr=c.gpt.lr,
        corpus_chars=c.corpus_chars,
        seed=seed,
    )
    cnn = cnn_task(
        width=c.cnn.width, batch_size=c.cnn.batch, n_train=c.cnn.n_train, n_test=c.cnn.n_test, lr=c.cnn.lr, seed=seed
    )
    rows: list[Row] = []
    for task, steps in ((gpt, c.gpt.steps), (cnn, c.cnn.steps)):
        base = None
        for p in PRECISIONS:
            ok, why = supported(p, device)
            if not ok:
                rows.append(Row(f"precision: {task.name}", p, "step ms", NAN, NAN, NAN, why))
                continue
            r = train_with_precision(task, p, steps=steps, device=device, seed=seed, keep_model=p == "fp32")
            base = base or r
            metric = ", ".join(f"{k} {v:.4g}" for k, v in r.metrics.items())
            peak = "n/a (CPU)" if r.peak_memory_mb is None else f"{r.peak_memory_mb:.0f} MB"
            rows.append(
                Row(
                    f"precision: {task.name}",
                    p,
                    "step ms",
                    r.step_ms,
                    base.step_ms,
                    r.step_ms / base.step_ms,
                    f"{metric}; peak {peak}; activations {r.saved_mb:.2f} MB; state {r.state_mb:.2f} MB",
                )
            )
            if task is gpt and p == "fp32":
                model = r.model
    x, y = gpt.batch(10_000)
    x, y = x.to(device), y.to(device)
    grads = torch.cat([g.float().flatten() for g in activation_gradients(model, x, y, gpt.loss)])
    lost, scaled = underflow_fraction(grads, torch.float16), underflow_fraction(grads, torch.float16, scale=65536.0)
    rows.append(
        Row(
            "fp16 underflow (trained GPT)",
            "activation gradients",
            "share -> 0",
            lost,
            scaled,
            lost / scaled if scaled else NAN,
            "ours: float16 unscaled; reference: scaled by 65536",
        )
    )
    if supported("fp16-mixed", device)[0]:
        zeros = []
        for scale in (1.0, 65536.0):
            g = activation_gradients(
                model, x, y, gpt.loss, context=precision_context("fp16-mixed", device), scale=scale
            )
            zeros.append(torch.cat([t.float().flatten() for t in g]).eq(0).float().mean().item())
        rows.append(
            Row(
                "fp16 autocast backward",
                "zero gradients",
                "share",
                zeros[0],
                zeros[1],
                zeros[0] / zeros[1] if zeros[1] else NAN,
                "ours: no scaler; reference: scale 65536",
            )
        )
    return rows


def bench_compile(c: Unit11, device: torch.device, seed: int = 0) -> list[Row]:
    precision = "bf16-mixed" if device.type == "cuda" and supported("bf16-mixed", device)[0] else "fp32"
    task = gpt_task(
        n_layers=c.compile.layers,
        dim=c.compile.dim,
        n_heads=4 if c.compile.dim < 384 else 6,
        context_length=c.compile.context,
        batch_size=c.compile.batch,
        corpus_chars=c.corpus_chars,
        seed=seed,
    )

    def make() -> torch.nn.Module:
        torch.manual_seed(seed)
        return GPT(task.info["config"])

    r = time_compile(make, task.batch, task.loss, steps=c.compile.steps, device=device, precision=precision)
    if r.error is not None:
        return [Row("torch.compile vs eager", task.name, "step ms", NAN, r.eager_ms, NAN, f"not compiled: {r.error}")]
    return [
        Row(
            "torch.compile vs eager",
            f"{task.name}, {precision}",
            "step ms",
            r.compiled_ms,
            r.eager_ms,  # type: ignore[arg-type]
            r.compiled_ms / r.eager_ms,
            f"compile time {r.compile_s:.1f} s (first step, not in the median)",
        )
    ]


def bench_memory(c: Unit11, device: torch.device, seed: int = 0) -> list[Row]:
    task = gpt_task(
        n_layers=c.gpt.layers,
        dim=c.gpt.dim,
        n_heads=c.gpt.heads,
        context_length=c.gpt.context,
        batch_size=c.accum.batch,
        corpus_chars=c.corpus_chars,
        seed=seed,
    )
    x, y = (t.to(device) for t in task.batch(0))

    def fresh() -> torch.nn.Module:
        torch.manual_seed(seed)
        return GPT(task.info["config"]).to(device)

    big, acc = fresh(), fresh()
    with SavedTensorMeter(big) as whole:
        loss = task.loss(big(x), y)
    loss.backward()
    micro = split_batch(x, y, c.accum.micro)
    with SavedTensorMeter(acc) as part:
        task.loss(acc(micro[0][0]), micro[0][1])
    accumulation_step(acc, task.loss, torch.optim.SGD(acc.parameters(), lr=0.0), micro)
    diff = max((a.grad - b.grad).abs().max().item() for a, b in zip(acc.parameters(), big.parameters()))
    rows = [
        Row(
            "gradient accumulation",
            f"batch {c.accum.batch} as {c.accum.micro} micro-batches",
            "saved MB",
            part.mb,
            whole.mb,
            part.mb / whole.mb,
            f"largest gradient difference {diff:.1e}",
        )
    ]

    with tempfile.TemporaryDirectory() as root:
        found = find_batch_size(
            lambda: GPT(task.info["config"]),
            task.info["train_ids"],
            context_length=c.gpt.context,
            init=c.finder.init_batch,
            max_trials=c.finder.max_trials,
            device=device,
            root_dir=root,
        )
    rows.append(
        Row(
            "batch-size finder (Lightning)",
            f"GPT, T={c.gpt.context}",
            "batch",
            found,
            c.finder.init_batch,
            found / c.finder.init_batch,
            "CPU: bounded by max_trials, nothing raises out-of-memory"
            if device.type != "cuda"
            else f"max_trials {c.finder.max_trials}",
        )
    )

    config = GPTConfig(
        vocab_size=task.info["vocab_size"],
        context_length=c.checkpointing.context,
        n_layers=c.checkpointing.layers,
        n_heads=4 if c.checkpointing.dim < 384 else 12,
        dim=c.checkpointing.dim,
        dropout=0.0,
    )
    ids = task.info["train_ids"]
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(len(ids) - c.checkpointing.context - 1, (c.checkpointing.batch,), generator=gen).tolist()
    w = torch.stack([ids[s : s + c.checkpointing.context + 1] for s in starts])

    def make_ck() -> torch.nn.Module:
        torch.manual_seed(seed)
        return GPT(config)

    ck = checkpoint_comparison(make_ck, w[:, :-1], w[:, 1:], task.loss, steps=c.checkpointing.steps, device=device)
    setting = (
        f"GPT {c.checkpointing.layers}×{c.checkpointing.dim}, T={c.checkpointing.context}, B={c.checkpointing.batch}"
    )
    plain, cp = ck["plain"], ck["checkpointed"]
    rows.append(
        Row(
            "activation checkpointing",
            setting,
            "saved MB",
            cp["saved_mb"],
            plain["saved_mb"],  # type: ignore[arg-type]
            cp["saved_mb"] / plain["saved_mb"],
            f"largest gradient difference {cp['max_grad_difference']:.1e}",
        )
    )  # type: ignore[operator]
    peak = "" if plain["peak_mb"] is None else f"; CUDA peak {cp['peak_mb']:.0f} vs {plain['peak_mb']:.0f} MB"
    rows.append(
        Row(
            "activation checkpointing",
            setting,
            "fwd+bwd ms",
            cp["step_ms"],
            plain["step_ms"],  # type: ignore[arg-type]
            cp["step_ms"] / plain["step_ms"],
            "ours: checkpointed; reference: plain" + peak,
        )
    )  # type: ignore[operator]
    return rows


def bench_distributed(c: Unit11, device: torch.device, seed: int = 0) -> list[Row]:
    if device.type == "cuda":
        nproc, where = c.dist.nproc or torch.cuda.device_count(), "cuda"
    else:
        nproc, where = c.dist.nproc or 2, "cpu"
    rows = []
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "problem.pt"
        problem = d.make_problem(
            path,
            steps=c.dist.steps,
            global_batch=c.dist.global_batch,
            context_length=c.dist.context,
            n_layers=c.dist.layers,
            dim=c.dist.dim,
            n_heads=2 if c.dist.dim < 384 else 6,
            seed=seed,
        )
        reference = d.reference_run(problem, device)
        result = d.launch(path, Path(work) / "out", modes=d.MODES, nproc=nproc, device=where, timeout=900)
    ddp_state = result.reports["torch-ddp"][0]["state_mb"] if result.ok("torch-ddp") else NAN
    for mode in d.MODES:
        setting = f"{nproc} ranks, {'NCCL' if where == 'cuda' else 'gloo'}"
        if not result.ok(mode):
            rows.append(
                Row(
                    f"data parallel: {mode}",
                    setting,
                    "state MB/rank",
                    NAN,
                    ddp_state,
                    NAN,
                    f"not run: {result.error(mode)}",
                )
            )
            continue
        rep = result.reports[mode][0]
        note = f"{max(r['seconds'] for r in result.reports[mode]):.1f} s"
        if mode in result.states:
            states = result.states[mode]
            note += (
                f"; ranks differ by {max(d.compare(states[0], s) for s in states):.1e}, from one process on the "
                f"global batch by {max(d.compare(s, reference) for s in states):.1e}"
            )
        if rep.get("cuda_peak_mb") is not None:
            note += f"; CUDA peak {rep['cuda_peak_mb']:.0f} MB"
        rows.append(
            Row(
                f"data parallel: {mode}",
                setting,
                "state MB/rank",
                rep["state_mb"],
                ddp_state,
                rep["state_mb"] / ddp_state if not math.isnan(ddp_state) else NAN,
                note,
            )
        )
    return rows


def run(tier: str = "smoke", device: torch.device | str | None = None) -> list[Row]:
    """Every unit-11 measurement at the tier's sizes on ``device`` (default: the course's pick)."""

    if tier not in manifest.TIERS:
        raise ValueError(f"unknown tier {tier!r}: expected one of {', '.join(manifest.TIERS)}")
    device = torch.device(device) if device is not None else pick_device()
    c = _sizes(tier)
    return [
        *bench_precision(c, device),
        *bench_compile(c, device),
        *bench_memory(c, device),
        *bench_distributed(c, device),
    ]


def record(rows: list[Row], tier: str, device: torch.device, wall_s: float) -> str:
    """Write the rows with provenance to ``book/results/benchmarks/fast-training.<tier>.json``; return its path."""
    return common.record("fast-training", rows, tier, device, wall_s)
