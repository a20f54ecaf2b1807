"""Builders for tiny files in the real formats, so the data layer is tested offline.

idx (MNIST), CSV, wheels (zip with dist-info), Debian packages (ar + data.tar.xz), GGUF, and a fake
``apt-get`` that "downloads" a local ``.deb``.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import lzma
import stat
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dlfund.data import Dataset, Source


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def compress(data: bytes, suffix: str) -> bytes:
    """Compress ``data`` the way a member named ``*<suffix>`` is stored (``.gz``, ``.bz2``, ``.xz``, raw)."""
    return {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}.get(suffix, lambda b: b)(data)


def dataset(name: str, files: Mapping[str, bytes], sources: tuple[Source, ...], **kw) -> Dataset:
    """A registry entry whose hashes are those of ``files`` (the decompressed contents)."""
    return Dataset(
        name=name,
        title=kw.pop("title", name.title()),
        description="test data",
        licence="MIT",
        citation="dlfund tests",
        size_mb=0.0,
        files={k: sha(v) for k, v in files.items()},
        sources=sources,
        **kw,
    )


# ----------------------------------------------------------------------------- idx


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx encoding of a uint8 array: 0x0000, type 0x08, ndim, big-endian dims, data."""
    assert array.dtype == np.uint8
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def tiny_fashion(n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[str, bytes]]:
    """``n`` random 28x28 images and labels, and the four Fashion-MNIST files (decompressed)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n,), dtype=np.uint8)
    files = {
        "train-images-idx3-ubyte": idx_bytes(images),
        "train-labels-idx1-ubyte": idx_bytes(labels),
        "t10k-images-idx3-ubyte": idx_bytes(images[:1]),
        "t10k-labels-idx1-ubyte": idx_bytes(labels[:1]),
    }
    return images, labels, files


def mnist_csv(n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, bytes]:
    """The mnist_5k.csv layout: 784 pixel columns then the label, no header."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 784), dtype=np.int64)
    labels = np.arange(n, dtype=np.int64) % 10
    rows = [",".join(map(str, list(img) + [lab])) for img, lab in zip(images, labels)]
    return images.reshape(n, 28, 28).astype(np.uint8), labels, ("\n".join(rows) + "\n").encode()


REVIEWS_CSV = (
    "category,text,movie_name,has_plot_and_reviews\n"
    'plot,"A bank manager loses his temper, and more.",some_film,True\n'
    'fresh,"A three-hour cinema master class.",a_grin_without_a_cat,False\n'
    'rotten,"Dull, ""clever"" and long.",some_film,True\n'
    "fresh,Café society at its best.,other_film,False\n"
).encode()


# ----------------------------------------------------------------------------- wheels


def build_wheel(folder: Path, dist: str, version: str, members: Mapping[str, bytes]) -> Path:
    """A real, pip-acceptable wheel ``<dist>-<version>-py3-none-any.whl`` holding ``members``."""
    norm = dist.replace("-", "_")
    info = f"{norm}-{version}.dist-info"
    files = dict(members)
    files[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: dlfund-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()},{len(b)}"
        for n, b in files.items()
    ]
    files[f"{info}/RECORD"] = ("\n".join(record + [f"{info}/RECORD,,"]) + "\n").encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{norm}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return path


# ----------------------------------------------------------------------------- Debian packages


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(members: Mapping[str, bytes], compression: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w") as tar:
        dirs = sorted({"./" + "/".join(p.split("/")[:i]) for p in members for i in range(1, p.count("/") + 1)})
        for d in ["."] + dirs:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for p, b in members.items():
            info = tarfile.TarInfo("./" + p)
            info.size, info.mode = len(b), 0o644
            tar.addfile(info, io.BytesIO(b))
    return buf.getvalue()


def build_deb(path: Path, members: Mapping[str, bytes], data_name: str = "data.tar.xz") -> Path:
    """A ``.deb``: ar archive of ``debian-binary``, ``control.tar.xz`` and ``data_name`` with ``members``."""
    comp = {"data.tar.xz": "xz", "data.tar.gz": "gz", "data.tar": ""}.get(data_name)
    data = _tar(members, comp) if comp is not None else b"\x28\xb5\x2f\xfd not really zstd"
    control = _tar({"control": b"Package: dataset-test\nVersion: 1\nArchitecture: all\n"}, "xz")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member("control.tar.xz", control)
        + _ar_member(data_name, data)
    )
    return path


def fake_apt_get(bin_dir: Path, deb: Path, *, needs_update: bool = False) -> Path:
    """An ``apt-get`` script: ``download PKG`` copies ``deb`` into the cwd as ``PKG_1_all.deb``.

    With ``needs_update``, ``download`` fails with apt's 'Unable to locate package' message until
    ``apt-get update`` has been run (as on a fresh container).
    """
    bin_dir.mkdir(parents=True, exist_ok=True)
    marker = bin_dir / "updated"
    script = bin_dir / "apt-get"
    gate = (
        f'if [ ! -e "{marker}" ]; then echo "E: Unable to locate package $2" >&2; exit 100; fi\n'
        if needs_update
        else ""
    )
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> "{bin_dir / "calls.log"}"\n'
        f'if [ "$1" = update ]; then touch "{marker}"; exit 0; fi\n'
        f'if [ "$1" != download ]; then echo "E: unsupported" >&2; exit 100; fi\n'
        + gate
        + f'cp "{deb}" "./$2_1_all.deb"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


# ----------------------------------------------------------------------------- GGUF


def tiny_gguf(path: Path) -> Path:
    """A 2-layer llama-architecture GGUF with a 5-token vocabulary and one tensor."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-test-llama")
    w.add_block_count(2)
    w.add_context_length(64)
    w.add_embedding_length(8)
    w.add_feed_forward_length(16)
    w.add_head_count(2)
    w.add_head_count_kv(1)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<s>", "</s>", "a", "b", "ab"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    w.add_tensor("token_embd.weight", np.zeros((5, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
