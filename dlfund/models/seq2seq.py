"""An RNN encoder–decoder, with or without additive (Bahdanau) attention.

- :class:`AdditiveAttention`: ``score(s, h_j) = vᵀ tanh(W_q s + W_k h_j)``, a softmax over the source
  positions (padding masked out), and the context ``Σ_j a_j h_j``.
- :class:`Seq2Seq`: a bidirectional GRU encoder (packed, so padding is never read) and a GRU-cell
  decoder. With ``attention=True`` the decoder's context is recomputed at every step from its
  previous state; with ``attention=False`` it is the encoder's final state at every step (the
  "fixed-length summary" encoder–decoder). Everything else is the same model.
- Teacher-forced training (:meth:`Seq2Seq.forward`) and greedy decoding (:meth:`Seq2Seq.greedy_decode`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlfund.text.words import PAD, UNK, Vocab, pad_batch, padding_mask

SOS, EOS = "<sos>", "<eos>"


class AdditiveAttention(nn.Module):
    """Bahdanau attention. ``query (B, Dq)``, ``keys (B, S, Dk)``, ``mask (B, S)`` (``True`` = real token)
    → ``context (B, Dk)`` and ``weights (B, S)``: each row sums to 1 and is 0 on padding.

    Every row of ``mask`` needs at least one ``True``. ``projected_keys`` (``W_k`` applied to
    ``keys``) may be passed in, so a decoder projects the keys once per sequence, not once per step.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, attn_dim, bias=False)  # W_q
        self.key = nn.Linear(key_dim, attn_dim, bias=False)  # W_k
        self.v = nn.Linear(attn_dim, 1, bias=False)  # v

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if projected_keys is None:
            projected_keys = self.key(keys)  # (B, S, A)
        scores = self.v(torch.tanh(self.query(query)[:, None, :] + projected_keys)).squeeze(-1)  # (B, S)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: padding gets no weight
        weights = scores.softmax(dim=-1)  # over source positions
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # (B, Dk)
        return context, weights


class Seq2Seq(nn.Module):
    """``src (B, S)``, ``src_lengths (B,)`` → target token logits, one decoder step per target position."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        *,
        embed_dim: int = 64,
        hidden_size: int = 128,
        attention: bool = True,
        src_pad_id: int = 0,
        tgt_pad_id: int = 0,
        sos_id: int,
        eos_id: int,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        h = hidden_size
        self.use_attention, self.sos_id, self.eos_id, self.tgt_pad_id = attention, sos_id, eos_id, tgt_pad_id
        self.src_embedding = nn.Embedding(src_vocab_size, embed_dim, padding_idx=src_pad_id)
        self.encoder = nn.GRU(embed_dim, h, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * h, h)  # encoder summary → first decoder state
        self.attention = AdditiveAttention(h, 2 * h, h) if attention else None
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, embed_dim, padding_idx=tgt_pad_id)
        self.decoder = nn.GRUCell(embed_dim + 2 * h, h)  # input: previous token and context
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(h + 2 * h + embed_dim, tgt_vocab_size)

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder outputs ``(B, S, 2H)`` (zeros at padding), the summary ``(B, 2H)`` and the mask ``(B, S)``."""
        packed = pack_padded_sequence(
            self.dropout(self.src_embedding(src)), src_lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        outputs, h_n = self.encoder(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=src.shape[1])
        summary = torch.cat([h_n[0], h_n[1]], dim=-1)  # forward's last state, backward's first
        return outputs, summary, padding_mask(src_lengths.to(src.device), src.shape[1])

    def _step(
        self, token: torch.Tensor, state: torch.Tensor, memory: tuple[torch.Tensor, ...]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoder step: previous token ``(B,)`` and state ``(B, H)`` → logits, new state, attention weights."""
        outputs, summary, mask, projected = memory
        weights = None
        if self.attention is not None:
            context, weights = self.attention(state, outputs, mask, projected_keys=projected)
        else:
            context = summary
        emb = self.dropout(self.tgt_embedding(token))
        state = self.decoder(torch.cat([emb, context], dim=-1), state)
        logits = self.out(self.dropout(torch.cat([state, context, emb], dim=-1)))
        return logits, state, weights

    def _start(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        outputs, summary, mask = self.encode(src, src_lengths)
        projected = self.attention.key(outputs) if self.attention is not None else outputs
        return torch.tanh(self.bridge(summary)), (outputs, summary, mask, projected)

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: ``tgt_in (B, T)`` (``<sos>`` then the target) → logits ``(B, T, V)`` for the
        next token at each position; the decoder always reads the true previous token."""
        state, memory = self._start(src, src_lengths)
        logits = []
        for t in range(tgt_in.shape[1]):
            step_logits, state, _ = self._step(tgt_in[:, t], state, memory)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, src_lengths: torch.Tensor, max_len: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The most likely token at each step, fed back in. Returns ``tokens (B, L)`` (after ``<eos>``
        everything is ``tgt_pad_id``; ``L <= max_len``) and attention ``weights (B, L, S)`` (``None``
        without attention)."""
        state, memory = self._start(src, src_lengths)
        token = torch.full((src.shape[0],), self.sos_id, dtype=torch.long, device=src.device)
        done = torch.zeros_like(token, dtype=torch.bool)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, state, w = self._step(token, state, memory)
            token = logits.argmax(-1)
            tokens.append(token.masked_fill(done, self.tgt_pad_id))
            if w is not None:
                weights.append(w.masked_fill(done[:, None], 0.0))
            done = done | (token == self.eos_id)
            if bool(done.all()):
                break
        return torch.stack(tokens, 1), (torch.stack(weights, 1) if weights else None)


# ----------------------------------------------------------------------------- data and training


def target_vocab(alphabet: Sequence[str]) -> Vocab:
    """A character vocabulary for targets: ``<pad>`` 0, ``<unk>`` 1, ``<sos>`` 2, ``<eos>`` 3, then ``alphabet``."""
    return Vocab([PAD, UNK, SOS, EOS, *alphabet])


class PairBatches:
    """Batches ``(src, src_lengths, tgt_in, tgt_out)`` of (source tokens, target tokens) pairs.

    ``tgt_in`` is ``<sos> y_1 … y_n`` and ``tgt_out`` is ``y_1 … y_n <eos>``, both padded.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
        src_vocab: Vocab,
        tgt_vocab: Vocab,
        *,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        self.src = [src_vocab.encode(list(s)) for s, _ in pairs]
        sos, eos = tgt_vocab.stoi[SOS], tgt_vocab.stoi[EOS]
        self.tgt = [[sos, *tgt_vocab.encode(list(t)), eos] for _, t in pairs]
        self.src_pad, self.tgt_pad = src_vocab.pad_id, tgt_vocab.pad_id
        self.batch_size, self.shuffle, self.device = batch_size, shuffle, torch.device(device)
        self._gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.src) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.src)
        order = torch.randperm(n, generator=self._gen) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size].tolist()
            src, lengths = pad_batch([self.src[i] for i in idx], self.src_pad)
            tgt, _ = pad_batch([self.tgt[i] for i in idx], self.tgt_pad)
            yield tuple(t.to(self.device) for t in (src, lengths, tgt[:, :-1], tgt[:, 1:]))


def seq2seq_loss(model: Seq2Seq, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Teacher-forced cross-entropy per target token, padding ignored."""
    src, lengths, tgt_in, tgt_out = batch
    logits = model(src, lengths, tgt_in)
    return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), ignore_index=model.tgt_pad_id)


def train_seq2seq(
    model: Seq2Seq,
    batches: PairBatches,
    *,
    epochs: int,
    lr: float,
    clip: float = 1.0,
    device: torch.device | str = "cpu",
    verbose: bool = True,
) -> list[float]:
    """Adam with gradient clipping and teacher forcing; returns the mean training loss of each epoch."""
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(batches), pct_start=0.1)
    losses = []
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for batch in batches:
            loss = seq2seq_loss(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            sched.step()
            total, count = total + loss.item(), count + 1
        losses.append(total / count)
        if verbose:
            print(f"epoch {epoch + 1:2d}: training loss {losses[-1]:.4f}")
    return losses


@torch.no_grad()
def decode_pairs(
    model: Seq2Seq,
    pairs: Sequence[tuple[Sequence[str], Sequence[str]]],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    *,
    batch_size: int = 512,
    max_len: int | None = None,
    device: torch.device | str = "cpu",
) -> list[list[str]]:
    """Greedy decodings of the sources of ``pairs``, as target-token lists (``<eos>`` and after removed)."""
    model.eval().to(device)
    eos = tgt_vocab.stoi[EOS]
    limit = max_len or 2 + max(len(t) for _, t in pairs)
    out: list[list[str]] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        src, lengths = pad_batch([src_vocab.encode(list(s)) for s, _ in chunk], src_vocab.pad_id)
        tokens, _ = model.greedy_decode(src.to(device), lengths.to(device), limit)
        for row in tokens.tolist():
            row = row[: row.index(eos)] if eos in row else row
            out.append(tgt_vocab.decode(row))
    return out


def exact_match(
    predictions: Sequence[Sequence[str]], pairs: Sequence[tuple[Sequence[str], Sequence[str]]]
) -> torch.Tensor:
    """``(N,)`` bool: prediction ``i`` equals the target of pair ``i`` token for token."""
    if len(predictions) != len(pairs):
        raise ValueError(f"{len(predictions)} predictions for {len(pairs)} pairs")
    return torch.tensor([list(p) == list(t) for p, (_, t) in zip(predictions, pairs)], dtype=torch.bool)
