"""The unit-02 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution, stub

from dlfund.checks import unit02
from dlfund.course import manifest

UNIT = manifest.get_unit(2)
SEEDS = [0, 1]


# --- ex01: torch.where --------------------------------------------------------------------------

WHERE = ("step", "leaky_relu", "clip")


def right_step(z):
    return torch.where(z > 0, 1, 0)


def right_leaky_relu(x, negative_slope=0.01):
    return torch.where(x > 0, x, negative_slope * x)


def right_clip(x, low, high):
    return torch.where(x < low, low, torch.where(x > high, high, x))


@pytest.mark.parametrize("seed", SEEDS)
def test_torch_where_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit02.torch_where(*solution(2, "ex01-torch-where", *WHERE), seed=seed)
    assert capsys.readouterr().out.startswith("✓ torch.where")


def test_torch_where_accepts_fresh_data_and_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    unit02.torch_where(right_step, right_leaky_relu, right_clip)
    unit02.torch_where(lambda z: (z > 0).long(), F.leaky_relu, torch.clamp)
    assert capsys.readouterr().out.count("✓") == 2


def test_torch_where_rejects_stubs() -> None:
    rejects(unit02.torch_where, stub, right_leaky_relu, right_clip, match=r"step\(z\).*is not implemented yet.*hint")
    rejects(unit02.torch_where, right_step, stub, right_clip, match=r"leaky_relu\(x.*is not implemented yet")
    rejects(unit02.torch_where, right_step, right_leaky_relu, stub, match=r"clip\(x.*is not implemented yet")


def test_step_rejects_greater_or_equal() -> None:
    rejects(
        unit02.torch_where,
        lambda z: torch.where(z >= 0, 1, 0),
        right_leaky_relu,
        right_clip,
        match=r"at z == 0 expected 0, found 1.*use > rather than >=",
    )


def test_step_rejects_bool_and_float_labels() -> None:
    rejects(unit02.torch_where, lambda z: z > 0, right_leaky_relu, right_clip, match="found torch.bool.*torch.where")
    rejects(
        unit02.torch_where,
        lambda z: torch.where(z > 0, 1.0, 0.0),
        right_leaky_relu,
        right_clip,
        match=r"expected dtype torch.int64 .*found torch.float32.*1 and 0, not 1.0 and 0.0",
    )


def test_step_rejects_reversed_labels() -> None:
    rejects(
        unit02.torch_where,
        lambda z: torch.where(z < 0, 1, 0),
        right_leaky_relu,
        right_clip,
        match=r"labels are reversed",
    )


def test_step_rejects_a_python_if_and_a_python_loop() -> None:
    def if_step(z):
        return 1 if z > 0 else 0

    def loop_step(z):
        return torch.tensor([1 if v > 0 else 0 for v in z.flatten().tolist()], dtype=torch.int64).reshape(z.shape)

    rejects(
        unit02.torch_where,
        if_step,
        right_leaky_relu,
        right_clip,
        match=r"ambiguous.*choose per element with torch.where",
    )
    rejects(unit02.torch_where, loop_step, right_leaky_relu, right_clip, match="step uses a comprehension")


def test_leaky_relu_rejects_relu_and_constant() -> None:
    rejects(
        unit02.torch_where,
        right_step,
        lambda x, negative_slope=0.01: torch.where(x > 0, x, 0.0),
        right_clip,
        match="negative inputs became 0: that is ReLU",
    )
    rejects(
        unit02.torch_where,
        right_step,
        lambda x, negative_slope=0.01: torch.where(x > 0, x, negative_slope),
        right_clip,
        match=r"negative inputs all became 0.01 \(negative_slope itself\)",
    )


def test_leaky_relu_rejects_reversed_condition_and_ignored_slope() -> None:
    rejects(
        unit02.torch_where,
        right_step,
        lambda x, negative_slope=0.01: torch.where(x < 0, x, negative_slope * x),
        right_clip,
        match="the condition is reversed",
    )
    rejects(
        unit02.torch_where,
        right_step,
        lambda x, negative_slope=0.01: torch.where(x > 0, x, 0.01 * x),
        right_clip,
        match="the negative_slope argument was ignored",
    )


def test_leaky_relu_rejects_changes_in_place_and_of_dtype() -> None:
    def in_place(x, negative_slope=0.01):
        x[x < 0] *= negative_slope
        return x

    def upcast(x, negative_slope=0.01):
        x = x.float()
        return torch.where(x > 0, x, negative_slope * x)

    rejects(unit02.torch_where, right_step, in_place, right_clip, match="changed its input x in place")
    rejects(unit02.torch_where, right_step, upcast, right_clip, match=r"expected dtype torch.float64 \(the same as x")


def test_leaky_relu_rejects_a_loop() -> None:
    def loop_leaky(x, negative_slope=0.01):
        out = x.clone()
        for i, v in enumerate(x.flatten().tolist()):
            out.view(-1)[i] = v if v > 0 else negative_slope * v
        return out

    rejects(unit02.torch_where, right_step, loop_leaky, right_clip, match="leaky_relu uses a for loop")


def test_clip_rejects_one_sided_and_swapped_bounds() -> None:
    rejects(
        unit02.torch_where,
        right_step,
        right_leaky_relu,
        lambda x, low, high: torch.where(x < low, low, x),
        match="values above high were left unchanged",
    )
    rejects(
        unit02.torch_where,
        right_step,
        right_leaky_relu,
        lambda x, low, high: torch.where(x > high, high, x),
        match="values below low were left unchanged",
    )
    rejects(
        unit02.torch_where,
        right_step,
        right_leaky_relu,
        lambda x, low, high: torch.where(x < low, high, torch.where(x > high, low, x)),
        match="bounds are swapped",
    )


def test_clip_rejects_float_bounds_on_integers_and_builtin_max() -> None:
    def float_bounds(x, low, high):
        low, high = (v if isinstance(v, torch.Tensor) else float(v) for v in (low, high))
        return torch.where(x < low, low, torch.where(x > high, high, x))

    def builtin_max(x, low, high):
        return max(low, min(x, high))

    rejects(
        unit02.torch_where,
        right_step,
        right_leaky_relu,
        float_bounds,
        match=r"int64 x and int bounds.*expected dtype torch.int64 .*found torch.float32",
    )
    rejects(unit02.torch_where, right_step, right_leaky_relu, builtin_max, match=r"ambiguous.*torch.where")


def test_clip_rejects_clamping_in_place() -> None:
    rejects(
        unit02.torch_where,
        right_step,
        right_leaky_relu,
        lambda x, low, high: x.clamp_(low, high),
        match="changed its input x in place",
    )


# --- ex02: the perceptron with matrix multiplication ----------------------------------------------

MATMUL = ("predict", "predict_multiclass", "ovr_train_epoch")


def right_predict(X, w, b):
    return (X @ w + b > 0).long()


def right_multiclass(X, W, b):
    return (X @ W + b).argmax(dim=1)


def ovr_variant(
    *,
    clone: bool = True,
    ge: bool = False,
    batch: bool = False,
    ignore_lr: bool = False,
    total_mistakes: bool = False,
    transpose: bool = False,
    count_positive: bool = False,
):
    """A learner's ovr_train_epoch with one typical mistake switched on."""

    def ovr_train_epoch(W, b, X, y, lr=1.0):
        lr = 1.0 if ignore_lr else lr
        if clone:
            W, b = W.clone(), b.clone()
        C = W.shape[1]
        T = (y[:, None] == torch.arange(C)).float()
        if batch:
            E = T - (X @ W + b > 0).float()
            W += lr * X.T @ E
            b += lr * E.sum(dim=0)
            return W, b, (E != 0).sum(dim=0)
        mistakes = torch.zeros(C, dtype=torch.int64)
        for x_i, t_i in zip(X, T):
            z = x_i @ W + b
            e = t_i - ((z >= 0) if ge else (z > 0)).float()
            W += lr * torch.outer(x_i, e)
            b += lr * e
            mistakes += (z > 0).long() if count_positive else (e != 0).long()
        if total_mistakes:
            return W, b, int(mistakes.sum())
        return (W.T if transpose else W), b, mistakes

    return ovr_train_epoch


@pytest.mark.parametrize("seed", SEEDS)
def test_matmul_perceptron_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit02.matmul_perceptron(*solution(2, "ex02-matmul-perceptron", *MATMUL), seed=seed)
    assert capsys.readouterr().out.startswith("✓ matmul perceptron")


def test_matmul_perceptron_accepts_fresh_data(capsys: pytest.CaptureFixture[str]) -> None:
    unit02.matmul_perceptron(right_predict, right_multiclass, ovr_variant())
    assert "✓" in capsys.readouterr().out


def test_matmul_perceptron_rejects_stubs() -> None:
    rejects(
        unit02.matmul_perceptron, stub, right_multiclass, ovr_variant(), match=r"predict\(X, w, b\).*not implemented"
    )
    rejects(unit02.matmul_perceptron, right_predict, stub, ovr_variant(), match=r"predict_multiclass.*not implemented")
    rejects(unit02.matmul_perceptron, right_predict, right_multiclass, stub, match=r"ovr_train_epoch.*not implemented")


def test_predict_rejects_greater_or_equal_and_missing_bias() -> None:
    rejects(
        unit02.matmul_perceptron,
        lambda X, w, b: (X @ w + b >= 0).long(),
        right_multiclass,
        ovr_variant(),
        match="net input is exactly 0 got label 1",
    )
    rejects(
        unit02.matmul_perceptron,
        lambda X, w, b: (X @ w > 0).long(),
        right_multiclass,
        ovr_variant(),
        match="without the bias: add b",
    )


def test_predict_rejects_wrong_types_shapes_and_loops() -> None:
    def loop_predict(X, w, b):
        return torch.tensor([int(x @ w + b > 0) for x in X])

    rejects(
        unit02.matmul_perceptron,
        lambda X, w, b: X @ w + b > 0,
        right_multiclass,
        ovr_variant(),
        match="found torch.bool",
    )
    rejects(
        unit02.matmul_perceptron,
        lambda X, w, b: X @ w + b,
        right_multiclass,
        ovr_variant(),
        match="threshold the net input",
    )
    rejects(
        unit02.matmul_perceptron,
        lambda X, w, b: (w @ X + b > 0).long(),
        right_multiclass,
        ovr_variant(),
        match="raised RuntimeError",
    )
    rejects(
        unit02.matmul_perceptron, loop_predict, right_multiclass, ovr_variant(), match="predict uses a comprehension"
    )


def test_predict_multiclass_rejects_wrong_axis_scores_and_bias() -> None:
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        lambda X, W, b: (X @ W + b).argmax(dim=0),
        ovr_variant(),
        match="argmax ran over the examples",
    )
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        lambda X, W, b: X @ W + b,
        ovr_variant(),
        match="found the scores' shape",
    )
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        lambda X, W, b: (X @ W).argmax(dim=1),
        ovr_variant(),
        match="without the bias: add b",
    )
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        lambda X, W, b: (X @ W + b).argmin(dim=1),
        ovr_variant(),
        match="smallest score",
    )


def test_predict_multiclass_rejects_a_squeezed_batch_of_one() -> None:
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        lambda X, W, b: (X @ W + b).argmax(dim=1).squeeze(),
        ovr_variant(),
        match=r"expected shape \(1,\) for a batch of one, found \(\)",
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_ovr_rejects_one_update_per_epoch(seed: int) -> None:
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(batch=True),
        seed=seed,
        match="one update for the whole epoch.*loop over the rows of X, vectorise over the classes",
    )


def test_ovr_rejects_greater_or_equal_and_ignored_lr() -> None:
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(ge=True),
        match="exactly 0 were predicted as class 1",
    )
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(ignore_lr=True),
        match=r"the learning rate lr=0.5 was ignored",
    )


def test_ovr_rejects_updating_the_callers_weights() -> None:
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(clone=False),
        match="the W and b you were given changed.*clone",
    )


def test_ovr_rejects_wrong_shapes_and_counts() -> None:
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(total_mistakes=True),
        match=r"mistakes should be a tensor of shape \(4,\), one count per class, found int",
    )
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(transpose=True),
        match=r"W should have shape \(5, 4\).*transposed\?",
    )
    rejects(
        unit02.matmul_perceptron,
        right_predict,
        right_multiclass,
        ovr_variant(count_positive=True),
        match=r"the weights are right, but the mistakes per class should be",
    )
