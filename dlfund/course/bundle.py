"""Carry a folder to a machine that takes at most so many bytes per transfer: split it into numbered parts,
send one part per call, then reassemble and verify it there.

The GPU machine the course is run on takes 64 MiB per call (the working tree included), and the bundle it
needs (wheels, datasets, the SmolLM2 and MiniLM weights) is several times that. ``split`` writes the folder
as one tar stream cut into parts of at most ``part_bytes``, with an index ``parts.json`` (the size and
SHA-256 of every part and of the whole stream); ``join`` checks every part against the index, names the
missing or damaged ones, and only then unpacks the stream, checking the whole hash too, into the
destination (replaced as a whole: never half a bundle). Only the standard library is used, so it runs
before anything is installed::

    python -m dlfund.course.bundle split .gpu-bundle .gpu-parts          # here
    python -m dlfund.course.bundle check .gpu-parts                      # there: what has arrived
    python -m dlfund.course.bundle join .gpu-parts .gpu-bundle           # there, once all have
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

INDEX = "parts.json"
MIB = 2**20
CALL_LIMIT = 64 * MIB
"""What one call to the GPU machine carries at most, the working tree included."""


class BundleError(RuntimeError):
    """The parts do not make up the bundle: what is missing or damaged, and what to send again."""


def part_name(number: int, total: int) -> str:
    return f"part-{number:03d}-of-{total:03d}.bin"


def default_part_bytes(tree_bytes: int, margin: int = 2 * MIB) -> int:
    """The largest part that still fits in one call beside a working tree of ``tree_bytes``."""
    room = CALL_LIMIT - tree_bytes - margin
    if room < MIB:
        raise BundleError(f"the working tree alone is {tree_bytes / MIB:.1f} MiB: no room left for a part")
    return room


class _Parts:
    """A writable stream that cuts what is written into files of at most ``limit`` bytes, hashing as it goes."""

    def __init__(self, out: Path, limit: int) -> None:
        self.out, self.limit = out, limit
        self.whole = hashlib.sha256()
        self.parts: list[dict[str, Any]] = []
        self._file: IO[bytes] | None = None
        self._hash = hashlib.sha256()
        self._size = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            if self._file is None or self._size == self.limit:
                self._next()
            assert self._file is not None
            take = min(len(view), self.limit - self._size)
            chunk = view[:take]
            self._file.write(chunk)
            self._hash.update(chunk)
            self.whole.update(chunk)
            self._size += take
            view = view[take:]
        return len(data)

    def _next(self) -> None:
        self._close()
        # held open across write() calls and closed in _close(): no `with` can span them
        self._file = open(self.out / f"tmp-{len(self.parts):03d}", "wb")  # noqa: SIM115
        self._hash, self._size = hashlib.sha256(), 0

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self.parts.append({"bytes": self._size, "sha256": self._hash.hexdigest()})
            self._file = None

    def finish(self) -> list[dict[str, Any]]:
        self._close()
        total = len(self.parts)
        for i, part in enumerate(self.parts):
            part["name"] = part_name(i + 1, total)
            (self.out / f"tmp-{i:03d}").rename(self.out / part["name"])
        return self.parts


def split(source: Path, out: Path, part_bytes: int) -> list[Path]:
    """Write ``source`` (a folder) as a tar stream in parts of at most ``part_bytes`` bytes into ``out``
    (emptied first), with the index ``out/parts.json``; return the part files."""
    if not source.is_dir():
        raise BundleError(f"{source} is not a folder: make the bundle first (bash tools/gpu-bundle.sh)")
    if part_bytes < 1:
        raise BundleError(f"a part must hold at least one byte, found part_bytes={part_bytes}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    stream = _Parts(out, part_bytes)
    with tarfile.open(fileobj=stream, mode="w|") as tar:  # type: ignore[call-overload]
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)
    parts = stream.finish()
    index = {
        "source": source.name,
        "bytes": sum(p["bytes"] for p in parts),
        "sha256": stream.whole.hexdigest(),
        "parts": parts,
    }
    (out / INDEX).write_text(json.dumps(index, indent=1) + "\n", encoding="utf-8")
    return [out / p["name"] for p in parts]


def _index(folder: Path) -> dict[str, Any]:
    path = folder / INDEX
    if not path.is_file():
        raise BundleError(f"{path} is missing: send it with the first part (it is written by `split`)")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        index["parts"][0]["name"]
    except (ValueError, KeyError, IndexError, TypeError) as err:
        raise BundleError(f"{path} is not an index written by `split` ({err!r}): send it again") from err
    return index


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            digest.update(block)
    return digest.hexdigest()


def check(folder: Path) -> tuple[list[str], list[str]]:
    """The parts of ``folder`` that are (missing, damaged): a part is damaged when its size or hash differs
    from the index."""
    missing, damaged = [], []
    for part in _index(folder)["parts"]:
        path = folder / part["name"]
        if not path.is_file():
            missing.append(part["name"])
        elif path.stat().st_size != part["bytes"] or _sha256(path) != part["sha256"]:
            damaged.append(part["name"])
    return missing, damaged


class _Joined:
    """The parts read back as one stream, hashed as it is read."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths, self.whole = list(paths), hashlib.sha256()
        self._file: IO[bytes] | None = None

    def read(self, size: int = -1) -> bytes:
        chunks, want = [], size if size >= 0 else sys.maxsize
        while want > 0:
            if self._file is None:
                if not self.paths:
                    break
                self._file = open(self.paths.pop(0), "rb")  # noqa: SIM115  (closed when read to its end)
            data = self._file.read(min(want, 16 * MIB))
            if not data:
                self._file.close()
                self._file = None
                continue
            chunks.append(data)
            want -= len(data)
        out = b"".join(chunks)
        self.whole.update(out)
        return out

    def drain(self) -> None:
        while self.read(16 * MIB):
            pass


def join(folder: Path, dest: Path) -> Path:
    """Verify the parts in ``folder`` against their index, then unpack the bundle into ``dest`` (replacing
    it only when every byte checked out); raise :class:`BundleError` naming what to send again."""
    index = _index(folder)
    missing, damaged = check(folder)
    if missing or damaged:
        problems = [f"missing: {', '.join(missing)}"] * bool(missing) + [f"damaged: {', '.join(damaged)}"] * bool(
            damaged
        )
        raise BundleError(
            f"{folder}: {len(index['parts']) - len(missing) - len(damaged)} of {len(index['parts'])} parts "
            f"are here and intact; {'; '.join(problems)}. Send those again, then join."
        )
    staging = dest.with_name(dest.name + ".joining")
    if staging.exists():
        shutil.rmtree(staging)
    stream = _Joined([folder / p["name"] for p in index["parts"]])
    with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
        tar.extractall(staging, filter="data")  # no absolute paths, links out of the folder or devices
    stream.drain()  # the tar's zero padding at the end counts in the hash too
    if stream.whole.hexdigest() != index["sha256"]:
        shutil.rmtree(staging)
        raise BundleError(f"{folder}: the parts are intact one by one but the whole does not match its hash")
    if dest.exists():
        shutil.rmtree(dest)
    staging.rename(dest)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dlfund.course.bundle", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("split", help="cut a folder into parts that each fit in one call")
    s.add_argument("source", type=Path)
    s.add_argument("out", type=Path)
    s.add_argument("--tree-mib", type=float, default=5.0, help="size of the working tree sent beside each part")
    s.add_argument("--part-mib", type=float, help="part size (default: what fits beside the tree in 64 MiB)")
    s = sub.add_parser("check", help="say which parts have arrived intact")
    s.add_argument("folder", type=Path)
    s = sub.add_parser("join", help="verify every part, then unpack the folder")
    s.add_argument("folder", type=Path)
    s.add_argument("dest", type=Path)
    args = p.parse_args(argv)
    try:
        if args.command == "split":
            size = int(args.part_mib * MIB) if args.part_mib else default_part_bytes(int(args.tree_mib * MIB))
            parts = split(args.source, args.out, size)
            total = sum(path.stat().st_size for path in parts)
            print(
                f"{args.source} -> {len(parts)} part(s) of at most {size / MIB:.1f} MiB in {args.out} "
                f"({total / MIB:.1f} MiB in all)"
            )
            for path in parts:
                print(f"  {path}  {path.stat().st_size / MIB:.1f} MiB")
        elif args.command == "check":
            missing, damaged = check(args.folder)
            total = len(_index(args.folder)["parts"])
            print(
                f"{total - len(missing) - len(damaged)}/{total} parts intact"
                + (f"; missing: {', '.join(missing)}" if missing else "")
                + (f"; damaged: {', '.join(damaged)}" if damaged else "")
            )
            return 1 if missing or damaged else 0
        else:
            print(f"joined and verified: {join(args.folder, args.dest)}")
    except BundleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
