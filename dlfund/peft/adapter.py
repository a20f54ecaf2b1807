"""LLaMA-Adapter v1 (Zhang et al., 2023) and v2 (Gao et al., 2023) on :class:`dlfund.models.llama.Llama`.

**v1: adaption prompts with a zero-initialised gate.** In each of the top layers, ``K`` learned vectors
``P (K, D)`` are projected by the layer's (frozen) ``k_proj`` and ``v_proj`` into extra keys and
values. Every query attends to them *separately* from the sequence (its own softmax over the ``K``
prompts) and the result is added, multiplied by a per-head gate ``g`` that starts at zero:

    out_h = attn(q_h, K_seq, V_seq) + g_h · softmax(q_h K_P^T / √d) V_P

At step 0 ``g = 0``: the model is exactly the pretrained one, so training starts from its behaviour
instead of from noise injected by random prompts; the gate opens as far as the task needs. The
prompts are not positions in the text: they get no rotary embedding, and every query sees all of
them (no causal mask), at any position, with or without a KV cache.

**v2: plus bias and scale, and unfrozen norms.** Every linear layer of the blocks gets a learned
per-output scale ``s`` (ones) and bias ``b`` (zeros), ``y = s ⊙ (x W^T + b)`` — identity at start —
and the RMSNorm weights train too. Still far below 1% of the parameters, but every layer can now
adjust its features, not only the top layers' attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.models.attention import split_heads
from dlfund.models.llama import (
    GroupedQueryAttention,
    Llama,
    LlamaConfig,
    RMSNorm,
    repeat_kv,
)
from dlfund.peft.trainable import state_dict_of, train_only

__all__ = [
    "AdapterAttention",
    "ScaleBiasLinear",
    "adapter_parameter_names",
    "add_adapter",
    "adapter_state_dict",
    "mark_only_adapter_trainable",
]

Tensor = torch.Tensor

ADAPTER_NAMES = ("adapter_prompt", "adapter_gate")
V2_NAMES = ("adapter_bias", "adapter_scale")
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


class AdapterAttention(GroupedQueryAttention):
    """:class:`GroupedQueryAttention` plus ``prompt_len`` adaption prompts behind a zero-initialised gate.

    ``adapter_prompt`` is ``(K, D)``; ``adapter_gate`` is ``(h,)``, one gate per query head. Only
    :meth:`attend` changes: projections, RoPE, the KV cache (which holds the text only) and ``o_proj``
    are the parent's.
    """

    def __init__(self, config: LlamaConfig, prompt_len: int) -> None:
        if prompt_len < 1:
            raise ValueError(f"prompt_len must be at least 1, got {prompt_len}")
        super().__init__(config)
        self.prompt_len = prompt_len
        self.adapter_prompt = nn.Parameter(torch.empty(prompt_len, config.dim))
        self.adapter_gate = nn.Parameter(torch.empty(config.n_heads))
        self.reset_adapter()

    def reset_adapter(self) -> None:
        """Prompts ``N(0, 1)`` (as the original code's ``nn.Embedding``) and gates at zero: the gate, not a
        small initialisation, makes the layer exactly the pretrained one at step 0."""
        nn.init.normal_(self.adapter_prompt)
        nn.init.zeros_(self.adapter_gate)

    @classmethod
    def from_attention(cls, attn: GroupedQueryAttention, config: LlamaConfig, prompt_len: int) -> AdapterAttention:
        """An adapter attention that *shares* ``attn``'s projections (no copy of the pretrained weights).

        The adapter's own parameters are created on ``attn``'s device, in float32 (they are the ones
        that train, whatever the dtype of the frozen base).
        """
        with torch.device("meta"):  # shapes only: the projections built here are replaced at once
            new = cls(config, prompt_len)
        for name in PROJECTIONS:
            setattr(new, name, getattr(attn, name))
        new.to_empty(device=attn.q_proj.weight.device, recurse=False)  # the adapter's own parameters only
        new.reset_adapter()
        return new

    def prompt_attention(self, q: Tensor) -> Tensor:
        """``q (B, h, T, d)`` attends to the prompts (no RoPE, no mask) -> ``(B, h, T, d)``, before the gate."""
        b = q.shape[0]
        prompt = self.adapter_prompt[None].expand(b, -1, -1)  # (B, K, D)
        k = split_heads(self.k_proj(prompt), self.n_kv_heads)  # (B, h_kv, K, d)
        v = split_heads(self.v_proj(prompt), self.n_kv_heads)
        groups = self.n_heads // self.n_kv_heads
        k, v = repeat_kv(k, groups).to(q.dtype), repeat_kv(v, groups).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v)  # its own softmax over K

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """The layer's causal attention over the text plus the gated attention to the prompts: ``(B, h, T_q, d)``."""
        y = super().attend(q, k, v)
        gate = self.adapter_gate.view(1, -1, 1, 1)  # one gate per head
        return y + (gate * self.prompt_attention(q)).to(y.dtype)


class ScaleBiasLinear(nn.Linear):
    """LLaMA-Adapter v2's linear layer: ``y = s ⊙ (x W^T + b)``; ``(..., in) -> (..., out)``.

    ``adapter_scale`` starts at ones and ``adapter_bias`` at zeros (identity at initialisation). Like
    :class:`~dlfund.peft.lora.LoRALinear` it shares the wrapped layer's weight, so names are unchanged.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = False,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.adapter_bias = nn.Parameter(torch.zeros(out_features, device=device))
        self.adapter_scale = nn.Parameter(torch.ones(out_features, device=device))

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> ScaleBiasLinear:
        """A layer that *shares* ``linear``'s weight and bias (no copy), with its own scale and bias."""
        w = linear.weight
        layer = cls(linear.in_features, linear.out_features, bias=False, device=torch.device("meta"), dtype=w.dtype)
        layer.weight, layer.bias = w, linear.bias  # the meta weight was never allocated
        layer.adapter_bias = nn.Parameter(torch.zeros(linear.out_features, device=w.device))
        layer.adapter_scale = nn.Parameter(torch.ones(linear.out_features, device=w.device))
        return layer

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight, self.bias)
        return (self.adapter_scale * (y + self.adapter_bias)).to(y.dtype)


def add_adapter(
    model: Llama, *, version: int = 1, prompt_len: int = 10, n_layers: int | None = None, freeze: bool = True
) -> list[int]:
    """Turn ``model`` into a LLaMA-Adapter model in place; returns the indices of the prompted layers.

    ``n_layers``: how many of the *top* layers get adaption prompts (``None``: all of them). Version 2
    also wraps every linear layer of every block in a :class:`ScaleBiasLinear` and trains the norms.
    With ``freeze`` (default) only the adapter parameters train (:func:`mark_only_adapter_trainable`).
    """
    if version not in (1, 2):
        raise ValueError(f"LLaMA-Adapter version must be 1 or 2, got {version}")
    if not isinstance(model, Llama):
        raise TypeError(f"add_adapter expects a dlfund Llama, got {type(model).__name__}")
    if any(isinstance(layer.self_attn, AdapterAttention) for layer in model.layers):
        raise ValueError("the model already has an adapter")
    total = len(model.layers)
    n = total if n_layers is None else n_layers
    if not 1 <= n <= total:
        raise ValueError(f"n_layers must be between 1 and the model's {total} layers, got {n_layers}")
    if version == 2:
        for block in model.layers:
            for parent in (block.self_attn, block.mlp):
                for name, child in list(parent.named_children()):
                    if isinstance(child, nn.Linear):
                        setattr(parent, name, ScaleBiasLinear.from_linear(child))
    prompted = list(range(total - n, total))
    for i in prompted:
        block = model.layers[i]
        block.self_attn = AdapterAttention.from_attention(block.self_attn, model.config, prompt_len)
    if freeze:
        mark_only_adapter_trainable(model)
    return prompted


def adapter_parameter_names(model: Llama) -> set[str]:
    """What an adapter trains and saves, by name: prompts and gates (v1); plus every bias/scale of
    :class:`ScaleBiasLinear` and every RMSNorm weight (v2, recognised by its ScaleBiasLinear layers)."""
    v2 = any(isinstance(m, ScaleBiasLinear) for m in model.modules())
    norms = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, RMSNorm)} if v2 else set()
    own = ADAPTER_NAMES + (V2_NAMES if v2 else ())
    return {n for n, _ in model.named_parameters(remove_duplicate=False) if n.rsplit(".", 1)[-1] in own or n in norms}


def mark_only_adapter_trainable(model: Llama) -> None:
    """Only the adapter trains (:func:`adapter_parameter_names`); the rest of the model is frozen."""
    train_only(model, adapter_parameter_names(model))


def adapter_state_dict(model: Llama) -> dict[str, Tensor]:
    """The adapter's tensors by name (:func:`adapter_parameter_names`): what an adapter checkpoint stores."""
    return state_dict_of(model, adapter_parameter_names(model))
