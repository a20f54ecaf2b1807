"""The on-disk cache: where datasets live, how files are verified, how they are written.

Layout: ``<cache>/<dataset-name>/<relative file name>``, every file stored **decompressed**, so the
sha256 of the file on disk is the hash in the registry whatever source it came from. The cache root is
``$DLFUND_DATA_DIR``, else ``$XDG_CACHE_HOME/dlfund``, else ``~/.cache/dlfund``.

Hashing a 100 MB file on every load would cost a fraction of a second each time, so each dataset
folder keeps a sidecar ``.verified.json`` mapping file -> {size, mtime_ns, sha256}. It is trusted
only while the file's size and mtime_ns are unchanged; otherwise the file is hashed again.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, BinaryIO

from tqdm import tqdm

from dlfund.utils.io import atomic_open, atomic_write_json

SIDECAR = ".verified.json"
CHUNK = 1 << 20
PROGRESS_MIN_BYTES = 5 << 20  # show a progress bar only for members at least this large


class HashMismatchError(ValueError):
    """A file's content did not have the sha256 the registry expects."""


def cache_root() -> Path:
    """The cache root: ``$DLFUND_DATA_DIR``, else ``$XDG_CACHE_HOME/dlfund``, else ``~/.cache/dlfund``."""
    env = os.environ.get("DLFUND_DATA_DIR")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dlfund"


def dataset_dir(name: str) -> Path:
    """``<cache>/<name>`` (not created)."""
    return cache_root() / name


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- sidecar


def read_sidecar(folder: Path) -> dict[str, dict[str, Any]]:
    """The ``.verified.json`` entries of a dataset folder (empty if absent or unreadable)."""
    try:
        data = json.loads((folder / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def record_verified(folder: Path, rel: str, sha256: str, source: str | None = None) -> None:
    """Record that ``folder/rel`` has ``sha256`` at its current size and mtime."""
    st = (folder / rel).stat()
    entries = read_sidecar(folder)
    old = entries.get(rel, {})
    entry: dict[str, Any] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}
    src = source if source is not None else old.get("source")
    if src:
        entry["source"] = src
    entries[rel] = entry
    atomic_write_json(folder / SIDECAR, entries)


def check_file(folder: Path, rel: str, expected: str, sidecar: dict[str, dict[str, Any]]) -> str:
    """State of one cached file: ``"ok"``, ``"missing"`` or ``"corrupt"``.

    Uses the sidecar when size and mtime_ns match; otherwise hashes the file and, when it matches,
    refreshes the sidecar entry.
    """
    path = folder / rel
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing"
    entry = sidecar.get(rel)
    if (
        entry
        and entry.get("size") == st.st_size
        and entry.get("mtime_ns") == st.st_mtime_ns
        and entry.get("sha256") == expected
    ):
        return "ok"
    if sha256_file(path) != expected:
        return "corrupt"
    try:
        record_verified(folder, rel, expected)
    except OSError:
        pass  # a read-only cache still verifies, it just re-hashes next time
    return "ok"


# ----------------------------------------------------------------------------- writing


def decompressor_for(member: str) -> Callable[[IO[bytes]], IO[bytes]] | None:
    """Decompression is decided by the member suffix: ``.gz``, ``.bz2``, ``.xz``; else raw."""
    lower = member.lower().split("?", 1)[0]
    if lower.endswith(".gz"):
        return lambda f: gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if lower.endswith(".bz2"):
        return lambda f: bz2.BZ2File(f, mode="rb")  # type: ignore[return-value]
    if lower.endswith(".xz"):
        return lambda f: lzma.LZMAFile(f, mode="rb")  # type: ignore[return-value]
    return None


class _ProgressReader:
    """A read-only wrapper that advances a tqdm bar by the bytes read."""

    def __init__(self, raw: IO[bytes], bar: tqdm) -> None:
        self._raw, self._bar = raw, bar

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._bar.update(len(data))
        return data

    def readable(self) -> bool:
        return True


def write_verified(
    dest: Path,
    member: str,
    raw: BinaryIO | IO[bytes],
    expected: str,
    *,
    size: int | None = None,
    verbose: bool = False,
) -> int:
    """Stream ``raw`` (decompressed according to ``member``'s suffix) into ``dest`` atomically.

    The content is hashed while it is written; the temporary file is moved onto ``dest`` only when
    the sha256 equals ``expected``, else it is deleted and :class:`HashMismatchError` is raised. A
    failure mid-stream (network drop, corrupt archive) also leaves no partial file. Returns the
    number of bytes written.
    """
    show = verbose and size is not None and size >= PROGRESS_MIN_BYTES
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not show, leave=False)
    try:
        src: IO[bytes] = _ProgressReader(raw, bar) if show else raw  # type: ignore[assignment]
        wrap = decompressor_for(member)
        stream = wrap(src) if wrap else src
        h = hashlib.sha256()
        n = 0
        with atomic_open(dest, "wb") as out:
            while chunk := stream.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
                n += len(chunk)
            got = h.hexdigest()
            if got != expected:
                raise HashMismatchError(
                    f"{dest.name}: sha256 {got[:12]}… of the {n:,} decompressed bytes from {member} "
                    f"does not match the registry's {expected[:12]}…"
                )
        os.chmod(dest, 0o644)  # mkstemp made it private; a cache file is ordinary data
        return n
    finally:
        bar.close()
