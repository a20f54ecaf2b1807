"""The unit-03 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from check_helpers import rejects, solution

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


@pytest.mark.parametrize("seed", SEEDS)
def test_backward_ops_rejects_overwritten_gradients(seed: int) -> None:
    message = rejects(
        unit03.backward_ops,
        div_variant("overwrite"),
        sigmoid_variant(),
        seed=seed,
        match=r"div\(a, b\).*a\.grad was overwritten",
    )
    assert "use +=, not =" in message and "accumulate, don't overwrite" in message
    rejects(
        unit03.backward_ops,
        div_variant(),
        sigmoid_variant("overwrite"),
        seed=seed,
        match=r"sigmoid\(a\).*a\.grad was overwritten.*use \+=, not =",
    )


def test_backward_ops_names_overwriting_in_an_expression_with_a_value_used_twice() -> None:
    """Even a learner who passes the single-node tests by luck is caught where x is used twice."""

    def div_overwrite_only_when_shared(a, b):
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

    rejects(
        unit03.backward_ops,
        div_overwrite_only_when_shared,
        sigmoid_variant(),
        match=r"div\(x, x\).*∂f/∂x should be .*torch.autograd; central differences.*x is used twice.*use \+=",
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_backward_ops_rejects_missing_upstream_gradient(seed: int) -> None:
    rejects(
        unit03.backward_ops,
        div_variant("no out.grad"),
        sigmoid_variant(),
        seed=seed,
        match=r"div.*did not include out\.grad.*Chain rule",
    )
    rejects(
        unit03.backward_ops,
        div_variant(),
        sigmoid_variant("no out.grad"),
        seed=seed,
        match=r"sigmoid.*did not include out\.grad",
    )


def test_backward_ops_rejects_wrong_derivatives() -> None:
    rejects(unit03.backward_ops, div_variant("sign"), sigmoid_variant(), match=r"b\.grad should grow by .*\(the sign")
    rejects(unit03.backward_ops, div_variant("swapped"), sigmoid_variant(), match="received each other's gradients")
    rejects(
        unit03.backward_ops,
        div_variant(),
        sigmoid_variant("input"),
        match=r"σ'\(a\) = σ\(a\)\(1 - σ\(a\)\) is written with the output",
    )


def test_backward_ops_rejects_broken_graphs_and_forward() -> None:
    rejects(
        unit03.backward_ops, div_variant("no children"), sigmoid_variant(), match="must record its inputs as children"
    )
    rejects(
        unit03.backward_ops,
        div_variant("not attached"),
        sigmoid_variant(),
        match=r"changed neither a\.grad nor b\.grad.*out\._backward = _backward",
    )
    rejects(unit03.backward_ops, div_variant(), sigmoid_variant("forward"), match=r"forward value should be σ\(a\)")
    rejects(
        unit03.backward_ops,
        lambda a, b: a.data / b.data,
        sigmoid_variant(),
        match="should return a dlfund.autograd.Value, found float",
    )


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


@pytest.mark.parametrize("seed", SEEDS)
def test_standardise_rejects_test_or_all_data_statistics(seed: int) -> None:
    message = rejects(
        unit03.standardise, *standardise_fns(split="all data"), seed=seed, match="statistics of all the data"
    )
    assert "training statistics only" in message and "leaks" in message
    rejects(
        unit03.standardise,
        *standardise_fns(split="test on its own"),
        seed=seed,
        match="X_test was standardised with its own mean and std.*training statistics only",
    )
    rejects(
        unit03.standardise,
        *standardise_fns(split="fit on test"),
        seed=seed,
        match="fitted on X_test; use training statistics only",
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_standardise_rejects_sample_std_and_variance(seed: int) -> None:
    rejects(
        unit03.standardise,
        *standardise_fns(fit="sample"),
        seed=seed,
        match=r"sample standard deviation \(dividing by N - 1.*population standard deviation.*correction=0",
    )
    rejects(unit03.standardise, *standardise_fns(fit="variance"), seed=seed, match="this is the variance")


def test_standardise_rejects_zero_variance_columns_left_at_zero() -> None:
    rejects(
        unit03.standardise,
        *standardise_fns(fit="zeros"),
        match=r"column \d+ is constant .*NaN or inf.*replace a std of exactly 0 by 1",
    )


def test_standardise_rejects_wrong_shapes_dtypes_and_in_place_changes() -> None:
    rejects(unit03.standardise, *standardise_fns(fit="axis"), match=r"mean should have shape \(\d,\).*dim=0")
    rejects(unit03.standardise, *standardise_fns(fit="keepdim"), match=r"found \(1, \d\): drop keepdim=True")
    rejects(unit03.standardise, *standardise_fns(fit="float64"), match=r"mean should have dtype torch.float32")
    rejects(unit03.standardise, *standardise_fns(fit="in place"), match="changed its input X in place")
    rejects(unit03.standardise, *standardise_fns(apply="in place"), match=r"standardise changed its input X in place")


def test_standardise_rejects_wrong_formula() -> None:
    rejects(unit03.standardise, *standardise_fns(apply="own statistics"), match="must use the mean and std it is given")
    rejects(unit03.standardise, *standardise_fns(apply="no division"), match="not divided by std")
