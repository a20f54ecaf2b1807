"""Repository-wide pytest setup: the smoke tier, a headless plot backend, and no network.

Notebook kernels inherit this environment: ``DLFUND_NO_NETWORK=1`` makes ``dlfund.setup`` block
sockets inside each kernel too. The generated exercise notebooks are not run by nbval (their stubs
raise by design); ``tests/test_exercises.py`` runs them and checks that their checks fail.
"""

from __future__ import annotations

import os

os.environ.setdefault("DLFUND_TIER", "smoke")
os.environ["MPLBACKEND"] = "Agg"
os.environ["DLFUND_NO_NETWORK"] = "1"
# pytest -n 2 runs two notebooks at once: one compute thread each, so they don't fight for the cores
# (oversubscribed CPU threads made small matmuls thousands of times slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.pop("DLFUND_RECORD", None)  # tests never overwrite the committed reference results

collect_ignore_glob = ["units/*/exercises/*", "runs/*", "book/*"]


def pytest_configure(config):  # pytest's hook signature
    from dlfund.utils.net import block_network

    block_network()


# --- notebook run times against their budgets (printed at the end of the session) -------------------
_notebook_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _notebook_seconds[path] = _notebook_seconds.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _notebook_seconds:
        return
    from pathlib import Path

    from dlfund.course import manifest

    tier = os.environ.get("DLFUND_TIER", "smoke")
    terminalreporter.section(f"notebook run times ({tier} tier) against their budgets")
    for path, seconds in sorted(_notebook_seconds.items()):
        p = Path(path)
        try:
            budget = manifest.get_unit(p.parent.name).budget(p.stem, tier)
        except KeyError:
            budget = None
        flag = "  OVER BUDGET" if budget is not None and seconds > budget else ""
        terminalreporter.write_line(f"{seconds:7.1f} s / {budget} s  {path}{flag}")
