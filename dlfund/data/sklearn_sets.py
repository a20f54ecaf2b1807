"""scikit-learn's small datasets: the bundled ones verified by hash, the generated ones made on demand."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from dlfund.data.cache import HashMismatchError
from dlfund.data.registry import get

__all__ = ["load_sklearn"]


def _content_sha256(X: np.ndarray, y: np.ndarray) -> str:
    X = np.ascontiguousarray(X, dtype="<f8")
    y = np.ascontiguousarray(y, dtype="<i8" if np.issubdtype(y.dtype, np.integer) else "<f8")
    return hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()


def load_sklearn(name: str, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """A scikit-learn dataset as ``(X, y)``: ``X`` float64 ``(n_samples, n_features)``, ``y`` ``(n_samples,)``.

    Bundled sets (``iris``, ``digits``, ``breast-cancer``, ``wine``, ``diabetes``) are checked
    against the registry hash of ``X.tobytes() + y.tobytes()``; ``y`` is int64 for classification,
    float64 for ``diabetes`` (returned mean-centred and scaled, as scikit-learn does; the hash is of
    the raw values). Generated sets (``moons``, ``blobs``) pass ``kwargs`` to ``make_moons`` /
    ``make_blobs`` (defaults: 500 samples, ``random_state=0``; moons ``noise=0.2``, blobs 3 centres).
    """
    from sklearn import datasets as skd

    ds = get(name)
    if ds.kind == "generated":
        make = {"moons": (skd.make_moons, {"noise": 0.2}), "blobs": (skd.make_blobs, {"centers": 3})}[ds.name]
        X, y = make[0](**{"n_samples": 500, "random_state": 0, **make[1], **kwargs})
        return X.astype(np.float64), y.astype(np.int64)
    if ds.kind != "bundled":
        raise ValueError(f"{ds.name!r} is not a scikit-learn dataset; use its own loader")
    if kwargs:
        raise TypeError(f"load_sklearn({ds.name!r}) takes no options, got {sorted(kwargs)}")
    loader = getattr(skd, "load_" + ds.name.replace("-", "_"))
    raw = {"scaled": False} if ds.name == "diabetes" else {}
    X, y = loader(return_X_y=True, **raw)
    got = _content_sha256(X, y)
    if got != ds.content_sha256:
        raise HashMismatchError(
            f"scikit-learn's bundled {ds.name!r} data differ from the copy the course was built with "
            f"(sha256 {got[:12]}…, expected {str(ds.content_sha256)[:12]}…); reinstall scikit-learn"
        )
    if ds.name == "diabetes":
        X, y = loader(return_X_y=True)
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64 if np.issubdtype(np.asarray(y).dtype, np.integer) else np.float64)
    return X, y
