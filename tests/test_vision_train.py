"""dlfund.train.vision: on-device batches, the fast trainer and its measurements (tiny, seconds)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dlfund.data.augment import RandomHorizontalFlip
from dlfund.data.torch_datasets import ImageDataset
from dlfund.train.vision import (
    TensorBatches,
    VisionHistory,
    evaluate_accuracy,
    images_per_second,
    train_classifier,
)
from dlfund.utils.device import resolve_bf16


def toy_images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two easy classes: a bright square top-left (class 0) or bottom-right (class 1), with noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = torch.randint(0, 60, (n, 12, 12), generator=g)
    for i, y in enumerate(labels.tolist()):
        if y == 0:
            images[i, 1:5, 1:5] += 180
        else:
            images[i, 7:11, 7:11] += 180
    return images.to(torch.uint8), labels


def small_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 2),
    )


def test_tensor_batches_shapes_normalisation_and_order() -> None:
    images, labels = toy_images(10)
    batches = TensorBatches(images, labels, batch_size=4, mean=0.5, std=0.25)
    assert len(batches) == 3 and batches.num_examples == 10
    xs, ys = zip(*batches)
    assert [x.shape for x in xs] == [(4, 1, 12, 12), (4, 1, 12, 12), (2, 1, 12, 12)]
    assert all(x.dtype == torch.float32 for x in xs) and all(y.dtype == torch.int64 for y in ys)
    torch.testing.assert_close(torch.cat(xs), (images.float().unsqueeze(1) / 255 - 0.5) / 0.25)
    assert torch.equal(torch.cat(ys), labels)
    assert len(TensorBatches(images, labels, batch_size=4, mean=0, std=1, drop_last=True)) == 2


def test_tensor_batches_seeded_shuffle_and_augment() -> None:
    images, labels = toy_images(20)
    a = TensorBatches(images, labels, batch_size=5, mean=0, std=1, shuffle=True, seed=3)
    b = TensorBatches(images, labels, batch_size=5, mean=0, std=1, shuffle=True, seed=3)
    epoch_a1, epoch_a2 = torch.cat([y for _, y in a]), torch.cat([y for _, y in a])
    epoch_b1 = torch.cat([y for _, y in b])
    assert torch.equal(epoch_a1, epoch_b1)
    assert sorted(epoch_a1.tolist()) == sorted(labels.tolist())
    x1 = torch.cat([x for x, _ in TensorBatches(images, labels, batch_size=5, mean=0, std=1, shuffle=True, seed=1)])
    assert not torch.equal(x1, torch.cat([x for x, _ in TensorBatches(images, labels, batch_size=5, mean=0, std=1)]))
    assert not torch.equal(epoch_a1, epoch_a2)  # a new order every epoch
    flip = TensorBatches(images, labels, batch_size=20, mean=0, std=1, augment=RandomHorizontalFlip(p=1.0))
    x, _ = next(iter(flip))
    assert torch.equal(x, images.float().unsqueeze(1).div(255).flip(-1))


def test_tensor_batches_from_dataset_and_bad_input() -> None:
    images, labels = toy_images(8)
    ds = ImageDataset(images, labels, mean=0.2, std=0.3)
    batches = TensorBatches.from_dataset(ds, torch.tensor([1, 3, 5]), batch_size=2)
    x, y = next(iter(batches))
    torch.testing.assert_close(x[1], ds[3][0])
    assert y.tolist() == [1, 1] and batches.num_examples == 3
    with pytest.raises(TypeError, match="uint8"):
        TensorBatches(images.float(), labels, batch_size=2, mean=0, std=1)
    with pytest.raises(TypeError, match=r"labels must be \(8,\) integers"):
        TensorBatches(images, labels[:3], batch_size=2, mean=0, std=1)
    with pytest.raises(ValueError, match="give no batches"):
        TensorBatches(images, labels, batch_size=10, mean=0, std=1, drop_last=True)


@pytest.mark.parametrize(("optimizer", "schedule", "lr"), [("sgd", "onecycle", 0.2), ("adamw", "cosine", 0.02)])
def test_train_classifier_learns_and_measures(
    optimizer: str, schedule: str, lr: float, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(0)
    images, labels = toy_images(256)
    test_images, test_labels = toy_images(64, seed=1)
    train = TensorBatches(images, labels, batch_size=32, mean=0.2, std=0.3, shuffle=True)
    test = TensorBatches(test_images, test_labels, batch_size=64, mean=0.2, std=0.3)
    model = small_model()
    before = evaluate_accuracy(model, test, "cpu")
    history = train_classifier(
        model,
        train,
        test,
        epochs=3,
        lr=lr,
        device="cpu",
        optimizer=optimizer,
        schedule=schedule,
        label_smoothing=0.1,
        target_accuracy=0.9,
    )
    assert isinstance(history, VisionHistory) and history.epochs == 3
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.final_accuracy >= 0.9 and history.final_accuracy == evaluate_accuracy(model, test, "cpu")
    assert history.final_accuracy > before or before >= 0.9
    assert all(s > 0 for s in history.images_per_s) and history.mean_images_per_s > 0
    assert history.train_seconds == sorted(history.train_seconds) and history.total_train_seconds > 0
    assert history.time_to_target is not None and history.epochs_to_target is not None
    assert history.time_to_target == history.train_seconds[history.epochs_to_target - 1]
    assert history.bf16 is False and history.compiled is False
    out = capsys.readouterr().out
    assert "training on cpu: float32" in out and "reached 0.9000 after" in out
    assert [r["epoch"] for r in history.rows()] == [1, 2, 3]


def test_train_classifier_falls_back_loudly_on_cpu(capsys: pytest.CaptureFixture[str]) -> None:
    images, labels = toy_images(32)
    train = TensorBatches(images, labels, batch_size=16, mean=0.2, std=0.3)
    history = train_classifier(
        small_model(),
        train,
        train,
        epochs=1,
        lr=0.1,
        device="cpu",
        bf16=True,
        compile=True,
        channels_last=True,
        target_accuracy=1.01,
        verbose=True,
    )
    out = capsys.readouterr().out
    assert "bf16 autocast is not supported on cpu: training in float32" in out
    assert "torch.compile is only used on CUDA" in out and "did not reach" in out
    assert history.time_to_target is None and history.channels_last and not history.bf16
    assert resolve_bf16(None, torch.device("cpu")) is False
    with pytest.raises(ValueError, match="optimizer must be 'sgd' or 'adamw'"):
        train_classifier(small_model(), train, train, epochs=1, lr=0.1, device="cpu", optimizer="adam")
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        train_classifier(small_model(), train, train, epochs=0, lr=0.1, device="cpu")


def test_images_per_second_leaves_the_model_alone() -> None:
    model = small_model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rate = images_per_second(model, 8, "cpu", image_shape=(1, 12, 12), num_classes=2, steps=2, warmup=1)
    assert rate > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert images_per_second(model, 8, "cpu", image_shape=(1, 12, 12), steps=2, warmup=0, train=False) > 0


def test_train_classifier_watches_validation_and_touches_test_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a validation set, every epoch is scored on it, and the test set exactly once, at the end."""
    import dlfund.train.vision as vision

    torch.manual_seed(0)
    images, labels = toy_images(256)
    train = TensorBatches(images, labels, batch_size=32, mean=0.2, std=0.3, shuffle=True)
    val = TensorBatches(*toy_images(64, seed=2), batch_size=64, mean=0.2, std=0.3)
    test = TensorBatches(*toy_images(64, seed=1), batch_size=64, mean=0.2, std=0.3)
    scored: list[str] = []
    real = vision.evaluate_accuracy

    def counting(model, batches, *args, **kwargs):  # type: ignore[no-untyped-def]
        scored.append("val" if batches is val else "test" if batches is test else "?")
        return real(model, batches, *args, **kwargs)

    monkeypatch.setattr(vision, "evaluate_accuracy", counting)
    model = small_model()
    history = vision.train_classifier(
        model, train, test, val=val, epochs=3, lr=0.2, device="cpu", target_accuracy=0.5, verbose=False
    )
    assert scored == ["val", "val", "val", "test"]
    assert len(history.val_accuracy) == 3 and len(history.test_accuracy) == 1
    assert history.final_accuracy == real(model, test, "cpu")
    assert [set(r) >= {"val_accuracy"} for r in history.rows()] == [True] * 3
    if history.epochs_to_target is not None:
        assert history.val_accuracy[history.epochs_to_target - 1] >= 0.5


def test_evaluate_accuracy_names_a_model_left_on_another_device() -> None:
    """On a GPU, evaluating a model before moving it failed deep inside conv2d (unit 07's CNN lecture did);
    the same mistake, a model on the meta device evaluated on the CPU, is named here."""
    images, labels = toy_images(8)
    batches = TensorBatches(images, labels, batch_size=4, mean=0.3, std=0.3)
    with pytest.raises(ValueError, match=r"on meta but the batches go to cpu: move the model first"):
        evaluate_accuracy(small_model().to("meta"), batches, "cpu")
    assert 0.0 <= evaluate_accuracy(small_model(), batches, "cpu") <= 1.0


def test_train_classifier_warmup_cosine_and_no_test_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """The linear warm-up then cosine reaches the full rate after the warm-up share and ends at 0; with a
    validation set and ``test=None`` nothing is scored on a test set."""
    images, labels = toy_images(64)
    train = TensorBatches(images, labels, batch_size=8, mean=0.2, std=0.3, shuffle=True)
    rates: list[float] = []
    original_step = torch.optim.SGD.step

    def recording_step(self: torch.optim.SGD, *args: object, **kwargs: object) -> object:
        rates.append(self.param_groups[0]["lr"])  # the rate this update uses
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording_step)
    history = train_classifier(
        small_model(), train, None, val=train, epochs=2, lr=0.1, device="cpu", schedule="warmup_cosine", warmup=0.25
    )
    assert len(rates) == 16  # 2 epochs of 8 batches
    assert rates[:4] == pytest.approx([0.025, 0.05, 0.075, 0.1])  # 4 warm-up steps, linear
    assert rates[4] == pytest.approx(0.1) and rates[-1] < rates[5] < 0.1
    assert history.test_accuracy == [] and len(history.val_accuracy) == 2
    with pytest.raises(ValueError, match="test may be None only with a validation set"):
        train_classifier(small_model(), train, None, epochs=1, lr=0.1, device="cpu")
