"""Loading real LLaMA weights into :class:`dlfund.models.llama.Llama` (unit 12).

:func:`load_gguf` reads a llama.cpp GGUF file (SmolLM2-135M-Instruct ships as one, quantised to
Q4_1/Q8_0) with the ``gguf`` package: the architecture from its metadata, every tensor dequantised
to float, renamed to the Hugging Face layout this course's model uses.

One trap: llama.cpp's converter *permutes the rows* of the query and key projections so that its
RoPE can rotate adjacent feature pairs ``(0, 1), (2, 3), ...``. Our RoPE (and Hugging Face's) rotates
the two halves ``(i, i + d/2)`` of each head. :func:`unpermute_qk` undoes the permutation; without
it the model still runs but every attention score is wrong (a test shows the logits break).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .llama import Llama, LlamaConfig

__all__ = ["GGUF_NAMES", "WeightsError", "config_from_gguf", "gguf_state_dict", "load_gguf", "load_state_dict",
           "permute_qk", "unpermute_qk"]

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
_TOP_NAMES = {"token_embd.weight": "embed_tokens.weight", "output_norm.weight": "norm.weight",
              "output.weight": "lm_head.weight"}


def permute_qk(w: Tensor, n_heads: int) -> Tensor:
    """What llama.cpp's converter does to q/k rows ``(h·d, D)``: halves layout -> adjacent pairs, per head."""
    out_features, d_in = w.shape
    return w.reshape(n_heads, 2, out_features // n_heads // 2, d_in).transpose(1, 2).reshape(out_features, d_in)


def unpermute_qk(w: Tensor, n_heads: int) -> Tensor:
    """Undo :func:`permute_qk`: rows of each head from ``(x0, y0, x1, y1, ...)`` back to ``(x0, x1, ..., y0, y1, ...)``."""
    out_features, d_in = w.shape
    if out_features % (2 * n_heads):
        raise WeightsError(f"a q/k projection with {out_features} rows cannot hold {n_heads} heads of even size")
    return w.reshape(n_heads, out_features // n_heads // 2, 2, d_in).transpose(1, 2).reshape(out_features, d_in)


def config_from_gguf(path: str | os.PathLike[str]) -> LlamaConfig:
    """The :class:`LlamaConfig` described by a GGUF file's metadata (architecture must be ``llama``)."""
    from ..data import gguf_metadata

    meta = gguf_metadata(path)
    if meta["architecture"] != "llama":
        raise WeightsError(f"{path}: architecture {meta['architecture']!r}, expected 'llama'")
    missing = [k for k in ("block_count", "embedding_length", "feed_forward_length", "head_count", "vocab_size")
               if meta[k] is None]
    if missing:
        raise WeightsError(f"{path}: GGUF metadata lacks {', '.join(missing)}")
    return LlamaConfig(
        vocab_size=meta["vocab_size"], dim=meta["embedding_length"], n_layers=meta["block_count"],
        n_heads=meta["head_count"], n_kv_heads=meta["head_count_kv"] or meta["head_count"],
        hidden_dim=meta["feed_forward_length"], max_seq_len=meta["context_length"] or 2048,
        rope_theta=meta["rope_freq_base"] or 10000.0, norm_eps=float(meta["rms_norm_eps"] or 1e-5),
        tie_embeddings=bool(meta["tied_embeddings"]),
    )


def gguf_state_dict(path: str | os.PathLike[str], config: LlamaConfig) -> dict[str, Tensor]:
    """Every tensor of the GGUF file dequantised to float32, in our names, q/k rows un-permuted."""
    from gguf.quants import dequantize

    from ..data import gguf_reader

    reader = gguf_reader(path)
    state: dict[str, Tensor] = {}
    for t in reader.tensors:
        if t.name in _TOP_NAMES:
            name = _TOP_NAMES[t.name]
        else:
            parts = t.name.split(".")                       # blk.{i}.{kind}.weight
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
            raise WeightsError(f"{source}: the config ties embeddings but lm_head.weight differs from "
                               "embed_tokens.weight (set tie_embeddings=False)")
    expected = {name: p.shape for name, p in model.named_parameters()}        # tied matrix listed once
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"{source} does not match the model: missing {missing[:5]}{' ...' if len(missing) > 5 else ''}"
                           f", unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
    for name, shape in expected.items():
        if tuple(state[name].shape) != tuple(shape):
            raise WeightsError(f"{source}: {name} has shape {tuple(state[name].shape)}, the model expects "
                               f"{tuple(shape)}")
    model.load_state_dict(state, strict=False)      # strictness checked above; tied head shares the matrix


def load_gguf(path: str | os.PathLike[str] | None = None, *, dtype: torch.dtype = torch.float32,
              device: torch.device | str = "cpu") -> Llama:
    """A :class:`Llama` with the weights of a GGUF file (default: the course's SmolLM2-135M-Instruct), in eval mode."""
    if path is None:
        from ..data import smollm2_gguf_path

        path = smollm2_gguf_path()
    config = config_from_gguf(path)
    model = Llama(config, init=False)          # every parameter is about to be overwritten
    load_state_dict(model, gguf_state_dict(path, config), source=str(path))
    return model.to(device=device, dtype=dtype).eval()
