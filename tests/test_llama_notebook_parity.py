"""Unit 12's step-by-step notebook versions compute what the library computes."""

from __future__ import annotations

import torch

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models.transformer import apply_rope, rope_tables

UNIT = manifest.get_unit(12)


def test_building_blocks_notebook_matches_the_library():
    """The notebook turns one RoPE pair by hand (the whole rotation, and RMSNorm, are exercises 1 and 2)."""
    rotate_pair = definitions(UNIT.notebook_path("01-building-blocks"), names=("rotate_pair",))["rotate_pair"]
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 3, 9, 16, generator=gen)
    cos, sin = rope_tables(9, 16, 500.0)
    rotated = apply_rope(q, cos, sin)
    for i in range(8):
        for p in (0, 3, 8):
            by_hand = rotate_pair(torch.stack([q[..., p, i], q[..., p, i + 8]], dim=-1), p * 500.0 ** (-2 * i / 16))
            expected = torch.stack([rotated[..., p, i], rotated[..., p, i + 8]], dim=-1)
            assert torch.allclose(by_hand, expected, atol=1e-5), (i, p)
