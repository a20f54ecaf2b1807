"""Notice when a learner's code calls the library's own reference in place of writing it."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from dlfund.checks._core import CheckFailed


@contextmanager
def refusing(references: dict[str, Callable[..., Any]], exercise: str) -> Iterator[None]:
    """Inside the block, a call of any of ``references`` (``name -> function``: the library's own
    implementation of what the exercise asks for) fails the check with a :class:`CheckFailed` naming it.

    The functions are recognised by their code, so an import under another name, a wrapper or a
    subclass calling them is caught too."""
    codes = {}
    for name, fn in references.items():
        code = getattr(getattr(fn, "forward", fn), "__code__", None)
        if code is not None:
            codes[code] = name
    seen: list[str] = []
    previous = sys.getprofile()

    def watch(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code in codes and not seen:
            seen.append(codes[frame.f_code])
        if previous is not None:
            previous(frame, event, arg)

    def refused() -> CheckFailed:
        return CheckFailed(
            f"this is the library's own {seen[0]}: write yours ({exercise} is the exercise; the library's "
            "version is there to compare with afterwards, not to call)"
        )

    sys.setprofile(watch)
    try:
        yield
    except Exception as err:  # a crash after calling the library: the call is the mistake to name
        sys.setprofile(previous)
        if seen:
            raise refused() from err
        raise
    finally:
        sys.setprofile(previous)
    if seen:
        raise refused()
