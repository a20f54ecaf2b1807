"""Unit 12's step-by-step notebook versions compute what the library computes."""

from __future__ import annotations

import torch

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.models.llama import RMSNorm
from dlfund.models.transformer import apply_rope, rope_tables

UNIT = manifest.get_unit(12)


def test_building_blocks_notebook_matches_the_library():
    nb = definitions(UNIT.notebook_path("01-building-blocks"), names=("rms_norm", "rope_by_hand"))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 24, generator=gen) + 0.5
    weight = torch.rand(24, generator=gen) + 0.5
    lib = RMSNorm(24)
    with torch.no_grad():
        lib.weight.copy_(weight)
        assert torch.allclose(nb["rms_norm"](x, weight), lib(x), atol=1e-6)
    q = torch.randn(2, 3, 9, 16, generator=gen)
    cos, sin = rope_tables(9, 16, 500.0)
    assert torch.allclose(nb["rope_by_hand"](q, torch.arange(9), 500.0), apply_rope(q, cos, sin), atol=1e-5)
