"""A BERT-style encoder written from scratch, and the loader for the offline MiniLM checkpoint.

Unit 10 builds these pieces in a notebook first:

- :class:`EncoderConfig` reads a Hugging Face ``config.json`` (sizes, heads, LayerNorm eps);
- :class:`Embeddings` adds word, position and token-type embeddings, then LayerNorm;
- :class:`EncoderLayer` is a *post-norm* transformer layer: ``x = norm1(x + attn(x))``,
  ``x = norm2(x + ffn(x))``, with multi-head self-attention that ignores padded keys and a GELU
  (erf) feed-forward network;
- :class:`Encoder` stacks them: ``ids (B, T)`` → hidden states ``(B, T, H)``;
- :func:`mean_pool` averages the hidden states of the real tokens: a sentence embedding ``(B, H)``;
- :func:`load_weights` maps the checkpoint's tensor names (``encoder.layer.3.attention.self.query.weight``)
  to this module's (``layers.3.attn.q.weight``), checking that every name and shape matches;
- :class:`EncoderClassifier` puts a linear head on the pooled embedding; :func:`freeze_layers`
  chooses which layers train.

Tokenisation uses the checkpoint's own ``tokenizer.json`` through the ``tokenizers`` library
(:func:`load_tokenizer`, :func:`tokenize`); nothing here needs ``transformers``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dlfund.data import minilm_dir
from dlfund.models.rnn import fit_classifier

__all__ = [
    "EncoderConfig",
    "Embeddings",
    "SelfAttention",
    "EncoderLayer",
    "Encoder",
    "mean_pool",
    "checkpoint_name",
    "load_weights",
    "load_encoder",
    "load_tokenizer",
    "token_ids",
    "tokenize",
    "embed_texts",
    "EncoderClassifier",
    "freeze_layers",
    "count_parameters",
    "finetune",
]

Tensor = torch.Tensor


@dataclass(frozen=True)
class EncoderConfig:
    """The sizes of a BERT-style encoder (names as in a Hugging Face ``config.json``)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_act: str = "gelu"

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act != "gelu":
            raise ValueError(f"only hidden_act='gelu' (the exact, erf form) is implemented, got {self.hidden_act!r}")

    @classmethod
    def from_json(cls, path: str | Path) -> EncoderConfig:
        """Read ``config.json``; keys this class does not use (dropout, model_type, ...) are ignored."""
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        if raw.get("model_type", "bert") != "bert":
            raise ValueError(f"{path}: expected a BERT-style config (model_type 'bert'), found {raw['model_type']!r}")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are implemented")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


class Embeddings(nn.Module):
    """``ids (B, T)`` (+ optional ``token_type_ids (B, T)``) → ``(B, T, H)``: word + position + type, LayerNorm."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.max_positions = config.max_position_embeddings
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        t = ids.shape[1]
        if t > self.max_positions:
            raise ValueError(
                f"input has {t} tokens but the encoder has only {self.max_positions} positions: "
                f"truncate it (e.g. tokenize(..., max_length={self.max_positions}))"
            )
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(ids)
        positions = torch.arange(t, device=ids.device)
        return self.norm(self.word(ids) + self.position(positions)[None] + self.token_type(token_type_ids))


class SelfAttention(nn.Module):
    """Multi-head self-attention over ``x (B, T, H)``; keys where ``mask (B, T)`` is False get no weight."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.q, self.k, self.v = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        b, t, h = x.shape

        def split(y: Tensor) -> Tensor:  # (B, T, H) -> (B, nh, T, hs)
            return y.view(b, t, self.heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (B, nh, T, T)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))  # padded keys: weight 0
        weights = scores.softmax(dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(b, t, h)  # merge heads: (B, T, H)
        return self.out(y)


class EncoderLayer(nn.Module):
    """A post-norm transformer layer (BERT): ``x = norm1(x + attn(x))``; ``x = norm2(x + ffn(x))``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        h, eps = config.hidden_size, config.layer_norm_eps
        self.attn = SelfAttention(h, config.num_attention_heads)
        self.norm1 = nn.LayerNorm(h, eps=eps)
        self.up, self.down = nn.Linear(h, config.intermediate_size), nn.Linear(config.intermediate_size, h)
        self.norm2 = nn.LayerNorm(h, eps=eps)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        x = self.norm1(x + self.attn(x, mask))
        return self.norm2(x + self.down(F.gelu(self.up(x))))  # exact (erf) GELU, as BERT's "gelu"


class Encoder(nn.Module):
    """``ids (B, T)``, ``mask (B, T)`` (True at real tokens) → hidden states ``(B, T, H)``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))

    def forward(self, ids: Tensor, mask: Tensor | None = None, token_type_ids: Tensor | None = None) -> Tensor:
        if ids.dim() != 2:
            raise ValueError(f"ids should have shape (B, T), found {tuple(ids.shape)}")
        if mask is not None:
            if mask.shape != ids.shape:
                raise ValueError(f"mask shape {tuple(mask.shape)} does not match ids shape {tuple(ids.shape)}")
            mask = mask.bool()
            if not bool(mask.any(dim=1).all()):
                raise ValueError("every sequence needs at least one real token (a row of mask is all False)")
        x = self.embeddings(ids, token_type_ids)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def embed(self, ids: Tensor, mask: Tensor) -> Tensor:
        """Sentence embeddings ``(B, H)``: the mean of the real tokens' final hidden states."""
        return mean_pool(self(ids, mask), mask)


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """``hidden (B, T, H)``, ``mask (B, T)`` → ``(B, H)``: the average over positions where mask is True."""
    if hidden.shape[:2] != mask.shape:
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match hidden states {tuple(hidden.shape)}")
    m = mask.to(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)


# ---------------------------------------------------------------------------------------------
# The checkpoint: Hugging Face BertModel names -> this module's names

_LAYER_PARTS = {
    "attention.self.query": "attn.q",
    "attention.self.key": "attn.k",
    "attention.self.value": "attn.v",
    "attention.output.dense": "attn.out",
    "attention.output.LayerNorm": "norm1",
    "intermediate.dense": "up",
    "output.dense": "down",
    "output.LayerNorm": "norm2",
}
_EMBEDDING_PARTS = {
    "word_embeddings": "word",
    "position_embeddings": "position",
    "token_type_embeddings": "token_type",
    "LayerNorm": "norm",
}
# Tensors a checkpoint may hold that this encoder does not use: a buffer of position ids and the
# pre-training pooler (a dense layer on [CLS], which mean pooling replaces).
_UNUSED = re.compile(r"^(embeddings\.position_ids|pooler\..*)$")


def checkpoint_name(name: str) -> str | None:
    """This module's parameter name for a checkpoint tensor name, ``None`` for an unused tensor.

    ``encoder.layer.3.attention.self.query.weight`` → ``layers.3.attn.q.weight``; an optional
    ``bert.`` prefix is accepted. Raises ``KeyError`` for a name it does not know.
    """
    name = name.removeprefix("bert.")
    if _UNUSED.match(name):
        return None
    if (m := re.fullmatch(r"embeddings\.(\w+)\.(weight|bias)", name)) and m[1] in _EMBEDDING_PARTS:
        return f"embeddings.{_EMBEDDING_PARTS[m[1]]}.{m[2]}"
    if (m := re.fullmatch(r"encoder\.layer\.(\d+)\.([\w.]+)\.(weight|bias)", name)) and m[2] in _LAYER_PARTS:
        return f"layers.{m[1]}.{_LAYER_PARTS[m[2]]}.{m[3]}"
    raise KeyError(f"unknown checkpoint tensor {name!r}: not a BERT encoder weight")


def load_weights(model: Encoder, state: dict[str, Tensor]) -> None:
    """Copy a checkpoint's tensors into ``model``; every parameter must be found once, with its shape.

    Raises ``KeyError`` listing unknown or missing names and ``ValueError`` for a shape mismatch.
    """
    own = model.state_dict()
    mapped: dict[str, Tensor] = {}
    unknown = []
    for name, tensor in state.items():
        try:
            target = checkpoint_name(name)
        except KeyError:
            unknown.append(name)
            continue
        if target is None:
            continue
        if target not in own:
            raise KeyError(
                f"checkpoint tensor {name!r} maps to {target!r}, which this encoder does not have "
                f"(it has {model.config.num_hidden_layers} layers): is the config the checkpoint's?"
            )
        if tuple(tensor.shape) != tuple(own[target].shape):
            raise ValueError(
                f"checkpoint tensor {name!r} has shape {tuple(tensor.shape)}, but {target!r} expects "
                f"{tuple(own[target].shape)}: the config does not match the checkpoint"
            )
        mapped[target] = tensor
    if unknown:
        raise KeyError(f"{len(unknown)} checkpoint tensors are not BERT encoder weights, e.g. {unknown[:3]}")
    missing = sorted(set(own) - set(mapped))
    if missing:
        raise KeyError(f"the checkpoint lacks {len(missing)} of the encoder's tensors, e.g. {missing[:3]}")
    model.load_state_dict(mapped, strict=True)


def load_encoder(folder: str | Path | None = None) -> Encoder:
    """The encoder of ``folder`` (``config.json`` + ``model.safetensors``); default: the cached MiniLM."""
    from safetensors.torch import load_file

    if folder is None:
        folder = minilm_dir()
    folder = Path(folder)
    for needed in ("config.json", "model.safetensors"):
        if not (folder / needed).is_file():
            raise FileNotFoundError(f"{folder} has no {needed}: expected a BERT checkpoint folder")
    model = Encoder(EncoderConfig.from_json(folder / "config.json"))
    load_weights(model, load_file(str(folder / "model.safetensors")))
    return model.eval()


def load_tokenizer(folder: str | Path | None = None):  # -> tokenizers.Tokenizer
    """The checkpoint's WordPiece tokenizer (``tokenizer.json``), with its padding and truncation switched off
    (:func:`tokenize` decides both)."""
    from tokenizers import Tokenizer

    if folder is None:
        folder = minilm_dir()
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no tokenizer.json")
    tok = Tokenizer.from_file(str(path))
    tok.no_padding()
    tok.no_truncation()
    return tok


def token_ids(tokenizer, texts: Sequence[str], *, max_length: int = 128) -> list[list[int]]:
    """``texts`` → one id list per text, ``[CLS] ... [SEP]``, cut to ``max_length`` ids (``[SEP]`` kept)."""
    if isinstance(texts, str):
        raise TypeError("expected a list of texts, got a single str: wrap it in a list")
    if len(texts) == 0:
        raise ValueError("got no texts")
    if max_length < 2:
        raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
    encoded = tokenizer.encode_batch(list(texts))
    sep = tokenizer.token_to_id("[SEP]")
    return [e.ids if len(e.ids) <= max_length else e.ids[: max_length - 1] + [sep] for e in encoded]


def tokenize(tokenizer, texts: Sequence[str], *, max_length: int = 128) -> tuple[Tensor, Tensor]:
    """``texts`` → ``ids (B, T)`` padded with the tokenizer's ``[PAD]`` id and ``mask (B, T)`` (True at real
    tokens). Each text becomes ``[CLS] ... [SEP]``, cut to ``max_length`` tokens (``[SEP]`` kept)."""
    rows = token_ids(tokenizer, texts, max_length=max_length)
    pad = tokenizer.token_to_id("[PAD]")
    t = max(len(r) for r in rows)
    ids = torch.full((len(rows), t), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), t, dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = True
    return ids, mask


@torch.no_grad()
def embed_texts(
    encoder: Encoder,
    tokenizer,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Sentence embeddings ``(N, H)`` (mean pooling) of ``texts``, on the CPU, in the order given.

    Texts are batched by length (short with short), so little compute goes to padding.
    """
    rows = token_ids(tokenizer, texts, max_length=max_length)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    pad = tokenizer.token_to_id("[PAD]")
    was_training = encoder.training
    encoder.eval().to(device)
    out = torch.empty(len(rows), encoder.config.hidden_size)
    for start in range(0, len(rows), batch_size):
        idx = order[start : start + batch_size]
        t = max(len(rows[i]) for i in idx)
        ids = torch.tensor([rows[i] + [pad] * (t - len(rows[i])) for i in idx], device=device)
        mask = torch.tensor([[True] * len(rows[i]) + [False] * (t - len(rows[i])) for i in idx], device=device)
        out[idx] = encoder.embed(ids, mask).float().cpu()
    encoder.train(was_training)
    return out


# ---------------------------------------------------------------------------------------------
# Classification


class EncoderClassifier(nn.Module):
    """Encoder → mean pooling → dropout → linear head. ``ids (B, T)``, ``lengths (B,)`` → logits ``(B, C)``.

    It takes lengths (right-padded batches) like unit 8's classifiers, so the same batches and
    training loop (``dlfund.models.rnn.train_text_classifier``) serve both.
    """

    def __init__(self, encoder: Encoder, num_classes: int, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        return self.head(self.dropout(self.encoder.embed(ids, mask)))


def freeze_layers(model: EncoderClassifier, trainable_layers: int | None) -> None:
    """Train the head and the top ``trainable_layers`` encoder layers; freeze the rest (embeddings included).

    ``0`` trains the head only; ``None`` trains everything (full finetuning, embeddings too).
    """
    n = len(model.encoder.layers)
    if trainable_layers is not None and not 0 <= trainable_layers <= n:
        raise ValueError(f"trainable_layers must be between 0 and {n} (or None for everything), got {trainable_layers}")
    for p in model.parameters():
        p.requires_grad_(trainable_layers is None)
    if trainable_layers is not None:
        for layer in list(model.encoder.layers)[n - trainable_layers :]:
            layer.requires_grad_(True)
        model.head.requires_grad_(True)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """The number of parameters (of those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def finetune(
    model: EncoderClassifier,
    train: object,
    val: object,
    *,
    epochs: int,
    lr: float,
    head_lr: float | None = None,
    warmup: float = 0.1,
    weight_decay: float = 0.01,
    clip: float = 1.0,
    device: torch.device | str = "cpu",
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Train the parameters that require gradients with AdamW (the head at ``head_lr``, default ``lr``) and a
    linear warm-up (the first ``warmup`` fraction of steps) then linear decay to 0: the usual BERT recipe.

    ``train`` and ``val`` yield ``(ids (B, T), lengths (B,), labels (B,))``
    (e.g. ``dlfund.text.words.SequenceBatches``).
    After each epoch the validation accuracy is measured; the best epoch's weights are restored at the
    end. Returns ``{"train_loss": [...], "val_accuracy": [...]}`` per epoch.
    """

    model.to(device)
    head = [p for p in model.head.parameters() if p.requires_grad]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    if not head and not body:
        raise ValueError("no parameter requires a gradient: nothing to finetune (see freeze_layers)")
    groups = [{"params": body, "lr": lr}] if body else []
    groups.append({"params": head, "lr": head_lr if head_lr is not None else lr})
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    total_steps = max(1, epochs * len(train))  # type: ignore[arg-type]
    warm = max(1, int(warmup * total_steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total_steps - s) / max(1, total_steps - warm))
    )
    return fit_classifier(model, train, val, opt, epochs=epochs, clip=clip, scheduler=sched, verbose=verbose)
