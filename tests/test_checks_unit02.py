"""The unit-02 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from check_helpers import mistake_cases, rejects, rejects_named, solution, stub

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


def _if_step(z):
    return 1 if z > 0 else 0


def _loop_step(z):
    return torch.tensor([1 if v > 0 else 0 for v in z.flatten().tolist()], dtype=torch.int64).reshape(z.shape)


def _in_place_leaky(x, negative_slope=0.01):
    x[x < 0] *= negative_slope
    return x


def _upcast_leaky(x, negative_slope=0.01):
    x = x.float()
    return torch.where(x > 0, x, negative_slope * x)


def _loop_leaky(x, negative_slope=0.01):
    out = x.clone()
    for i, v in enumerate(x.flatten().tolist()):
        out.view(-1)[i] = v if v > 0 else negative_slope * v
    return out


def _float_bounds_clip(x, low, high):
    low, high = (v if isinstance(v, torch.Tensor) else float(v) for v in (low, high))
    return torch.where(x < low, low, torch.where(x > high, high, x))


def _builtin_clip(x, low, high):
    return max(low, min(x, high))


def _step(fn):
    return (fn, right_leaky_relu, right_clip)


def _leaky(fn):
    return (right_step, fn, right_clip)


def _clip(fn):
    return (right_step, right_leaky_relu, fn)


WHERE_MISTAKES = {
    "step: >= instead of >": (_step(lambda z: torch.where(z >= 0, 1, 0)), r"at z == 0 expected 0, found 1.*use >"),
    "step: bool labels": (_step(lambda z: z > 0), r"found torch.bool.*torch.where"),
    "step: float labels": (_step(lambda z: torch.where(z > 0, 1.0, 0.0)), r"found torch.float32.*1 and 0, not 1.0"),
    "step: reversed labels": (_step(lambda z: torch.where(z < 0, 1, 0)), r"labels are reversed"),
    "step: a Python if": (_step(_if_step), r"ambiguous.*choose per element with torch.where"),
    "step: a Python loop": (_step(_loop_step), r"step uses a comprehension"),
    "leaky_relu: ReLU": (
        _leaky(lambda x, negative_slope=0.01: torch.where(x > 0, x, 0.0)),
        r"negative inputs became 0: that is ReLU",
    ),
    "leaky_relu: the slope as the value": (
        _leaky(lambda x, negative_slope=0.01: torch.where(x > 0, x, negative_slope)),
        r"negative inputs all became 0.01 \(negative_slope itself\)",
    ),
    "leaky_relu: reversed condition": (
        _leaky(lambda x, negative_slope=0.01: torch.where(x < 0, x, negative_slope * x)),
        r"the condition is reversed",
    ),
    "leaky_relu: slope argument ignored": (
        _leaky(lambda x, negative_slope=0.01: torch.where(x > 0, x, 0.01 * x)),
        r"the negative_slope argument was ignored",
    ),
    "leaky_relu: changes x in place": (_leaky(_in_place_leaky), r"changed its input x in place"),
    "leaky_relu: upcast to float32": (_leaky(_upcast_leaky), r"expected dtype torch.float64 \(the same as x"),
    "leaky_relu: a Python loop": (_leaky(_loop_leaky), r"leaky_relu uses a for loop"),
    "clip: low only": (_clip(lambda x, low, high: torch.where(x < low, low, x)), r"values above high were left"),
    "clip: high only": (_clip(lambda x, low, high: torch.where(x > high, high, x)), r"values below low were left"),
    "clip: bounds swapped": (
        _clip(lambda x, low, high: torch.where(x < low, high, torch.where(x > high, low, x))),
        r"bounds are swapped",
    ),
    "clip: float bounds on integers": (
        _clip(_float_bounds_clip),
        r"int64 x and int bounds.*expected dtype torch.int64 .*found torch.float32",
    ),
    "clip: builtin max and min": (_clip(_builtin_clip), r"ambiguous.*torch.where"),
    "clip: clamps x in place": (_clip(lambda x, low, high: x.clamp_(low, high)), r"changed its input x in place"),
}


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


def _loop_predict(X, w, b):
    return torch.tensor([int(x @ w + b > 0) for x in X])


def _predict(fn):
    return (fn, right_multiclass, ovr_variant())


def _multiclass(fn):
    return (right_predict, fn, ovr_variant())


def _ovr(**kwargs):
    return (right_predict, right_multiclass, ovr_variant(**kwargs))


MATMUL_MISTAKES = {
    "predict: >= instead of >": (
        _predict(lambda X, w, b: (X @ w + b >= 0).long()),
        r"net input is exactly 0 got label 1",
    ),
    "predict: no bias": (_predict(lambda X, w, b: (X @ w > 0).long()), r"without the bias: add b"),
    "predict: bool labels": (_predict(lambda X, w, b: X @ w + b > 0), r"found torch.bool"),
    "predict: net input returned": (_predict(lambda X, w, b: X @ w + b), r"threshold the net input"),
    "predict: w @ X": (_predict(lambda X, w, b: (w @ X + b > 0).long()), r"raised RuntimeError"),
    "predict: a Python loop": (_predict(_loop_predict), r"predict uses a comprehension"),
    "multiclass: argmax over the examples": (
        _multiclass(lambda X, W, b: (X @ W + b).argmax(dim=0)),
        r"argmax ran over the examples",
    ),
    "multiclass: scores returned": (_multiclass(lambda X, W, b: X @ W + b), r"found the scores' shape"),
    "multiclass: no bias": (_multiclass(lambda X, W, b: (X @ W).argmax(dim=1)), r"without the bias: add b"),
    "multiclass: argmin": (_multiclass(lambda X, W, b: (X @ W + b).argmin(dim=1)), r"smallest score"),
    "multiclass: squeezed batch of one": (
        _multiclass(lambda X, W, b: (X @ W + b).argmax(dim=1).squeeze()),
        r"expected shape \(1,\) for a batch of one, found \(\)",
    ),
    "ovr: one update per epoch": (_ovr(batch=True), r"one update for the whole epoch.*loop over the rows of X"),
    "ovr: >= instead of >": (_ovr(ge=True), r"exactly 0 were predicted as class 1"),
    "ovr: learning rate ignored": (_ovr(ignore_lr=True), r"the learning rate lr=0.5 was ignored"),
    "ovr: caller's weights changed": (_ovr(clone=False), r"the W and b you were given changed.*clone"),
    "ovr: total mistakes": (_ovr(total_mistakes=True), r"mistakes should be a tensor of shape \(4,\).*found int"),
    "ovr: W transposed": (_ovr(transpose=True), r"W should have shape \(5, 4\).*transposed\?"),
    "ovr: positives counted": (_ovr(count_positive=True), r"the weights are right, but the mistakes per class"),
}


# --- ex03: a confusion matrix without loops -------------------------------------------------------

CONFUSION = ("confusion_matrix", "precision_recall")


def confusion_variant(
    *,
    transpose: bool = False,
    minlength: bool = True,
    classes_from_data: bool = False,
    histc: bool = False,
    diagonal_only: bool = False,
):
    """A learner's confusion_matrix with one typical mistake switched on."""

    def confusion_matrix(y_true, y_pred, num_classes):
        C = int(max(y_true.max(), y_pred.max())) + 1 if classes_from_data else num_classes
        if diagonal_only:
            return torch.diag(torch.bincount(y_true[y_true == y_pred], minlength=C))
        index = (y_pred * C + y_true) if transpose else (y_true * C + y_pred)
        if histc:
            return torch.histc(index.float(), bins=C * C, min=0, max=C * C - 1).reshape(C, C)
        counts = torch.bincount(index, minlength=C * C) if minlength else torch.bincount(index)
        return counts.reshape(C, C)

    return confusion_matrix


def precision_recall_variant(
    *, swap: bool = False, nan: bool = False, total: bool = False, floor_division: bool = False
):
    """A learner's precision_recall with one typical mistake switched on."""

    def precision_recall(cm):
        diag = cm.diagonal()
        predicted, actual = cm.sum(dim=0), cm.sum(dim=1)
        if total:
            predicted = actual = cm.sum().expand(len(diag))
        if floor_division:
            return diag // predicted.clamp(min=1), diag // actual.clamp(min=1)
        if nan:
            precision, recall = diag / predicted, diag / actual
        else:
            precision = torch.where(predicted > 0, diag / predicted.clamp(min=1), 0.0)
            recall = torch.where(actual > 0, diag / actual.clamp(min=1), 0.0)
        precision, recall = precision.float(), recall.float()
        return (recall, precision) if swap else (precision, recall)

    return precision_recall


def _loop_confusion(y_true, y_pred, num_classes):
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    return cm


def _per_class_confusion(y_true, y_pred, num_classes):
    return torch.stack([torch.bincount(y_pred[y_true == k], minlength=num_classes) for k in range(num_classes)])


def _loop_precision_recall(cm):
    return tuple(
        torch.tensor([float(cm[k, k]) / max(float(sums[k]), 1.0) for k in range(len(cm))])
        for sums in (cm.sum(0), cm.sum(1))
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit02.confusion(*solution(2, "ex03-confusion-matrix", *CONFUSION), seed=seed)
    assert capsys.readouterr().out.startswith("✓ confusion matrix")


def test_confusion_accepts_fresh_data(capsys: pytest.CaptureFixture[str]) -> None:
    unit02.confusion(confusion_variant(), precision_recall_variant())
    assert capsys.readouterr().out.startswith("✓ confusion matrix")


def test_confusion_rejects_stubs() -> None:
    rejects(
        unit02.confusion, stub, precision_recall_variant(), match=r"confusion_matrix\(y_true.*is not implemented yet"
    )
    rejects(unit02.confusion, confusion_variant(), stub, match=r"precision_recall\(cm\).*is not implemented yet")


CONFUSION_MISTAKES = {
    "transposed": ((confusion_variant(transpose=True), precision_recall_variant()), r"the matrix is transposed"),
    "bincount without minlength": (
        (confusion_variant(minlength=False), precision_recall_variant()),
        r"pass minlength=num_classes\*\*2",
    ),
    "classes taken from the data": (
        (confusion_variant(classes_from_data=True), precision_recall_variant()),
        r"number of classes was taken from the labels present",
    ),
    "float counts with histc": ((confusion_variant(histc=True), precision_recall_variant()), r"expected int64 counts"),
    "only the diagonal": (
        (confusion_variant(diagonal_only=True), precision_recall_variant()),
        r"only the correct predictions were counted",
    ),
    "a Python loop": ((_loop_confusion, precision_recall_variant()), r"confusion_matrix uses a for loop"),
    "precision and recall swapped": (
        (confusion_variant(), precision_recall_variant(swap=True)),
        r"this is the recall: precision divides the diagonal by the column sums",
    ),
    "0/0 left as NaN": ((confusion_variant(), precision_recall_variant(nan=True)), r"is 0/0; return 0 there"),
    "divided by the total": (
        (confusion_variant(), precision_recall_variant(total=True)),
        r"divided by the total number of examples",
    ),
    "integer division": (
        (confusion_variant(), precision_recall_variant(floor_division=True)),
        r"expected dtype torch.float32.*divide with /",
    ),
    "a loop over the classes": (
        (_per_class_confusion, precision_recall_variant()),
        r"confusion_matrix uses a comprehension.*over the examples or the classes",
    ),
    "precision_recall with a loop": (
        (confusion_variant(), _loop_precision_recall),
        r"precision_recall uses a comprehension",
    ),
}
_CHECKS = {
    "torch_where": (unit02.torch_where, WHERE_MISTAKES),
    "matmul_perceptron": (unit02.matmul_perceptron, MATMUL_MISTAKES),
    "confusion": (unit02.confusion, CONFUSION_MISTAKES),
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
    unit02.torch_where(*solution(2, "ex01-torch-where", *WHERE), seed=seed)
    unit02.matmul_perceptron(*solution(2, "ex02-matmul-perceptron", *MATMUL), seed=seed)
    unit02.confusion(*solution(2, "ex03-confusion-matrix", *CONFUSION), seed=seed)
