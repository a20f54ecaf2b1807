"""Exporting a trained model for inference, loading it back, and serving predictions (unit 14).

Two ways to ship a model, both loadable without the training code:

1. **Weights + config** (:func:`save_for_inference`, :func:`load_for_inference`): a folder with
   ``model.safetensors`` (the state dict: named tensors only, no pickled Python, so loading it
   cannot run code) and ``config.json`` (which architecture, its constructor arguments, any
   metadata such as class names, and the sha256 of the weights). Loading rebuilds the model from
   the course library and fills in the weights. Needs the model's class at load time.
2. **A program** (:func:`export_program`, :func:`load_program`): ``torch.export`` traces the
   forward pass into a graph of ATen operations with the weights inside, saved as one ``.pt2``
   file. Loading needs no model class at all, and compilers and runtimes can consume the graph.

:func:`predict` is the inference function both feed, and :func:`start_server` puts it behind a
minimal JSON-over-HTTP endpoint on the local machine (loopback only).

>>> model = MLP(4, [8], 3)                                                        # doctest: +SKIP
>>> save_for_inference(model, "runs/demo", config={"architecture": "MLP", "in_features": 4,
...                    "hidden": [8], "out_features": 3})                        # doctest: +SKIP
>>> labels, probabilities = predict(load_for_inference("runs/demo"), torch.randn(5, 4))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import io
import json
import os
import threading
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlfund.models.mlp import MLP
from dlfund.utils.io import atomic_open, atomic_write_json

__all__ = [
    "ARCHITECTURES",
    "ExportFormatError",
    "WEIGHTS_FILE",
    "CONFIG_FILE",
    "FORMAT",
    "save_for_inference",
    "load_for_inference",
    "read_config",
    "predict",
    "export_program",
    "load_program",
    "export_onnx",
    "PredictionServer",
    "start_server",
    "request_predictions",
]

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"MLP": MLP}
"""Model classes that :func:`load_for_inference` can rebuild, by the name stored in ``config.json``.
Later units register theirs here (``ARCHITECTURES["CNN"] = CNN``)."""

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT = "dlfund-inference/1"


class ExportFormatError(ValueError):
    """An exported model is corrupt, incomplete, or does not match its config."""


def _build(config: dict[str, Any], where: str) -> nn.Module:
    """The (untrained) model ``config`` describes: ``ARCHITECTURES[config["architecture"]](**rest)``."""
    if not isinstance(config, dict) or "architecture" not in config:
        raise ExportFormatError(
            f"{where}: config must be a dict with an 'architecture' key (one of "
            f"{', '.join(ARCHITECTURES)}) and the model's constructor arguments; found {config!r}"
        )
    name = config["architecture"]
    if name not in ARCHITECTURES:
        raise ExportFormatError(
            f"{where}: unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)} "
            "(register a new one in dlfund.export.ARCHITECTURES)"
        )
    kwargs = {k: v for k, v in config.items() if k != "architecture"}
    try:
        return ARCHITECTURES[name](**kwargs)
    except (TypeError, ValueError) as err:
        raise ExportFormatError(f"{where}: cannot build {name}(**{kwargs}): {err}") from err


def _match_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """Raise a clear error unless ``state`` has exactly ``model``'s tensor names and shapes."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    missing, extra = sorted(expected.keys() - found.keys()), sorted(found.keys() - expected.keys())
    shapes = [
        f"{k}: config gives {expected[k]}, weights have {found[k]}"
        for k in sorted(expected.keys() & found.keys())
        if expected[k] != found[k]
    ]
    if missing or extra or shapes:
        parts = ([f"missing tensors {missing}"] if missing else []) + ([f"unexpected tensors {extra}"] if extra else [])
        parts += [f"shape mismatch ({'; '.join(shapes)})"] if shapes else []
        raise ExportFormatError(f"{where}: the weights do not match the config: {', '.join(parts)}")


def save_for_inference(
    model: nn.Module, path: str | Path, *, config: dict[str, Any], metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model``'s weights and config to the folder ``path``; return the folder.

    Args:
        model: a trained model whose class is in :data:`ARCHITECTURES`.
        path: a folder (created if needed); it receives ``model.safetensors`` and ``config.json``.
        config: ``{"architecture": "MLP", **constructor_arguments}``, e.g. ``{"architecture": "MLP",
            "in_features": 784, "hidden": [256, 128], "out_features": 10}``. Checked now: the model
            it builds must have exactly ``model``'s tensor names and shapes.
        metadata: anything JSON can hold that a user of the model needs (class names, the input
            normalisation, the test accuracy); read it back with :func:`read_config`.

    Both files are written atomically (a reader never sees half a file); the weights first, then
    the config, which records their sha256 so that a later change to either is detected.
    """
    folder = Path(path)
    where = f"save_for_inference({folder})"
    config = dict(config)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    _match_state(_build(config, where), state, where)
    from safetensors.torch import save as safetensors_bytes

    data = safetensors_bytes(state)
    with atomic_open(folder / WEIGHTS_FILE, "wb") as f:
        f.write(data)
    record = {
        "format": FORMAT,
        "model": config,
        "metadata": metadata or {},
        "weights": {
            "file": WEIGHTS_FILE,
            "sha256": hashlib.sha256(data).hexdigest(),
            "parameters": sum(v.numel() for v in state.values()),
        },
    }
    try:
        json.dumps(record)
    except TypeError as err:
        raise TypeError(f"{where}: config and metadata must be JSON-serialisable: {err}") from None
    atomic_write_json(folder / CONFIG_FILE, record, sort_keys=False)
    return folder


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of an exported folder: ``{"format", "model", "metadata", "weights"}``."""
    folder = Path(path)
    file = folder / CONFIG_FILE
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no exported model at {folder}: expected a folder with {CONFIG_FILE} and "
            f"{WEIGHTS_FILE} (written by save_for_inference)"
        )
    if not file.is_file():
        raise FileNotFoundError(
            f"{folder} has no {CONFIG_FILE}: expected {CONFIG_FILE} and {WEIGHTS_FILE} (written by save_for_inference)"
        )
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ExportFormatError(f"{file} is not valid JSON ({err}): the file is corrupt") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ExportFormatError(f"{file}: expected format {FORMAT!r}, found {found!r}")
    return record


def load_for_inference(path: str | Path, *, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the model saved by :func:`save_for_inference` in folder ``path``, in ``eval()`` mode.

    Raises ``FileNotFoundError`` when a file is missing, and :class:`ExportFormatError` when the
    weights are corrupt or changed (sha256), or do not fit the architecture in the config.
    """
    folder = Path(path)
    record = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{folder} has no {WEIGHTS_FILE}: the config is there, the weights are not")
    data = weights.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != record["weights"]["sha256"]:
        raise ExportFormatError(
            f"{weights} is corrupt or was changed after saving: its sha256 is {digest[:12]}…, "
            f"the config expects {record['weights']['sha256'][:12]}…"
        )
    from safetensors import SafetensorError
    from safetensors.torch import load as safetensors_load

    try:
        state = safetensors_load(data)
    except SafetensorError as err:
        raise ExportFormatError(f"{weights} is not a readable safetensors file: {err}") from None
    where = f"load_for_inference({folder})"
    model = _build(record["model"], where)
    _match_state(model, state, where)
    model.load_state_dict(state)
    return model.to(device).eval()


@torch.inference_mode()
def predict(
    model: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class predictions for ``inputs (N, ...)``: ``(labels (N,) int64, probabilities (N, C) float32)``, on the CPU.

    ``model`` maps a batch to logits ``(B, C)``: an ``nn.Module`` (put in ``eval()`` mode here) or
    a loaded program (traced in ``eval()`` mode by :func:`export_program`). Inputs must be prepared as in
    training (float, normalised); they go through in batches of ``batch_size`` on ``device`` (default:
    the model's, or the CPU).
    """
    if not isinstance(inputs, torch.Tensor) or not inputs.dtype.is_floating_point:
        found = inputs.dtype if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise TypeError(f"predict expects a float tensor (N, ...) prepared as in training, found {found}")
    if isinstance(model, nn.Module):
        try:
            model.eval()
        except NotImplementedError:  # a loaded torch.export program: its mode was fixed at export time
            pass
        if device is None:
            first = next(model.parameters(), None)
            device = first.device if first is not None else "cpu"
    device = torch.device(device or "cpu")
    if len(inputs) == 0:
        raise ValueError("predict got no inputs: expected a tensor (N, ...) with N >= 1")
    probabilities = []
    for start in range(0, len(inputs), batch_size):
        logits = model(inputs[start : start + batch_size].to(device))
        probabilities.append(torch.softmax(logits.float(), dim=1).cpu())
    probs = torch.cat(probabilities)
    return probs.argmax(dim=1), probs


def export_program(
    model: nn.Module, example: torch.Tensor, path: str | Path, *, dynamic_batch: bool = True
) -> torch.export.ExportedProgram:
    """Trace ``model`` with ``torch.export`` on ``example (B, ...)`` and save the program to ``path`` (``.pt2``).

    With ``dynamic_batch`` the first dimension is symbolic, so the program accepts any batch size;
    the other dimensions are fixed to the example's. The model is put in ``eval()`` mode first
    (dropout off). The file is written atomically. Returns the exported program.
    """
    model.eval()
    # The program keeps its example input; a clone stops a slice of a large tensor (x[:4]) from
    # dragging the whole underlying storage into the file.
    example = example.detach().clone()
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    program = torch.export.export(model, (example,), dynamic_shapes=dynamic_shapes)
    with atomic_open(path, "wb") as f:
        torch.export.save(program, f)
    return program


def load_program(path: str | Path) -> nn.Module:
    """Load a program saved by :func:`export_program` as a callable module (no model class needed)."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no exported program at {file} (written by export_program)")
    data = file.read_bytes()
    if not zipfile.is_zipfile(io.BytesIO(data)):  # checked first: torch.export.load logs a long traceback
        raise ExportFormatError(
            f"{file} is not a torch.export program (.pt2 is a zip archive; this file is not): "
            "it is corrupt or another kind of file"
        )
    try:
        program = torch.export.load(io.BytesIO(data))
    except Exception as err:  # torch raises several kinds for a damaged archive
        raise ExportFormatError(
            f"{file} could not be loaded as a torch.export program: {type(err).__name__}: {err}"
        ) from err
    return program.module()


def export_onnx(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path | None:
    """Export ``model`` to ONNX with ``torch.onnx.export(..., dynamo=True)`` if the ``onnx`` package is installed.

    Without ``onnx`` (and ``onnxscript``) it prints one line saying ONNX is skipped and returns ``None``.
    """
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"ONNX export skipped: {' and '.join(missing)} not installed (pip install onnx onnxscript to try it)")
        return None
    model.eval()
    program = torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = Path(path)
    partial = path.with_name(f".{path.name}.part")
    program.save(str(partial))
    os.replace(partial, path)  # atomic: a reader never sees half a file
    return path


# --- serving -----------------------------------------------------------------------------------


class PredictionServer:
    """A running HTTP server (one background thread) answering ``POST /predict`` with :func:`predict`.

    Request: JSON ``{"inputs": [...]}``, a nested list of shape ``(N, *input_shape)``. Response:
    ``{"labels": [N ints], "probabilities": [[C floats] × N]}`` and the class names when the server
    was given them. ``GET /health`` answers ``{"status": "ok", ...}``. Bad requests get status 400
    with an ``"error"`` message. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._httpd, self._thread = httpd, thread
        host, port = httpd.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.served = 0
        """How many /predict calls have been answered."""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PredictionServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def start_server(
    model: Callable[[torch.Tensor], torch.Tensor],
    *,
    input_shape: tuple[int, ...],
    classes: list[str] | tuple[str, ...] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    max_batch: int = 4096,
) -> PredictionServer:
    """Serve ``model`` on ``http://host:port`` from a background thread; return the running server.

    Only loopback addresses are accepted (this is a demonstration, not a hardened server: no
    authentication, no TLS). ``port=0`` lets the operating system pick a free port (read it from
    ``server.port``). Each request is checked against ``input_shape`` (per example, e.g.
    ``(1, 28, 28)``) and at most ``max_batch`` examples.
    """
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(
            f"start_server only listens on the local machine (127.0.0.1, localhost or ::1), found {host!r}"
        )
    lock = threading.Lock()  # one prediction at a time: the model is shared by the handler threads

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # the name http.server looks for
            if self.path != "/health":
                self._reply(404, {"error": f"unknown path {self.path}; use GET /health or POST /predict"})
                return
            self._reply(200, {"status": "ok", "input_shape": list(input_shape), "served": server.served})

        def do_POST(self) -> None:
            if self.path != "/predict":
                self._reply(404, {"error": f"unknown path {self.path}; use POST /predict"})
                return
            try:
                length = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(length) or b"null")
                inputs = torch.tensor(payload["inputs"], dtype=torch.float32)
            except (ValueError, KeyError, TypeError) as err:
                self._reply(
                    400, {"error": f'expected JSON {{"inputs": [...]}} with numbers: {type(err).__name__}: {err}'}
                )
                return
            if inputs.dim() != len(input_shape) + 1 or tuple(inputs.shape[1:]) != tuple(input_shape):
                self._reply(
                    400,
                    {
                        "error": f"expected inputs of shape (N, {', '.join(map(str, input_shape))}), "
                        f"found {tuple(inputs.shape)}"
                    },
                )
                return
            if not 1 <= len(inputs) <= max_batch:
                self._reply(400, {"error": f"expected 1 to {max_batch} examples per request, found {len(inputs)}"})
                return
            with lock:
                labels, probabilities = predict(model, inputs)
                server.served += 1
            body: dict[str, Any] = {"labels": labels.tolist(), "probabilities": probabilities.tolist()}
            if classes is not None:
                body["classes"] = [classes[i] for i in labels.tolist()]
            self._reply(200, body)

        def log_message(self, format: str, *args: Any) -> None:  # keep notebook output quiet
            pass

    httpd = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=httpd.serve_forever, name="dlfund-prediction-server", daemon=True)
    server = PredictionServer(httpd, thread)
    thread.start()
    return server


def request_predictions(url: str, inputs: torch.Tensor, *, timeout: float = 30) -> dict[str, Any]:
    """POST ``inputs (N, ...)`` to a :class:`PredictionServer` at ``url``; return its JSON answer as a dict.

    Raises ``RuntimeError`` with the server's message when it answers with an error status.
    """
    host_port = url.split("://", 1)[-1].rstrip("/")
    host, _, port = host_port.rpartition(":")
    connection = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=timeout)
    try:
        body = json.dumps({"inputs": inputs.tolist()})
        connection.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"the server answered {response.status}: {answer.get('error', answer)}")
    return answer
