"""The learner's workspace: their own copies of the course's notebooks, which no command overwrites.

``dlfund start`` creates it (default ``workspace/`` at the repository root, git-ignored; or ``--path``, or
``$DLFUND_WORKSPACE``) with one ``NN-slug/`` folder per unit holding the lecture and exercise notebooks.
Notebooks find the library and their data through the installed package (``dlfund.setup`` and
``manifest.ROOT``), never through paths relative to their folder, so a copy runs anywhere.

A small manifest, ``.dlfund-workspace.json``, records the sha256 of the version each file was copied
from. ``dlfund start`` again after a course update (:func:`sync`):

- a file identical to the version it was copied from (untouched) is updated in place;
- a file the learner changed is left alone, and the new version is written beside it as
  ``<name>.v2.ipynb`` (the next free number), which ``dlfund progress`` points out.

This module is light (no torch, no nbformat): ``dlfund progress`` uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlfund.course import edits, manifest
from dlfund.utils.io import atomic_write_json, atomic_write_text

ENV = "DLFUND_WORKSPACE"
MANIFEST_NAME = ".dlfund-workspace.json"


class WorkspaceError(Exception):
    """A workspace that cannot be used (a file, not writable, inside the course); printed in one line."""


def resolve(path: str | os.PathLike[str] | None = None) -> Path:
    """``path``, else ``$DLFUND_WORKSPACE``, else ``workspace/`` at the repository root (absolute)."""
    chosen = path or os.environ.get(ENV) or manifest.ROOT / "workspace"
    return Path(chosen).expanduser().resolve()


def find(path: str | os.PathLike[str] | None = None) -> Path | None:
    """The workspace (see :func:`resolve`) if ``dlfund start`` made one there, else ``None``."""
    ws = resolve(path)
    return ws if (ws / MANIFEST_NAME).is_file() else None


def require(path: str | os.PathLike[str] | None = None) -> Path:
    ws = find(path)
    if ws is None:
        raise WorkspaceError(f"no workspace at {resolve(path)}: `dlfund start` creates one")
    return ws


def prepare(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder, created if needed; refuses a file, a folder inside the course's own, or one
    that cannot be written to."""
    ws = resolve(path)
    if ws.exists() and not ws.is_dir():
        raise WorkspaceError(f"the workspace {ws} is a file, not a folder: choose another path with --path")
    protected = {
        manifest.ROOT: "the repository root",
        manifest.UNITS_DIR: "units/",
        manifest.SOLUTIONS_DIR: "solutions/",
    }
    for folder, name in protected.items():
        if ws == folder or (folder != manifest.ROOT and ws.is_relative_to(folder)):
            raise WorkspaceError(
                f"the workspace {ws} is inside {name}, which the course's commands rewrite: "
                "choose a folder of its own (the default is workspace/ at the repository root)"
            )
    try:
        ws.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=ws):  # os.access says yes to root even on a read-only disk
            pass
    except OSError as err:
        raise WorkspaceError(f"cannot write to the workspace {ws}: {err.strerror or err}") from None
    return ws


def read_json(path: Path, what: str) -> dict[str, Any] | None:
    """A JSON object from ``path``; ``None`` if there is no file. A file that is not a JSON object is
    moved aside as ``<name>.bad-<time>`` with one line on stderr, and reads as empty: never a traceback."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"a JSON object was expected, found {type(data).__name__}")
        return data
    except (ValueError, UnicodeDecodeError) as err:
        aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
        os.replace(path, aside)
        reason = str(err).splitlines()[0][:120]
        print(f"dlfund: {what} {path} was not readable ({reason}): kept aside as {aside.name}", file=sys.stderr)
        return {}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_state(ws: Path) -> dict[str, Any]:
    """The workspace manifest: ``{"files": {rel: {"from", "sha256", "code_sha256", ["beside"]}},
    "newer": {rel: rel of the newest version written beside it}}``."""
    state = read_json(ws / MANIFEST_NAME, "the workspace manifest") or {}
    files = state.get("files") if isinstance(state.get("files"), dict) else {}
    newer = state.get("newer") if isinstance(state.get("newer"), dict) else {}
    files = {k: v for k, v in files.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}
    return {"version": 1, "files": files, "newer": {k: v for k, v in newer.items() if isinstance(v, str)}}


def unit_folder(ws: Path, unit: manifest.Unit) -> Path:
    return ws / unit.dirname


def exercise_rel(unit: manifest.Unit, name: str) -> str:
    return f"{unit.dirname}/{name}.ipynb"


@dataclass(frozen=True)
class CourseFile:
    """One notebook the workspace holds a copy of."""

    rel: str
    """Its path in the workspace, e.g. ``01-perceptron/ex01-early-stopping.ipynb``."""
    text: str
    """The course's current version."""
    origin: str
    """Where it comes from, as shown to the learner."""
    learner_text: str | None = None
    """An edited copy of the learner's, found in ``units/``, to start from instead of :attr:`text`."""


def _entry(file: CourseFile, text: str, **extra: str) -> dict[str, str]:
    return {"from": file.origin, "sha256": sha256(text), "code_sha256": edits.code_digest_of(text) or "", **extra}


def _free_version(ws: Path, rel: str, state: dict[str, Any]) -> str:
    stem = rel.removesuffix(".ipynb")
    n = 2
    while (ws / f"{stem}.v{n}.ipynb").exists() or f"{stem}.v{n}.ipynb" in state["files"]:
        n += 1
    return f"{stem}.v{n}.ipynb"


def sync(ws: Path, files: list[CourseFile]) -> list[str]:
    """Copy or update ``files`` into ``ws`` without overwriting anything the learner changed (module
    docstring); return one line per thing done. Every write is atomic."""
    state = load_state(ws)
    done: list[str] = []
    copied = updated = 0
    try:
        for file in files:
            dest = ws / file.rel
            entry = state["files"].get(file.rel)
            new_hash = sha256(file.text)
            if not dest.exists():
                atomic_write_text(dest, file.learner_text or file.text)
                state["files"][file.rel] = _entry(file, file.text)
                if file.learner_text is not None:
                    done.append(f"copied your edited {file.origin} to {file.rel}: your starting point")
                copied += 1
                continue
            current = sha256(dest.read_text(encoding="utf-8", errors="replace"))
            if current == new_hash or (entry is not None and entry["sha256"] == new_hash):
                if entry is None:
                    state["files"][file.rel] = _entry(file, file.text)
                continue  # current, or the learner's work on the current version
            if entry is not None and current == entry["sha256"]:  # untouched copy of an older version
                atomic_write_text(dest, file.text)
                beside = {"beside": entry["beside"]} if "beside" in entry else {}
                state["files"][file.rel] = _entry(file, file.text, **beside)
                updated += 1
                continue
            # the learner's work, and the course has a newer version: offer it beside, never over it
            newer = state["newer"].get(file.rel)
            if newer and (ws / newer).exists():
                text = (ws / newer).read_text(encoding="utf-8", errors="replace")
                if sha256(text) == new_hash:
                    continue  # already offered
                if sha256(text) == state["files"].get(newer, {}).get("sha256"):  # offered, still untouched
                    atomic_write_text(ws / newer, file.text)
                    state["files"][newer] = _entry(file, file.text, beside=file.rel)
                    done.append(f"{file.rel} has your work: its newer version {newer} was updated")
                    continue
            newer = _free_version(ws, file.rel, state)
            atomic_write_text(ws / newer, file.text)
            state["files"][newer] = _entry(file, file.text, beside=file.rel)
            state["newer"][file.rel] = newer
            done.append(f"{file.rel} has your work, left as it is: the course's new version is beside it, {newer}")
    finally:  # what was written is recorded, even after Ctrl-C
        atomic_write_json(ws / MANIFEST_NAME, state)
    done.append(f"{copied} notebook(s) copied, {updated} updated in place, in {ws}")
    return done


def read_notebook(path: Path) -> dict[str, Any] | None:
    """A notebook's JSON, or ``None`` if the file is missing or not a notebook."""
    try:
        return edits.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return None
