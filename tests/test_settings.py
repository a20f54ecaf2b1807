"""Typed settings: documented, checked on creation, and every ``cfg.…`` a notebook reads exists.

A misspelled setting must fail here, in the test run, not in the middle of a learner's notebook.
"""

from __future__ import annotations

import ast
import dataclasses
import re

import pytest
import torch

from dlfund.course import manifest, notebooks
from dlfund.course.config import RunConfig
from dlfund.course.settings import Settings, explain, flatten, override
from dlfund.course.settings.base import doc

RUN_ATTRIBUTES = {f.name for f in dataclasses.fields(RunConfig)} | {
    name for name in dir(RunConfig) if not name.startswith("_")
}


def unit_notebooks(unit: manifest.Unit) -> list:
    paths = [unit.notebook_path(nb.name) for nb in unit.notebooks]
    paths += [unit.solution_path(ex.name) for ex in unit.exercises]
    paths += [unit.exercise_path(ex.name) for ex in unit.exercises]
    return paths


def cfg_chains(source: str) -> set[tuple[str, ...]]:
    """Every attribute chain read from the name ``cfg``: ``cfg.vit.dim`` gives ``("vit", "dim")``."""
    chains = set()
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            names, inner = [], node
            while isinstance(inner, ast.Attribute):
                names.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "cfg":
                chains.add(tuple(reversed(names)))
    # keep the longest chains only (cfg.vit.dim also yields cfg.vit)
    return {c for c in chains if not any(len(o) > len(c) and o[: len(c)] == c for o in chains)}


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_every_setting_a_notebook_reads_exists(unit):
    settings = unit.tier_settings("smoke")
    for path in unit_notebooks(unit):
        source = "\n".join(s for s in notebooks.code_cells(notebooks.read(path)) if not s.lstrip().startswith("%"))
        for chain in sorted(cfg_chains(source)):
            head = chain[0]
            if head in RUN_ATTRIBUTES:
                continue
            assert hasattr(settings, head), (
                f"{path.name} reads cfg.{'.'.join(chain)}: unit {unit.number} has no "
                f"setting {head!r} (settings: {', '.join(flatten(settings))})"
            )
            value = getattr(settings, head)
            if len(chain) > 1 and isinstance(value, Settings):
                assert hasattr(value, chain[1]), (
                    f"{path.name} reads cfg.{'.'.join(chain)}: the group {head!r} has no {chain[1]!r}"
                )


def test_the_static_check_finds_chains():
    assert cfg_chains("x = cfg.vit.dim + cfg.epochs\ncfg.record({})") == {("vit", "dim"), ("epochs",), ("record",)}


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_settings_are_typed_documented_and_alike_in_both_tiers(unit):
    smoke, full = unit.tier_settings("smoke"), unit.tier_settings("full")
    assert type(smoke) is type(full)
    assert list(flatten(smoke)) == list(flatten(full)), "both tiers have the same settings"
    for name, _, text in explain(smoke):
        assert text and "TODO" not in text, f"unit {unit.number}: setting {name} says nothing about what it means"
        assert not re.search(r"\b(cfg|settings)\.", text), f"{name}: the explanation names code, not a meaning"
    clashes = {f.name for f in dataclasses.fields(smoke)} & RUN_ATTRIBUTES
    assert not clashes, f"settings named like attributes of the run itself would be hidden: {clashes}"


@dataclasses.dataclass(frozen=True)
class Group(Settings):
    dim: int = doc("width")
    rates: tuple[float, ...] = doc("learning rates")


@dataclasses.dataclass(frozen=True)
class Example(Settings):
    epochs: int = doc("passes")
    limit: float | None = doc("a limit")
    group: Group = doc("a group")


def test_a_wrong_type_or_name_fails_when_the_settings_are_built():
    good = Example(epochs=3, limit=None, group=Group(dim=4, rates=(0.1, 1)))
    assert flatten(good) == {"epochs": 3, "limit": None, "group.dim": 4, "group.rates": (0.1, 1)}
    with pytest.raises(TypeError, match=r"Example.epochs must be int, got 3.0 \(float\)"):
        Example(epochs=3.0, limit=None, group=good.group)
    with pytest.raises(TypeError, match=r"Group.rates must be tuple\[float, ...\], got \[0.1\] \(list\)"):
        Group(dim=4, rates=[0.1])
    with pytest.raises(TypeError, match="Example.epochs must be int, got True"):
        Example(epochs=True, limit=None, group=good.group)
    with pytest.raises(TypeError, match="unexpected keyword argument 'epoch'"):
        Example(epoch=3, limit=None, group=good.group)
    assert override(good, {"group": {"dim": 8}}).group == Group(dim=8, rates=(0.1, 1))
    with pytest.raises(TypeError, match="Group has no setting width; settings: dim, rates"):
        override(good, {"group": {"width": 8}})


def test_the_run_reads_settings_as_attributes_and_lists_them(monkeypatch):
    unit = manifest.get_unit(9)
    cfg = RunConfig(
        unit=unit,
        notebook="03-gpt-on-shakespeare",
        tier="smoke",
        device=torch.device("cpu"),
        seed=0,
        settings=unit.tier_settings("smoke"),
    )
    assert cfg.gpt.layers == unit.tier_settings("smoke").gpt.layers
    assert {"gpt", "kv", "positions"} <= set(dir(cfg))
    with pytest.raises(AttributeError, match="unit 9 has no setting 'gpt_layers'"):
        _ = cfg.gpt_layers


def test_a_unit_can_check_how_its_settings_fit_together():
    from dlfund.course.settings import unit13

    with pytest.raises(ValueError, match=r"rank=4 must be one of the ranks compared, \(8,\)"):
        dataclasses.replace(unit13.SMOKE.lora, rank=4)
