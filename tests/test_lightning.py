"""Library tests for dlfund.train.lightning (LitClassifier) and dlfund.data.datamodules (FashionMNISTDataModule).

Fashion-MNIST is replaced by a small synthetic stand-in of the same format (monkeypatched loader), so
that every test runs in about a second; the notebooks of unit 5 run the same classes on the real data.
"""

from __future__ import annotations

import copy
import warnings
from collections import Counter

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dlfund.data import (
    FASHION_MNIST_CLASSES,
    FashionMNISTDataModule,
    datamodules,
    torch_datasets,
)
from dlfund.models.mlp import MLP
from dlfund.train import LitClassifier, evaluate

# Lightning suggests more DataLoader workers for every loader; with these in-memory tensors
# num_workers=0 is the faster choice, so the hint is noise here.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")

N_TRAIN_ALL, N_TEST_ALL = 1200, 300  # 120 / 30 per class


def fake_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable stand-in images: class ``c`` has a bright band at rows ``2c .. 2c+5`` over dim noise."""
    n = {"train": N_TRAIN_ALL, "test": N_TEST_ALL}[split]
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=gen)]
    images = torch.randint(0, 80, (n, 28, 28), generator=gen, dtype=torch.uint8)
    for c in range(10):
        images[labels == c, 2 * c : 2 * c + 6, :] += 150
    return images, labels


@pytest.fixture(autouse=True)
def fake_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_datasets, "load_fashion_mnist", fake_fashion_mnist)
    monkeypatch.setattr(datamodules, "ensure", lambda name: None)


def trainer(max_epochs: int = 2, **kwargs) -> L.Trainer:
    return L.Trainer(
        max_epochs=max_epochs,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


def small_dm(**kwargs) -> FashionMNISTDataModule:
    args = dict(batch_size=64, n_train=400, n_val=200, n_test=100, seed=0)
    return FashionMNISTDataModule(**(args | kwargs))


def mlp() -> MLP:
    return MLP(784, [32], 10)


# --- LitClassifier -----------------------------------------------------------------------------------


def test_forward_hparams_and_optimizer() -> None:
    model = mlp()
    lit = LitClassifier(model, num_classes=10, lr=0.01)
    assert lit.model is model
    assert lit(torch.randn(5, 1, 28, 28)).shape == (5, 10)
    assert dict(lit.hparams) == {"num_classes": 10, "lr": 0.01}, "the model is not a hyperparameter"
    opt = lit.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam) and opt.param_groups[0]["lr"] == 0.01
    assert {id(p) for p in opt.param_groups[0]["params"]} == {id(p) for p in model.parameters()}


def test_bad_arguments_are_explained() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        LitClassifier("mlp", num_classes=10)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_classes"):
        LitClassifier(mlp(), num_classes=1)
    with pytest.raises(ValueError, match="lr"):
        LitClassifier(mlp(), num_classes=10, lr=0.0)


def test_steps_compute_cross_entropy_and_probabilities() -> None:
    lit = LitClassifier(mlp(), num_classes=10)
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log outside a Trainer only warns
        loss = lit.training_step((x, y), 0)
    assert torch.allclose(loss, F.cross_entropy(lit(x), y))
    for batch in ((x, y), x):  # predict accepts (inputs, targets) or inputs alone
        probs = lit.predict_step(batch, 0)
        assert probs.shape == (8, 10)
        assert torch.allclose(probs.sum(dim=1), torch.ones(8), atol=1e-6)
        assert torch.allclose(probs, torch.softmax(lit(x), dim=1))


def test_fit_logs_metrics_that_match_a_hand_evaluation() -> None:
    L.seed_everything(0, verbose=False)
    dm, lit = small_dm(), LitClassifier(mlp(), num_classes=10, lr=3e-3)
    t = trainer(max_epochs=2)
    t.fit(lit, datamodule=dm)
    metrics = t.callback_metrics
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(metrics)
    assert t.current_epoch == 2
    # The logged epoch values are the batch-size-weighted means over the whole validation set,
    # i.e. what unit 4's plain evaluate() computes.
    loss, acc = evaluate(lit.model, dm.val_dataloader(), nn.CrossEntropyLoss(), "cpu")
    assert float(metrics["val_loss"]) == pytest.approx(loss, rel=1e-5)
    assert float(metrics["val_acc"]) == pytest.approx(acc, abs=1e-6)
    assert float(metrics["val_acc"]) > 0.5, "the synthetic classes are easy: far above chance (0.1)"
    tested = t.test(lit, datamodule=dm, verbose=False)[0]
    assert set(tested) == {"test_loss", "test_acc"} and tested["test_acc"] > 0.5
    probs = torch.cat(t.predict(lit, datamodule=dm))
    assert probs.shape == (100, 10)


def test_checkpoint_reload_gives_identical_predictions(tmp_path) -> None:
    L.seed_everything(0, verbose=False)
    dm, lit = small_dm(), LitClassifier(mlp(), num_classes=10, lr=2e-3)
    t = trainer(max_epochs=1)
    t.fit(lit, datamodule=dm)
    path = tmp_path / "model.ckpt"
    t.save_checkpoint(path)
    reloaded = LitClassifier.load_from_checkpoint(path, model=mlp())
    assert reloaded.hparams.lr == 2e-3 and reloaded.hparams.num_classes == 10
    x = torch.randn(16, 1, 28, 28)
    lit.eval()
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(lit(x), reloaded(x))
    assert torch.equal(
        torch.cat(trainer().predict(reloaded, datamodule=dm)), torch.cat(trainer().predict(lit, datamodule=dm))
    )


def test_two_seeded_deterministic_runs_give_identical_metrics() -> None:
    def run() -> tuple[dict[str, float], torch.Tensor]:
        L.seed_everything(42, verbose=False)
        dm, lit = small_dm(seed=42), LitClassifier(MLP(784, [32], 10, dropout=0.2), num_classes=10)
        t = trainer(max_epochs=2, deterministic=True)
        t.fit(lit, datamodule=dm)
        weights = torch.cat([p.detach().flatten() for p in lit.parameters()])
        return {k: float(v) for k, v in t.callback_metrics.items()}, weights

    (m1, w1), (m2, w2) = run(), run()
    assert m1 == m2, "the same seed must give exactly the same metrics"
    assert torch.equal(w1, w2)


# --- FashionMNISTDataModule --------------------------------------------------------------------------


def test_split_sizes_are_disjoint_and_stratified() -> None:
    dm = small_dm(n_train=500, n_val=300, n_test=150)
    dm.setup("fit")
    assert dm.test_set is None, "the fit stage does not touch the test set"
    dm.setup("test")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (500, 300, 150)
    assert set(dm.train_set.indices).isdisjoint(dm.val_set.indices)
    labels = fake_fashion_mnist("train")[1]
    for subset, n in ((dm.train_set, 500), (dm.val_set, 300)):
        counts = Counter(labels[subset.indices].tolist())
        assert set(counts.values()) == {n // 10}, f"stratified: every class equally often, got {counts}"
    test_counts = Counter(fake_fashion_mnist("test")[1][dm.test_set.indices].tolist())
    assert set(test_counts.values()) == {15}
    assert dm.classes == FASHION_MNIST_CLASSES


def test_none_means_all_and_too_many_is_an_error() -> None:
    dm = FashionMNISTDataModule(n_train=None, n_val=200, n_test=None)
    dm.setup()
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (N_TRAIN_ALL - 200, 200, N_TEST_ALL)
    with pytest.raises(ValueError, match="n_train=5000 asks for more examples than the 1000 available"):
        FashionMNISTDataModule(n_train=5000, n_val=200).setup("fit")
    with pytest.raises(ValueError, match="batch_size"):
        FashionMNISTDataModule(batch_size=0)
    with pytest.raises(RuntimeError, match="setup"):
        FashionMNISTDataModule().train_dataloader()


def test_batches_and_seeded_shuffling() -> None:
    dm = small_dm()
    dm.setup()
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (64, 1, 28, 28) and xb.dtype == torch.float32 and yb.dtype == torch.int64

    def order(module: FashionMNISTDataModule) -> list[int]:
        return torch.cat([y for _, y in module.train_dataloader()]).tolist()

    def first_image(module: FashionMNISTDataModule) -> torch.Tensor:
        return next(iter(module.train_dataloader()))[0]

    assert torch.equal(first_image(dm), first_image(dm)), "the same seed shuffles the same way"
    other = small_dm()
    other.setup("fit")
    assert order(dm) == order(other)
    reseeded = small_dm(seed=1)
    reseeded.setup("fit")
    assert not torch.equal(first_image(dm), first_image(reseeded)), "another seed, another order"
    loader = dm.train_dataloader()
    assert torch.cat([y for _, y in loader]).tolist() != torch.cat([y for _, y in loader]).tolist(), (
        "each epoch (each pass over one loader) is shuffled afresh"
    )
    # validation, test and predict keep the dataset order
    for make, subset in (
        (dm.val_dataloader, dm.val_set),
        (dm.test_dataloader, dm.test_set),
        (dm.predict_dataloader, dm.test_set),
    ):
        labels = torch.cat([y for _, y in make()])
        assert torch.equal(labels, torch.stack([subset[i][1] for i in range(len(subset))]))


def test_train_transform_applies_to_training_images_only() -> None:
    dm = small_dm(train_transform=lambda x: torch.zeros_like(x))
    dm.setup()
    assert float(dm.train_set[0][0].abs().sum()) == 0.0
    assert float(dm.val_set[0][0].abs().sum()) > 0.0
    assert float(dm.test_set[0][0].abs().sum()) > 0.0


# --- parity with the notebook that builds the LightningModule step by step --------------------------


def test_notebook_module_matches_the_library() -> None:
    from dlfund.course import manifest
    from dlfund.course.notebooks import definitions

    path = manifest.get_unit(5).notebook_path("01-lightning-module")
    MyLitClassifier = definitions(path, names=("MyLitClassifier",))["MyLitClassifier"]
    torch.manual_seed(0)
    initial = mlp()
    results = []
    for module in (
        MyLitClassifier(copy.deepcopy(initial), lr=2e-3),
        LitClassifier(copy.deepcopy(initial), num_classes=10, lr=2e-3),
    ):
        t = trainer(max_epochs=2)
        t.fit(module, datamodule=small_dm())
        results.append(
            (
                {k: float(v) for k, v in t.callback_metrics.items() if k in ("train_loss", "val_loss", "val_acc")},
                torch.cat([p.detach().flatten() for p in module.model.parameters()]),
            )
        )
    (notebook_metrics, notebook_weights), (library_metrics, library_weights) = results
    assert set(notebook_metrics) == {"train_loss", "val_loss", "val_acc"}
    for key, value in notebook_metrics.items():
        assert library_metrics[key] == pytest.approx(value, abs=1e-6), key
    assert torch.allclose(notebook_weights, library_weights, atol=1e-6)
