"""A Vision Transformer (ViT) written from scratch: patch embedding, class token, learned positions,
pre-norm encoder blocks and a classification head (Dosovitskiy et al., 2021, "An Image is Worth
16x16 Words").

The pieces, in the order an image goes through them (shapes for a batch of N images):

    images (N, C, H, W)
      → PatchEmbedding          (N, P, D)      P = (H/p)·(W/p) patches of p × p pixels, each projected to D numbers
      → prepend the class token (N, P+1, D)    one learned vector that collects the image's summary
      → add positions           (N, P+1, D)    a learned vector per position: attention itself ignores order
      → depth × EncoderBlock    (N, P+1, D)    x + attention(norm(x)), then x + mlp(norm(x))
      → LayerNorm, class token  (N, D)         = ViT.features(x)
      → head (Linear)           (N, classes)

``ViT`` exposes ``features(x)`` and ``self.head`` like the course's CNNs (:mod:`dlfund.models.cnn`),
so the same code can replace heads, freeze features and compare them. ``forward(x,
return_attention=True)`` also returns every block's attention weights, for attention maps.

Unit 7 builds each piece step by step in ``units/07-cnn-vit/06-vision-transformer.ipynb``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["PatchEmbedding", "MultiHeadSelfAttention", "FeedForward", "EncoderBlock", "ViT"]

Tensor = torch.Tensor


class PatchEmbedding(nn.Module):
    """Cut images into non-overlapping ``p × p`` patches and project each one to ``dim`` numbers.

    Args:
        image_size: the side ``H = W`` of the images the model is built for; sets ``num_patches``.
        patch_size: ``p``, the side of a patch; must divide ``image_size``.
        in_channels: ``C``, the channels of the images.
        dim: ``D``, the size of each patch's embedding.

    ``forward``: images ``(N, C, H, W)`` → ``(N, (H/p)·(W/p), D)``. Patches are numbered row by row
    (patch ``r · (W/p) + c`` is in patch row ``r``, patch column ``c``); each is flattened channel first,
    then pixel rows, then pixel columns (the layout of a ``Conv2d`` weight ``(D, C, p, p)``) and
    projected by ``self.proj = nn.Linear(C·p·p, D)``.

    This is exactly a strided convolution ``nn.Conv2d(C, D, kernel_size=p, stride=p)`` whose weight is
    ``proj.weight.reshape(D, C, p, p)`` and whose bias is ``proj.bias``, followed by
    ``.flatten(2).transpose(1, 2)``; :meth:`to_conv` builds that convolution.
    """

    def __init__(self, image_size: int = 28, patch_size: int = 4, in_channels: int = 1, dim: int = 128) -> None:
        super().__init__()
        if patch_size < 1 or image_size % patch_size != 0:
            raise ValueError(
                f"image_size must be divisible by patch_size: got image_size={image_size}, patch_size={patch_size}"
            )
        self.image_size, self.patch_size, self.in_channels, self.dim = image_size, patch_size, in_channels, dim
        self.grid = image_size // patch_size  # patches per side
        self.num_patches = self.grid**2
        self.proj = nn.Linear(in_channels * patch_size * patch_size, dim)

    def patches(self, x: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` → flattened patches ``(N, (H/p)·(W/p), C·p·p)``, row-major."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected images (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ValueError(f"image height and width must be divisible by patch_size={p}, got {h}×{w}")
        x = x.reshape(n, c, h // p, p, w // p, p)  # (N, C, rows, p, cols, p)
        x = x.permute(0, 2, 4, 1, 3, 5)  # (N, rows, cols, C, p, p): the patch grid in front, row-major
        return x.reshape(n, (h // p) * (w // p), c * p * p)

    def forward(self, x: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` → patch embeddings ``(N, num_patches, dim)``."""
        return self.proj(self.patches(x))

    def to_conv(self) -> nn.Conv2d:
        """The strided ``nn.Conv2d`` that computes the same embedding (a copy of the weights)."""
        p, c = self.patch_size, self.in_channels
        conv = nn.Conv2d(c, self.dim, kernel_size=p, stride=p)
        with torch.no_grad():
            conv.weight.copy_(self.proj.weight.reshape(self.dim, c, p, p))
            conv.bias.copy_(self.proj.bias)
        return conv.to(self.proj.weight.device)

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, patch_size={self.patch_size}, num_patches={self.num_patches}"


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with a fused q/k/v projection (no mask: every patch sees every patch).

    Args:
        dim: ``D``, the token size; ``heads`` must divide it (each head works in ``D / heads`` dimensions).
        heads: the number of attention heads.
        dropout: dropout on the attention weights while training.

    ``forward(x)``: tokens ``(B, T, D)`` → ``(out (B, T, D), attention)``, where ``attention`` is
    ``None``, or with ``return_attention=True`` the weights ``softmax(q kᵀ / √(D/heads))`` of shape
    ``(B, heads, T, T)`` (each row sums to 1). Without it the fused
    ``F.scaled_dot_product_attention`` kernel does the work. The layout of ``qkv`` (q, k, then v rows;
    heads contiguous) is that of ``nn.MultiheadAttention.in_proj_weight``, and ``proj`` is its
    ``out_proj``, so weights copy over directly.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"dim must be divisible by heads: got dim={dim}, heads={heads}")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        b, t, d = x.shape
        # (B, T, 3D) → (B, T, 3, heads, hd) → three tensors (B, heads, T, hd)
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        dropout = self.dropout if self.training else 0.0
        attention = None
        if return_attention:  # written out, to keep the weights
            attention = (q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)).softmax(dim=-1)  # (B, heads, T, T)
            out = F.dropout(attention, dropout, self.training) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, heads, T, hd)
        out = out.transpose(1, 2).reshape(b, t, d)  # merge the heads again: (B, T, D)
        return self.proj(out), attention


class FeedForward(nn.Module):
    """The position-wise MLP of a transformer block: ``(B, T, D)`` → ``Linear(D, H)`` → GELU → ``Linear(H, D)``."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.fc2(self.dropout(F.gelu(self.fc1(x)))))


class EncoderBlock(nn.Module):
    """A pre-norm transformer encoder block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``.

    Normalising *before* each sub-layer keeps the residual path ``x → x + ...`` free of any layer, which
    makes deep stacks train stably without a long warm-up. Tokens ``(B, T, D)`` → ``(B, T, D)``;
    ``forward`` returns ``(tokens, attention or None)`` like :class:`MultiHeadSelfAttention`.
    """

    def __init__(self, dim: int, heads: int, mlp_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = MultiHeadSelfAttention(dim, heads, dropout=dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = FeedForward(dim, mlp_dim, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, return_attention: bool = False) -> tuple[Tensor, Tensor | None]:
        attended, attention = self.attn(self.norm1(x), return_attention=return_attention)
        x = x + self.dropout(attended)
        x = x + self.mlp(self.norm2(x))
        return x, attention


class ViT(nn.Module):
    """A Vision Transformer classifier.

    Args:
        image_size, patch_size, in_channels: the images ``(N, C, H, W)`` with ``H = W = image_size``,
            cut into ``(image_size / patch_size)²`` patches.
        num_classes: the number of logits of ``self.head``.
        dim: ``D``, the token size; depth: the number of encoder blocks; heads: attention heads per block.
        mlp_ratio: the hidden size of each block's MLP is ``int(mlp_ratio · D)``.
        dropout: dropout in the blocks (attention weights, MLP, residual branches) and on the embeddings.

    ``forward(x)``: images ``(N, C, H, W)`` → logits ``(N, num_classes)``; with
    ``return_attention=True`` → ``(logits, attentions)``, a list of ``depth`` tensors
    ``(N, heads, T, T)``, ``T = num_patches + 1`` (token 0 is the class token).
    ``features(x)`` → ``(N, D)``: the normalised class token, the representation the head reads.
    """

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 4,
        in_channels: int = 1,
        num_classes: int = 10,
        dim: int = 128,
        depth: int = 6,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.patch_embed = PatchEmbedding(image_size, patch_size, in_channels, dim)
        self.num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))  # (1, 1, D), broadcast over the batch
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + 1, dim))  # (1, T, D)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(EncoderBlock(dim, heads, int(mlp_ratio * dim), dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The original ViT's initialisation: Xavier-uniform linear weights and zero biases; small
        truncated-normal (std 0.02) class token and positions. (timm's std-0.02 normal linear weights
        suit long ImageNet runs; on small data and short schedules Xavier starts learning sooner.)"""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def tokens(self, x: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` → the encoder's input ``(N, num_patches + 1, D)``: class token first,
        plus positions."""
        patches = self.patch_embed(x)  # (N, P, D)
        if patches.shape[1] != self.num_patches:
            raise ValueError(
                f"expected {self.patch_embed.image_size}×{self.patch_embed.image_size} images "
                f"({self.num_patches} patches), got shape {tuple(x.shape)}"
            )
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (N, 1, D)
        return self.dropout(torch.cat([cls, patches], dim=1) + self.pos_embed)

    def encode(self, x: Tensor, return_attention: bool = False) -> tuple[Tensor, list[Tensor]]:
        """Images → the final, normalised tokens ``(N, T, D)`` and (if asked) every block's attention."""
        h = self.tokens(x)
        attentions = []
        for block in self.blocks:
            h, attention = block(h, return_attention=return_attention)
            if attention is not None:
                attentions.append(attention)
        return self.norm(h), attentions

    def features(self, x: Tensor) -> Tensor:
        """Images ``(N, C, H, W)`` → ``(N, D)``: the class token after the last block and the final norm."""
        return self.encode(x)[0][:, 0]

    def forward(self, x: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        h, attentions = self.encode(x, return_attention=return_attention)
        logits = self.head(h[:, 0])
        return (logits, attentions) if return_attention else logits
