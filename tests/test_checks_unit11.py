"""The unit-11 checks accept the committed solutions and the library, and reject stubs and typical wrong answers."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import unit11
from dlfund.perf.precision import Task
from dlfund.train.accumulate import accumulation_step, split_batch

# --- ex01: gradient accumulation -------------------------------------------------------------------


def library_accumulate(model, loss_fn, optimizer, x, y, micro_batches):
    accumulation_step(model, loss_fn, optimizer, split_batch(x, y, micro_batches))


def accumulate_variant(kind: str):
    """A learner's accumulate with one typical mistake."""

    def accumulate(model, loss_fn, optimizer, x, y, k):
        if kind not in ("no_zero", "no_zero_no_divide", "zero_each", "zero_each_no_divide"):
            optimizer.zero_grad()
        if kind == "whole_batch":  # no micro-batches at all
            loss_fn(model(x), y).backward()
            optimizer.step()
            return
        for xs, ys in zip(x.chunk(k), y.chunk(k)):
            if kind in ("zero_each", "zero_each_no_divide"):
                optimizer.zero_grad()
            loss = loss_fn(model(xs), ys)
            if kind not in ("no_divide", "zero_each_no_divide", "no_zero_no_divide"):
                loss = loss / k
            loss.backward()
            if kind == "step_each":
                optimizer.step()
        if kind != "step_each":
            optimizer.step()

    if kind == "no_step":

        def no_step(model, loss_fn, optimizer, x, y, k):
            optimizer.zero_grad()
            for xs, ys in zip(x.chunk(k), y.chunk(k)):
                (loss_fn(model(xs), ys) / k).backward()

        return no_step
    if kind == "half_data":

        def half(model, loss_fn, optimizer, x, y, k):
            optimizer.zero_grad()
            for xs, ys in list(zip(x.chunk(k), y.chunk(k)))[:-1]:
                (loss_fn(model(xs), ys) / k).backward()
            optimizer.step()

        return half
    return accumulate


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accumulation_accepts_solution_and_library(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit11.accumulation(solution(11, "ex01-gradient-accumulation", "accumulate"), seed=seed)
    unit11.accumulation(library_accumulate, seed=seed + 10)
    assert capsys.readouterr().out.startswith("✓ gradient accumulation")


def test_accumulation_rejects_stub() -> None:
    rejects(unit11.accumulation, stub, match=r"is not implemented yet")


ACCUMULATION_MISTAKES = [
    ("no_divide", r"the gradient is \d× the large batch's: divide each micro-batch's loss by the number of micro"),
    ("zero_each", r"only the last micro-batch's gradient reached the step: zero the gradients once per step"),
    ("zero_each_no_divide", r"only the last micro-batch's gradient .*and it was not divided"),
    ("no_zero", r"gradients left in .grad from before the call: call optimizer.zero_grad\(\) once"),
    ("no_zero_no_divide", r"left in .grad from before the call, and the gradient is \d× too large"),
    ("step_each", r"called optimizer.step\(\) \d times: accumulate"),
    ("whole_batch", r"ran the model on \d+ examples at once: split the batch"),
    ("no_step", r"never called optimizer.step\(\)"),
    ("half_data", r"the model saw \d+ examples in total, the batch has \d+"),
]


@pytest.mark.seeds
def test_accumulation_rejects_typical_mistakes_on_every_seed() -> None:
    for seed in range(50):
        for kind, match in ACCUMULATION_MISTAKES:
            rejects(unit11.accumulation, accumulate_variant(kind), match=match, seed=seed)


@pytest.mark.seeds
def test_accumulation_solution_passes_on_every_seed() -> None:
    accumulate = solution(11, "ex01-gradient-accumulation", "accumulate")
    for seed in range(200):
        unit11.accumulation(accumulate, seed=seed)


@pytest.mark.parametrize(("kind", "match"), ACCUMULATION_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_accumulation_rejects_typical_mistakes(kind: str, match: str, seed: int) -> None:
    rejects(unit11.accumulation, accumulate_variant(kind), match=match, seed=seed)


# --- ex02: precision table -------------------------------------------------------------------------


def tiny_task() -> Task:
    """A small MLP on random data: fast enough to run every CPU precision in a test."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 32, generator=gen)
    y = torch.randint(0, 4, (64,), generator=gen)
    xv = torch.randn(64, 32, generator=gen)
    yv = torch.randint(0, 4, (64,), generator=gen)

    def evaluate(model, context):
        p = next(model.parameters())
        with context():
            return {"val_loss": nn.functional.cross_entropy(model(xv.to(p.dtype)).float(), yv).item()}

    return Task(
        name="tiny MLP",
        make_model=lambda: nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4)),
        batch=lambda step: (x[(step % 4) * 16 : (step % 4 + 1) * 16], y[(step % 4) * 16 : (step % 4 + 1) * 16]),
        loss=lambda out, t: nn.functional.cross_entropy(out.float(), t),
        evaluate=evaluate,
        lr=1e-2,
        float_inputs=True,
    )


@pytest.fixture(scope="module")
def measured_table() -> dict:
    study = solution(11, "ex02-precision-study", "study")
    return study(tiny_task(), torch.device("cpu"), 6, 0)  # prints "tf32: CUDA only ..." and skips it


def test_precision_table_accepts_the_solutions_measurements(measured_table: dict, capsys) -> None:
    assert set(measured_table) == {"fp32", "fp16-mixed", "bf16-mixed", "bf16-true"}
    unit11.precision_table(measured_table, "cpu")
    assert capsys.readouterr().out.startswith("✓ precision table")


def good_table() -> dict:
    return {
        "fp32": {"step_ms": 10.0, "activation_mb": 8.0, "state_mb": 2.0, "val_loss": 3.0},
        "fp16-mixed": {"step_ms": 30.0, "activation_mb": 5.0, "state_mb": 2.0, "val_loss": 3.01},
        "bf16-mixed": {"step_ms": 20.0, "activation_mb": 5.0, "state_mb": 2.0, "val_loss": 3.0},
        "bf16-true": {"step_ms": 20.0, "activation_mb": 4.5, "state_mb": 1.0, "val_loss": 3.05},
    }


def test_precision_table_accepts_a_plausible_table(capsys) -> None:
    unit11.precision_table(good_table(), "cpu")
    assert "4 runs on cpu" in capsys.readouterr().out


def broken(kind: str) -> dict:
    t = good_table()
    if kind == "missing":
        del t["fp16-mixed"]
    elif kind == "nan":
        t["bf16-true"]["val_loss"] = math.nan
    elif kind == "negative":
        t["fp32"]["step_ms"] = -1.0
    elif kind == "faked_tf32":
        t["tf32"] = dict(t["fp32"])
    elif kind == "swapped":  # activation and state columns exchanged
        for row in t.values():
            row["activation_mb"], row["state_mb"] = row["state_mb"], row["activation_mb"]
    elif kind == "not_converted":  # bf16-true run with float32 weights
        t["bf16-true"]["state_mb"] = t["fp32"]["state_mb"]
    elif kind == "no_autocast":
        t["bf16-mixed"]["activation_mb"] = t["fp32"]["activation_mb"]
    elif kind == "diverged":
        t["fp16-mixed"]["val_loss"] = 4.5
    elif kind == "unknown":
        t["fp8"] = dict(t["fp32"])
    elif kind == "missing_column":
        del t["bf16-mixed"]["val_loss"]
    elif kind == "seconds":  # step time in seconds, not milliseconds
        for row in t.values():
            row["step_ms"] /= 1000
    elif kind == "renamed":  # a field under another name
        for row in t.values():
            row["loss"] = row.pop("val_loss")
            row["val_loss"] = row["loss"]
    elif kind == "not_a_dict":
        return [("fp32", 1.0)]  # type: ignore[return-value]
    return t


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("missing", r"missing runs: fp16-mixed"),
        ("nan", r"\['bf16-true'\]\['val_loss'\] = nan: .*NaN or inf"),
        ("negative", r"\['fp32'\]\['step_ms'\] = -1.0: every measurement must be a finite positive number"),
        ("faked_tf32", r"tf32 has numbers, but tf32: CUDA only.*never fake"),
        ("swapped", r"activation memory: bf16-mixed .*columns swapped|state memory: .*columns swapped"),
        ("not_converted", r"state memory: bf16-true .*model.to\(torch.bfloat16\)"),
        ("no_autocast", r"activation memory: bf16-mixed .* is not below fp32's"),
        ("diverged", r"fp16-mixed: validation loss 4.5 differs from fp32's 3 by 50%"),
        ("unknown", r"unknown precision\(s\) \['fp8'\]"),
        ("missing_column", r"table\['bf16-mixed'\] lacks val_loss"),
        ("not_a_dict", r"should be a dict precision -> row"),
        ("seconds", r"\['step_ms'\] = 0.01: .*is it in seconds\? report milliseconds"),
        ("renamed", r"has field\(s\) \['loss'\] besides step_ms"),
    ],
)
def test_precision_table_rejects_wrong_tables(kind: str, match: str) -> None:
    rejects(unit11.precision_table, broken(kind), match=match)


def test_precision_study_runs_the_learners_function(capsys) -> None:
    study = solution(11, "ex02-precision-study", "study")
    table = unit11.precision_study(study, tiny_task(), "cpu", 6, 0)
    assert set(table) == {"fp32", "fp16-mixed", "bf16-mixed", "bf16-true"}
    assert "✓ precision table" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("stub", r"study\(task, 'cpu', steps=6, seed=0\) is not implemented yet"),
        ("none", r"returned None: return the table"),
        ("missing", r"missing runs: fp16-mixed"),
        ("faked_tf32", r"never fake"),
    ],
)
def test_precision_study_rejects_stub_and_wrong_tables(kind: str, match: str) -> None:
    def study(task, device, steps, seed):
        if kind == "stub":
            return stub()
        return None if kind == "none" else broken(kind)

    with pytest.raises(unit11.CheckFailed, match=match):
        unit11.precision_study(study, tiny_task(), "cpu", 6, 0)


def study_variant(kind: str):
    """The solution's study, with one mistake in the units of what it reports."""
    right = solution(11, "ex02-precision-study", "study")

    def study(task, device, steps, seed):
        table = right(task, device, steps, seed)
        for row in table.values():
            if row is None:
                continue
            if kind == "bytes":
                row["state_mb"] *= 2**20
                row["activation_mb"] *= 2**20
            elif kind == "kb":
                row["state_mb"] *= 1024
            elif kind == "total_ms":
                row["step_ms"] *= steps * 50
            elif kind == "weights_only":
                row["state_mb"] /= 4
        return table

    return study


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("bytes", r"fp32's state_mb is .*it looks like bytes: divide by 2\*\*20"),
        ("kb", r"it looks like KB"),
        ("total_ms", r"step times add up to .*milliseconds per step"),
        ("weights_only", r"count the weights, their gradients and AdamW's two moments"),
    ],
)
def test_precision_study_rejects_wrong_units(kind: str, match: str) -> None:
    with pytest.raises(unit11.CheckFailed, match=match):
        unit11.precision_study(study_variant(kind), tiny_task(), "cpu", 3, 0)


# --- ex03: dynamic loss scaling --------------------------------------------------------------------


def scaler_variant(**mistake: bool):
    """A learner's loss scaler; each keyword switches on one typical mistake."""
    m = mistake

    class Scaler:
        def __init__(self, init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5, growth_interval=2000):
            self.factor = init_scale
            self.growth = 2.0 if m.get("growth_two") else growth_factor
            self.backoff = 0.5 if m.get("backoff_half") else 1.0 if m.get("no_backoff") else backoff_factor
            self.interval = growth_interval
            self.start = 1 if m.get("count_from_one") else 0
            self.clean = self.start
            self.loss = None

        def scale(self, loss):
            self.loss = loss
            if m.get("not_multiplied"):
                return loss
            if m.get("item"):
                return float(loss * self.factor)
            return loss * self.factor

        def step(self, optimizer):
            params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
            if m.get("loss_only"):
                bad = not torch.isfinite(self.loss).all()
            elif m.get("first_only"):
                bad = not torch.isfinite(params[0].grad).all()
            elif m.get("isinf_only"):
                bad = any(torch.isinf(p.grad).any() for p in params)
            else:
                bad = not all(torch.isfinite(p.grad).all() for p in params)
            if m.get("count_overflow"):
                self.clean += 1
            if bad:
                self.factor *= self.backoff
                if not (m.get("no_reset_on_backoff") or m.get("count_overflow")):
                    self.clean = self.start
                if not m.get("no_skip"):
                    return
            if not m.get("no_unscale"):
                for p in params:
                    p.grad.div_(self.factor)
            optimizer.step()
            if bad:
                return
            if not m.get("count_overflow"):
                self.clean += 1
            if m.get("no_reset_on_growth"):
                if self.clean >= self.interval:
                    self.factor *= self.growth
            elif self.clean == self.interval + (1 if m.get("late") else 0):
                self.factor *= self.growth
                self.clean = self.start

    return Scaler


def test_loss_scaler_variant_without_mistakes_passes() -> None:
    unit11.loss_scaler(scaler_variant(), seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_scaler_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit11.loss_scaler(solution(11, "ex03-loss-scaler", "LossScaler"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ loss scaler")


def test_loss_scaler_rejects_stub() -> None:
    rejects(unit11.loss_scaler, stub, match=r"is not implemented yet")


def test_loss_scaler_rejects_torch_grad_scaler() -> None:
    class Wrapped:  # GradScaler behind the exercise's interface
        def __init__(self, **kwargs):
            self.inner = torch.amp.GradScaler("cpu", **kwargs)

        def scale(self, loss):
            return self.inner.scale(loss)

        def step(self, optimizer):
            self.inner.step(optimizer)
            self.inner.update()

    with pytest.warns(UserWarning, match="CUDA is not available"):
        rejects(unit11.loss_scaler, torch.amp.GradScaler, match=r"library's own torch.amp.GradScaler")
    rejects(unit11.loss_scaler, Wrapped, match=r"library's own torch.amp.GradScaler")


LOSS_SCALER_MISTAKES = [
    ({"no_skip": True}, r"the factor backed off, but optimizer.step\(\) still ran"),
    ({"no_unscale": True}, r"the update is \d+× too large: the gradients still carry the factor"),
    ({"loss_only": True}, r"inf in the gradients went unnoticed while the loss was finite: look at the gradients"),
    ({"first_only": True}, r"inf in the last parameter's gradient went unnoticed: look at the gradient of every"),
    ({"isinf_only": True}, r"a NaN gradient went unnoticed: torch.isinf\(nan\) is False"),
    ({"count_overflow": True}, r"counts the overflow step as a clean step"),
    ({"no_reset_on_backoff": True}, r"does not restart the count of clean steps after a backoff"),
    ({"no_reset_on_growth": True}, r"does not restart the count after growing"),
    ({"late": True}, r"grows after \d clean steps, one too late"),
    ({"count_from_one": True}, r"grows after \d clean steps, one too early"),
    ({"growth_two": True}, r"grows the factor by 2 instead of growth_factor"),
    ({"backoff_half": True}, r"backs off by 0.5 instead of backoff_factor"),
    ({"no_backoff": True}, r"does not back off the factor on an overflow step"),
    ({"not_multiplied": True}, r"scale\(loss\) multiplies the loss by 1 before any step: start at init_scale"),
    ({"item": True}, r"should return a tensor, the loss × the factor, still attached to the graph"),
]


@pytest.mark.parametrize(("mistake", "match"), LOSS_SCALER_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_loss_scaler_rejects_typical_mistakes(mistake: dict, match: str, seed: int) -> None:
    rejects(unit11.loss_scaler, scaler_variant(**mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_loss_scaler_rejects_typical_mistakes_on_every_seed() -> None:
    for seed in range(50):
        for mistake, match in LOSS_SCALER_MISTAKES:
            rejects(unit11.loss_scaler, scaler_variant(**mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_loss_scaler_solution_passes_on_every_seed() -> None:
    scaler = solution(11, "ex03-loss-scaler", "LossScaler")
    for seed in range(200):
        unit11.loss_scaler(scaler, seed=seed)
