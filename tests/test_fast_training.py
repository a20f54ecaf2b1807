"""Unit 11's library: precision helpers, memory meters, accumulation, compile timing, and DDP/FSDP as 2 processes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dlfund.models.gpt import GPT, GPTConfig
from dlfund.perf import compiled, distributed, memory, precision
from dlfund.train.accumulate import accumulation_step, split_batch


def tiny_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=20, context_length=16, n_layers=2, n_heads=2, dim=16, dropout=0.0))


def lm_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1))


# --- accumulation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_accumulation_equals_the_large_batch_step(k: int) -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randint(0, 20, (8, 16), generator=gen), torch.randint(0, 20, (8, 16), generator=gen)
    big, acc = tiny_gpt(), tiny_gpt()
    opt_big = torch.optim.SGD(big.parameters(), lr=0.5)
    opt_big.zero_grad()
    lm_loss(big(x), y).backward()
    opt_big.step()
    loss = accumulation_step(acc, lm_loss, torch.optim.SGD(acc.parameters(), lr=0.5), split_batch(x, y, k))
    assert math.isfinite(loss)
    for a, b in zip(big.parameters(), acc.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_split_batch_refuses_unequal_parts() -> None:
    with pytest.raises(ValueError, match="does not split into 3 equal micro-batches"):
        split_batch(torch.zeros(8, 2), torch.zeros(8), 3)
    with pytest.raises(ValueError, match="different numbers of examples"):
        split_batch(torch.zeros(8, 2), torch.zeros(6), 2)
    with pytest.raises(ValueError, match="micro_batches must be >= 1"):
        split_batch(torch.zeros(8, 2), torch.zeros(8), 0)


# --- memory ----------------------------------------------------------------------------------------


def test_saved_tensor_meter_counts_activations_not_parameters() -> None:
    lin = nn.Linear(100, 10)
    x = torch.randn(8, 100, requires_grad=True)
    with memory.SavedTensorMeter(lin) as meter:
        torch.relu(lin(x))
    assert meter.bytes == 8 * 100 * 4 + 8 * 10 * 4  # the input of the matmul, relu's output; not the weight
    with memory.SavedTensorMeter() as everything:  # without a model: the weight counts too
        torch.relu(lin(x))
    assert everything.bytes == meter.bytes + 100 * 10 * 4
    with memory.SavedTensorMeter(lin) as half, torch.autocast("cpu", dtype=torch.bfloat16):
        torch.relu(lin(x))
    # bfloat16 input and output, plus the bfloat16 copy of the weight that autocast made (it lives until backward)
    assert half.bytes == 8 * 100 * 2 + 8 * 10 * 2 + 100 * 10 * 2


def test_checkpointing_saves_less_and_keeps_gradients() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 20, (4, 16), generator=gen), torch.randint(0, 20, (4, 16), generator=gen)
    out = memory.checkpoint_comparison(tiny_gpt, x, y, lm_loss, steps=2)
    assert out["checkpointed"]["saved_mb"] < 0.6 * out["plain"]["saved_mb"]
    assert out["checkpointed"]["max_grad_difference"] < 1e-6
    assert out["plain"]["peak_mb"] is None  # no allocator peak on a CPU
    model = tiny_gpt()
    memory.checkpoint_blocks(model.layers)
    assert all(isinstance(b, memory.Checkpointed) for b in model.layers)
    with torch.no_grad():
        assert model(x).shape == (4, 16, 20)


def test_state_bytes_counts_parameters_gradients_and_adamw_state() -> None:
    model = nn.Linear(10, 5)
    opt = torch.optim.AdamW(model.parameters())
    n = 10 * 5 + 5
    assert memory.state_bytes(model, opt) == {"parameters": 4 * n, "gradients": 0, "optimizer": 0}
    model(torch.randn(3, 10)).sum().backward()
    opt.step()
    sizes = memory.state_bytes(model, opt)
    assert sizes["gradients"] == 4 * n
    assert sizes["optimizer"] == 2 * 4 * n + 2 * 4  # exp_avg, exp_avg_sq, and one float32 step per parameter


# --- precision -------------------------------------------------------------------------------------


def test_supported_and_contexts_on_cpu() -> None:
    ok, why = precision.supported("tf32", "cpu")
    assert not ok and why.startswith("tf32: CUDA only")
    assert precision.supported("bf16-mixed", "cpu") == (True, "")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision.supported("fp8", "cpu")
    lin = nn.Linear(4, 4)
    for name, dtype in (("fp32", torch.float32), ("bf16-mixed", torch.bfloat16), ("fp16-mixed", torch.float16)):
        with precision.precision_context(name, "cpu"):
            assert lin(torch.randn(2, 4)).dtype == dtype
    with pytest.raises(RuntimeError, match="tf32: CUDA only"), precision.precision_context("tf32", "cpu"):
        pass


def test_underflow_fraction() -> None:
    values = torch.tensor([1e-9, 1e-8, 1e-3, 0.0, 1.0])
    assert precision.underflow_fraction(values) == 0.5  # 1e-9 and 1e-8 of the four non-zero
    assert precision.underflow_fraction(values, scale=65536.0) == 0.0
    assert precision.underflow_fraction(values, torch.bfloat16) == 0.0
    assert precision.underflow_fraction(torch.zeros(3)) == 0.0
    assert 5e-8 < precision.FP16_TINY < 7e-8 and torch.tensor(precision.FP16_TINY).half().item() > 0


def test_train_with_precision_measures_and_bf16_true_halves_the_state() -> None:
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 20, (4, 16), generator=gen), torch.randint(0, 20, (4, 16), generator=gen)
    task = precision.Task(
        "tiny", lambda: tiny_gpt(), lambda step: (x, y), lm_loss, lambda model, ctx: {"val_loss": 1.0}, lr=1e-2
    )
    runs = {
        p: precision.train_with_precision(task, p, steps=4, device="cpu") for p in ("fp32", "bf16-true", "fp16-mixed")
    }
    for r in runs.values():
        assert r.step_ms > 0 and r.saved_mb > 0 and r.peak_memory_mb is None and r.last_loss < r.first_loss
    assert runs["bf16-true"].state_mb == pytest.approx(runs["fp32"].state_mb / 2, rel=0.01)
    assert runs["fp16-mixed"].grad_scale is not None
    with pytest.raises(ValueError, match="must exceed warmup"):
        precision.train_with_precision(task, "fp32", steps=2, device="cpu")


def test_fp16_activation_gradients_underflow_without_a_scale() -> None:
    model = tiny_gpt()
    x = torch.randint(0, 20, (2, 16))
    tiny_loss = lambda logits, y: lm_loss(logits, y) * 1e-6
    ctx = precision.precision_context("fp16-mixed", "cpu")
    plain = activation_zero_share(precision.activation_gradients(model, x, x, tiny_loss, context=ctx))
    ctx = precision.precision_context("fp16-mixed", "cpu")
    scaled = activation_zero_share(precision.activation_gradients(model, x, x, tiny_loss, context=ctx, scale=65536.0))
    assert plain > scaled
    assert all(p.grad is None for p in model.parameters())  # left as they were


def activation_zero_share(grads: list[torch.Tensor]) -> float:
    assert grads and grads[0].dtype == torch.float16
    return torch.cat([g.float().flatten() for g in grads]).eq(0).float().mean().item()


# --- compile ---------------------------------------------------------------------------------------


def test_compile_failure_falls_back_with_one_line(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore details")

    monkeypatch.setattr(torch, "compile", broken)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 20, (2, 16), generator=gen)
    r = compiled.time_compile(tiny_gpt, lambda i: (x, x), lm_loss, steps=2, device="cpu")
    assert r.error == "RuntimeError: no C++ compiler found" and r.compiled_ms is None and r.speedup is None
    assert r.eager_ms > 0


# --- data parallel, 2 processes on the CPU ---------------------------------------------------------


def test_ddp_and_fsdp_on_two_cpu_processes_equal_one_process_on_the_global_batch(tmp_path) -> None:
    """torchrun starts 2 gloo ranks (a subprocess; loopback only): every mode's ranks end with identical
    weights, equal to a single process on the global batch; FSDP holds half the state per rank."""
    problem = distributed.make_problem(
        tmp_path / "problem.pt",
        steps=3,
        global_batch=8,
        context_length=16,
        n_layers=1,
        dim=16,
        n_heads=2,
        corpus_chars=20_000,
    )
    reference = distributed.reference_run(problem)
    modes = ("torch-ddp", "fsdp", "fabric-ddp", "lightning-ddp", "fabric-fsdp2", "lightning-fsdp2", "lightning-fsdp")
    result = distributed.launch(tmp_path / "problem.pt", tmp_path / "out", modes=modes, nproc=2, timeout=240)
    for mode in modes[:6]:
        assert result.ok(mode), f"{mode}: {result.error(mode)}\n{result.log[-2000:]}"
        a, b = result.states[mode]
        assert distributed.compare(a, b) == 0.0, f"{mode}: the ranks disagree"
        assert distributed.compare(a, reference) < 1e-5, f"{mode}: not the single-process result"
        assert [r["world_size"] for r in result.reports[mode]] == [2, 2]
    ddp, fsdp = result.reports["torch-ddp"][0], result.reports["fsdp"][0]
    assert fsdp["state_mb"] == pytest.approx(ddp["state_mb"] / 2, rel=0.05)
    for mode in ("fabric-fsdp2", "lightning-fsdp2"):
        assert result.reports[mode][0]["state_mb"] == pytest.approx(fsdp["state_mb"], rel=1e-6)
    # Lightning's FSDP strategy needs a GPU: on the CPU its error is reported, not hidden
    assert not result.ok("lightning-fsdp") and "GPU" in result.error("lightning-fsdp")


def test_compare_and_launch_refuse_bad_input(tmp_path) -> None:
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="differ in keys"):
        distributed.compare(a, {"v": torch.zeros(2)})
    with pytest.raises(ValueError, match="differ in shapes"):
        distributed.compare(a, {"w": torch.zeros(3)})
    with pytest.raises(ValueError, match="unknown mode"):
        distributed.launch(tmp_path / "p.pt", tmp_path, modes=("horovod",))
    gpus = torch.cuda.device_count()  # a rank per GPU: one rank more than there are GPUs is refused before torchrun
    with pytest.raises(ValueError, match=rf"{gpus + 1} ranks on CUDA need {gpus + 1} GPUs .* has {gpus}"):
        distributed.launch(tmp_path / "p.pt", tmp_path, modes=("torch-ddp",), nproc=gpus + 1, device="cuda")
    assert 0 < distributed.free_port() < 65536


def test_a_rank_that_fails_at_start_is_named_in_the_first_line(tmp_path) -> None:
    """When no rank writes a report, the error's first line carries the rank's own exception, not the end of
    torchrun's log (a row of '=')."""
    with pytest.raises(RuntimeError) as caught:
        distributed.launch(tmp_path / "missing.pt", tmp_path / "out", modes=("torch-ddp",), nproc=1, timeout=120)
    first = str(caught.value).splitlines()[0]
    assert first.startswith("torchrun failed (exit 1): FileNotFoundError") and "missing.pt" in first, first


def test_cli_bench_fast_training_suite_records_with_provenance(tmp_path, monkeypatch, capsys) -> None:
    import json

    from dlfund.course import cli, manifest
    from dlfund.course.bench import fast_training as speed
    from dlfund.course.bench.common import Row

    rows = [
        Row("precision: GPT", "bf16-mixed", "step ms", 5.0, 10.0, 0.5, "val_loss 3.1"),
        Row("precision: GPT", "tf32", "step ms", math.nan, math.nan, math.nan, "tf32: CUDA only"),
    ]
    monkeypatch.setattr(speed, "run", lambda tier, device: rows)
    monkeypatch.setattr(manifest, "RESULTS_DIR", tmp_path)
    assert cli.main(["bench", "--suite", "fast-training", "--record"]) == 0
    out = capsys.readouterr().out
    assert "precision: GPT" in out and "pending" not in out and "recorded" in out
    payload = json.loads((tmp_path / "benchmarks" / "fast-training.smoke.json").read_text())
    assert payload["provenance"]["tier"] == "smoke" and payload["provenance"]["device_type"] == "cpu"
    assert payload["rows"][0]["ratio"] == 0.5 and payload["rows"][1]["ours"] is None


def test_batch_size_finder_and_memory_bench_rows(tmp_path) -> None:
    """Lightning's finder doubles up to max_trials on a CPU; the bench's memory rows measure what they say."""
    from dlfund.course.bench import fast_training as speed
    from dlfund.course.settings import override

    tokens = torch.randint(0, 20, (2_000,))
    found = memory.find_batch_size(
        lambda: tiny_gpt(), tokens, context_length=16, init=2, max_trials=3, device="cpu", root_dir=str(tmp_path)
    )
    assert found == 8  # 2, 4, 8: three sizes ran, none ran out of memory
    sizes = override(
        speed._sizes("smoke"),
        {
            "gpt": {"layers": 1, "dim": 16, "heads": 2, "context": 16},
            "accum": {"batch": 8, "micro": 2},
            "finder": {"init_batch": 2, "max_trials": 2},
            "checkpointing": {"layers": 2, "dim": 16, "context": 16, "batch": 2, "steps": 1},
            "corpus_chars": 20_000,
        },
    )
    rows = {(r.benchmark, r.metric): r for r in speed.bench_memory(sizes, torch.device("cpu"))}
    accumulation = rows["gradient accumulation", "saved MB"]
    assert accumulation.ours < accumulation.reference and "gradient difference" in accumulation.note
    assert rows["batch-size finder (Lightning)", "batch"].ours == 4
    assert rows["activation checkpointing", "saved MB"].ratio < 1
