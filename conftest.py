"""Repository-wide pytest setup: the smoke tier, figures inline in the notebooks, and no network.

Notebook kernels inherit this environment: ``DLFUND_NO_NETWORK=1`` makes ``dlfund.setup`` block
sockets inside each kernel too, and ``MPLBACKEND`` makes ``plt.show()`` an image output of its cell,
as in Jupyter; a notebook cell whose ``plt.show()`` gives no image fails. The test processes themselves
plot headless (Agg). The generated exercise notebooks are not run by nbval (their stubs
raise by design); ``tests/test_exercises.py`` runs them and checks that their checks fail.
"""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("DLFUND_TIER", "smoke")
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # = notebooks.INLINE_BACKEND, for kernels
os.environ["DLFUND_NO_NETWORK"] = "1"
# pytest -n 2 runs two notebooks at once: one compute thread each, so they don't fight for the cores
# (oversubscribed CPU threads made small matmuls thousands of times slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.pop("DLFUND_RECORD", None)  # tests never overwrite the committed reference results
# tests never read or write a learner's workspace (quiz scores, progress): theirs is elsewhere
os.environ["DLFUND_WORKSPACE"] = os.path.join(tempfile.gettempdir(), "dlfund-tests-no-workspace")

collect_ignore_glob = ["units/*/exercises/*", "runs/*", "book/*", "workspace/*"]


def pytest_configure(config):  # pytest's hook signature
    import matplotlib

    from dlfund.utils.net import block_network

    matplotlib.use("Agg")  # this process has no kernel to show figures in
    block_network()


# --- notebook run times against their budgets --------------------------------------------------------
# Every phase of every cell of a notebook counts (nbval starts the kernel in the first cell's setup). With
# `--dist loadfile` a notebook's cells all run in one worker, one after another, so the total is known at
# the teardown of its last cell: a notebook over BUDGET_TOLERANCE × its smoke budget fails there.
_notebook_seconds: dict[str, float] = {}  # in the process that runs the cells (an xdist worker)
_reported_seconds: dict[str, float] = {}  # in the process that prints the summary (the xdist controller)


def _unit_and_name(path: str):
    from pathlib import Path

    from dlfund.course import manifest

    p = Path(path)
    try:
        unit = manifest.get_unit(p.parent.name)
        unit.budget(p.stem, "smoke")
    except KeyError:
        return None, None
    return unit, p.stem


def pytest_runtest_protocol(item, nextitem):
    item._dlfund_last_of_file = nextitem is None or nextitem.nodeid.split("::")[0] != item.nodeid.split("::")[0]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    path = item.nodeid.split("::")[0]
    if not path.endswith(".ipynb"):
        return
    _notebook_seconds[path] = _notebook_seconds.get(path, 0.0) + call.duration
    if call.when == "call" and report.passed and getattr(item, "test_outputs", None) is not None:
        from dlfund.course.notebooks import missing_figure

        why = missing_figure(item.cell.source, item.test_outputs)
        if why:
            report.outcome = "failed"
            report.longrepr = f"{item.nodeid}: {why}"
    tier = os.environ.get("DLFUND_TIER", "smoke")
    if call.when == "teardown" and getattr(item, "_dlfund_last_of_file", False) and tier == "smoke" and report.passed:
        unit, name = _unit_and_name(path)
        why = unit.over_budget(name, tier, _notebook_seconds[path]) if unit else None
        if why:
            report.outcome = "failed"
            report.longrepr = why


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _reported_seconds[path] = _reported_seconds.get(path, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _reported_seconds:
        return
    tier = os.environ.get("DLFUND_TIER", "smoke")
    terminalreporter.section(f"notebook run times ({tier} tier) against their budgets")
    for path, seconds in sorted(_reported_seconds.items()):
        unit, name = _unit_and_name(path)
        budget = unit.budget(name, tier) if unit else None
        flag = "  OVER BUDGET" if budget is not None and seconds > budget else ""
        terminalreporter.write_line(f"{seconds:7.1f} s / {budget} s  {path}{flag}")
