"""The manifest and the files on disk agree; every name the manifest uses resolves."""

from __future__ import annotations

import importlib

import pytest

from dlfund import data
from dlfund.course import manifest

SYLLABUS_UNITS = range(1, 15)
"""COURSE.md §8: units 01-14. Units land in syllabus order, except that the closing unit 14 may land
before the units between; numbers stay unique and increasing."""


def test_unit_numbers_follow_the_syllabus_and_slugs_unique():
    numbers = [u.number for u in manifest.UNITS]
    assert numbers == sorted(set(numbers)), f"unit numbers must be unique and increasing: {numbers}"
    assert set(numbers) <= set(SYLLABUS_UNITS), f"unit numbers outside the syllabus 1-14: {numbers}"
    opening = [n for n in numbers if n != 14]
    assert opening == list(range(1, len(opening) + 1)), f"units 1..N must land without gaps: {numbers}"
    assert len({u.slug for u in manifest.UNITS}) == len(manifest.UNITS)


def test_unit_folders_match_manifest():
    on_disk = sorted(p.name for p in manifest.UNITS_DIR.iterdir() if p.is_dir())
    assert on_disk == sorted(u.dirname for u in manifest.UNITS)
    solutions = sorted(p.name for p in manifest.SOLUTIONS_DIR.iterdir() if p.is_dir())
    assert solutions == sorted(u.dirname for u in manifest.UNITS if u.exercises)


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_notebooks_match_manifest(unit):
    lectures = sorted(p.stem for p in unit.path.glob("*.ipynb"))
    assert lectures == sorted(nb.name for nb in unit.notebooks), "lecture notebooks on disk vs manifest"
    solutions = sorted(p.stem for p in unit.solutions_path.glob("*.ipynb"))
    assert solutions == sorted(ex.name for ex in unit.exercises), "solution notebooks on disk vs manifest"
    generated = sorted(p.stem for p in (unit.path / "exercises").glob("*.ipynb"))
    assert generated == sorted(ex.name for ex in unit.exercises), "exercise notebooks on disk vs manifest"
    assert (unit.path / "README.md").exists()


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_manifest_names_resolve(unit):
    for name in unit.datasets:
        data.get(name)  # raises for an unknown dataset
    for ex in unit.exercises:
        for check in ex.checks:
            module, _, func = check.partition(".")
            mod = importlib.import_module(f"dlfund.checks.{module}")
            assert callable(getattr(mod, func, None)), f"dlfund.checks.{check} does not exist"
    assert set(unit.settings) == set(manifest.TIERS), "every unit has settings for both tiers"
    for item in (*unit.notebooks, *unit.exercises):
        assert 0 < item.smoke_s <= 45, f"{item.name}: a smoke budget over 45 s on a 2-core CPU needs a reason"
        assert item.full_s > 0


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_every_unit_tells_the_learner_where_it_starts_and_what_it_gives(unit):
    assert unit.builds_on.strip(), "builds_on: what the unit takes from the units before it (its roadmap's first box)"
    assert unit.prerequisites, "prerequisites: what to know before starting"
    assert 3 <= len(unit.outcomes) <= 5, "outcomes: 3 to 5 things the learner will be able to do"
    for outcome in unit.outcomes:
        assert outcome[0].islower() and not outcome.endswith("."), f"{outcome!r} should complete 'You will be able to'"
    low, high = unit.study_hours
    assert 0 < low <= high <= 12, "study_hours: an estimate (low, high) in hours"


def test_get_unit_accepts_numbers_and_slugs_and_explains_unknown():
    assert manifest.get_unit(1) is manifest.get_unit("01") is manifest.get_unit("perceptron")
    with pytest.raises(KeyError, match="known units: 1 \\(perceptron\\)"):
        manifest.get_unit(99)


def test_a_notebook_over_twice_its_budget_is_named_with_what_to_do():
    unit = manifest.get_unit(1)
    budget = unit.budget("02-perceptron-python", "smoke")
    assert unit.over_budget("02-perceptron-python", "smoke", manifest.BUDGET_TOLERANCE * budget) is None
    why = unit.over_budget("02-perceptron-python", "smoke", manifest.BUDGET_TOLERANCE * budget + 0.5)
    assert why and f"its smoke budget of {budget} s" in why and "raise its budget" in why
