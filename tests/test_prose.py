"""The prose of a lecture notebook speaks to the learner: it never names a settings key (COURSE.md §12).

A markdown cell says what a setting means and its value ("the top layers, printed below"), never
`cfg.top_layers` or `top_layers`. This test fails when a markdown cell names, in backticks, a field of
its unit's settings (``cfg.x``, ``x`` or a group path ``group.x``). Code in backticks that calls or
builds something (``DataLoader(..., batch_size=B)``) is an API being shown, and is allowed.
"""

from __future__ import annotations

import dataclasses
import re

import nbformat
import pytest

from dlfund.course import manifest
from dlfund.course.settings.base import Settings

# (unit directory/notebook, name) -> why the name in backticks is an API word there, not a settings key.
ALLOWED: dict[tuple[str, str], str] = {
    (
        "05-lightning/02-metrics-and-datamodules",
        "n_train",
    ): "an argument of FashionMNISTDataModule, whose signature the cell shows",
    (
        "05-lightning/02-metrics-and-datamodules",
        "n_val",
    ): "an argument of FashionMNISTDataModule, whose signature the cell shows",
    (
        "05-lightning/02-metrics-and-datamodules",
        "n_test",
    ): "an argument of FashionMNISTDataModule, whose signature the cell shows",
    ("06-training-craft/01-checkpoints-and-early-stopping", "patience"): "Lightning's EarlyStopping argument",
    ("06-training-craft/02-learning-rates", "patience"): "ReduceLROnPlateau's argument",
    ("09-self-attention/02-positions", "positions"): "the field of GPTConfig that the four models differ in",
    ("09-self-attention/03-gpt-on-shakespeare", "dim"): "a field of GPTConfig, listed with the others",
    ("10-finetuning/01-loading-minilm", "max_length"): "the argument of dlfund.models.encoder.tokenize",
    ("10-finetuning/02-frozen-embeddings", "max_length"): "the argument of embed_texts",
    ("11-fast-training/03-memory-tricks", "max_trials"): "the argument of Lightning's Tuner.scale_batch_size",
    ("12-llama/01-building-blocks", "dim"): "a field of GPTConfig and LlamaConfig, listed with the others",
    ("12-llama/01-building-blocks", "layers"): "the module name model.layers",
    ("12-llama/02-loading-smollm2", "dim"): "LlamaConfig's field, named beside Hugging Face's hidden_size",
}

_SPAN = re.compile(r"`([^`\n]+)`")
_KEY = re.compile(r"(?:cfg\.)?([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)")


def settings_fields(settings: Settings, out: set[str] | None = None) -> set[str]:
    """Every field name of a settings dataclass, recursively into its groups."""
    out = set() if out is None else out
    for f in dataclasses.fields(settings):
        out.add(f.name)
        value = getattr(settings, f.name)
        if isinstance(value, Settings):
            settings_fields(value, out)
    return out


def settings_keys_named(source: str, fields: set[str]) -> list[str]:
    """The backticked spans of a markdown cell that name a settings field: `cfg.x`, `x` or `group.x`."""
    named = []
    for span in _SPAN.findall(source):
        text = span.strip()
        m = _KEY.fullmatch(text)
        if m is None:
            continue  # code that does something: an API being shown
        parts = m.group(1).split(".")
        if all(p in fields for p in parts):  # cfg.device, cfg.run_dir: the run's own attributes, not settings
            named.append(text)
    return named


LECTURES = [(u, nb) for u in manifest.UNITS if u.settings for nb in u.notebooks]


@pytest.mark.parametrize(("unit", "notebook"), LECTURES, ids=[f"{u.dirname}/{nb.name}" for u, nb in LECTURES])
def test_lecture_prose_names_no_settings_key(unit: manifest.Unit, notebook: manifest.Notebook) -> None:
    fields: set[str] = set()
    for settings in unit.settings.values():
        settings_fields(settings, fields)
    nb = nbformat.read(unit.notebook_path(notebook.name), as_version=4)
    where = f"{unit.dirname}/{notebook.name}"
    found = [
        f"cell {i}: `{name}`"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
        for name in settings_keys_named(cell.source, fields)
        if (where, name.removeprefix("cfg.")) not in ALLOWED
    ]
    assert not found, (
        f"{where} names settings keys in its prose: {', '.join(found)}. Say what the setting means and its "
        "value (or let a code cell print it and refer to that), as COURSE.md §12 asks"
    )


def test_the_detector_finds_keys_and_ignores_code() -> None:
    fields = {"top_layers", "lr", "lora", "rank"}
    assert settings_keys_named("the top `top_layers` layers, `cfg.lr` and `lora.rank`", fields) == [
        "top_layers",
        "cfg.lr",
        "lora.rank",
    ]
    assert settings_keys_named("`f(top_layers=2)`, `torch.compile`, `lr_top`, `cfg.device`", fields) == []


def test_every_allowed_name_is_still_needed() -> None:
    """An entry of ALLOWED whose notebook no longer names the word is removed, so the list stays small."""
    for (where, name), _why in ALLOWED.items():
        text = "\n".join(
            c.source
            for c in nbformat.read(manifest.UNITS_DIR / f"{where}.ipynb", as_version=4).cells
            if c.cell_type == "markdown"
        )
        assert f"`{name}`" in text, f"ALLOWED[{where!r}, {name!r}] is no longer needed"
