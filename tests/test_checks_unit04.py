"""The unit-04 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

from dlfund.checks import CheckFailed, unit04
from dlfund.checks.unit04 import mlp_parameters
from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.data.torch_datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD
from dlfund.models.mlp import MLP

UNIT = manifest.get_unit(4)


def solution(exercise: str, name: str) -> Any:
    return definitions(UNIT.solution_path(exercise), names=(name,))[name]


def stub(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("write this function")


def rejects(check: Any, fn: Any, *, match: str, seed: int = 0) -> str:
    with pytest.raises(CheckFailed, match=match) as info:
        check(fn, seed=seed)
    return str(info.value)


def test_mlp_parameters_formula() -> None:
    assert mlp_parameters(784, [256, 128], 10) == 235146
    assert mlp_parameters(5, [], 3) == 18
    model = MLP(7, [3, 9, 4], 2)
    assert mlp_parameters(7, [3, 9, 4], 2) == sum(p.numel() for p in model.parameters())


# --- ex01: depth and width ----------------------------------------------------------------------


def fake_study(*, parameters: str = "right", order: str = "depth", accuracy: str = "right", keys: str = "right"):
    """A depth_width_study that does not train (fast): typical mistakes in counting and reporting."""

    def study(X_train, y_train, X_test, y_test, *, depths, widths, epochs, batch_size, lr, seed):
        d, c = X_train.shape[1], int(y_train.max()) + 1
        grid = (
            [(dp, w) for dp in depths for w in widths]
            if order == "depth"
            else [(dp, w) for w in widths for dp in depths]
        )
        rows = []
        for depth, width in grid:
            sizes = [d, *[width] * depth, c]
            count = {
                "right": mlp_parameters(d, [width] * depth, c),
                "weights only": sum(a * b for a, b in zip(sizes[:-1], sizes[1:])),
                "tensors": 2 * (depth + 1),
                "one layer more": mlp_parameters(d, [width] * (depth + 1), c),
                "no output layer": mlp_parameters(d, [width] * depth, c) - (width + 1) * c,
            }[parameters]
            train_acc, test_acc = round(0.95 * len(y_train)) / len(y_train), round(0.95 * len(y_test)) / len(y_test)
            if accuracy == "percent":
                train_acc, test_acc = 100 * train_acc, 100 * test_acc
            elif accuracy == "train set as test":
                test_acc = 229 / len(y_train)
            row = {
                "depth": depth,
                "width": width,
                "parameters": count,
                "train_accuracy": train_acc,
                "test_accuracy": test_acc,
            }
            if keys == "missing":
                del row["test_accuracy"]
            elif keys == "extra":
                row["seconds"] = 1.0
            rows.append(row)
        return rows

    return study


@pytest.mark.parametrize("seed", [0, 1])
def test_depth_width_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit04.depth_width(solution("ex01-depth-width", "depth_width_study"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ depth/width study")


def test_depth_width_rejects_stub() -> None:
    rejects(unit04.depth_width, stub, match=r"depth_width_study\(.*is not implemented yet.*hint: write this function")


@pytest.mark.parametrize(
    ("mistake", "match"),
    [
        ("weights only", r"expected \d+ parameters .*found \d+: that counts only the weight matrices; the biases"),
        ("tensors", r"found \d+: that is the number of parameter \*tensors\*; count the numbers in them"),
        ("one layer more", r"found \d+: that is the count of an MLP with \d hidden layers; depth = \d means"),
        ("no output layer", r"found \d+: the output layer is missing"),
    ],
)
def test_depth_width_rejects_wrong_parameter_counts(mistake: str, match: str) -> None:
    rejects(unit04.depth_width, fake_study(parameters=mistake), match=match)


def test_depth_width_rejects_width_major_order() -> None:
    rejects(
        unit04.depth_width,
        fake_study(order="width"),
        match=r"rows are in the wrong order: expected \(depth, width\) = .*depth-major",
    )


def test_depth_width_rejects_percentages_and_the_wrong_set() -> None:
    rejects(
        unit04.depth_width,
        fake_study(accuracy="percent"),
        match=r"train_accuracy = 9\d(\.\d+)? looks like a percentage",
    )
    rejects(
        unit04.depth_width,
        fake_study(accuracy="train set as test"),
        match=r"test_accuracy = .* is not a whole number of correct examples out of the 101 test examples",
    )


def test_depth_width_rejects_wrong_keys_and_types() -> None:
    rejects(
        unit04.depth_width,
        fake_study(keys="missing"),
        match=r"row 0 should have exactly the keys .*missing \['test_accuracy'\]",
    )
    rejects(unit04.depth_width, fake_study(keys="extra"), match=r"unexpected \['seconds'\]")
    rejects(unit04.depth_width, lambda *a, **k: {"depth": 1}, match="expected a list of dicts .*found dict")
    rejects(
        unit04.depth_width, lambda *a, **k: fake_study()(*a, **k)[:-1], match=r"expected 6 rows \(2 depths × 3 widths\)"
    )


def test_depth_width_rejects_untrained_models() -> None:
    def untrained(X_train, y_train, X_test, y_test, *, depths, widths, epochs, batch_size, lr, seed):
        rows = []
        for depth in depths:
            for width in widths:
                torch.manual_seed(seed)
                model = MLP(X_train.shape[1], [width] * depth, int(y_train.max()) + 1)  # never trained
                with torch.no_grad():
                    acc = [
                        (model(X).argmax(1) == y).float().mean().item()
                        for X, y in ((X_train, y_train), (X_test, y_test))
                    ]
                rows.append(
                    {
                        "depth": depth,
                        "width": width,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "train_accuracy": acc[0],
                        "test_accuracy": acc[1],
                    }
                )
        return rows

    message = rejects(unit04.depth_width, untrained, match=r"(close to chance|trained models reach above 0\.9)")
    assert "is every model trained" in message and "(data seed 0)" in message


# --- ex02: a custom Dataset ---------------------------------------------------------------------


def dataset_variant(
    *,
    convert: str = "right",
    standardise: str = "right",
    channel: bool = True,
    label: str = "right",
    index: str = "right",
    transform: str = "right",
    length: str = "right",
):
    """A learner's FashionDataset with one typical mistake switched on."""

    class Variant(Dataset):
        def __init__(self, images, labels, *, standardize=True, transform=None):
            self.images = images
            self.labels = labels if label in ("no long", "python int", "one-hot") else labels.long()
            self.standardize, self.transform = standardize, transform

        def __len__(self):
            return 10 if length == "fixed" else len(self.images)

        def __getitem__(self, i):
            n = len(self.images)
            if index == "wrap":
                i = i % n
            elif index == "no negatives" and i < 0:
                raise IndexError("negative index")
            elif index == "value error" and not -n <= i < n:
                raise ValueError("bad index")
            raw = self.images[i]
            x = {
                "right": lambda: raw.float() / 255,
                "no divide": lambda: raw.float(),
                "integer division": lambda: (raw // 255).float(),
                "no convert": lambda: raw,
                "double": lambda: raw.double() / 255,
                "in place": lambda: self.images.__setitem__(i, raw // 2) or raw.float() / 127.5,
            }[convert]()
            if transform == "before":
                x = self.transform(x) if self.transform is not None else x
            if self.standardize:
                if standardise == "right":
                    x = (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
                elif standardise == "per image":
                    x = (x - x.mean()) / x.std()
                elif standardise == "before divide":
                    x = (raw.float() - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
                elif standardise == "swapped":
                    x = (x - FASHION_MNIST_STD) / FASHION_MNIST_MEAN
                elif standardise == "no parentheses":
                    x = x - FASHION_MNIST_MEAN / FASHION_MNIST_STD
            elif standardise == "always":
                x = (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
            if channel:
                x = x.unsqueeze(0)
            if self.transform is not None and transform in ("right", "ignored"):
                y = self.transform(x)
                x = y if transform == "right" else x
            lab = self.labels[i]
            if label == "one-hot":
                return x, torch.nn.functional.one_hot(lab.long(), 10)
            if label == "shifted":
                lab = self.labels[(i + 1) % n]
            return x, int(lab) if label == "python int" else lab

    return Variant


DATASET_MISTAKES = [
    ({"convert": "no divide"}, r"values up to 255: convert to float and divide by 255"),
    (
        {"convert": "integer division"},
        r"only two distinct pixel values .*integer division .*convert the uint8 image to float first",
    ),
    ({"convert": "no convert"}, r"the image is still uint8: convert it to float32"),
    ({"convert": "double"}, r"should be float32, found torch.float64 \(use .float\(\), not .double\(\)\)"),
    ({"convert": "in place"}, r"(the images passed in were modified|image values differ)"),
    ({"channel": False}, r"found \(28, 28\): add the channel dimension with .unsqueeze\(0\)"),
    ({"standardise": "none"}, r"standardize=True\).*in \[0, 1\] but not standardised: with standardize=True subtract"),
    ({"standardise": "per image"}, r"standardised each image with its own mean and std"),
    ({"standardise": "before divide"}, r"standardised the 0-255 pixels: divide by 255 first"),
    ({"standardise": "swapped"}, r"mean and std swapped"),
    ({"standardise": "no parentheses"}, r"incomplete standardisation: .*with the parentheses"),
    ({"standardise": "always"}, r"standardised although standardize=False"),
    (
        {"label": "no long"},
        r"labels.to\(torch.uint8\).*the label should be int64 .*found torch.uint8: convert with .long\(\)",
    ),
    ({"label": "python int"}, r"the label should be a 0-d int64 tensor \(labels\[index\].long\(\)\), found int"),
    ({"label": "one-hot"}, r"the label has shape \(10,\): return the class index"),
    ({"label": "shifted"}, r"expected label \d \(labels\[index\]\), found \d"),
    (
        {"index": "wrap"},
        r"\[-?\d+\] returned an example; an index outside \[-\d+, \d+\) should raise IndexError.*do not wrap",
    ),
    ({"index": "no negatives"}, r"\[-1\] raised IndexError; negative indices count from the end"),
    ({"index": "value error"}, r"raised ValueError: bad index; an index outside .* should raise IndexError"),
    ({"transform": "never"}, r"the transform was never called"),
    (
        {"transform": "before"},
        r"transform should receive the normalised float32 image of shape \(1, 28, 28\); it received "
        r"torch.float32 \(28, 28\)",
    ),
    ({"transform": "ignored"}, r"the item should be transform\(image\), found the image without the transform"),
    ({"length": "fixed"}, r"len\(ds\) should be the number of images, \d+, found 10"),
]


@pytest.mark.parametrize("seed", [0, 1])
def test_fashion_dataset_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit04.fashion_dataset(solution("ex02-custom-dataset", "FashionDataset"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ fashion dataset")


def test_fashion_dataset_accepts_the_reference_variant() -> None:
    unit04.fashion_dataset(dataset_variant())


def test_fashion_dataset_rejects_stub() -> None:
    class Stub(Dataset):
        def __init__(self, images, labels, *, standardize=True, transform=None):
            raise NotImplementedError("keep the images")

    rejects(unit04.fashion_dataset, Stub, match=r"Stub\(images, labels, standardize=False\).*is not implemented yet")


@pytest.mark.parametrize(("kwargs", "match"), DATASET_MISTAKES)
@pytest.mark.parametrize("seed", range(2))
def test_fashion_dataset_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    message = rejects(unit04.fashion_dataset, dataset_variant(**kwargs), match=match, seed=seed)
    assert f"(data seed {seed})" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), DATASET_MISTAKES)
def test_fashion_dataset_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit04.fashion_dataset, dataset_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_fashion_dataset_solution_passes_on_every_seed() -> None:
    cls = solution("ex02-custom-dataset", "FashionDataset")
    for seed in range(200):
        unit04.fashion_dataset(cls, seed=seed)


def test_fashion_dataset_rejects_non_dataset_and_crashes() -> None:
    class NotADataset:
        def __init__(self, images, labels, *, standardize=True, transform=None):
            pass

    rejects(unit04.fashion_dataset, NotADataset, match="expected a subclass of torch.utils.data.Dataset")

    class NoLen(Dataset):
        def __init__(self, images, labels, *, standardize=True, transform=None):
            pass

    rejects(unit04.fashion_dataset, NoLen, match=r"len\(\) of .* raised TypeError")

    class ReturnsNone(dataset_variant()):
        def __getitem__(self, i):
            return None

    rejects(unit04.fashion_dataset, ReturnsNone, match=r"expected a pair \(image, label\), found NoneType")


# --- named typical mistakes in the measured accuracies, each rejected on every seed ---------------


def trained_study(mistake: str):
    """The solution's study with one measuring mistake switched on (trains for real, small and fast)."""
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from dlfund.models.mlp import MLP

    def accuracy(model, X, y, batch_size=None):
        with torch.no_grad():
            if batch_size is None:
                return float((model(X).argmax(1) == y).float().mean())
            accs = [float((model(xb).argmax(1) == yb).float().mean()) for xb, yb in zip(X.split(32), y.split(32))]
            return sum(accs) / len(accs)

    def study(X_train, y_train, X_test, y_test, *, depths, widths, epochs, batch_size, lr, seed):
        c = int(y_train.max()) + 1
        rows = []
        for depth in depths:
            for width in widths:
                torch.manual_seed(seed)
                model = MLP(X_train.shape[1], [width] * depth, c)
                opt = torch.optim.Adam(model.parameters(), lr=lr)
                loader = DataLoader(TensorDataset(X_train, y_train), batch_size=batch_size, shuffle=True)
                for _ in range(epochs):
                    for xb, yb in loader:
                        opt.zero_grad()
                        nn.functional.cross_entropy(model(xb), yb).backward()
                        opt.step()
                train, test = accuracy(model, X_train, y_train), accuracy(model, X_test, y_test)
                if mistake == "test measured on the training set":
                    test = train
                elif mistake == "train measured on the test set":
                    train = test
                elif mistake == "sets swapped":
                    train, test = test, train
                elif mistake == "typed in":
                    train, test = 1.0, 1.0
                elif mistake == "averaged over batches":
                    train, test = accuracy(model, X_train, y_train, 32), accuracy(model, X_test, y_test, 32)
                elif mistake == "percentages":
                    train, test = 100 * train, 100 * test
                rows.append(
                    {
                        "depth": depth,
                        "width": width,
                        "parameters": sum(p.numel() for p in model.parameters()),
                        "train_accuracy": train,
                        "test_accuracy": test,
                    }
                )
        return rows

    return study


STUDY_MISTAKES = {
    "test measured on the training set": r"(no model can score above|not a whole number)",
    "train measured on the test set": r"(no model can score above|not a whole number)",
    "sets swapped": r"(no model can score above|not a whole number)",
    "typed in": r"no model can score above",
    "averaged over batches": r"(not a whole number|averaging per-batch)",
    "percentages": r"looks like a percentage",
}
PARAMETER_MISTAKES = {
    "weights only (no biases)": ({"parameters": "weights only"}, r"parameters"),
    "one layer too many": ({"parameters": "one layer more"}, r"parameters"),
    "no output layer": ({"parameters": "no output layer"}, r"parameters"),
    "width-major order": ({"order": "width"}, r"wrong order"),
}


@pytest.mark.parametrize("seed", [0])
@pytest.mark.parametrize("mistake", ["test measured on the training set", "typed in"])
def test_depth_width_named_mistake_rejected(mistake: str, seed: int) -> None:
    rejects(unit04.depth_width, trained_study(mistake), match=STUDY_MISTAKES[mistake], seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(100, 150))
@pytest.mark.parametrize("mistake", list(STUDY_MISTAKES) + list(PARAMETER_MISTAKES))
def test_depth_width_named_mistake_rejected_on_many_seeds(mistake: str, seed: int) -> None:
    if mistake in PARAMETER_MISTAKES:
        kwargs, match = PARAMETER_MISTAKES[mistake]
        rejects(unit04.depth_width, fake_study(**kwargs), match=match, seed=seed)
    else:
        rejects(unit04.depth_width, trained_study(mistake), match=STUDY_MISTAKES[mistake], seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize("seed", range(200))
def test_depth_width_solution_passes_on_many_seeds(seed: int) -> None:
    unit04.depth_width(solution("ex01-depth-width", "depth_width_study"), seed=seed)
    unit04.depth_width(trained_study("none"), seed=seed)


# --- ex03: cross-entropy with label smoothing ---------------------------------------------------


def smoothing_variant(
    *,
    spread: str = "all",
    reduce: str = "mean",
    log: str = "log_softmax",
    dim: int = 1,
    uniform: bool = True,
    scale_one_hot: bool = True,
    detach: bool = False,
    builtin: str | None = None,
):
    """A learner's smoothed_cross_entropy with one typical mistake switched on."""

    def smoothed_cross_entropy(logits, targets, smoothing):
        if builtin == "functional":
            return torch.nn.functional.cross_entropy(logits, targets, label_smoothing=smoothing)
        if builtin == "module":
            return torch.nn.CrossEntropyLoss(label_smoothing=smoothing)(logits, targets)
        n, c = logits.shape
        log_p = logits.log_softmax(dim=dim) if log == "log_softmax" else logits.softmax(dim=dim).log()
        one_hot = torch.nn.functional.one_hot(targets, c).to(logits.dtype)
        rest = {"all": smoothing / c, "others": smoothing / (c - 1) * (1 - one_hot), "undivided": smoothing}[spread]
        q = (1 - smoothing if scale_one_hot else 1.0) * one_hot + (rest if uniform else 0.0)
        per_example = -(q * log_p).sum(dim=1)
        loss = per_example.mean() if reduce == "mean" else per_example.sum() if reduce == "sum" else per_example
        return loss.detach() if detach else loss

    return smoothed_cross_entropy


SMOOTHING_MISTAKES = [
    ({"spread": "others"}, r"spread over the C - 1 other classes"),
    ({"spread": "undivided"}, r"ε was added to every class without dividing by C"),
    ({"uniform": False}, r"only the true-class term .* the uniform part .* is missing"),
    ({"scale_one_hot": False}, r"the one-hot part was not scaled by \(1 - ε\)"),
    ({"uniform": False, "scale_one_hot": False}, r"the smoothing is ignored: that is the plain cross-entropy"),
    ({"reduce": "sum"}, r"summed over the batch: take the mean over the N examples"),
    ({"reduce": "none"}, r"expected a 0-d tensor \(the mean over the batch\), found shape \(\d+,\): average"),
    ({"log": "log of softmax"}, r"log\(softmax\(z\)\) underflows to log\(0\) = -inf; use a log-softmax"),
    ({"dim": 0}, r"the log-softmax ran over the batch \(dim=0\)"),
    ({"detach": True}, r"the loss has no gradient"),
    ({"builtin": "functional"}, r"calls F.cross_entropy with label_smoothing=0\.\d+ .*write the smoothed loss"),
    ({"builtin": "module"}, r"calls F.cross_entropy with label_smoothing=0\.\d+"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_label_smoothing_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit04.label_smoothing(solution("ex03-label-smoothing", "smoothed_cross_entropy"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ label smoothing")


def test_label_smoothing_accepts_the_reference_and_plain_cross_entropy_parts() -> None:
    unit04.label_smoothing(smoothing_variant())

    def via_plain(logits, targets, smoothing):  # F.cross_entropy without smoothing is fine
        log_p = torch.log_softmax(logits, dim=1)
        return (1 - smoothing) * torch.nn.functional.cross_entropy(logits, targets) - smoothing * log_p.mean(1).mean()

    unit04.label_smoothing(via_plain, seed=3)


def test_label_smoothing_reference_equals_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(7, 5, generator=gen, dtype=torch.float64), torch.randint(0, 5, (7,), generator=gen)
    ours = unit04.reference_smoothed_cross_entropy(logits, targets, 0.27)
    theirs = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.27)
    assert torch.allclose(ours, theirs)


def test_label_smoothing_rejects_stub() -> None:
    rejects(unit04.label_smoothing, stub, match=r"stub\(logits .* is not implemented yet.*hint: write this function")


def test_label_smoothing_rejects_wrong_types() -> None:
    rejects(unit04.label_smoothing, lambda z, y, e: 1.0, match=r"expected a 0-d tensor \(the mean loss\), found float")
    rejects(unit04.label_smoothing, lambda z, y, e: None, match=r"found NoneType")
    rejects(unit04.label_smoothing, lambda z, y, e: (y.zero_(), z.sum())[1], match=r"changed in place")


@pytest.mark.parametrize(("kwargs", "match"), SMOOTHING_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_label_smoothing_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    message = rejects(unit04.label_smoothing, smoothing_variant(**kwargs), match=match, seed=seed)
    assert f"(seed {seed})" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), SMOOTHING_MISTAKES)
def test_label_smoothing_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit04.label_smoothing, smoothing_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_label_smoothing_solution_passes_on_every_seed() -> None:
    fn = solution("ex03-label-smoothing", "smoothed_cross_entropy")
    for seed in range(200):
        unit04.label_smoothing(fn, seed=seed)
        unit04.label_smoothing(smoothing_variant(), seed=seed)
