"""Exercise checks: each compares a learner's work with a reference on fresh random inputs.

A check prints one line starting with ``✓`` when the work is right, and otherwise raises
:class:`CheckFailed` whose message says what was expected and what was found. Checks for unit N
live in ``dlfund.checks.unitNN``.
"""

from __future__ import annotations

from dlfund.checks._core import (
    CheckFailed,
    call_learner,
    expect,
    expect_close,
    fresh_seed,
    passed,
)

__all__ = ["CheckFailed", "call_learner", "expect", "expect_close", "fresh_seed", "passed"]
