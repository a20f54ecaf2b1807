"""Typed, documented settings: what a notebook reads as ``cfg.epochs`` or ``cfg.vit.dim``.

Each unit's settings are a frozen dataclass (``dlfund.course.settings.unitNN.UnitNN``) with one
instance per tier (``SMOKE``, ``FULL``). Related settings sit in a group of their own (``cfg.vit.lr``),
and every field says what it means through :func:`doc`. The values are checked against the
annotations when the instance is built, so a wrong type or a misspelled name fails when the course is
imported, not in the middle of a run.

>>> from dlfund.course.settings import unit07
>>> unit07.SMOKE.vit.dim, unit07.FULL.vit.dim
(48, 192)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from typing import Any

__all__ = ["Settings", "doc", "explain", "flatten", "override"]


def doc(text: str) -> Any:
    """A required dataclass field that documents itself: ``epochs: int = doc("passes over the data")``."""
    return dataclasses.field(metadata={"doc": text})


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base class of every unit's settings and of their groups: checks each value's type on creation."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not _matches(value, hints[f.name]):
                raise TypeError(
                    f"{type(self).__name__}.{f.name} must be {_hint_text(hints[f.name])}, "
                    f"got {value!r} ({type(value).__name__})"
                )


def _hint_text(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("NoneType", "None").replace("<class '", "").replace("'>", "")


def _walk(settings: Settings, prefix: str = "") -> Iterator[tuple[str, Any, dataclasses.Field[Any]]]:
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, Settings):
            yield from _walk(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", value, f


def flatten(settings: Settings) -> dict[str, Any]:
    """``{"epochs": 3, "vit.dim": 48, ...}``: every setting by its dotted name."""
    return {name: value for name, value, _ in _walk(settings)}


def explain(settings: Settings) -> list[tuple[str, Any, str]]:
    """``(dotted name, value, what it means)`` for every setting, in declaration order."""
    return [(name, value, f.metadata.get("doc", "")) for name, value, f in _walk(settings)]


def override(settings: Settings, changes: dict[str, Any]) -> Settings:
    """A copy with ``changes`` applied; a group takes a dict (``{"vit": {"dim": 32}}``) or a whole group.

    An unknown name is a ``TypeError`` that lists the settings there are.
    """
    names = {f.name: f for f in dataclasses.fields(settings)}
    unknown = sorted(set(changes) - set(names))
    if unknown:
        raise TypeError(f"{type(settings).__name__} has no setting {', '.join(unknown)}; settings: {', '.join(names)}")
    resolved = {}
    for name, value in changes.items():
        current = getattr(settings, name)
        if isinstance(current, Settings) and isinstance(value, dict):
            value = override(current, value)
        resolved[name] = value
    return dataclasses.replace(settings, **resolved)
