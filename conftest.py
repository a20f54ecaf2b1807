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
os.environ.pop("DLFUND_RECORD", None)  # tests never overwrite the committed reference results

collect_ignore_glob = ["units/*/exercises/*", "runs/*", "book/*"]


def pytest_configure(config):  # noqa: ANN001 - pytest's hook signature
    from dlfund._net import block_network

    block_network()
