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
