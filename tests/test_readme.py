"""The README's quick start is exactly two commands, and CI runs the README's own test command."""

from __future__ import annotations

import re
import subprocess

from dlfund.course import manifest

README = (manifest.ROOT / "README.md").read_text(encoding="utf-8")


def block_after(marker: str) -> list[str]:
    match = re.search(re.escape(marker) + r"\s*```bash\n(.*?)```", README, flags=re.S)
    assert match, f"README has no bash block after {marker}"
    return [line for line in match.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_one_line_commands():
    run, test = block_after("<!-- quick-start: run -->"), block_after("<!-- quick-start: test -->")
    assert len(run) == 1 and len(test) == 1
    assert run[0].startswith("pip install -e .") and "dlfund run" in run[0]
    assert test[0].startswith("pip install -e ") and "pytest" in test[0]
    lint, fmt, tests = (test[0].index(s) for s in ("ruff check .", "ruff format --check .", "pytest"))
    assert lint < tests and fmt < tests, "lint and format are checked before the tests run"


def test_ci_runs_the_readme_test_command():
    script = (manifest.ROOT / ".ci" / "run").read_text(encoding="utf-8")
    awk = re.search(r"test_command=\$\((awk .*? README\.md)\)", script)
    assert awk, ".ci/run must read the test command from the README"
    out = subprocess.run(["bash", "-c", awk.group(1)], cwd=manifest.ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == block_after("<!-- quick-start: test -->")[0]
    assert 'bash -euo pipefail -c "$test_command"' in script
