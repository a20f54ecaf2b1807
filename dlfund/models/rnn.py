"""Recurrent text classifiers: embeddings → RNN / LSTM / GRU over packed sequences → a linear head.

Padding never reaches the recurrence: :func:`torch.nn.utils.rnn.pack_padded_sequence` hands the
RNN only the real tokens of each sequence, so the final hidden state of a sequence is the state
after its own last token, whatever the padded length of the batch.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

Cell = Literal["rnn", "lstm", "gru"]
CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RNNClassifier(nn.Module):
    """``ids (B, T)`` and ``lengths (B,)`` → class logits ``(B, num_classes)``.

    ``cell`` picks ``nn.RNN`` (tanh), ``nn.LSTM`` or ``nn.GRU``. The sequence summary is the last
    layer's final hidden state (both directions concatenated when ``bidirectional``).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_size: int,
        num_classes: int,
        *,
        cell: Cell = "gru",
        num_layers: int = 1,
        bidirectional: bool = False,
        dropout: float = 0.0,
        pad_id: int = 0,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {', '.join(CELLS)}, got {cell!r}")
        self.cell = cell
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.rnn = CELLS[cell](
            embed_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)

    def encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The sequence summaries ``(B, H·directions)``."""
        if ids.dim() != 2 or lengths.shape != ids.shape[:1]:
            raise ValueError(f"expected ids (B, T) and lengths (B,), got {tuple(ids.shape)} and {tuple(lengths.shape)}")
        packed = pack_padded_sequence(
            self.dropout(self.embedding(ids)), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        _, h_n = self.rnn(packed)
        if self.cell == "lstm":
            h_n = h_n[0]  # (h_n, c_n): the hidden state, not the cell state
        directions = 2 if self.rnn.bidirectional else 1
        return torch.cat(list(h_n[-directions:]), dim=-1)  # the last layer: (B, H) per direction

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.encode(ids, lengths)))


class BagOfEmbeddings(nn.Module):
    """The mean of the token embeddings (padding excluded) → a linear head: word order ignored.

    ``nn.EmbeddingBag(mode="mean")`` does the lookup and the masked mean in one call.
    """

    def __init__(self, vocab_size: int, embed_dim: int, num_classes: int, *, pad_id: int = 0) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab_size, embed_dim, mode="mean", padding_idx=pad_id)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embedding(ids))


@torch.no_grad()
def predict(model: nn.Module, batches: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and true labels (on the CPU) over ``(ids, lengths, labels)`` batches."""
    was_training = model.training
    model.eval()
    preds, labels = [], []
    for ids, lengths, y in batches:  # type: ignore[attr-defined]
        preds.append(model(ids, lengths).argmax(-1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(preds), torch.cat(labels)


def train_text_classifier(
    model: nn.Module,
    train: object,
    val: object,
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.0,
    clip: float = 1.0,
    device: torch.device | str = "cpu",
    verbose: bool = True,
) -> dict[str, list[float]]:
    """AdamW with gradient clipping; after each epoch the validation accuracy, and the weights of the
    best epoch are restored at the end (early stopping on validation, not test). Returns the history."""
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return fit_classifier(model, train, val, opt, epochs=epochs, clip=clip, verbose=verbose)


def fit_classifier(
    model: nn.Module,
    train: object,
    val: object,
    opt: torch.optim.Optimizer,
    *,
    epochs: int,
    clip: float = 1.0,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """The epoch loop shared by the text classifiers: cross-entropy on ``(ids, lengths, labels)`` batches,
    clipping of the trainable parameters' gradient norm, ``opt`` (and ``scheduler``, stepped per batch);
    the validation accuracy after each epoch, and the best epoch's weights restored at the end.
    Returns ``{"train_loss": [...], "val_accuracy": [...]}`` per epoch."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    history: dict[str, list[float]] = {"train_loss": [], "val_accuracy": []}
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for ids, lengths, y in train:  # type: ignore[attr-defined]
            loss = nn.functional.cross_entropy(model(ids, lengths), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, clip)
            opt.step()
            if scheduler is not None:
                scheduler.step()
            total, count = total + loss.item() * len(y), count + len(y)
        pred, true = predict(model, val)
        acc = (pred == true).float().mean().item()
        history["train_loss"].append(total / count)
        history["val_accuracy"].append(acc)
        if acc > best:
            best, best_state = acc, {k: v.detach().clone() for k, v in model.state_dict().items()}
        if verbose:
            print(f"epoch {epoch + 1:2d}: train loss {total / count:.4f}, validation accuracy {acc:.4f}")
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
