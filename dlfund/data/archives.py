"""Read members out of the archives the sources download: wheels (zip) and Debian packages.

A ``.deb`` is an ``ar`` archive: the global header ``!<arch>\\n`` followed by members, each with a
60-byte header (name 16, mtime 12, uid 6, gid 6, mode 8, size 10, magic ``\\x60\\n``) and its data
padded to an even length. One member, ``data.tar.{xz,gz,zst}``, holds the installed files with
names starting ``./``. We read it with :mod:`tarfile` in streaming mode, so nothing is unpacked
to disk beside the files we want.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO

# (registry file name, member, raw stream, size of the raw stream or None)
Writer = Callable[[str, str, IO[bytes], "int | None"], None]

AR_MAGIC = b"!<arch>\n"
AR_HEADER = 60


class ArchiveError(ValueError):
    """An archive is malformed or lacks a member we need."""


class _Slice(io.RawIOBase):
    """A read-only window ``[start, start + size)`` of an open binary file."""

    def __init__(self, f: IO[bytes], start: int, size: int) -> None:
        self._f, self._pos, self._end = f, start, start + size

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self._end - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._pos)
        data = self._f.read(n)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def ar_members(f: IO[bytes]) -> Iterator[tuple[str, int, int]]:
    """Yield ``(name, data offset, size)`` for each member of an ``ar`` archive."""
    f.seek(0)
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        raise ArchiveError("not a Debian package: missing the ar header '!<arch>\\n'")
    pos = len(AR_MAGIC)
    while True:
        f.seek(pos)
        header = f.read(AR_HEADER)
        if not header:
            return
        if len(header) < AR_HEADER or header[58:60] != b"`\n":
            raise ArchiveError(f"corrupt ar member header at byte {pos}")
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError as e:
            raise ArchiveError(f"corrupt ar member size at byte {pos}") from e
        yield name, pos + AR_HEADER, size
        pos += AR_HEADER + size + (size & 1)


def _norm(member: str) -> str:
    return member[2:] if member.startswith("./") else member.lstrip("/")


def read_deb(path: Path, members: Mapping[str, str], write: Writer) -> None:
    """Call ``write`` for each ``{file name: member}`` found in the ``.deb``'s ``data.tar.*``."""
    with open(path, "rb") as f:
        data = [(n, off, size) for n, off, size in ar_members(f) if n.startswith("data.tar")]
        if not data:
            raise ArchiveError(f"{path.name} has no data.tar.* member")
        name, off, size = data[0]
        modes = {"data.tar.xz": "r|xz", "data.tar.gz": "r|gz", "data.tar.bz2": "r|bz2", "data.tar": "r|"}
        if name not in modes:
            raise ArchiveError(
                f"{path.name} stores its files in {name}; only xz, gz and bz2 data archives can be read "
                "with Python's standard library (zstd needs Python >= 3.14 or the zstd tool): "
                "unpack it with `dpkg-deb -x` and point $DLFUND_LOCAL_DATA at the files instead"
            )
        wanted = {_norm(m): fname for fname, m in members.items()}
        with tarfile.open(fileobj=io.BufferedReader(_Slice(f, off, size), 1 << 20), mode=modes[name]) as tar:
            for info in tar:
                fname = wanted.pop(_norm(info.name), None)
                if fname is None or not info.isfile():
                    continue
                fobj = tar.extractfile(info)
                assert fobj is not None
                write(fname, info.name, fobj, info.size)
                if not wanted:
                    break
    if wanted:
        raise ArchiveError(f"{path.name} has no member(s) {', '.join(sorted(wanted))}")


def read_zip(path: Path, members: Mapping[str, str], write: Writer) -> None:
    """Call ``write`` for each ``{file name: member}`` of a zip archive (a wheel)."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"{path.name} is not a valid zip/wheel: {e}") from e
    with zf:
        names = set(zf.namelist())
        missing = [m for m in members.values() if m not in names]
        if missing:
            more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
            raise ArchiveError(f"{path.name} has no member(s) {', '.join(missing[:3])}{more}")
        for fname, member in members.items():
            with zf.open(member) as fobj:
                write(fname, member, fobj, zf.getinfo(member).file_size)


def read_archive(path: Path, kind: str, members: Mapping[str, str], write: Writer) -> None:
    """Dispatch on ``kind``: ``"zip"`` (wheels) or ``"deb"``."""
    if kind == "zip":
        read_zip(path, members, write)
    elif kind == "deb":
        read_deb(path, members, write)
    else:
        raise ValueError(f"unknown archive kind {kind!r}; use 'zip' or 'deb'")
