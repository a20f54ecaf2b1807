"""The unit-03 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from check_helpers import mistake_cases, rejects, rejects_named, solution

from dlfund.autograd import Value
from dlfund.checks import unit03
from dlfund.course import manifest

UNIT = manifest.get_unit(3)
SEEDS = [0, 1]


# --- ex01: backward of div and sigmoid ----------------------------------------------------------


def div_variant(mistake: str = ""):
    """A learner's div with one typical mistake in its backward switched on."""

    def div(a, b):
        b = b if isinstance(b, Value) else Value(b)
        out = Value(a.data / b.data, () if mistake == "no children" else (a, b), "/")

        def _backward():
            g = 1.0 if mistake == "no out.grad" else out.grad
            da, db = g / b.data, -g * a.data / b.data**2
            if mistake == "sign":
                db = -db
            if mistake == "swapped":
                da, db = db, da
            if mistake == "overwrite":
                a.grad = da
                b.grad = db
            else:
                a.grad += da
                b.grad += db

        if mistake != "not attached":
            out._backward = _backward
        return out

    return div


def sigmoid_variant(mistake: str = ""):
    def sigmoid(a):
        s = 1 / (1 + math.exp(-a.data))
        out = Value(s + (0.1 if mistake == "forward" else 0.0), (a,), "σ")

        def _backward():
            g = 1.0 if mistake == "no out.grad" else out.grad
            local = a.data * (1 - a.data) if mistake == "input" else s * (1 - s)
            if mistake == "overwrite":
                a.grad = local * g
            else:
                a.grad += local * g

        out._backward = _backward
        return out

    return sigmoid


@pytest.mark.parametrize("seed", SEEDS)
def test_backward_ops_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit03.backward_ops(*solution(3, "ex01-backward-ops", "div", "sigmoid"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ backward ops")


def test_backward_ops_accepts_fresh_inputs_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    unit03.backward_ops(div_variant(), sigmoid_variant())
    assert "✓" in capsys.readouterr().out


def with_stub_backward(op: Any) -> Any:
    """The solution's forward with the generated exercise's _backward: it raises."""

    def stubbed(*inputs: Any) -> Value:
        out = op(*inputs)

        def _backward() -> None:
            raise NotImplementedError("write this backward")

        out._backward = _backward
        return out

    return stubbed


def test_backward_ops_rejects_stubs() -> None:
    div, sigmoid = solution(3, "ex01-backward-ops", "div", "sigmoid")
    rejects(
        unit03.backward_ops,
        with_stub_backward(div),
        sigmoid,
        match=r"_backward of div\(a, b\).*is not implemented yet.*write this backward",
    )
    rejects(
        unit03.backward_ops,
        div,
        with_stub_backward(sigmoid),
        match=r"_backward of sigmoid\(a\).*is not implemented yet",
    )


def _div_overwrite_only_when_shared(a, b):
    """Even a learner who passes the single-node tests by luck is caught where x is used twice."""
    out = Value(a.data / b.data, (a, b), "/")

    def _backward():
        da, db = out.grad / b.data, -out.grad * a.data / b.data**2
        if a is b:  # overwrites exactly in div(x, x)
            a.grad = da
            a.grad = db
        else:
            a.grad += da
            b.grad += db

    out._backward = _backward
    return out


BACKWARD_MISTAKES = {
    "div: gradients overwritten": (
        (div_variant("overwrite"), sigmoid_variant()),
        r"div\(a, b\).*a\.grad was overwritten.*use \+=, not =.*accumulate, don't overwrite",
    ),
    "sigmoid: gradient overwritten": (
        (div_variant(), sigmoid_variant("overwrite")),
        r"sigmoid\(a\).*a\.grad was overwritten.*use \+=, not =",
    ),
    "div: overwritten only where x is used twice": (
        (_div_overwrite_only_when_shared, sigmoid_variant()),
        r"div\(x, x\).*∂f/∂x should be .*torch.autograd; central differences.*x is used twice.*use \+=",
    ),
    "div: out.grad missing": (
        (div_variant("no out.grad"), sigmoid_variant()),
        r"div.*did not include out\.grad.*Chain rule",
    ),
    "sigmoid: out.grad missing": (
        (div_variant(), sigmoid_variant("no out.grad")),
        r"sigmoid.*did not include out\.grad",
    ),
    "div: sign of b's gradient": ((div_variant("sign"), sigmoid_variant()), r"b\.grad should grow by .*\(the sign"),
    "div: gradients swapped": ((div_variant("swapped"), sigmoid_variant()), r"received each other's gradients"),
    "sigmoid: derivative written with the input": (
        (div_variant(), sigmoid_variant("input")),
        r"σ'\(a\) = σ\(a\)\(1 - σ\(a\)\) is written with the output",
    ),
    "div: no children recorded": (
        (div_variant("no children"), sigmoid_variant()),
        r"must record its inputs as children",
    ),
    "div: backward not attached": (
        (div_variant("not attached"), sigmoid_variant()),
        r"changed neither a\.grad nor b\.grad.*out\._backward = _backward",
    ),
    "sigmoid: wrong forward": ((div_variant(), sigmoid_variant("forward")), r"forward value should be σ\(a\)"),
    "div: returns a float": (
        (lambda a, b: a.data / b.data, sigmoid_variant()),
        r"should return a dlfund.autograd.Value, found float",
    ),
}


# --- ex02: standardisation ----------------------------------------------------------------------


def fit_variant(mistake: str = ""):
    def fit_standardiser(X):
        mean = X.mean(dim=1 if mistake == "axis" else 0)
        if mistake == "in place":
            X -= mean  # centres the caller's tensor
            mean = mean.clone()
        std = X.std(dim=0, correction=1 if mistake == "sample" else 0)
        if mistake == "variance":
            std = std**2
        if mistake != "zeros":
            std = torch.where(std == 0, torch.ones_like(std), std)
        if mistake == "float64":
            return mean.double(), std.double()
        if mistake == "keepdim":
            return mean[None], std
        return mean, std

    return fit_standardiser


def apply_variant(mistake: str = ""):
    def standardise(X, mean, std):
        if mistake == "in place":
            X -= mean
            X /= std
            return X
        if mistake == "own statistics":
            return (X - X.mean(dim=0)) / torch.where(X.std(dim=0, correction=0) == 0, 1.0, X.std(dim=0, correction=0))
        if mistake == "no division":
            return X - mean
        if mistake == "no centring":
            return X / std
        if mistake == "times std":
            return (X - mean) * std
        return (X - mean) / std

    return standardise


def split_variant(mistake: str = ""):
    fit, apply = fit_variant(), apply_variant()

    def standardise_split(X_train, X_test):
        if mistake == "all data":
            stats = fit(torch.cat([X_train, X_test]))
            return apply(X_train, *stats), apply(X_test, *stats)
        if mistake == "test on its own":
            return apply(X_train, *fit(X_train)), apply(X_test, *fit(X_test))
        if mistake == "fit on test":
            stats = fit(X_test)
            return apply(X_train, *stats), apply(X_test, *stats)
        stats = fit(X_train)
        return apply(X_train, *stats), apply(X_test, *stats)

    return standardise_split


def standardise_fns(fit: str = "", apply: str = "", split: str = "") -> tuple[Any, Any, Any]:
    return fit_variant(fit), apply_variant(apply), split_variant(split)


@pytest.mark.parametrize("seed", SEEDS)
def test_standardise_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    fns = solution(3, "ex02-standardise", "fit_standardiser", "standardise", "standardise_split")
    unit03.standardise(*fns, seed=seed)
    assert capsys.readouterr().out.startswith("✓ standardise")


def test_standardise_accepts_fresh_data_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    unit03.standardise(*standardise_fns())
    assert "✓" in capsys.readouterr().out


def test_standardise_rejects_stubs() -> None:
    def stub(*args: Any) -> Any:
        raise NotImplementedError("write this function")

    fit, apply, split = standardise_fns()
    rejects(unit03.standardise, stub, apply, split, match=r"fit_standardiser\(X\).*is not implemented yet")
    rejects(unit03.standardise, fit, stub, split, match=r"standardise\(X, mean, std\).*is not implemented yet")
    rejects(unit03.standardise, fit, apply, stub, match=r"standardise_split.*is not implemented yet")


STANDARDISE_MISTAKES = {
    "statistics of all the data": (
        standardise_fns(split="all data"),
        r"statistics of all the data.*leaks.*training statistics only",
    ),
    "test set standardised on its own": (
        standardise_fns(split="test on its own"),
        r"X_test was standardised with its own mean and std.*training statistics only",
    ),
    "fitted on the test set": (standardise_fns(split="fit on test"), r"fitted on X_test; use training statistics only"),
    "sample standard deviation": (
        standardise_fns(fit="sample"),
        r"sample standard deviation \(dividing by N - 1.*population standard deviation.*correction=0",
    ),
    "variance instead of std": (standardise_fns(fit="variance"), r"this is the variance"),
    "constant column left at std 0": (
        standardise_fns(fit="zeros"),
        r"column \d+ is constant .*NaN or inf.*replace a std of exactly 0 by 1",
    ),
    "mean over the wrong axis": (standardise_fns(fit="axis"), r"mean should have shape \(\d,\).*dim=0"),
    "keepdim=True": (standardise_fns(fit="keepdim"), r"found \(1, \d\): drop keepdim=True"),
    "upcast to float64": (standardise_fns(fit="float64"), r"mean should have dtype torch.float32"),
    "fit changes X in place": (standardise_fns(fit="in place"), r"changed its input X in place"),
    "standardise changes X in place": (standardise_fns(apply="in place"), r"standardise changed its input X in place"),
    "statistics of X itself": (standardise_fns(apply="own statistics"), r"must use the mean and std it is given"),
    "no division": (standardise_fns(apply="no division"), r"not divided by std"),
    "no centring": (standardise_fns(apply="no centring"), r"the mean was not subtracted"),
    "multiplied by std": (standardise_fns(apply="times std"), r"multiplied by std instead of divided"),
}


# --- ex03: a custom autograd Function -----------------------------------------------------------


def huber_variant(mistake: str = ""):
    """A learner's Huber Function with one typical mistake switched on."""

    class Huber(torch.autograd.Function):
        @staticmethod
        def forward(ctx, pred, target, delta):
            r = pred.sub_(target) if mistake == "in-place" else pred - target
            small = r.abs() <= delta
            if mistake == "forward mse":
                losses = 0.5 * r**2
            else:
                losses = torch.where(small, 0.5 * r**2, delta * (r.abs() - 0.5 * delta))
            if mistake == "class state":
                Huber.r, Huber.delta = r, delta
            else:
                ctx.save_for_backward(r)
                ctx.delta = delta
            return losses.sum() if mistake == "forward sum" else losses.mean()

        @staticmethod
        def backward(ctx, grad_output):
            if mistake == "class state":
                r, delta = Huber.r, Huber.delta
            else:
                (r,) = ctx.saved_tensors
                delta = ctx.delta
            clip = 1.0 if mistake == "delta ignored" else delta
            if mistake == "not clipped":
                local = r
            elif mistake == "l1":
                local = delta * r.sign()
            else:
                local = r.clamp(-clip, clip)
            g = local if mistake == "sum" else local / r.numel()
            if mistake != "no grad_output":
                g = g * grad_output
            if mistake == "scalar":
                return g.sum(), -g.sum(), None
            if mistake == "two grads":
                return g, -g
            if mistake == "target none":
                return g, None, None
            if mistake == "target sign":
                return g, g, None
            return g, -g, None

    return Huber


def test_custom_function_accepts_a_right_function(capsys: pytest.CaptureFixture[str]) -> None:
    unit03.custom_function(huber_variant())
    assert capsys.readouterr().out.startswith("✓ Huber")


@pytest.mark.parametrize("seed", SEEDS)
def test_custom_function_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit03.custom_function(solution(3, "ex03-custom-function", "Huber"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ Huber")


def test_custom_function_rejects_the_stub_and_plain_functions() -> None:
    class Stub(torch.autograd.Function):
        @staticmethod
        def forward(ctx, pred, target, delta):
            raise NotImplementedError("write forward")

        @staticmethod
        def backward(ctx, grad_output):
            raise NotImplementedError("write backward")

    rejects(unit03.custom_function, Stub, match=r"Stub.apply.*is not implemented yet")
    rejects(unit03.custom_function, torch.nn.functional.huber_loss, match=r"subclass of torch.autograd.Function")
    rejects(unit03.custom_function, lambda p, t, d: (p - t).abs().mean(), match=r"writing the backward is the exercise")


HUBER_MISTAKES = {
    "grad_output ignored": ((huber_variant("no grad_output"),), r"did not multiply by grad_output"),
    "sum instead of mean in backward": ((huber_variant("sum"),), r"is sum-reduced.*divided by their number"),
    "gradient not clipped": ((huber_variant("not clipped"),), r"mean squared error/2 \(the residual, not clipped\)"),
    "L1 slope everywhere": ((huber_variant("l1"),), r"is ±delta everywhere \(the L1 slope\)"),
    "delta ignored in backward": ((huber_variant("delta ignored"),), r"clips at ±1 instead of ±delta"),
    "wrong sign for target": ((huber_variant("target sign"),), r"gradient of target has the wrong sign"),
    "no gradient for target": ((huber_variant("target none"),), r"no gradient reached target"),
    "scalar gradients": ((huber_variant("scalar"),), r"Each gradient must have the shape of its input"),
    "no None for delta": ((huber_variant("two grads"),), r"one value per input of forward.*None for delta"),
    "residual computed in place": ((huber_variant("in-place"),), r"forward changed pred or target in place"),
    "state kept on the class, not on ctx": ((huber_variant("class state"),), r"gradients belong to a later call"),
    "forward: sum reduction": ((huber_variant("forward sum"),), r"this is the sum; the loss is the mean"),
    "forward: squared error everywhere": ((huber_variant("forward mse"),), r"this is the mean squared error/2"),
}


_CHECKS = {
    "backward_ops": (unit03.backward_ops, BACKWARD_MISTAKES),
    "standardise": (unit03.standardise, STANDARDISE_MISTAKES),
    "custom_function": (unit03.custom_function, HUBER_MISTAKES),
}
_CASES = mistake_cases(_CHECKS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("check", "name"), _CASES)
def test_named_mistake_rejected(check: str, name: str, seed: int) -> None:
    rejects_named(_CHECKS, check, name, seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("check", "name"), _CASES)
def test_named_mistake_rejected_on_many_seeds(check: str, name: str) -> None:
    for seed in range(50):
        rejects_named(_CHECKS, check, name, seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(200))
def test_solutions_pass_on_many_seeds(seed: int) -> None:
    unit03.backward_ops(*solution(3, "ex01-backward-ops", "div", "sigmoid"), seed=seed)
    fns = solution(3, "ex02-standardise", "fit_standardiser", "standardise", "standardise_split")
    unit03.standardise(*fns, seed=seed)
    unit03.custom_function(solution(3, "ex03-custom-function", "Huber"), seed=seed)
