"""``dlfund bench``: benchmark suites that print one table and record it with provenance."""

SUITES = ("reference", "fast-training", "startup")
"""The suites of ``dlfund bench``; each records ``book/results/benchmarks/<suite>.<tier>.json``."""
