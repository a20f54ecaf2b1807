"""Notebook and repository hygiene: what a reviewer would otherwise have to catch by eye."""

from __future__ import annotations

import ast
import json
import re
import subprocess

import nbformat
import pytest

from dlfund.course import manifest, notebooks
from dlfund.course.bench import SUITES
from dlfund.course.runner import unit_notebooks

ALL = [(u, name, kind, path) for u in manifest.UNITS for name, kind, path in unit_notebooks(u)]
ALL += [(u, ex.name, "exercise", u.exercise_path(ex.name)) for u in manifest.UNITS for ex in u.exercises]
IDS = [f"{u.dirname}/{kind}/{name}" for u, name, kind, _ in ALL]

SHELL = re.compile(r"^\s*(!|%%?(pip|conda|sx|system|bash|sh|script|writefile|run|load|cd|env)\b)", re.M)
ABSOLUTE = re.compile(r"""["'](/(home|Users|work|tmp|root|mnt|opt)/|[A-Za-z]:\\\\)""")
NETWORK = re.compile(r"https?://|\b(urllib|requests|httpx|wget|socket)\b")


@pytest.mark.parametrize("unit,name,kind,path", ALL, ids=IDS)
def test_committed_without_outputs(unit, name, kind, path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(raw["cells"]):
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [], f"code cell {i} has outputs: clear them before committing"
            assert cell.get("execution_count") is None, f"code cell {i} has an execution count"
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))


@pytest.mark.parametrize("unit,name,kind,path", ALL, ids=IDS)
def test_code_is_offline_portable_and_parses(unit, name, kind, path):
    for i, source in enumerate(notebooks.code_cells(notebooks.read(path))):
        assert not SHELL.search(source), f"code cell {i} uses a shell magic; use Python (or the dlfund CLI)"
        assert not ABSOLUTE.search(source), f"code cell {i} has an absolute path; use paths relative to the repo"
        assert not NETWORK.search(source), f"code cell {i} refers to the network; data comes from dlfund.data"
        ast.parse(source)  # a syntax error would otherwise only show when the notebook runs


@pytest.mark.parametrize("unit,name,kind,path", ALL, ids=IDS)
def test_structure_title_setup_and_closing(unit, name, kind, path):
    nb = notebooks.read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("# "), (
        "first cell: a '# Title' markdown cell"
    )
    code = notebooks.code_cells(nb)
    assert code, "a notebook without code"
    setup = re.search(r"dlfund\.setup\(\s*unit\s*=\s*(\d+)\s*,\s*notebook\s*=\s*[\"']([^\"']+)[\"']", code[0])
    assert setup, 'the first code cell must call dlfund.setup(unit=N, notebook="<name>")'
    assert (int(setup.group(1)), setup.group(2)) == (unit.number, name), "setup() names another notebook"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    if kind == "lecture":
        assert any("cfg.record(" in c for c in code), "a lecture notebook records its key metrics with cfg.record()"
        # the closing "Try it" questions (tests/test_try_it.py) come after the "What we saw" section
        cells = nb.cells[:-1] if nb.cells[-1].source.lstrip().startswith("## Try it") else nb.cells
        assert "what we saw" in cells[-1].source.lower() or "what we saw" in cells[-2].source.lower(), (
            "a lecture notebook closes with a 'What we saw' section (then its 'Try it' questions)"
        )
        saw = next(c.source for c in nb.cells if c.cell_type == "markdown" and "## What we saw" in c.source)
        said = saw.split("## What we saw", 1)[1]
        assert len(re.findall(r"[A-Za-z]{2,}", said)) >= 15, f"the 'What we saw' section says too little: {said!r}"
    if kind in ("solution", "exercise"):
        ex = next(e for e in unit.exercises if e.name == name)
        joined = "\n".join(code)
        for check in ex.checks:
            assert f"dlfund.checks.{check}(" in joined, f"the notebook never calls dlfund.checks.{check}"


def _git_files() -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(manifest.ROOT), "ls-files"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def test_no_artefacts_or_large_files_tracked():
    files = _git_files()
    if not files:
        pytest.skip("not a git checkout")
    artefact = re.compile(r"(^|/)(lightning_logs|checkpoints|runs)/|\.(ckpt|pt|pth|safetensors|gguf|whl|deb)$|tfevents")
    assert [f for f in files if artefact.search(f)] == []
    large = [f for f in files if (manifest.ROOT / f).exists() and (manifest.ROOT / f).stat().st_size > 1_000_000]
    assert large == [], "tracked files over 1 MB"


def test_recorded_results_have_provenance():
    required = {"device", "tier", "wall_s", "torch", "commit", "date", "peak_memory_mb"}
    for path in manifest.RESULTS_DIR.rglob("*.json"):
        r = json.loads(path.read_text(encoding="utf-8"))
        if path.parent.name == "benchmarks":  # dlfund bench: rows of comparisons, not one notebook's metrics
            assert path.name in {f"{suite}.{r['provenance']['tier']}.json" for suite in SUITES}
            assert required <= set(r["provenance"]), f"{path}: provenance lacks {required - set(r['provenance'])}"
            assert r["rows"], f"{path}: no rows"
            continue
        unit = manifest.get_unit(r["unit"])
        assert path.parent.name == unit.dirname
        assert path.name == f"{r['notebook']}.{r['provenance']['tier']}.json"
        assert required <= set(r["provenance"]), f"{path}: provenance lacks {required - set(r['provenance'])}"
        assert r["metrics"], f"{path}: no metrics"


# What a notebook calls -> the dataset it reads. `dlfund run` fetches only the datasets a unit lists.
DATA_CALLS = {
    r"load_fashion_mnist\(|FashionMNIST\w*\(": "fashion-mnist",
    r"load_mnist_5k\(|MNIST5k\w*\(": "mnist-5k",
    r"load_shakespeare\(": "shakespeare",
    r"load_movie_reviews\(": "movie-reviews",
    r"smollm2_gguf_path\(": "smollm2-135m-gguf",
    r"minilm_dir\(": "minilm-l6-v2",
}


@pytest.mark.parametrize("unit,name,kind,path", ALL, ids=IDS)
def test_datasets_used_are_listed_in_the_manifest(unit, name, kind, path):
    code = "\n".join(notebooks.code_cells(notebooks.read(path)))
    used = {dataset for pattern, dataset in DATA_CALLS.items() if re.search(pattern, code)}
    used |= set(re.findall(r"load_sklearn\(\s*[\"']([\w-]+)[\"']", code))
    assert used <= set(unit.datasets), (
        f"the notebook reads {sorted(used - set(unit.datasets))}, not in the unit's datasets"
    )
