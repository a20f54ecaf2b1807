"""Unit 07, Convolutional networks and Vision Transformers: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class CNN(Settings):
    """The convolutional network of notebooks 02, 03 and exercise 3."""

    width: int = doc("channels of the small CNN's first stage (later stages have 2 and 4 times as many)")
    lr: float = doc("peak learning rate of the small CNN (SGD with momentum, one-cycle schedule)")


@dataclass(frozen=True)
class ResNetSettings(Settings):
    """The residual network of notebook 04."""

    widths: tuple[int, ...] = doc("channels of each ResNet stage; each stage after the first halves the resolution")
    blocks: int = doc("residual blocks in each stage")
    epochs: int = doc("passes over the augmented training images")
    lr: float = doc("peak learning rate (SGD with momentum, one-cycle schedule)")
    batch_size: int = doc("training images per batch")


@dataclass(frozen=True)
class Transfer(Settings):
    """Transfer learning, notebook 05."""

    pretrain_train: int | None = doc("Fashion-MNIST images the source network is pretrained on (None: all 60,000)")
    pretrain_epochs: int = doc("epochs of pretraining on Fashion-MNIST")
    width: int = doc("channels of the CNN's first stage, pretrained and from scratch alike")
    budgets: tuple[int, ...] = doc("labelled digits per class, the label budgets compared")
    steps: int = doc("training steps of each adaptation run (rounded up to whole epochs)")
    batch_size: int = doc("labelled digits per batch when adapting (fewer if the budget is smaller)")
    repeats: int = doc("random draws of the labelled digits per budget, averaged")
    test: int = doc("MNIST digits held out, by class, to test every adapted model")
    lr: float = doc("AdamW learning rate of pretraining and of the network trained from scratch")
    finetune_lr: float = doc("learning rate when fine-tuning the whole pretrained network")
    head_lr: float = doc("learning rate of the new head trained on frozen features")


@dataclass(frozen=True)
class ViTSettings(Settings):
    """The Vision Transformer of notebooks 06 and 07."""

    train: int | None = doc("Fashion-MNIST training images (None: all 60,000)")
    test: int | None = doc("Fashion-MNIST test images (None: all 10,000)")
    patch: int = doc("side of the square image patches in pixels (must divide 28)")
    dim: int = doc("numbers per token, the width of the transformer")
    depth: int = doc("transformer blocks")
    heads: int = doc("attention heads per block (they split the token width)")
    mlp_ratio: float = doc("hidden width of each block's MLP as a multiple of the token width")
    dropout: float = doc("dropout probability inside the transformer (0: none)")
    epochs: int = doc("passes over the augmented training images")
    batch_size: int = doc("training images per batch (also for both models in notebook 07)")
    lr: float = doc("peak AdamW learning rate of the one-cycle schedule")
    weight_decay: float = doc("AdamW weight decay (also for both models in notebook 07)")
    label_smoothing: float = doc("probability the targets spread over the wrong classes (also in notebook 07)")
    compile: bool = doc("compile the ViT before training (CUDA only; ignored elsewhere)")


@dataclass(frozen=True)
class Compare(Settings):
    """CNN against ViT, notebook 07."""

    train: int | None = doc("Fashion-MNIST training images the fractions are taken of (None: all 60,000)")
    test: int | None = doc("Fashion-MNIST test images (None: all 10,000)")
    fractions: tuple[float, ...] = doc("shares of those training images each model is trained on")
    epochs: int = doc("epochs on all the images; a fraction f trains for this / f, keeping the steps equal")
    cnn_width: int = doc("channels of the compared CNN's first stage")
    cnn_lr: float = doc("peak AdamW learning rate of the CNN (the ViT keeps its own)")


@dataclass(frozen=True)
class SelfSupervised(Settings):
    """Self-supervised (contrastive) pretraining, notebook 08 and exercise 5."""

    train: int | None = doc(
        "unlabelled Fashion-MNIST training images pretrained on (None: all but the validation ones)"
    )
    val: int = doc("labelled training images held out for validation (model selection)")
    test: int | None = doc("Fashion-MNIST test images, scored once at the end (None: all 10,000)")
    width: int = doc("channels of the encoder's first stage (a small CNN; its features are 4 times as many)")
    proj_dim: int = doc("outputs of the projection head, the vectors the contrastive loss compares")
    padding: int = doc("largest shift in pixels of the random crop that makes the two views")
    erase_p: float = doc("probability that a view gets a random rectangle erased")
    temperature: float = doc("temperature of the contrastive loss (cosines are divided by it)")
    batch_size: int = doc("images per pretraining batch (each gives two views)")
    epochs: int = doc("pretraining epochs over the unlabelled images")
    lr: float = doc("AdamW learning rate of pretraining (cosine schedule)")
    fractions: tuple[float, ...] = doc("shares of the training images whose labels are used")
    steps: int = doc("optimizer steps of every finetuning and from-scratch run")
    rounds: int = doc("validation measurements per finetuning or from-scratch run (evenly spaced)")
    label_batch: int = doc("labelled images per batch when finetuning or training from scratch")
    finetune_lrs: tuple[float, ...] = doc("learning rates tried when finetuning; validation picks one")
    scratch_lrs: tuple[float, ...] = doc("learning rates tried when training from scratch; validation picks one")
    probe_steps: int = doc("full-batch steps of the linear probe on frozen features")
    probe_lr: float = doc("learning rate of the linear probe (AdamW)")
    probe_l2: tuple[float, ...] = doc("L2 penalties tried for the linear probe; validation picks one")
    supcon_epochs: int = doc("pretraining epochs with the supervised contrastive loss (exercise 5)")


@dataclass(frozen=True)
class Unit07(Settings):
    """The settings of unit 07."""

    n_train: int | None = doc("Fashion-MNIST training images (None: all 60,000)")
    n_test: int | None = doc("Fashion-MNIST test images (None: all 10,000)")
    batch_size: int = doc("training images per batch of the small CNN")
    epochs: int = doc("passes over the training images for the small CNN (notebook 03)")
    filters_epochs: int = doc("epochs of the small CNN trained before its filters are shown (notebook 02)")
    crop_padding: int = doc("pixels added on each side before a random crop: the largest shift of an image")
    compile: bool = doc("compile the CNN and the ResNet before training (CUDA only; ignored elsewhere)")
    cnn: CNN = doc("The convolutional network of notebooks 02, 03 and exercise 3.")
    resnet: ResNetSettings = doc("The residual network of notebook 04.")
    transfer: Transfer = doc("Transfer learning, notebook 05.")
    vit: ViTSettings = doc("The Vision Transformer of notebooks 06 and 07.")
    compare: Compare = doc("CNN against ViT, notebook 07.")
    ssl: SelfSupervised = doc("Self-supervised (contrastive) pretraining, notebook 08 and exercise 5.")


SMOKE = Unit07(
    n_train=2000,
    n_test=1000,
    batch_size=128,
    epochs=3,
    filters_epochs=2,
    crop_padding=2,
    compile=False,
    cnn=CNN(width=16, lr=0.1),
    resnet=ResNetSettings(widths=(8, 16, 32), blocks=1, epochs=3, lr=0.2, batch_size=64),
    transfer=Transfer(
        pretrain_train=3000,
        pretrain_epochs=4,
        width=8,
        budgets=(10, 50),
        steps=120,
        batch_size=32,
        repeats=1,
        test=500,
        lr=0.01,
        finetune_lr=0.007,
        head_lr=0.03,
    ),
    vit=ViTSettings(
        train=3000,
        test=1000,
        patch=7,
        dim=48,
        depth=2,
        heads=4,
        mlp_ratio=2.0,
        dropout=0.0,
        epochs=4,
        batch_size=64,
        lr=0.005,
        weight_decay=0.05,
        label_smoothing=0.1,
        compile=False,
    ),
    compare=Compare(train=2000, test=500, fractions=(0.2, 1.0), epochs=3, cnn_width=8, cnn_lr=0.003),
    ssl=SelfSupervised(
        train=1000,
        val=250,
        test=400,
        width=8,
        proj_dim=32,
        padding=3,
        erase_p=0.5,
        temperature=0.5,
        batch_size=128,
        epochs=2,
        lr=0.003,
        fractions=(0.01, 0.1, 1.0),
        steps=15,
        rounds=1,
        label_batch=64,
        finetune_lrs=(0.003,),
        scratch_lrs=(0.005,),
        probe_steps=100,
        probe_lr=0.03,
        probe_l2=(1e-4, 1e-3, 1e-2),
        supcon_epochs=2,
    ),
)

FULL = Unit07(
    n_train=None,
    n_test=None,
    batch_size=512,
    epochs=20,
    filters_epochs=3,
    crop_padding=2,
    compile=False,
    cnn=CNN(width=64, lr=0.2),
    resnet=ResNetSettings(widths=(64, 128, 256), blocks=1, epochs=24, lr=0.2, batch_size=512),
    transfer=Transfer(
        pretrain_train=None,
        pretrain_epochs=15,
        width=32,
        budgets=(10, 50, 200, 400),
        steps=300,
        batch_size=64,
        repeats=3,
        test=1000,
        lr=0.005,
        finetune_lr=0.0015,
        head_lr=0.01,
    ),
    vit=ViTSettings(
        train=None,
        test=None,
        patch=4,
        dim=192,
        depth=6,
        heads=6,
        mlp_ratio=2.0,
        dropout=0.0,
        epochs=60,
        batch_size=512,
        lr=0.001,
        weight_decay=0.05,
        label_smoothing=0.1,
        compile=False,
    ),
    compare=Compare(train=None, test=None, fractions=(0.1, 1.0), epochs=20, cnn_width=32, cnn_lr=0.003),
    ssl=SelfSupervised(
        train=None,
        val=5000,
        test=None,
        width=32,
        proj_dim=64,
        padding=4,
        erase_p=0.5,
        temperature=0.2,
        batch_size=512,
        epochs=60,
        lr=0.002,
        fractions=(0.01, 0.1, 1.0),
        steps=1500,
        rounds=5,
        label_batch=128,
        finetune_lrs=(0.0005, 0.002),
        scratch_lrs=(0.001, 0.003),
        probe_steps=500,
        probe_lr=0.01,
        probe_l2=(1e-5, 1e-4, 1e-3, 1e-2),
        supcon_epochs=15,
    ),
)
