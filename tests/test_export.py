"""dlfund.export: round trips give identical predictions, broken files give clear errors, serving on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dlfund import export as ex
from dlfund.models.mlp import MLP

CONFIG = {"architecture": "MLP", "in_features": 784, "hidden": [32, 16], "out_features": 10, "dropout": 0.2}


@pytest.fixture
def model() -> MLP:
    torch.manual_seed(0)
    return MLP(784, [32, 16], 10, dropout=0.2)  # dropout: predict and export must switch it off


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(37, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_safetensors_round_trip_gives_identical_predictions(model: MLP, images: torch.Tensor, tmp_path: Path) -> None:
    config = dict(CONFIG)
    folder = ex.save_for_inference(model, tmp_path / "mlp", config=config, metadata={"classes": list("abcdefghij")})
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = ex.load_for_inference(folder)
    assert isinstance(loaded, MLP) and not loaded.training
    labels, probs = ex.predict(model, images, batch_size=8)
    labels2, probs2 = ex.predict(loaded, images, batch_size=8)
    assert torch.equal(labels, labels2) and torch.equal(probs, probs2)
    # another batch size changes only the summation order inside the matrix products (BLAS blocking)
    labels3, probs3 = ex.predict(loaded, images)
    assert torch.equal(labels, labels3) and torch.allclose(probs, probs3, rtol=0, atol=1e-6)
    assert probs.shape == (37, 10) and labels.dtype == torch.int64
    assert torch.allclose(probs.sum(1), torch.ones(37))
    record = ex.read_config(folder)
    assert record["model"] == config and record["metadata"]["classes"][0] == "a"
    assert record["weights"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert not list(folder.glob("*.part")), "atomic writes leave no temporary files"


def test_export_program_round_trip_gives_identical_predictions(
    model: MLP, images: torch.Tensor, tmp_path: Path
) -> None:
    path = tmp_path / "mlp.pt2"
    program = ex.export_program(model, images[:4], path)
    assert isinstance(program, torch.export.ExportedProgram)
    loaded = ex.load_program(path)
    labels, probs = ex.predict(model, images)
    labels2, probs2 = ex.predict(loaded, images)  # another batch size than the example's
    assert torch.equal(labels, labels2)
    assert torch.allclose(probs, probs2, atol=1e-6)
    assert loaded(images[:1]).shape == (1, 10)
    big = torch.randn(5000, 1, 28, 28)
    ex.export_program(model, big[:2], tmp_path / "small.pt2")
    assert (tmp_path / "small.pt2").stat().st_size < path.stat().st_size + 100_000, "the example's storage was saved"


def test_missing_and_corrupt_files_raise_clear_errors(model: MLP, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no exported model at .*expected a folder with config.json"):
        ex.load_for_inference(tmp_path / "nothing")
    folder = ex.save_for_inference(model, tmp_path / "m", config=CONFIG)
    weights = folder / ex.WEIGHTS_FILE
    data = weights.read_bytes()

    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ex.ExportFormatError, match="corrupt or was changed after saving: its sha256"):
        ex.load_for_inference(folder)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="has no model.safetensors"):
        ex.load_for_inference(folder)

    weights.write_bytes(b"not safetensors at all")
    record = json.loads((folder / ex.CONFIG_FILE).read_text())
    import hashlib

    record["weights"]["sha256"] = hashlib.sha256(b"not safetensors at all").hexdigest()
    (folder / ex.CONFIG_FILE).write_text(json.dumps(record))
    with pytest.raises(ex.ExportFormatError, match="not a readable safetensors file"):
        ex.load_for_inference(folder)

    (folder / ex.CONFIG_FILE).write_text("{ half a json")
    with pytest.raises(ex.ExportFormatError, match="not valid JSON"):
        ex.load_for_inference(folder)

    (tmp_path / "bad.pt2").write_bytes(b"garbage")
    with pytest.raises(ex.ExportFormatError, match="not a torch.export program"):
        ex.load_program(tmp_path / "bad.pt2")
    with pytest.raises(FileNotFoundError, match="no exported program"):
        ex.load_program(tmp_path / "none.pt2")


def test_config_mismatch_is_reported_on_save_and_on_load(model: MLP, tmp_path: Path) -> None:
    with pytest.raises(
        ex.ExportFormatError,
        match=r"shape mismatch \(layers.0.bias: config gives \(64,\), weights have \(32,\); layers.0.weight",
    ):
        ex.save_for_inference(model, tmp_path / "a", config={**CONFIG, "hidden": [64, 16]})
    with pytest.raises(
        ex.ExportFormatError, match=r"missing tensors \['layers.9.bias', 'layers.9.weight'\], shape mismatch"
    ):
        ex.save_for_inference(model, tmp_path / "a", config={**CONFIG, "hidden": [32, 16, 8]})
    with pytest.raises(ex.ExportFormatError, match="unknown architecture 'ResNet'"):
        ex.save_for_inference(model, tmp_path / "a", config={**CONFIG, "architecture": "ResNet"})
    with pytest.raises(ex.ExportFormatError, match="cannot build MLP"):
        ex.save_for_inference(model, tmp_path / "a", config={**CONFIG, "width": 3})
    with pytest.raises(TypeError, match="JSON-serialisable"):
        ex.save_for_inference(model, tmp_path / "a", config=CONFIG, metadata={"x": torch.ones(1)})

    folder = ex.save_for_inference(model, tmp_path / "b", config=CONFIG)
    record = json.loads((folder / ex.CONFIG_FILE).read_text())
    record["model"]["out_features"] = 5  # someone edits the config by hand
    (folder / ex.CONFIG_FILE).write_text(json.dumps(record))
    with pytest.raises(ex.ExportFormatError, match=r"weights do not match the config: shape mismatch"):
        ex.load_for_inference(folder)


def test_predict_rejects_unprepared_inputs(model: MLP) -> None:
    with pytest.raises(TypeError, match="float tensor .* found torch.uint8"):
        ex.predict(model, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="no inputs"):
        ex.predict(model, torch.zeros(0, 1, 28, 28))


def test_onnx_is_skipped_with_one_line_without_the_package(
    model: MLP, images: torch.Tensor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxscript"):
        assert ex.export_onnx(model, images[:2], tmp_path / "m.onnx") == tmp_path / "m.onnx"
    else:
        assert ex.export_onnx(model, images[:2], tmp_path / "m.onnx") is None
        out = capsys.readouterr().out
        assert out.startswith("ONNX export skipped") and out.count("\n") == 1


def test_server_answers_like_predict_on_loopback(model: MLP, images: torch.Tensor) -> None:
    labels, probs = ex.predict(model, images)
    with ex.start_server(model, input_shape=(1, 28, 28), classes=[f"c{i}" for i in range(10)]) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        answer = ex.request_predictions(server.url, images[:5])
        assert answer["labels"] == labels[:5].tolist()
        assert torch.allclose(torch.tensor(answer["probabilities"]), probs[:5])
        assert answer["classes"] == [f"c{i}" for i in labels[:5].tolist()]
        with pytest.raises(RuntimeError, match=r"400: expected inputs of shape \(N, 1, 28, 28\), found \(2, 28, 28\)"):
            ex.request_predictions(server.url, images[:2, 0])
        assert server.served == 1
    with pytest.raises(ValueError, match="only listens on the local machine"):
        ex.start_server(model, input_shape=(1, 28, 28), host="0.0.0.0")
