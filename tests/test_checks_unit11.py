"""The unit-11 checks accept the committed solutions and the library, and reject stubs and typical wrong answers."""

from __future__ import annotations

import warnings

import pytest
import torch
from check_helpers import rejects, solution, stub

from dlfund.checks import unit11
from dlfund.perf.precision import underflow_fraction
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


# --- ex02: a precision study, layer by layer ---------------------------------------------------------


def report_variant(**mistake: bool):
    """A learner's layer report (hooks and .backward(), not the solution's autograd.grad); each keyword
    switches on one typical mistake."""
    m = mistake

    def report(model, x, y, loss_fn, scale=1.0):
        if m.get("top_level_only"):
            layers = {n: c for n, c in model.named_children() if list(c.parameters())}
        elif m.get("all_modules"):
            layers = dict(model.named_modules())
        else:
            layers = {n: c for n, c in model.named_modules() if list(c.parameters(recurse=False))}
        fmt = torch.bfloat16 if m.get("bf16_limits") else torch.float16
        top = torch.finfo(fmt).max
        tiny = 2.0**-24 if m.get("subnormal") else torch.finfo(fmt).smallest_normal
        acts, grads, hooks = {}, {}, []
        for name, module in layers.items():

            def forward_hook(_m, inputs, out, name=name):
                acts[name] = (inputs[0] if m.get("input_not_output") else out).detach()
                if not (m.get("grad_input") or m.get("weight_grad")):
                    out.register_hook(lambda g, name=name: grads.__setitem__(name, g))

            hooks.append(module.register_forward_hook(forward_hook))
            if m.get("grad_input"):  # the first layer's input needs no gradient: fall back to its output's
                hooks.append(
                    module.register_full_backward_hook(
                        lambda _m, gi, go, name=name: grads.__setitem__(name, go[0] if gi[0] is None else gi[0])
                    )
                )
        loss = loss_fn(model(x), y)
        with warnings.catch_warnings():  # the backward hook warns that the first layer's input needs no gradient
            warnings.simplefilter("ignore", UserWarning)
            (loss * (1.0 if m.get("no_scale") or m.get("scale_max_only") else scale)).backward()
        if not m.get("hooks_left"):
            for h in hooks:
                h.remove()
        if m.get("weight_grad"):
            grads = {n: layers[n].weight.grad for n in layers}
        if not m.get("grads_left"):
            model.zero_grad(set_to_none=True)
        rows = {}
        for name in layers:
            a, g = acts[name], grads[name]
            over = (a.abs() > top).float()
            if m.get("zeros_counted"):
                under = (g.abs() < tiny).float().mean().item()
            elif m.get("library_share"):
                under = underflow_fraction(g)
            else:
                nonzero = g[g != 0].abs()
                under = (nonzero < tiny).float().mean().item() if nonzero.numel() else 0.0
            g_max = g.max() if m.get("signed_max") else g.abs().max()
            rows[name] = {
                "act_max": (a.max() if m.get("signed_max") else a.abs().max()).item(),
                "act_overflow": (over.sum() if m.get("overflow_count") else over.mean()).item(),
                "grad_max": (g_max * scale if m.get("scale_max_only") else g_max).item(),
                "grad_underflow": under,
            }
        return rows

    return report


LAYER_REPORT_MISTAKES = [
    ({"input_not_output": True}, r"largest value of the layer's input, not of its output"),
    ({"signed_max": True}, r"largest signed value, not the largest magnitude"),
    ({"bf16_limits": True}, r"compare with torch.finfo\(torch.float16\).max"),
    ({"overflow_count": True}, r"a count of values, not a share"),
    ({"grad_input": True}, r"gradient of the layer's input \(grad_input\), not of its output"),
    ({"weight_grad": True}, r"gradient of the layer's weight, not the gradient flowing backward"),
    ({"no_scale": True}, r"'grad_max'\] = .* ignores the loss scale"),
    ({"scale_max_only": True}, r"'grad_underflow'\] = .* ignores the loss scale"),
    ({"zeros_counted": True}, r"counts the exact zeros too"),
    ({"subnormal": True}, r"counts only what becomes 0"),
    ({"library_share": True}, r"counts only what becomes 0"),
    ({"top_level_only": True}, r"only the model's direct children were visited"),
    ({"all_modules": True}, r"which hold no parameters of their own"),
    ({"hooks_left": True}, r"left hooks on"),
    ({"grads_left": True}, r"left gradients in the .grad"),
]


def test_layer_report_variant_without_mistakes_passes(capsys: pytest.CaptureFixture[str]) -> None:
    unit11.layer_report(report_variant(), seed=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_layer_report_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit11.layer_report(solution(11, "ex02-precision-study", "layer_report"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ layer report")


def test_layer_report_rejects_stub_and_malformed_reports() -> None:
    rejects(unit11.layer_report, stub, match=r"is not implemented yet")
    rejects(unit11.layer_report, lambda *a, **k: None, match=r"returned None: return the report")
    rejects(unit11.layer_report, lambda *a, **k: [], match=r"should return a dict layer name -> row")
    right = report_variant()

    def renamed(*args, **kwargs):
        return {n: {"max": r["act_max"]} for n, r in right(*args, **kwargs).items()}

    def text(*args, **kwargs):
        return {n: dict.fromkeys(r, "big") for n, r in right(*args, **kwargs).items()}

    def crashing(*args, **kwargs):
        raise KeyError("embed_positions")

    rejects(unit11.layer_report, renamed, match=r"lacks act_max|lacks act_overflow")
    rejects(unit11.layer_report, text, match=r"every field should be one number")
    rejects(unit11.layer_report, crashing, match=r"raised KeyError")

    def in_half(model, *args, **kwargs):  # measures float16 by converting the model itself
        model.half()
        raise RuntimeError("mat1 and mat2 must have the same dtype")

    def with_a_step(model, *args, **kwargs):
        rows = right(model, *args, **kwargs)
        with torch.no_grad():
            model.head.bias.add_(1.0)
        return rows

    rejects(unit11.layer_report, in_half, match=r"raised RuntimeError")
    rejects(unit11.layer_report, with_a_step, match=r"changed the model \(head.bias\): a report only reads it")


@pytest.mark.parametrize(("mistake", "match"), LAYER_REPORT_MISTAKES)
@pytest.mark.parametrize("seed", range(2))
def test_layer_report_rejects_typical_mistakes(mistake: dict, match: str, seed: int) -> None:
    rejects(unit11.layer_report, report_variant(**mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_layer_report_rejects_typical_mistakes_on_every_seed() -> None:
    for seed in range(50):
        for mistake, match in LAYER_REPORT_MISTAKES:
            rejects(unit11.layer_report, report_variant(**mistake), match=match, seed=seed)


@pytest.mark.seeds
def test_layer_report_solution_passes_on_every_seed() -> None:
    report = solution(11, "ex02-precision-study", "layer_report")
    for seed in range(200):
        unit11.layer_report(report, seed=seed)


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
