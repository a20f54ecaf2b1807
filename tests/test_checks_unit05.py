"""The unit-05 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from check_helpers import rejects, solution
from torch import nn

from dlfund.checks import unit05

# --- ex01: a LightningModule for regression ---------------------------------------------------------


def regressor(
    *,
    loss: str = "mse",
    name: str = "train_loss",
    log: str = "epoch",
    optimizer: str = "adam",
    output: str = "column",
    returns: bool = True,
    val_loss: str = "mse",
):
    """A learner's LitRegressor with one typical mistake switched on."""
    losses = {
        "mse": F.mse_loss,
        "mae": F.l1_loss,
        "sum": lambda p, y: F.mse_loss(p, y, reduction="sum"),
        "rmse": lambda p, y: F.mse_loss(p, y).sqrt(),
    }

    class Variant(L.LightningModule):
        def __init__(self, in_features, hidden=32, lr=1e-3):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def forward(self, x):
            out = self.net(x)
            return out.squeeze(1) if output == "flat" else out

        def training_step(self, batch, batch_idx):
            x, y = batch
            value = losses[loss](self(x), y)
            if log == "epoch":
                self.log(name, value, on_step=False, on_epoch=True)
            elif log == "step":
                self.log(name, value)  # training_step's default: on_step=True, on_epoch=False
            elif log == "both":
                self.log(name, value, on_step=True, on_epoch=True)
            return value if returns else None

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", losses[val_loss](self(x), y), on_step=False, on_epoch=True)

        def configure_optimizers(self):
            if optimizer == "sgd":
                return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)
            if optimizer == "fixed lr":
                return torch.optim.Adam(self.parameters(), lr=1e-3)
            if optimizer == "dict":
                return {"optimizer": torch.optim.Adam(self.parameters(), lr=self.hparams.lr)}
            return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)

    return Variant


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_module_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit05.regression_module(solution(5, "ex01-lightning-regression", "LitRegressor"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ regression module")


def test_regression_module_accepts_reference_variants() -> None:
    unit05.regression_module(regressor(), seed=3)
    unit05.regression_module(regressor(optimizer="dict"), seed=3)  # {"optimizer": ...} is a valid return


def test_regression_module_rejects_stub() -> None:
    class Stub(L.LightningModule):
        def __init__(self, in_features, hidden=32, lr=1e-3):
            super().__init__()
            raise NotImplementedError("build the network")

    rejects(
        unit05.regression_module,
        Stub,
        match=r"Stub\(in_features=\d+, hidden=16, lr=.*is not implemented yet.*"
        r"hint: build the network",
    )


@pytest.mark.parametrize(
    ("mistake", "match"),
    [
        ({"loss": "mae"}, r"expected the mean squared error .*: that is the mean absolute error \(F.l1_loss\)"),
        ({"loss": "sum"}, r"that is the sum of the squared errors; use their mean"),
        ({"loss": "rmse"}, r"that is the root of the mean squared error \(RMSE\)"),
        (
            {"val_loss": "mae"},
            r"the logged val_loss is .* but the mean squared error of the trained model .*: that is "
            r"the mean absolute error",
        ),
    ],
)
def test_regression_module_rejects_wrong_losses(mistake: dict, match: str) -> None:
    message = rejects(unit05.regression_module, regressor(**mistake), match=match)
    assert "(data seed 0)" in message


def test_regression_module_rejects_logging_mistakes() -> None:
    rejects(
        unit05.regression_module,
        regressor(log="none"),
        match=r"'train_loss' was never logged; call self.log\('train_loss', loss, ...\) in training_step "
        r"\(logged: \['val_loss'\]\)",
    )
    rejects(unit05.regression_module, regressor(name="loss"), match=r"'train_loss' was never logged.*logged: \['loss'")
    rejects(
        unit05.regression_module,
        regressor(log="step"),
        match=r"'train_loss' is logged for every step .*log only the mean over each epoch",
    )
    rejects(
        unit05.regression_module,
        regressor(log="both"),
        match=r"'train_loss' is logged for every step \(on_step=True, .*on_step=False, on_epoch=True\)",
    )


def test_regression_module_rejects_optimizer_mistakes() -> None:
    rejects(unit05.regression_module, regressor(optimizer="sgd"), match=r"expected torch.optim.Adam, found SGD")
    rejects(
        unit05.regression_module,
        regressor(optimizer="fixed lr"),
        match=r"expected Adam with lr=0.0\d+ \(the lr given to __init__.*found lr=0.001",
    )


def test_regression_module_rejects_shape_and_return_mistakes() -> None:
    rejects(
        unit05.regression_module,
        regressor(output="flat"),
        match=r"expected predictions of shape \(5, 1\), found \(5,\): keep the output dimension",
    )
    rejects(unit05.regression_module, regressor(returns=False), match=r"training_step returned None: return the loss")

    class NotLightning(nn.Module):
        def __init__(self, in_features, hidden=32, lr=1e-3):
            super().__init__()

    rejects(unit05.regression_module, NotLightning, match=r"expected a lightning.LightningModule .*found NotLightning")


def test_regression_module_diagnoses_broadcasting() -> None:
    class Broadcast(regressor()):
        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.mse_loss(self(x).squeeze(1), y)  # (B,) against (B, 1): broadcast to (B, B)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            return loss

    rejects(unit05.regression_module, Broadcast, match=r"broadcast to \(N, N\)")


# --- ex02: a custom callback -------------------------------------------------------------------------


def stopper(
    *,
    sanity: bool = True,
    compare: str = ">=",
    epoch: str = "current_epoch",
    stop: str = "when reached",
    monitor: str | None = None,
    hook: str = "on_validation_epoch_end",
    also: str | None = None,
    history: str = "instance",
):
    """A learner's StopAtTarget with one typical mistake switched on."""

    def body(self, trainer, pl_module):
        if sanity and trainer.sanity_checking:
            return
        value = float(trainer.callback_metrics[monitor or self.monitor])
        self.history.append(value)
        reached = value >= self.target if compare == ">=" else value > self.target
        if stop == "always":
            trainer.should_stop = True
        if reached:
            if stop == "when reached":
                trainer.should_stop = True
            if epoch != "never":
                self.stopped_epoch = {
                    "current_epoch": trainer.current_epoch,
                    "plus one": trainer.current_epoch + 1,
                    "global_step": trainer.global_step,
                }[epoch]

    def init(self, target, monitor="val_acc"):
        L.Callback.__init__(self)
        self.target, self.monitor, self.stopped_epoch = target, monitor, None
        if history == "instance":
            self.history = []

    namespace = {"__init__": init, hook: body}
    if history == "class":
        namespace["history"] = []  # one list shared by every instance
    if also is not None:
        namespace[also] = lambda self, *args, **kwargs: None
    return type("Variant", (L.Callback,), namespace)


CALLBACK_MISTAKES = [
    (
        {"hook": "on_train_epoch_end"},
        r"should implement on_validation_epoch_end\(self, trainer, pl_module\); it implements "
        r"on_train_epoch_end: on_train_epoch_end — it runs after the training epoch",
    ),
    ({"also": "on_train_batch_end"}, r"implements on_train_batch_end as well as on_validation_epoch_end"),
    (
        {"hook": "on_validation_end"},
        r"it implements on_validation_end: on_validation_end — it runs after the whole validation loop",
    ),
    ({"sanity": False}, r"Lightning's sanity check .*trainer.sanity_checking"),
    ({"compare": ">"}, r"reached the target .* but training went on .*value >= target"),
    (
        {"epoch": "plus one"},
        r"expected stopped_epoch = \d \(trainer.current_epoch of the epoch .* counted from 0\), found \d",
    ),
    ({"epoch": "global_step"}, r"expected stopped_epoch = \d .*found \d+"),
    ({"epoch": "never"}, r"expected stopped_epoch = \d .*found None"),
    ({"stop": "never"}, r"training went on|training ran \d epochs instead of \d: set trainer.should_stop = True"),
    ({"stop": "always"}, r"stopped after 1 epoch\(s\), before val_acc reached the target"),
    (
        {"monitor": "val_acc"},
        r"monitor='val_loss'\) .*expected history \[.*\] \(the val_loss of that validation\).*read "
        r"trainer.callback_metrics\[self.monitor\]",
    ),
    ({"history": "class"}, r"(a new callback should have an empty list self.history|expected history)"),
]


@pytest.mark.parametrize("seed", [0, 1])
def test_custom_callback_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit05.custom_callback(solution(5, "ex02-custom-callback", "StopAtTarget"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ custom callback")


def test_custom_callback_accepts_the_reference_and_variant() -> None:
    unit05.custom_callback(unit05.StopAtTarget, seed=2)
    unit05.custom_callback(stopper(), seed=2)


def test_custom_callback_rejects_stub() -> None:
    class Stub(L.Callback):
        def __init__(self, target, monitor="val_acc"):
            self.target, self.monitor, self.history, self.stopped_epoch = target, monitor, [], None

        def on_validation_epoch_end(self, trainer, pl_module):
            raise NotImplementedError("record and stop")

    rejects(unit05.custom_callback, Stub, match=r"is not implemented yet.*hint: record and stop")


@pytest.mark.parametrize(("kwargs", "match"), CALLBACK_MISTAKES)
@pytest.mark.parametrize("seed", range(2))
def test_custom_callback_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    rejects(unit05.custom_callback, stopper(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), CALLBACK_MISTAKES)
def test_custom_callback_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit05.custom_callback, stopper(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_custom_callback_solution_passes_on_every_seed() -> None:
    cls = solution(5, "ex02-custom-callback", "StopAtTarget")
    for seed in range(200):
        unit05.custom_callback(cls, seed=seed)


def test_custom_callback_rejects_a_non_callback() -> None:
    class NotACallback:
        def on_validation_epoch_end(self, trainer, pl_module):
            pass

    rejects(unit05.custom_callback, NotACallback, match=r"expected a subclass of lightning.pytorch.Callback")


@pytest.mark.parametrize(
    ("net", "match"),
    [
        (lambda d, h: nn.Sequential(nn.Linear(d, h), nn.Linear(h, 1)), r"the model is affine"),
        (lambda d, h: nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 1)), r"is hidden passed"),
        (lambda d, h: nn.Linear(d, 1), r"one hidden layer"),
        (
            lambda d, h: nn.Sequential(nn.Linear(d, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1)),
            r"one hidden layer",
        ),
    ],
    ids=["no activation", "hidden ignored", "linear model", "two hidden layers"],
)
def test_regression_module_rejects_architecture_mistakes(net, match: str) -> None:
    class Wrong(regressor()):
        def __init__(self, in_features, hidden=32, lr=1e-3):
            super().__init__(in_features, hidden, lr)
            self.net = net(in_features, hidden)

    rejects(unit05.regression_module, Wrong, match=match)


# --- ex03: a custom torchmetrics Metric (macro-F1) ---------------------------------------------------


def f1_variant(
    *,
    average: str = "macro",
    absent: str = "skip",
    states: str = "add_state",
    reduce: str = "sum",
    full_state_update: bool | None = False,
    library: bool = False,
):
    """A learner's MacroF1 with one typical mistake switched on."""
    from torchmetrics import Metric
    from torchmetrics.classification import MulticlassF1Score

    class Variant(Metric):
        def __init__(self, num_classes, **kwargs):
            super().__init__(**kwargs)
            self.num_classes = num_classes
            if library:
                self.inner = MulticlassF1Score(num_classes=num_classes, average="macro")
            if states == "attributes":
                self.tp, self.fp, self.fn = (torch.zeros(num_classes) for _ in range(3))
                return
            if states == "cat":
                self.add_state("preds", default=[], dist_reduce_fx="cat")
                self.add_state("target", default=[], dist_reduce_fx="cat")
                return
            if states == "per batch":
                self.add_state("f1_sum", default=torch.tensor(0.0), dist_reduce_fx="sum")
                self.add_state("batches", default=torch.tensor(0), dist_reduce_fx="sum")
                return
            for name in ("tp", "fp", "fn"):
                self.add_state(name, default=torch.zeros(num_classes), dist_reduce_fx=reduce)

        def _counts(self, preds, target):
            predicted = preds.argmax(dim=1)
            one = F.one_hot(predicted, self.num_classes).float()
            true = F.one_hot(target, self.num_classes).float()
            tp = (one * true).sum(0)
            return tp, one.sum(0) - tp, true.sum(0) - tp

        def _f1(self, tp, fp, fn):
            if average == "micro":
                tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
                return 2 * tp / (2 * tp + fp + fn)
            precision, recall = tp / (tp + fp).clamp(min=1), tp / (tp + fn).clamp(min=1)
            per_class = {
                "macro": 2 * tp / (2 * tp + fp + fn),
                "arithmetic": (precision + recall) / 2,
                "recall": tp / (tp + fn),
            }.get(average, 2 * tp / (2 * tp + fp + fn))
            present = (tp + fp + fn) > 0 if average != "recall" else (tp + fn) > 0
            if average == "harmonic of macros":
                p, r = precision[present].mean(), recall[present].mean()
                return 2 * p * r / (p + r)
            if absent == "zero":
                return torch.nan_to_num(per_class).mean()
            if absent == "nan":
                return per_class.mean()
            return per_class[present].mean()

        def update(self, preds, target):
            if library:
                self.inner.update(preds, target)
            if states == "cat":
                self.preds.append(preds)
                self.target.append(target)
                return
            tp, fp, fn = self._counts(preds, target)
            if states == "per batch":
                self.f1_sum += self._f1(tp, fp, fn)
                self.batches += 1
                return
            if states == "replace":
                self.tp, self.fp, self.fn = tp, fp, fn
                return
            self.tp += tp
            self.fp += fp
            self.fn += fn

        def compute(self):
            if library:
                return self.inner.compute()
            if states == "cat":
                preds, target = torch.cat(self.preds), torch.cat(self.target)
                return self._f1(*self._counts(preds, target))
            if states == "per batch":
                return self.f1_sum / self.batches
            return self._f1(self.tp, self.fp, self.fn)

    Variant.full_state_update = full_state_update
    return Variant


F1_MISTAKES = [
    ({"average": "micro"}, r"that is the micro F1"),
    ({"absent": "zero"}, r"a class that never occurs .* was counted with F1 = 0"),
    ({"absent": "nan"}, r"returned nan .*its F1 is 0 / 0; leave classes with TP \+ FP \+ FN = 0 out"),
    ({"average": "harmonic of macros"}, r"harmonic mean of the macro precision and the macro recall"),
    ({"average": "arithmetic"}, r"arithmetic mean of precision and recall"),
    ({"average": "recall"}, r"that is the macro recall \(balanced accuracy\)"),
    ({"states": "per batch"}, r"mean of the per-batch F1 scores"),
    ({"states": "attributes"}, r"the metric has no registered states: create its counts with self.add_state"),
    ({"states": "cat"}, r"the states grew from \d+ to \d+ values .*keep counts per class"),
    ({"states": "replace"}, r"that is the F1 of the last batch alone: update must add the batch's counts"),
    ({"reduce": "max"}, r"after calling the metric on each batch .*states that combine by 'sum'"),
    ({"full_state_update": None}, r"merge_state\(other\) .*raised RuntimeError: set the class attribute full_state"),
    ({"library": True}, r"this is the library's own MulticlassF1Score"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit05.macro_f1_metric(solution(5, "ex03-macro-f1-metric", "MacroF1"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ macro-F1 metric")


def test_macro_f1_accepts_the_reference_variant() -> None:
    unit05.macro_f1_metric(f1_variant())


def test_macro_f1_reference_equals_torchmetrics() -> None:
    from torchmetrics.classification import MulticlassF1Score

    gen = torch.Generator().manual_seed(0)
    preds, target = torch.randn(40, 6, generator=gen), torch.randint(0, 5, (40,), generator=gen)
    preds[:, 5] = -1e4  # class 5 never occurs
    expected = MulticlassF1Score(num_classes=6, average="macro")(preds, target)
    assert abs(unit05.reference_macro_f1(preds, target, 6) - float(expected)) < 1e-6


def test_macro_f1_rejects_stub_and_non_metrics() -> None:
    from torchmetrics import Metric

    class Stub(Metric):
        def __init__(self, num_classes):
            super().__init__()
            raise NotImplementedError("register the counts")

        def update(self, preds, target):
            raise NotImplementedError

        def compute(self):
            raise NotImplementedError

    rejects(unit05.macro_f1_metric, Stub, match=r"Stub\(num_classes=\d\) .*is not implemented yet.*register the counts")

    class NotAMetric:
        pass

    rejects(unit05.macro_f1_metric, NotAMetric, match=r"expected a subclass of torchmetrics.Metric")

    class Scalar(f1_variant()):
        def compute(self):
            return 0.5

    rejects(unit05.macro_f1_metric, Scalar, match=r"expected a 0-d tensor \(one F1 score\), found float")


@pytest.mark.parametrize(("kwargs", "match"), F1_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_macro_f1_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    message = rejects(unit05.macro_f1_metric, f1_variant(**kwargs), match=match, seed=seed)
    assert "library" in kwargs or f"(data seed {seed})" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), F1_MISTAKES)
def test_macro_f1_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit05.macro_f1_metric, f1_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_macro_f1_solution_passes_on_every_seed() -> None:
    cls = solution(5, "ex03-macro-f1-metric", "MacroF1")
    for seed in range(200):
        unit05.macro_f1_metric(cls, seed=seed)
        unit05.macro_f1_metric(f1_variant(), seed=seed)
