"""Shared helpers of the exercise-check tests (``tests/test_checks_unitNN.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from dlfund.checks import CheckFailed
from dlfund.course import manifest
from dlfund.course.notebooks import definitions


def solution(unit: int, exercise: str, *names: str) -> Any:
    """The functions a committed solution notebook defines: one name gives the function, several a tuple."""
    found = definitions(manifest.get_unit(unit).solution_path(exercise), names=names)
    return found[names[0]] if len(names) == 1 else tuple(found[n] for n in names)


def stub(*args: Any, **kwargs: Any) -> Any:
    """What the generated exercise notebook holds before the learner writes anything."""
    raise NotImplementedError("write this function")


def rejects(check: Any, *fns: Any, match: str, seed: int = 0) -> str:
    """Assert that ``check`` fails on ``fns`` with a message matching ``match``; return the message."""
    with pytest.raises(CheckFailed, match=match) as info:
        check(*fns, seed=seed)
    return str(info.value)


Tables = dict[str, tuple[Any, dict[str, tuple[Any, str]]]]
"""A unit's named-mistake tables: ``{check name: (check, {mistake name: (learner functions, message regex)})}``."""


def mistake_cases(tables: Tables) -> list[tuple[str, str]]:
    """Every (check, mistake) pair of ``tables``, for ``pytest.mark.parametrize``; at least six per check."""
    for check, (_, table) in tables.items():
        assert len(table) >= 6, f"{check}: {len(table)} named mistakes, the course asks for at least six"
    return [(check, name) for check, (_, table) in tables.items() for name in table]


def rejects_named(tables: Tables, check: str, name: str, seed: int) -> None:
    """Assert that the named mistake ``name`` of ``check`` is rejected, with its message, on ``seed``."""
    fn, (fns, match) = tables[check][0], tables[check][1][name]
    rejects(fn, *(fns if isinstance(fns, tuple) else (fns,)), match=match, seed=seed)
