"""The GPU plan: the ordered full-tier pieces fit one call each, and the scripts that run them parse."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from dlfund.course import gpu, manifest

ROOT = manifest.ROOT


def test_every_piece_exists_and_fits_one_call():
    assert gpu.problems() == []
    assert [p.unit for p in gpu.PRIORITIES][:2] == [7, 7], "the ResNet and ViT claims come first"
    for piece in gpu.PRIORITIES:
        assert piece.claim and piece.limit_s <= gpu.PIECE_LIMIT_S


def test_the_plan_finds_unknown_pieces_repeats_and_pieces_over_the_limit(monkeypatch):
    resnet = gpu.Piece(7, "04-resnet-and-augmentation", "x")
    bogus = (resnet, gpu.Piece(7, "no-such", "x"), gpu.Piece(0, "nope", "x"), resnet)
    monkeypatch.setattr(gpu, "PRIORITIES", bogus)
    budget = resnet.limit_s
    monkeypatch.setattr(gpu, "PIECE_LIMIT_S", budget - 1)
    found = "\n".join(gpu.problems())
    assert f"7:04-resnet-and-augmentation: full-tier budget {budget} s is over the {budget - 1} s" in found
    assert "7:no-such: unit 7 has no notebook or exercise 'no-such'" in found
    assert "bench:nope: no benchmark suite 'nope'" in found
    assert "7:04-resnet-and-augmentation: listed twice" in found


def test_the_script_reads_the_plan_as_item_and_limit_lines():
    out = subprocess.run([sys.executable, "-m", "dlfund.course.gpu"], capture_output=True, text=True, check=True)
    lines = [line.split() for line in out.stdout.splitlines()]
    assert [item for item, _ in lines] == [p.item for p in gpu.PRIORITIES]
    assert all(int(limit) <= gpu.PIECE_LIMIT_S for _, limit in lines)


@pytest.mark.parametrize("script", ["gpu-bundle.sh", "gpu-env.sh", "gpu-smoke.sh", "gpu-full-tier.sh"])
def test_the_gpu_scripts_parse(script):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    subprocess.run(["bash", "-n", str(ROOT / "tools" / script)], check=True)
