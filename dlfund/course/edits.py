"""Did a person edit this notebook? Fingerprints that let the course's commands leave a learner's work alone.

A generated exercise notebook carries, in its metadata (``metadata.dlfund.cells_sha256``), the sha256 of
its own cells as they were generated: types, sources, outputs and execution counts. Cell ids and cell
metadata are left out (JupyterLab may add them without anyone editing anything). Whoever types into the
notebook, runs a cell or deletes one changes the cells, and the fingerprint no longer matches: the file
is then someone's work, and ``dlfund exercises build`` leaves it where it is. The rule needs no git and no
record outside the file, and a maintainer who rebuilds twice before committing is never stopped (each
build writes a fresh fingerprint). A notebook without a fingerprint (generated before there was one)
counts as generated only when it is exactly what the generator, fingerprint left out, writes now
(:meth:`dlfund.course.exercises.Target.edited`).

This module reads notebooks as plain JSON: ``dlfund progress`` uses it and must not import nbformat.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

KEY = "cells_sha256"


class KeptEdits(Exception):
    """Generated notebooks that someone edited were left alone; the message says how to keep the work."""

    def __init__(self, message: str, written: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.written = list(written)


def _source(cell: Mapping[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def cells_fingerprint(nb: Mapping[str, Any]) -> str:
    """sha256 of every cell's type, source, outputs and execution count (not ids, not cell metadata)."""
    return _digest(
        [[c.get("cell_type"), _source(c), c.get("outputs", []), c.get("execution_count")] for c in nb.get("cells", [])]
    )


def code_fingerprint(nb: Mapping[str, Any]) -> str:
    """sha256 of the code cells' sources only: what changes when a learner starts an exercise."""
    return _digest([_source(c) for c in nb.get("cells", []) if c.get("cell_type") == "code"])


def stamp(nb: Any) -> None:
    """Write the cells' fingerprint into ``nb``'s metadata (an nbformat node, just generated)."""
    nb.metadata.setdefault("dlfund", {})[KEY] = cells_fingerprint(nb)


def parse(text: str) -> dict[str, Any] | None:
    """The notebook in ``text`` as JSON, or ``None`` when it is not a notebook's JSON at all."""
    try:
        nb = json.loads(text)
    except ValueError:
        return None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        return None
    if not all(isinstance(c, dict) for c in nb["cells"]):
        return None
    return nb


def edited(text: str) -> bool:
    """True unless ``text`` is a notebook whose cells still match the fingerprint written when it was
    generated (no fingerprint, or no notebook at all, counts as edited: leave it alone)."""
    nb = parse(text)
    if nb is None:
        return True
    recorded = (nb.get("metadata") or {}).get("dlfund", {})
    if not isinstance(recorded, dict) or KEY not in recorded:
        return True
    return recorded[KEY] != cells_fingerprint(nb)


def code_digest_of(text: str) -> str | None:
    """:func:`code_fingerprint` of a notebook's text, or ``None`` if it is not a notebook."""
    nb = parse(text)
    return None if nb is None else code_fingerprint(nb)
