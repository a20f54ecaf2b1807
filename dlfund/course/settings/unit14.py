"""Unit 14, Evaluation and next steps: the settings of each tier."""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course.settings.base import Settings, doc


@dataclass(frozen=True)
class TextMetrics(Settings):
    """Measuring generated text: notebook 05."""

    tasks: tuple[str, ...] = doc("instruction tasks of unit 13 whose held-out examples the model answers")
    n_examples: int = doc("held-out instruction examples SmolLM2 answers and the metrics score")
    max_new_tokens: int = doc("most tokens generated per answer")
    n_lines: int = doc("Shakespeare lines whose words are shuffled to compare ROUGE-1 with ROUGE-L (exercise 5)")


@dataclass(frozen=True)
class Unit14(Settings):
    """The settings of unit 14."""

    n_train: int | None = doc("Fashion-MNIST training images (None: all 60,000)")
    n_test: int | None = doc("Fashion-MNIST test images the models are scored on (None: all 10,000)")
    epochs: int = doc("passes over the training images for each model (Adam)")
    batch_size: int = doc("images per training batch")
    seeds: int = doc("retrainings with other seeds, to see how much the accuracy varies")
    bootstrap: int = doc("resamples of the test set drawn for each bootstrap interval")
    n_calibration: int = doc(
        "training images held out from training, to fit the temperature and calibrate the conformal prediction sets"
    )
    long_epochs: int = doc("epochs of the deliberately long training that makes an overconfident model")
    conformal_splits: int = doc("random calibration/test splits over which the conformal coverage is measured")
    text: TextMetrics = doc("Measuring generated text: notebook 05.")


SMOKE = Unit14(
    n_train=2000,
    n_test=1000,
    epochs=2,
    batch_size=128,
    seeds=3,
    bootstrap=1000,
    n_calibration=1000,
    long_epochs=20,
    conformal_splits=200,
    text=TextMetrics(tasks=("add", "sort", "reverse"), n_examples=3, max_new_tokens=8, n_lines=40),
)

FULL = Unit14(
    n_train=None,
    n_test=None,
    epochs=15,
    batch_size=128,
    seeds=5,
    bootstrap=2000,
    n_calibration=10000,
    long_epochs=40,
    conformal_splits=1000,
    text=TextMetrics(
        tasks=("add", "subtract", "sort", "count", "reverse", "speaker"), n_examples=24, max_new_tokens=24, n_lines=400
    ),
)
