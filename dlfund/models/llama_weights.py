"""Loading real LLaMA weights into :class:`dlfund.models.llama.Llama` (unit 12).

:func:`load_gguf` reads a llama.cpp GGUF file (SmolLM2-135M-Instruct ships as one, quantised to
Q4_1/Q8_0) with the ``gguf`` package: the architecture from its metadata, every tensor dequantised
to float, renamed to the Hugging Face layout this course's model uses.

One trap: llama.cpp's converter *permutes the rows* of the query and key projections so that its
RoPE can rotate adjacent feature pairs ``(0, 1), (2, 3), ...``. Our RoPE (and Hugging Face's) rotates
the two halves ``(i, i + d/2)`` of each head. :func:`unpermute_qk` undoes the permutation; without
it the model still runs but every attention score is wrong (a test shows the logits break).

:func:`load_hf` and :func:`save_hf` read and write the layout online users download from the Hugging
Face Hub: a folder with ``config.json`` and ``model.safetensors`` (tensor names prefixed ``model.``,
``lm_head.weight`` only when the head is not tied), which ``transformers``' ``LlamaForCausalLM`` reads
too. Only configurations this model computes exactly are accepted; anything else (RoPE scaling,
biases, another activation) is a clear :class:`WeightsError`, never a silently different model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlfund.data import gguf_metadata, gguf_reader, smollm2_gguf_path
from dlfund.data.cache import cache_root, sha256_file
from dlfund.models.llama import Llama, LlamaConfig
from dlfund.utils.io import atomic_open, atomic_write_json

__all__ = [
    "GGUF_NAMES",
    "WeightsError",
    "cached_gguf_weights",
    "config_from_gguf",
    "config_from_hf",
    "config_to_hf",
    "dequantised_cache_path",
    "gguf_state_dict",
    "hf_state_dict",
    "load_gguf",
    "load_hf",
    "load_state_dict",
    "permute_qk",
    "save_hf",
    "unpermute_qk",
]

Tensor = torch.Tensor


class WeightsError(ValueError):
    """A checkpoint does not fit the model: names, shapes or metadata are not what was expected."""


# GGUF tensor name (per block ``blk.{i}.``) -> our parameter name (per layer ``layers.{i}.``)
GGUF_NAMES = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
_TOP_NAMES = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}


def permute_qk(w: Tensor, n_heads: int) -> Tensor:
    """What llama.cpp's converter does to q/k rows ``(h·d, D)``: halves layout -> adjacent pairs, per head."""
    out_features, d_in = w.shape
    return w.reshape(n_heads, 2, out_features // n_heads // 2, d_in).transpose(1, 2).reshape(out_features, d_in)


def unpermute_qk(w: Tensor, n_heads: int) -> Tensor:
    """Undo :func:`permute_qk`: the rows of each head from ``(x0, y0, x1, y1, ...)`` back to
    ``(x0, x1, ..., y0, y1, ...)``."""
    out_features, d_in = w.shape
    if out_features % (2 * n_heads):
        raise WeightsError(f"a q/k projection with {out_features} rows cannot hold {n_heads} heads of even size")
    return w.reshape(n_heads, out_features // n_heads // 2, 2, d_in).transpose(1, 2).reshape(out_features, d_in)


def _f32(x: float) -> float:
    """A float32 metadata value as the shortest decimal that rounds to it (GGUF's 1e-5 reads 9.99999974e-06)."""
    return float(str(np.float32(x)))


def config_from_gguf(path: str | os.PathLike[str]) -> LlamaConfig:
    """The :class:`LlamaConfig` described by a GGUF file's metadata (architecture must be ``llama``)."""

    meta = gguf_metadata(path)
    if meta["architecture"] != "llama":
        raise WeightsError(f"{path}: architecture {meta['architecture']!r}, expected 'llama'")
    missing = [
        k
        for k in ("block_count", "embedding_length", "feed_forward_length", "head_count", "vocab_size")
        if meta[k] is None
    ]
    if missing:
        raise WeightsError(f"{path}: GGUF metadata lacks {', '.join(missing)}")
    return LlamaConfig(
        vocab_size=meta["vocab_size"],
        dim=meta["embedding_length"],
        n_layers=meta["block_count"],
        n_heads=meta["head_count"],
        n_kv_heads=meta["head_count_kv"] or meta["head_count"],
        hidden_dim=meta["feed_forward_length"],
        context_length=meta["context_length"] or 2048,
        rope_base=_f32(meta["rope_freq_base"] or 10000.0),
        norm_eps=_f32(meta["rms_norm_eps"] or 1e-5),
        tie_embeddings=bool(meta["tied_embeddings"]),
    )


def gguf_state_dict(path: str | os.PathLike[str], config: LlamaConfig) -> dict[str, Tensor]:
    """Every tensor of the GGUF file dequantised to float32, in our names, q/k rows un-permuted."""
    from gguf.quants import dequantize

    reader = gguf_reader(path)
    state: dict[str, Tensor] = {}
    for t in reader.tensors:
        if t.name in _TOP_NAMES:
            name = _TOP_NAMES[t.name]
        else:
            parts = t.name.split(".")  # blk.{i}.{kind}.weight
            if len(parts) != 4 or parts[0] != "blk" or parts[2] not in GGUF_NAMES:
                raise WeightsError(f"{path}: unexpected tensor {t.name!r} (not part of a llama model)")
            name = f"layers.{parts[1]}.{GGUF_NAMES[parts[2]]}.{parts[3]}"
        # dequantize returns numpy in PyTorch's (out, in) order (GGUF lists shapes innermost first)
        w = torch.from_numpy(np.array(dequantize(t.data, t.tensor_type), dtype=np.float32))  # a writable copy
        if name.endswith("q_proj.weight"):
            w = unpermute_qk(w, config.n_heads)
        elif name.endswith("k_proj.weight"):
            w = unpermute_qk(w, config.n_kv_heads)
        state[name] = w
    return state


def load_state_dict(model: Llama, state: dict[str, Tensor], *, source: str = "checkpoint") -> None:
    """Copy ``state`` into ``model`` strictly: every parameter present with its exact shape, nothing extra.

    With tied embeddings a separate ``lm_head.weight`` is accepted only if it equals the embeddings.
    """
    state = dict(state)
    if model.config.tie_embeddings and "lm_head.weight" in state:
        head = state.pop("lm_head.weight")
        if "embed_tokens.weight" in state and not torch.equal(head, state["embed_tokens.weight"]):
            raise WeightsError(
                f"{source}: the config ties embeddings but lm_head.weight differs from "
                "embed_tokens.weight (set tie_embeddings=False)"
            )
    expected = {name: p.shape for name, p in model.named_parameters()}  # tied matrix listed once
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(
            f"{source} does not match the model: missing {missing[:5]}{' ...' if len(missing) > 5 else ''}"
            f", unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}"
        )
    for name, shape in expected.items():
        if tuple(state[name].shape) != tuple(shape):
            raise WeightsError(
                f"{source}: {name} has shape {tuple(state[name].shape)}, the model expects {tuple(shape)}"
            )
    model.load_state_dict(state, strict=False)  # strictness checked above; tied head shares the matrix


def dequantised_cache_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`load_gguf` keeps the dequantised float32 tensors of a GGUF file: in the data cache,
    named by the file's sha256 (a changed file gets a new entry, never a stale one) and by the layout
    of the entry (``hf``: the configuration travels as Hugging Face's ``config.json``)."""

    return cache_root() / "dequantised" / f"{Path(path).stem}.{sha256_file(path)[:16]}.hf.safetensors"


def cached_gguf_weights(path: str | os.PathLike[str]) -> tuple[LlamaConfig, dict[str, Tensor]]:
    """:func:`config_from_gguf` and :func:`gguf_state_dict`, read from the on-disk cache when present,
    else computed and cached. The config travels in the safetensors header as Hugging Face's
    ``config.json`` (:func:`config_to_hf`), whose key names do not change with this library's.

    Parsing the GGUF file and dequantising SmolLM2 take seconds; reading the cached safetensors file
    takes a fraction of one. The cache file is written atomically (a temporary file renamed into
    place). If it cannot be written (a read-only cache), one line says so and loading goes on.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    cached = dequantised_cache_path(path)
    if cached.is_file():
        with safe_open(str(cached), "pt") as f:
            config = config_from_hf(json.loads(f.metadata()[HF_CONFIG]), source=str(cached))
        return config, load_file(str(cached))
    config = config_from_gguf(path)
    state = gguf_state_dict(path, config)
    try:
        with atomic_open(cached, "wb") as f:
            f.write(save(state, metadata={"source": Path(path).name, HF_CONFIG: json.dumps(config_to_hf(config))}))
    except OSError as err:
        print(f"could not cache the dequantised weights at {cached} ({err}): they will be dequantised again next time")
    return config, state


def load_gguf(
    path: str | os.PathLike[str] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    cache: bool | None = None,
) -> Llama:
    """A :class:`Llama` with the weights of a GGUF file (default: the course's SmolLM2-135M-Instruct), in eval mode.

    ``cache`` keeps the dequantised weights on disk (:func:`cached_gguf_weights`); ``None`` (the
    default) caches the course's own model only, so that files a test writes do not fill the cache.
    With the cache, a second load skips both the GGUF parsing and the dequantisation.
    """
    if path is None:
        path = smollm2_gguf_path()
        cache = True if cache is None else cache
    if cache:
        config, state = cached_gguf_weights(path)
    else:
        config = config_from_gguf(path)
        state = gguf_state_dict(path, config)
    model = Llama(config, init=False)  # every parameter is about to be overwritten
    load_state_dict(model, state, source=str(path))
    return model.to(device=device, dtype=dtype).eval()


# ------------------------------------------------------------------------- Hugging Face folder layout

HF_CONFIG = "config.json"
HF_WEIGHTS = "model.safetensors"


def config_from_hf(raw: dict[str, Any], *, source: str = HF_CONFIG) -> LlamaConfig:
    """The :class:`LlamaConfig` of a Hugging Face ``config.json`` (already parsed), refusing what we do not compute.

    Hugging Face's names for our :class:`LlamaConfig` fields: ``vocab_size``, ``hidden_size`` (``dim``),
    ``intermediate_size`` (``hidden_dim``), ``num_hidden_layers`` (``n_layers``), ``num_attention_heads``
    (``n_heads``), ``num_key_value_heads`` (``n_kv_heads``), ``max_position_embeddings`` (``context_length``),
    ``rope_theta`` (``rope_base``), ``rms_norm_eps`` (``norm_eps``), ``tie_word_embeddings`` (``tie_embeddings``).
    """
    arch = raw.get("model_type")
    if arch not in (None, "llama"):
        raise WeightsError(f"{source}: model_type {arch!r}, expected 'llama'")
    required = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [k for k in required if k not in raw]
    if missing:
        raise WeightsError(f"{source}: missing {', '.join(missing)}")
    rope_theta = raw.get("rope_theta")
    scaling = raw.get("rope_scaling")
    params = raw.get("rope_parameters")  # transformers ≥ 5 writes theta (and any scaling) here
    if isinstance(params, dict):
        rope_theta = params.get("rope_theta", rope_theta)
        if params.get("rope_type", "default") != "default":
            scaling = params
    if scaling:
        raise WeightsError(f"{source}: rope_scaling {scaling!r} is not supported (this model uses plain RoPE)")
    for key in ("attention_bias", "mlp_bias"):
        if raw.get(key):
            raise WeightsError(f"{source}: {key}=true is not supported (this model has no biases)")
    act = raw.get("hidden_act", "silu")
    if act != "silu":
        raise WeightsError(f"{source}: hidden_act {act!r} is not supported (the SwiGLU MLP uses 'silu')")
    dim, heads = raw["hidden_size"], raw["num_attention_heads"]
    head_dim = raw.get("head_dim")
    if head_dim is not None and head_dim * heads != dim:
        raise WeightsError(
            f"{source}: head_dim={head_dim} with {heads} heads does not make hidden_size={dim} "
            f"(this model needs head_dim = hidden_size / num_attention_heads = {dim // heads})"
        )
    try:
        return LlamaConfig(
            vocab_size=raw["vocab_size"],
            dim=dim,
            n_layers=raw["num_hidden_layers"],
            n_heads=heads,
            n_kv_heads=raw.get("num_key_value_heads") or heads,
            hidden_dim=raw["intermediate_size"],
            context_length=raw.get("max_position_embeddings", 2048),
            rope_base=float(rope_theta or 10000.0),
            norm_eps=float(raw.get("rms_norm_eps", 1e-6)),
            tie_embeddings=bool(raw.get("tie_word_embeddings", False)),
        )
    except ValueError as err:
        raise WeightsError(f"{source}: {err}") from None


def config_to_hf(config: LlamaConfig) -> dict[str, Any]:
    """The ``config.json`` dictionary ``transformers``' ``LlamaForCausalLM`` reads for ``config``."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": config.dim,
        "intermediate_size": config.hidden_dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_base,
        "rope_scaling": None,
        "vocab_size": config.vocab_size,
        "max_position_embeddings": config.context_length,
        "tie_word_embeddings": config.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": "float32",
    }


def hf_state_dict(model: Llama) -> dict[str, Tensor]:
    """The model's tensors in Hugging Face names (``model.`` prefix; ``lm_head.weight`` only if untied), contiguous."""
    state = {}
    for name, p in model.named_parameters():  # the tied head is listed once, as embed_tokens
        key = name if name.startswith("lm_head.") else f"model.{name}"
        state[key] = p.detach().contiguous().cpu()
    return state


def load_hf(
    folder: str | os.PathLike[str], *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu"
) -> Llama:
    """A :class:`Llama` from a Hugging Face folder (``config.json`` + ``model.safetensors``), in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in (HF_CONFIG, HF_WEIGHTS):
        if not (folder / name).is_file():
            raise WeightsError(
                f"{folder}: no {name} (expected a Hugging Face folder with {HF_CONFIG} and {HF_WEIGHTS}; "
                "sharded checkpoints are not supported)"
            )
    config = config_from_hf(
        json.loads((folder / HF_CONFIG).read_text(encoding="utf-8")), source=str(folder / HF_CONFIG)
    )
    raw = load_file(str(folder / HF_WEIGHTS))
    state = {}
    for key, tensor in raw.items():
        if key.endswith("rotary_emb.inv_freq"):  # some older exports store RoPE's frequencies: recomputed here
            continue
        name = key.removeprefix("model.") if key.startswith("model.") else key
        state[name] = tensor.float()
    model = Llama(config, init=False)  # every parameter is about to be overwritten
    load_state_dict(model, state, source=str(folder / HF_WEIGHTS))
    return model.to(device=device, dtype=dtype).eval()


def save_hf(model: Llama, folder: str | os.PathLike[str]) -> Path:
    """Write ``model`` as a Hugging Face folder (``config.json`` + ``model.safetensors``); return the folder.

    Atomic: both files are written into a temporary folder beside ``folder`` which then replaces it,
    so an interrupted save never leaves a half-written checkpoint behind.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        atomic_write_json(tmp / HF_CONFIG, config_to_hf(model.config))
        save_file(hf_state_dict(model), str(tmp / HF_WEIGHTS), metadata={"format": "pt"})
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
