"""Checks for unit 4 (multilayer networks): the depth/width study, a custom Fashion-MNIST ``Dataset`` and
cross-entropy with label smoothing.

Each check builds fresh random inputs (a new seed on every call, printed in failure messages so a
failure can be replayed with ``seed=...``), compares the learner's work with a reference, and says
precisely what differs.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from dlfund.checks._core import CheckFailed, call_learner, expect, expect_close, fresh_seed, passed
from dlfund.data.torch_datasets import FASHION_MNIST_MEAN, FASHION_MNIST_STD

__all__ = ["depth_width", "fashion_dataset", "label_smoothing", "mlp_parameters", "reference_smoothed_cross_entropy"]

Tensor = torch.Tensor


# ---------------------------------------------------------------------------------------------
# ex01: depth and width


STUDY_KEYS = ("depth", "width", "parameters", "train_accuracy", "test_accuracy")


def mlp_parameters(in_features: int, hidden: Sequence[int], out_features: int) -> int:
    """The number of parameters of ``MLP(in_features, hidden, out_features)``.

    Every ``Linear(fan_in, fan_out)`` holds a ``(fan_out, fan_in)`` weight matrix and ``fan_out`` biases.
    """
    widths = [in_features, *hidden, out_features]
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths[:-1], widths[1:]))


def _blob_problem(gen: torch.Generator, n_train: int, n_test: int) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """A small, easy classification problem: C Gaussian clusters in D dimensions, well apart."""
    n_classes = int(torch.randint(3, 6, (), generator=gen))
    d = int(torch.randint(5, 13, (), generator=gen))
    centres = 5.0 * torch.randn(n_classes, d, generator=gen)
    while torch.pdist(centres).min() < 6:  # keep the clusters apart, so every model can learn them
        centres = 5.0 * torch.randn(n_classes, d, generator=gen)
    n = n_train + n_test
    y = torch.arange(n) % n_classes  # every class present in both parts
    y = y[torch.randperm(n, generator=gen)]
    X = centres[y] + torch.randn(n, d, generator=gen)
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:], n_classes


def _as_float(value: Any) -> float | None:
    """``value`` as a float if it is a real number (or a one-element tensor), else ``None``."""
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.dtype != torch.bool:
        return float(value)
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _diagnose_parameters(found: int, d: int, width: int, depth: int, c: int) -> str:
    """Name the counting mistake ``found`` is consistent with, if any."""
    hidden = [width] * depth
    widths = [d, *hidden, c]
    weights_only = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    if found == weights_only:
        return (
            ": that counts only the weight matrices; the biases are parameters too "
            "(sum p.numel() over model.parameters())"
        )
    if found == 2 * (depth + 1):
        return (
            ": that is the number of parameter *tensors*; count the numbers in them "
            "(sum(p.numel() for p in model.parameters()))"
        )
    if found == mlp_parameters(d, hidden, c) - (width + 1) * c:
        return ": the output layer is missing; it has parameters too"
    for other in (depth - 1, depth + 1):
        if other >= 0 and found == mlp_parameters(d, [width] * other, c):
            return (
                f": that is the count of an MLP with {other} hidden layers; depth = {depth} means {depth} hidden "
                f"layers of width {width} (MLP(D, [width] * depth, C))"
            )
    return ""


def depth_width(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``depth_width_study(X_train, y_train, X_test, y_test, *, depths, widths, epochs, batch_size, lr, seed)``.

    Expected: a list with one dict per model, depth-major (``for depth in depths: for width in widths``),
    each with exactly the keys ``depth, width, parameters, train_accuracy, test_accuracy``: the
    parameter count of ``MLP(D, [width] * depth, C)``, and its accuracies (fractions in [0, 1]) on the
    training and test examples after training.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    n_train, n_test = 240, 101  # 101 is prime: a test accuracy must be a multiple of 1/101
    X_train, y_train, X_test, y_test, n_classes = _blob_problem(gen, n_train, n_test)
    # Conflicting copies: the last m examples of each set repeat earlier ones with another label, so
    # every model gets at least m of them wrong. An accuracy above that bound was not measured on that
    # set (the other set, a typed-in number); the bounds differ, so the two sets cannot be swapped.
    conflicts = {"train": 12, "test": 20}
    for part, (X_, y_) in {"train": (X_train, y_train), "test": (X_test, y_test)}.items():
        m = conflicts[part]
        X_[-m:], y_[-m:] = X_[:m], (y_[:m] + 1) % n_classes
        order = torch.randperm(len(y_), generator=gen)
        X_[:], y_[:] = X_[order].clone(), y_[order].clone()
    bounds = {"train": (n_train - conflicts["train"]) / n_train, "test": (n_test - conflicts["test"]) / n_test}
    d = X_train.shape[1]
    chance = 1 / n_classes
    depths = sorted(int(v) for v in torch.randperm(3, generator=gen)[:2] + 1)  # two of 1, 2, 3
    widths = sorted(int(v) for v in torch.randperm(27, generator=gen)[:3] + 6)  # three of 6..32
    if bool(torch.randint(0, 2, (), generator=gen)):
        widths = widths[::-1]  # the grid's order, not sorted order, decides the order of the rows
    study_seed = int(torch.randint(0, 2**31 - 1, (), generator=gen))
    settings = {"depths": depths, "widths": widths, "epochs": 10, "batch_size": 32, "lr": 0.01, "seed": study_seed}
    call = (
        "depth_width_study(X_train, y_train, X_test, y_test, "
        + ", ".join(f"{k}={v}" for k, v in settings.items())
        + f") {where}"
    )
    rows = call_learner(fn, X_train, y_train, X_test, y_test, what=call, **settings)

    grid = [(depth, width) for depth in depths for width in widths]
    expect(
        isinstance(rows, Sequence) and not isinstance(rows, (str, bytes, dict)),
        f"{call}: expected a list of dicts (one per model), found {type(rows).__name__}",
    )
    expect(
        len(rows) == len(grid),
        f"{call}: expected {len(grid)} rows ({len(depths)} depths × {len(widths)} widths), found {len(rows)}",
    )
    for i, row in enumerate(rows):
        expect(isinstance(row, dict), f"{call}: row {i} should be a dict, found {type(row).__name__}")
        missing = [k for k in STUDY_KEYS if k not in row]
        extra = [k for k in row if k not in STUDY_KEYS]
        expect(
            not missing and not extra,
            f"{call}: row {i} should have exactly the keys {list(STUDY_KEYS)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else ""),
        )
    found_grid = [(row["depth"], row["width"]) for row in rows]
    if found_grid != grid:
        if sorted(found_grid) == sorted(grid):
            raise CheckFailed(
                f"{call}: the rows are in the wrong order: expected (depth, width) = {grid} "
                "(depth-major: for depth in depths: for width in widths), found " + str(found_grid)
            )
        raise CheckFailed(f"{call}: expected the (depth, width) pairs {grid}, found {found_grid}")

    untrained = (
        f": is every model trained (loss.backward() and optimizer.step() for every batch, "
        f"{settings['epochs']} epochs) and evaluated after training?"
    )
    accuracies: dict[str, list[float]] = {"train_accuracy": [], "test_accuracy": []}
    for (depth, width), row in zip(grid, rows):
        label = f"{call}: depth={depth}, width={width}"
        expected = mlp_parameters(d, [width] * depth, n_classes)
        found = row["parameters"]
        if isinstance(found, torch.Tensor) and found.numel() == 1:
            found = found.item()
        expect(
            isinstance(found, numbers.Integral) and not isinstance(found, bool),
            f"{label}: parameters should be an int, found {type(found).__name__} {found!r}",
        )
        expect(
            int(found) == expected,
            f"{label}: expected {expected} parameters for MLP({d}, {[width] * depth}, {n_classes}) "
            f"(each Linear(fan_in, fan_out) has fan_in·fan_out weights and fan_out biases), found {found}"
            + _diagnose_parameters(int(found), d, width, depth, n_classes),
        )
        for key, n in (("train_accuracy", n_train), ("test_accuracy", n_test)):
            part = key.split("_")[0]
            value = _as_float(row[key])
            expect(value is not None, f"{label}: {key} should be a float, found {type(row[key]).__name__}")
            assert value is not None
            expect(
                not (1 < value <= 100),
                f"{label}: {key} = {value:.4g} looks like a percentage; return a fraction in [0, 1]",
            )
            expect(0 <= value <= 1, f"{label}: {key} should be a fraction in [0, 1], found {value:.4g}")
            correct = value * n
            expect(
                abs(correct - round(correct)) < 1e-4,
                f"{label}: {key} = {value:.6f} is not a whole number of correct examples out of the {n} {part} "
                f"examples: measure it on the {part} set, counting the correct predictions over all {n} examples "
                f"(correct / {n}), not averaging per-batch accuracies",
            )
            expect(
                value <= bounds[part] + 1e-9,
                f"{label}: {key} = {value:.4f}, but {conflicts[part]} of the {n} {part} examples are copies of "
                f"others with a different label, so no model can score above {bounds[part]:.4f} on the {part} "
                f"set: measure {key} from the model's predictions on the {part} set (not another set, not a "
                "typed-in number)",
            )
            expect(
                value >= chance + 0.1,
                f"{label}: {key} = {value:.3f} is close to chance ({chance:.3f} with "
                f"{n_classes} classes) on an easy problem{untrained}",
            )
            accuracies[key].append(value)
    for key, values in accuracies.items():
        mean = sum(values) / len(values)
        expect(
            mean >= bounds[key.split("_")[0]] - 0.15,
            f"{call}: the mean {key} over the grid is {mean:.3f}, but on this easy problem (chance "
            f"{chance:.3f}) trained models come close to the best possible {bounds[key.split('_')[0]]:.3f}{untrained}",
        )
    passed(
        f"depth/width study: {len(grid)} rows in the right order, exact parameter counts and trained accuracies "
        f"on a fresh {n_classes}-class problem"
    )


# ---------------------------------------------------------------------------------------------
# ex02: a custom Dataset for Fashion-MNIST


def _reference_image(images: Tensor, index: int, standardize: bool) -> Tensor:
    image = images[index].to(torch.float32).div(255).unsqueeze(0)
    return (image - FASHION_MNIST_MEAN) / FASHION_MNIST_STD if standardize else image


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-5, rtol=1e-5)


def _diagnose_pixels(found: Tensor, raw: Tensor, standardize: bool) -> str:
    """Why the image values differ from the reference: the usual conversion mistakes, named."""
    x = raw.to(torch.float32).unsqueeze(0)  # (1, 28, 28), 0-255
    m, s = FASHION_MNIST_MEAN, FASHION_MNIST_STD
    unit = x / 255
    if found.unique().numel() <= 2 < raw.unique().numel():
        return (
            "only two distinct pixel values (0 and 1 before any standardisation): that is integer division "
            "(// or dividing before converting); convert the uint8 image to float first (.float() or "
            ".to(torch.float32)), then divide by 255"
        )
    if standardize and _close(found, (x - m) / s):
        return "standardised the 0-255 pixels: divide by 255 first, then subtract the mean and divide by the std"
    if _close(found, x) or float(found.max()) > 100:
        return "values up to 255: convert to float and divide by 255 to scale the pixels to [0, 1]"
    if standardize:
        if _close(found, unit):
            return (
                f"the pixels are in [0, 1] but not standardised: with standardize=True subtract FASHION_MNIST_MEAN "
                f"({m}) and divide by FASHION_MNIST_STD ({s})"
            )
        if _close(found, (unit - s) / m):
            return "mean and std swapped: (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD"
        if _close(found, unit - m) or _close(found, unit / s) or _close(found, unit - m / s):
            return "incomplete standardisation: (x - FASHION_MNIST_MEAN) / FASHION_MNIST_STD, with the parentheses"
        if _close(found, (unit - unit.mean()) / unit.std()):
            return (
                "standardised each image with its own mean and std; use the training-set constants "
                "FASHION_MNIST_MEAN and FASHION_MNIST_STD, the same for every image"
            )
    elif _close(found, (unit - m) / s):
        return "standardised although standardize=False: then the pixels should stay in [0, 1]"
    return ""


def _check_item(item: Any, call: str) -> tuple[Tensor, Any]:
    expect(
        isinstance(item, (tuple, list)) and len(item) == 2,
        f"{call}: expected a pair (image, label), found {type(item).__name__}"
        + (f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""),
    )
    image, label = item
    expect(isinstance(image, torch.Tensor), f"{call}: the image should be a tensor, found {type(image).__name__}")
    if image.dtype == torch.uint8:
        raise CheckFailed(f"{call}: the image is still uint8: convert it to float32 (.float()) and divide by 255")
    expect(
        image.dtype == torch.float32,
        f"{call}: the image should be float32, found {image.dtype}"
        + (" (use .float(), not .double())" if image.dtype == torch.float64 else ""),
    )
    if tuple(image.shape) == (28, 28):
        raise CheckFailed(
            f"{call}: the image should have shape (1, 28, 28) (channel, height, width), found (28, 28): "
            "add the channel dimension with .unsqueeze(0)"
        )
    expect(
        tuple(image.shape) == (1, 28, 28),
        f"{call}: the image should have shape (1, 28, 28), found {tuple(image.shape)}",
    )
    return image, label


def _check_label(label: Any, expected: int, call: str) -> None:
    expect(
        isinstance(label, torch.Tensor),
        f"{call}: the label should be a 0-d int64 tensor (labels[index].long()), found {type(label).__name__}",
    )
    if tuple(label.shape) == (10,):
        raise CheckFailed(f"{call}: the label has shape (10,): return the class index (a 0-d tensor), not one-hot")
    expect(
        label.shape == (), f"{call}: the label should be a 0-d tensor (one number), found shape {tuple(label.shape)}"
    )
    expect(
        label.dtype == torch.int64,
        f"{call}: the label should be int64 (what F.cross_entropy expects), found {label.dtype}: convert with .long()",
    )
    value = int(label)
    expect(0 <= value <= 9, f"{call}: labels are classes 0-9, found {value}")
    expect(value == expected, f"{call}: expected label {expected} (labels[index]), found {value}")


def fashion_dataset(cls: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check a ``Dataset`` class ``cls(images, labels, *, standardize=True, transform=None)``.

    ``images (N, 28, 28)`` uint8 and ``labels (N,)`` integers; ``ds[i]`` must be ``(image, label)``
    with ``image`` float32 ``(1, 28, 28)``: pixels / 255, then ``(x - FASHION_MNIST_MEAN) /
    FASHION_MNIST_STD`` when ``standardize``, then ``transform`` if given; and ``label`` a 0-d int64
    tensor. ``len(ds) == N``; indexing follows Python's sequence rules (negative indices count from the
    end, anything outside ``[-N, N)`` raises ``IndexError``).
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(data seed {seed})"
    n = int(torch.randint(20, 60, (), generator=gen))
    images = torch.randint(0, 256, (n, 28, 28), generator=gen, dtype=torch.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255  # the extremes are always present
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=gen)]
    original = images.clone()
    probes = [0, n - 1, *(int(i) for i in torch.randint(1, n - 1, (3,), generator=gen))]

    for standardize in (False, True):
        call = f"{getattr(cls, '__name__', 'cls')}(images, labels, standardize={standardize}) {where}"
        ds = call_learner(cls, images, labels, standardize=standardize, what=call)
        expect(
            isinstance(ds, TorchDataset),
            f"{call}: expected a subclass of torch.utils.data.Dataset, found {type(ds).__name__}",
        )
        length = call_learner(len, ds, what=f"len() of {call}")
        expect(length == n, f"{call}: len(ds) should be the number of images, {n}, found {length}")
        for i in probes:
            item_call = f"{call}[{i}]"
            image, label = _check_item(call_learner(ds.__getitem__, i, what=item_call), item_call)
            expected = _reference_image(images, i, standardize)
            if not _close(image, expected):
                why = _diagnose_pixels(image, images[i], standardize)
                diff = (image - expected).abs()
                raise CheckFailed(
                    f"{item_call}: the image values differ from the reference (largest difference "
                    f"{float(diff.max()):.4g}; expected mean {float(expected.mean()):.4f}, std "
                    f"{float(expected.std()):.4f}, found mean {float(image.mean()):.4f}, std "
                    f"{float(image.std()):.4f})" + (f": {why}" if why else "")
                )
            _check_label(label, int(labels[i]), item_call)

        # Sequence semantics: negative indices count from the end; out of range raises IndexError.
        try:
            last = ds[-1]
        except IndexError:
            raise CheckFailed(
                f"{call}[-1] raised IndexError; negative indices count from the end, like a list's: "
                f"ds[-1] is ds[{n - 1}]"
            ) from None
        except Exception:  # let call_learner name the crash
            last = call_learner(ds.__getitem__, -1, what=f"{call}[-1]")
        expect(
            _close(_check_item(last, f"{call}[-1]")[0], _reference_image(images, n - 1, standardize)),
            f"{call}[-1]: expected the last example (ds[{n - 1}]), like a list: negative indices count from the end",
        )
        for bad in (n, -n - 1):
            try:
                ds[bad]
            except IndexError:
                continue
            except Exception as err:  # any other exception is the mistake we report
                raise CheckFailed(
                    f"{call}[{bad}] raised {type(err).__name__}: {err}; an index outside [-{n}, {n}) "
                    "should raise IndexError, as a list does"
                ) from None
            raise CheckFailed(
                f"{call}[{bad}] returned an example; an index outside [-{n}, {n}) should raise "
                "IndexError, as a list does (do not wrap it around with %): a for loop over the "
                "dataset only stops at IndexError"
            )
    expect(torch.equal(images, original), f"{call}: the images passed in were modified: convert copies, not in place")

    # A uint8 label tensor (the raw idx format) must still give int64 labels.
    call = f"{getattr(cls, '__name__', 'cls')}(images, labels.to(torch.uint8)) {where}"
    ds = call_learner(cls, images, labels.to(torch.uint8), what=call)
    _check_label(
        _check_item(call_learner(ds.__getitem__, 1, what=f"{call}[1]"), f"{call}[1]")[1], int(labels[1]), f"{call}[1]"
    )

    # The transform receives the normalised float image (1, 28, 28), and its result is what ds[i] returns.
    seen: list[Tensor] = []

    def transform(x: Tensor) -> Tensor:
        seen.append(x.detach().clone() if isinstance(x, torch.Tensor) else x)
        return x * 2 + 1 if isinstance(x, torch.Tensor) else x

    call = f"{getattr(cls, '__name__', 'cls')}(images, labels, standardize=True, transform=t) {where}"
    ds = call_learner(cls, images, labels, standardize=True, transform=transform, what=call)
    i = probes[-1]
    seen.clear()
    image, label = _check_item(call_learner(ds.__getitem__, i, what=f"{call}[{i}]"), f"{call}[{i}]")
    expected = _reference_image(images, i, standardize=True)
    expect(len(seen) > 0, f"{call}[{i}]: the transform was never called: apply self.transform to the image")
    given = seen[-1]
    expect(
        isinstance(given, torch.Tensor) and given.dtype == torch.float32 and _close(given, expected),
        f"{call}[{i}]: the transform should receive the normalised float32 image of shape (1, 28, 28); it received "
        + (f"{given.dtype} {tuple(given.shape)}" if isinstance(given, torch.Tensor) else type(given).__name__)
        + ": apply it last, after converting and standardising",
    )
    expect(
        _close(image, expected * 2 + 1),
        f"{call}[{i}]: the item should be transform(image), found "
        + ("the image without the transform" if _close(image, expected) else "something else")
        + ": return what the transform returns",
    )
    _check_label(label, int(labels[i]), f"{call}[{i}]")

    # The DataLoader stacks the items into batches.
    call = f"DataLoader({getattr(cls, '__name__', 'cls')}(images, labels), batch_size=8) {where}"
    ds = call_learner(cls, images, labels, what=call)
    batch = call_learner(lambda: next(iter(DataLoader(ds, batch_size=8))), what=f"the first batch of {call}")
    xb, yb = batch
    expect(
        tuple(xb.shape) == (8, 1, 28, 28) and xb.dtype == torch.float32,
        f"{call}: the first batch of images should be (8, 1, 28, 28) float32, found {tuple(xb.shape)} {xb.dtype}",
    )
    expect(torch.equal(yb, labels[:8]), f"{call}: the first batch of labels should be labels[:8], found {yb.tolist()}")
    passed(
        f"fashion dataset: len, items (float32 (1, 28, 28), int64 labels), [0, 1] and standardised pixels, "
        f"transform, negative and out-of-range indices and batching match the reference on {n} fresh images"
    )


# ---------------------------------------------------------------------------------------------
# ex03: cross-entropy with label smoothing


def reference_smoothed_cross_entropy(logits: Tensor, targets: Tensor, smoothing: float) -> Tensor:
    """The mean over the batch of ``-Σ_k q_k log p_k`` with ``q = (1 - ε) one_hot + ε / C``.

    ``logits (N, C)``, ``targets (N,)`` int64; computed in float64 with ``logsumexp``, so it stays
    finite for any finite logits. A 0-d tensor.
    """
    z = logits.double()
    log_p = z - z.logsumexp(dim=1, keepdim=True)
    n, c = z.shape
    q = torch.full_like(z, smoothing / c)
    q[torch.arange(n), targets] += 1 - smoothing
    return -(q * log_p).sum(dim=1).mean()


@contextlib.contextmanager
def _refusing_builtin_smoothing() -> Iterator[list[float]]:
    """Record the ``label_smoothing`` of every call of ``F.cross_entropy`` (also through
    ``nn.CrossEntropyLoss``, or an import under another name) made inside the block."""
    code = F.cross_entropy.__code__
    seen: list[float] = []
    previous = sys.getprofile()

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code is code:
            value = frame.f_locals.get("label_smoothing", 0.0)
            seen.append(float(value) if isinstance(value, numbers.Real) else 0.0)
        if previous is not None:
            previous(frame, event, arg)

    sys.setprofile(watch)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


def _smoothing_mistake(found: float, logits: Tensor, targets: Tensor, eps: float) -> str:
    """Name the mistake whose loss equals ``found``, if any."""
    z = logits.double()
    n, c = z.shape
    log_p = z - z.logsumexp(dim=1, keepdim=True)
    picked = log_p[torch.arange(n), targets]
    one_hot = torch.zeros_like(z)
    one_hot[torch.arange(n), targets] = 1
    candidates = {
        "the smoothing is ignored: that is the plain cross-entropy; mix the one-hot target with the uniform "
        "distribution, q = (1 - ε) one_hot + ε / C": -picked.mean(),
        "the smoothing mass was spread over the C - 1 other classes (ε / (C - 1) each); here it is spread over "
        "all C classes, the true one included: q = (1 - ε) one_hot + ε / C": -(
            ((1 - eps) * one_hot + eps / (c - 1) * (1 - one_hot)) * log_p
        )
        .sum(1)
        .mean(),
        "ε was added to every class without dividing by C: the target q no longer sums to 1; use ε / C": -(
            ((1 - eps) * one_hot + eps) * log_p
        )
        .sum(1)
        .mean(),
        "only the true-class term (1 - ε)·(-log p_y) is there: the uniform part ε / C · Σ_k (-log p_k) is missing": -(
            1 - eps
        )
        * picked.mean(),
        "the one-hot part was not scaled by (1 - ε): q = (1 - ε) one_hot + ε / C": -((one_hot + eps / c) * log_p)
        .sum(1)
        .mean(),
        "summed over the batch: take the mean over the N examples": reference_smoothed_cross_entropy(
            logits, targets, eps
        )
        * n,
        "the log-softmax ran over the batch (dim=0): normalise over the classes, dim=1": -(
            ((1 - eps) * one_hot + eps / c) * (z - z.logsumexp(dim=0, keepdim=True))
        )
        .sum(1)
        .mean(),
    }
    for why, value in candidates.items():
        if math.isclose(found, float(value), rel_tol=1e-4, abs_tol=1e-5):
            return why
    return ""


def label_smoothing(fn: Callable[..., Any], *, seed: int | None = None) -> None:
    """Check ``fn(logits, targets, smoothing)`` → the mean label-smoothed cross-entropy, a 0-d tensor.

    ``logits (N, C)`` float32, ``targets (N,)`` int64 class indices, ``smoothing`` ε in [0, 1). The
    target distribution of example i is ``q = (1 - ε) one_hot(y_i) + ε / C`` (every class, the true one
    included, gets ε / C), and the loss is the mean over the batch of ``-Σ_k q_k log p_k`` with
    ``log p = log_softmax(logits)`` over the classes. Values (also for logits in the hundreds, where
    ``log(softmax)`` overflows), the gradient with respect to the logits, ``smoothing=0`` and the
    inputs left unchanged are compared with an independent float64 computation. Calling
    ``F.cross_entropy(..., label_smoothing=...)`` or ``nn.CrossEntropyLoss(label_smoothing=...)`` is
    refused: writing it is the exercise.
    """
    seed = fresh_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    where = f"(seed {seed})"
    n = int(torch.randint(6, 12, (), generator=gen))
    c = int(torch.randint(3, 6, (), generator=gen)) + (n - 2 if bool(torch.randint(0, 2, (), generator=gen)) else 0)
    # N ≠ C always: a softmax over the wrong dimension cannot fit the shapes by chance
    eps = round(float(torch.empty(()).uniform_(0.15, 0.4, generator=gen)), 3)  # never 0.1, a common default
    logits = 3 * torch.randn(n, c, generator=gen)
    logits[0] *= 100  # one confident row: logits in the hundreds, log(softmax) gives -inf there
    targets = torch.randint(0, c, (n,), generator=gen)
    targets[0] = int(logits[0].argmin())  # confidently wrong: its loss is large but finite
    name = getattr(fn, "__name__", "fn")

    def run(z: Tensor, y: Tensor, e: float, call: str) -> Tensor:
        z0, y0 = z.detach().clone(), y.clone()
        with _refusing_builtin_smoothing() as seen:
            out = call_learner(fn, z, y, e, what=call)
        if any(s > 0 for s in seen):
            raise CheckFailed(
                f"{call}: this calls F.cross_entropy with label_smoothing={seen[0]} (nn.CrossEntropyLoss does the "
                "same): write the smoothed loss yourself from log_softmax (writing it is the exercise; the built-in "
                "is there to compare with afterwards)"
            )
        expect(
            isinstance(out, Tensor),
            f"{call}: expected a 0-d tensor (the mean loss), found {type(out).__name__}",
        )
        expect(
            out.shape == (),
            f"{call}: expected a 0-d tensor (the mean over the batch), found shape {tuple(out.shape)}"
            + (": average the per-example losses (.mean())" if out.shape in ((n,), (n, 1)) else ""),
        )
        expect(
            torch.equal(z.detach(), z0) and torch.equal(y, y0),
            f"{call}: the logits or targets were changed in place; compute on new tensors",
        )
        return out

    z = logits.clone().requires_grad_(True)
    call = f"{name}(logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, smoothing={eps}) {where}"
    out = run(z, targets, eps, call)
    expected = reference_smoothed_cross_entropy(logits, targets, eps)
    if not bool(torch.isfinite(out.detach()).all()):
        raise CheckFailed(
            f"{call}: the loss is {float(out.detach()):.4g}, but row 0 holds logits of about "
            f"±{float(logits[0].abs().max()):.0f} and the true loss is finite, {float(expected):.4f}: "
            "log(softmax(z)) underflows to log(0) = -inf; use a log-softmax "
            "(z - logsumexp(z), or F.log_softmax / torch.log_softmax over dim=1)"
        )
    found = float(out.detach())
    if not math.isclose(found, float(expected), rel_tol=1e-4, abs_tol=1e-5):
        why = _smoothing_mistake(found, logits, targets, eps)
        raise CheckFailed(
            f"{call}: expected the loss {float(expected):.6f}, found {found:.6f}" + (f": {why}" if why else "")
        )
    expect(
        out.requires_grad and out.grad_fn is not None,
        f"{call}: the loss has no gradient: compute it with torch operations on the logits, without .detach(), "
        ".item() or numpy",
    )
    grad = call_learner(lambda: torch.autograd.grad(out, z)[0], what=f"the gradient of {call}")
    p = torch.softmax(logits.double(), dim=1)
    q = torch.full_like(p, eps / c)
    q[torch.arange(n), targets] += 1 - eps
    expect_close(grad.double(), (p - q) / n, f"{call}: the gradient with respect to the logits, (p - q) / N", atol=1e-6)

    # ε = 0 is the plain cross-entropy.
    small = logits[1:].clone()
    call0 = f"{name}(logits {tuple(small.shape)}, targets, smoothing=0.0) {where}"
    out0 = run(small, targets[1:], 0.0, call0)
    plain = reference_smoothed_cross_entropy(small, targets[1:], 0.0)
    expect(
        math.isclose(float(out0.detach()), float(plain), rel_tol=1e-4, abs_tol=1e-5),
        f"{call0}: with smoothing 0 the loss is the plain cross-entropy {float(plain):.6f}, found "
        f"{float(out0.detach()):.6f}",
    )
    passed(
        f"label smoothing: loss and gradient match an independent computation on {n} examples of {c} classes "
        f"with ε = {eps} (finite for logits in the hundreds), and ε = 0 gives the plain cross-entropy"
    )
