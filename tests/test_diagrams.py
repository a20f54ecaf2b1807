"""The diagrams: every picture a page shows exists, every file is shown and drawn by code, and every drawing
carries its labels.

The committed SVG bytes are not compared with a fresh drawing (another matplotlib version writes other bytes);
their *text* is: every line of text a diagram draws must be in its committed file, so a renamed unit or a
changed label fails here until ``dlfund generate`` has been run.
"""

from __future__ import annotations

import functools
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dlfund.course import diagrams, manifest, notebooks

SVG = "{http://www.w3.org/2000/svg}"
IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]*book/figures/[^)\s]+)\)")

LABELS = {
    "unit03-computation-graph": ("u₁ = w₁x₁", "p = σ(z)", "L = −log p", "∂L/∂w₁ = ∂L/∂u₁ · x₁", "∂L/∂b"),
    "unit04-mlp-xor": ("h₁ = relu(x₁ + x₂)", "input space", "hidden space", "h₁ − 2h₂ = ½"),
    "unit07-convolution": ("(N, C_in, H, W)", "(N, C_out, H′, W′)", "kernel", "stride"),
    "unit07-residual-block": ("relu(F(x) + shortcut(x))", "BatchNorm", "1×1 conv", "+"),
    "unit08-encoder-decoder-attention": ("h_j", "softmax_j", "context = Σ_j a_j h_j", "GRUCell"),
    "unit09-self-attention": ("x (B, T, C)", "q kᵀ / √d", "(B, T, T)", "softmax"),
    "unit09-causal-mask": ("−∞", "j ≤ i", "(B, h, T, T)"),
    "unit09-multi-head": ("(B, T, h, d)", "(B, h, T, d)", "merge", "C = h · d"),
    "unit11-float-formats": ("float32", "tf32", "float16", "bfloat16", "1 + 8 + 7 bits"),
    "unit11-mixed-precision": ("autocast", "float32", "scale", "bf16-true"),
    "unit11-ddp-vs-fsdp": ("DDP", "FSDP", "all-reduce", "all-gather", "reduce-scatter"),
    "unit11-sequence-parallel": ("Sequence parallelism", "token by token", "all-gather k, v", "rank 1"),
    "unit12-llama-block": ("RMSNorm", "SwiGLU", "grouped-query attention", "RoPE", "(B, T, 576)"),
    "unit12-rope": ("m·θᵢ", "(m − n)·θᵢ", "rotate_half"),
    "unit12-gqa": ("9 KV heads", "3 KV heads", "1 KV head", "KV cache"),
    "unit13-lora": ("W (out, in)", "A (r, in)", "B (out, r)", "α/r", "merge()"),
    "unit13-adapter-gate": ("gate[h]", "k_proj", "no RoPE", "starts at 0"),
}


def roadmap_labels(unit: manifest.Unit) -> tuple[str, ...]:
    previous = () if unit.number == 1 else (f"from unit {unit.number - 1:02d}",)
    return (
        f"Unit {unit.number:02d} · {unit.title}",
        *previous,
        *(nb.title for nb in unit.notebooks),
        *(ex.title for ex in unit.exercises),
    )


EXPECTED = {**LABELS, **{f"unit{u.number:02d}-roadmap": roadmap_labels(u) for u in manifest.UNITS}}


@functools.cache
def drawn_text(name: str) -> tuple[str, ...]:
    """Every text of the diagram ``name`` as drawn now, one entry per drawn string."""
    fig = diagrams.DIAGRAMS[name]()
    return tuple(t.get_text() for t in [*fig.texts, *(t for ax in fig.axes for t in ax.texts)])


def pages() -> list[Path]:
    """Everything a learner reads: lecture, exercise and solution notebooks, the READMEs and the book pages."""
    found = [manifest.ROOT / "README.md", *sorted(manifest.BOOK_DIR.glob("*.md"))]
    found += sorted(manifest.UNITS_DIR.glob("*/README.md"))
    found += sorted(manifest.UNITS_DIR.rglob("*.ipynb")) + sorted(manifest.SOLUTIONS_DIR.rglob("*.ipynb"))
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def references() -> list[tuple[Path, str, str]]:
    """``(page, alt text, target)`` for every figure image on every page (notebooks: markdown cells)."""
    found = []
    for page in pages():
        if page.suffix == ".ipynb":
            texts = [c.source for c in notebooks.read(page).cells if c.cell_type == "markdown"]
        else:
            texts = [page.read_text(encoding="utf-8")]
        for text in texts:
            found += [(page, alt, target) for alt, target in IMAGE.findall(text)]
    return found


def test_every_referenced_figure_exists_with_alt_text():
    refs = references()
    assert refs, "no page shows a figure from book/figures"
    for page, alt, target in refs:
        where = manifest.display_path(page)
        resolved = (page.parent / target).resolve()
        assert resolved.is_file(), f"{where} shows {target}, which does not exist (run `dlfund generate`)"
        assert resolved.parent == diagrams.FIGURES_DIR, f"{where}: {target} is not in book/figures"
        assert len(alt.split()) >= 5, f"{where}: the image {target} needs an alt text that describes it"


def test_every_figure_file_is_registered_and_shown():
    shown = {(page.parent / target).resolve().stem for page, _, target in references()}
    files = sorted(diagrams.FIGURES_DIR.glob("*"))
    assert {f.stem for f in files} == set(diagrams.DIAGRAMS), "book/figures and DIAGRAMS disagree"
    assert all(f.suffix == ".svg" for f in files)
    unshown = sorted(set(diagrams.DIAGRAMS) - shown)
    assert not unshown, f"diagrams no page shows: {unshown}"


@pytest.mark.parametrize("unit", manifest.UNITS, ids=lambda u: u.dirname)
def test_every_unit_readme_opens_with_its_roadmap(unit):
    text = (unit.path / "README.md").read_text(encoding="utf-8")
    title = text.index(f"# Unit {unit.number:02d}")
    image = text.index(f"](../../book/figures/unit{unit.number:02d}-roadmap.svg)")
    first_paragraph = text.index(unit.summary)
    assert title < image < first_paragraph, "the roadmap comes right after the README's title"


def test_every_diagram_has_its_expected_labels():
    assert set(EXPECTED) == set(diagrams.DIAGRAMS), "a diagram without expected labels in this test, or vice versa"


@pytest.mark.parametrize("name", sorted(diagrams.DIAGRAMS))
def test_diagram_draws_with_its_labels_and_its_file_is_current(name):
    texts = drawn_text(name)
    joined = " ".join(" ".join(t.split()) for t in texts)
    missing = [label for label in EXPECTED[name] if " ".join(label.split()) not in joined]
    assert not missing, f"{name} lacks the labels {missing}"

    root = ET.parse(diagrams.path(name)).getroot()
    assert root.tag == f"{SVG}svg", f"{name}.svg is not an SVG document"
    in_file = {"".join(e.itertext()).strip() for e in root.iter(f"{SVG}text")}
    lines = {line.strip() for t in texts for line in t.splitlines() if line.strip()}
    stale = sorted(lines - in_file)
    assert not stale, f"book/figures/{name}.svg lacks {stale[:3]}: run `dlfund generate`"


def test_write_all_writes_deterministic_svg(tmp_path):
    name = "unit09-causal-mask"
    diagrams.write_all([name], tmp_path)
    first = (tmp_path / f"{name}.svg").read_bytes()
    assert diagrams.write_all([name], tmp_path) == [], "a second run rewrote an unchanged figure"
    assert b"<svg" in first and b"Date" not in first
