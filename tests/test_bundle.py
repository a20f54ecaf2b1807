"""The GPU bundle travels in parts of at most one call's size and is reassembled and verified there."""

from __future__ import annotations

import json
import os

import pytest

from dlfund.course import bundle


@pytest.fixture
def folder(tmp_path):
    """A bundle-like folder: wheels, nested data, one file larger than several parts, an empty file."""
    root = tmp_path / ".gpu-bundle"
    files = {
        "COMMIT": b"abc123",
        "wheels/nbclient-0.10-py3-none-any.whl": os.urandom(50_000),
        "data/smollm2/model.gguf.gz": os.urandom(300_000),
        "data/empty.txt": b"",
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root, files


def test_parts_fit_the_limit_and_reassemble_byte_for_byte(folder, tmp_path, capsys):
    root, files = folder
    parts = bundle.split(root, tmp_path / "parts", part_bytes=64 * 1024)
    assert len(parts) >= 6 and all(p.stat().st_size <= 64 * 1024 for p in parts)
    assert [p.name for p in parts][:2] == [f"part-001-of-{len(parts):03d}.bin", f"part-002-of-{len(parts):03d}.bin"]
    assert bundle.check(tmp_path / "parts") == ([], [])
    dest = bundle.join(tmp_path / "parts", tmp_path / "there" / ".gpu-bundle")
    assert {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()} == files
    assert bundle.main(["check", str(tmp_path / "parts")]) == 0
    assert f"{len(parts)}/{len(parts)} parts intact" in capsys.readouterr().out


def test_missing_and_damaged_parts_are_named_and_nothing_is_unpacked(folder, tmp_path, capsys):
    root, _ = folder
    parts = bundle.split(root, tmp_path / "parts", part_bytes=64 * 1024)
    parts[1].unlink()
    damaged = bytearray(parts[3].read_bytes())
    damaged[100] ^= 0xFF  # one flipped byte, same size
    parts[3].write_bytes(bytes(damaged))
    dest = tmp_path / "there"
    (dest / "old").mkdir(parents=True)
    with pytest.raises(bundle.BundleError, match=rf"missing: {parts[1].name}; damaged: {parts[3].name}\. Send"):
        bundle.join(tmp_path / "parts", dest)
    assert (dest / "old").is_dir(), "a failed join leaves the destination as it was"
    assert bundle.main(["join", str(tmp_path / "parts"), str(dest)]) == 1
    assert "parts are here and intact" in capsys.readouterr().err


def test_an_index_that_is_missing_or_not_ours_is_a_clear_error(folder, tmp_path):
    root, _ = folder
    bundle.split(root, tmp_path / "parts", part_bytes=1 << 20)
    index = tmp_path / "parts" / "parts.json"
    index.write_text(json.dumps({"parts": []}))
    with pytest.raises(bundle.BundleError, match="not an index written by `split`"):
        bundle.check(tmp_path / "parts")
    index.unlink()
    with pytest.raises(bundle.BundleError, match="parts.json is missing: send it with the first part"):
        bundle.join(tmp_path / "parts", tmp_path / "dest")
    with pytest.raises(bundle.BundleError, match="is not a folder"):
        bundle.split(tmp_path / "nothing", tmp_path / "parts", part_bytes=10)


def test_the_default_part_leaves_room_for_the_working_tree():
    assert bundle.default_part_bytes(5 * bundle.MIB) == 57 * bundle.MIB
    with pytest.raises(bundle.BundleError, match="no room left"):
        bundle.default_part_bytes(63 * bundle.MIB)
