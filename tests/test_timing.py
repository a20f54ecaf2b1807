"""Library tests for dlfund.utils.timing, and parity with the hand-made timer of unit 2, notebook 02."""

from __future__ import annotations

import doctest
import time

import pytest
import torch
from torch.utils import benchmark

from dlfund.course import manifest
from dlfund.course.notebooks import definitions
from dlfund.perf import measure, median_seconds
from dlfund.utils import timing as timing_module

SLEEP_S = 0.003


def test_measure_reports_the_duration_of_a_call() -> None:
    m = measure(lambda: time.sleep(SLEEP_S), min_run_time=0.03, label="sleep", description="3 ms")
    assert isinstance(m, benchmark.Measurement)
    # sleep never returns early; a loaded machine may add delay, never remove it
    assert SLEEP_S * 0.95 < m.median < SLEEP_S * 10
    assert m.task_spec.label == "sleep" and m.task_spec.description == "3 ms"
    assert len(m.times) * m.number_per_run >= 2  # several calls were timed


def test_fn_runs_for_warm_up_and_repeats() -> None:
    calls = []
    measure(lambda: calls.append(1), min_run_time=0.01)
    assert len(calls) > 10  # the warm-up and block-size search alone call it several times


def test_median_seconds_is_the_measurement_median() -> None:
    seconds = median_seconds(lambda: time.sleep(SLEEP_S), min_run_time=0.03)
    assert isinstance(seconds, float) and SLEEP_S * 0.95 < seconds < SLEEP_S * 10


@pytest.mark.parametrize("num_threads", [1, 2])
def test_threads_are_set_while_timing_and_restored(num_threads: int) -> None:
    before = torch.get_num_threads()
    seen: set[int] = set()
    measure(lambda: seen.add(torch.get_num_threads()), min_run_time=0.01, num_threads=num_threads)
    assert seen == {num_threads}
    assert torch.get_num_threads() == before


def test_default_is_one_thread() -> None:
    seen: set[int] = set()
    median_seconds(lambda: seen.add(torch.get_num_threads()), min_run_time=0.01)
    assert seen == {1}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"fn": 3.0}, TypeError, "function without arguments.*float"),
        ({"min_run_time": 0}, ValueError, "min_run_time must be positive"),
        ({"num_threads": 0}, ValueError, "num_threads must be a positive int"),
        ({"num_threads": True}, ValueError, "num_threads must be a positive int"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, error: type[Exception], message: str) -> None:
    fn = kwargs.pop("fn", lambda: None)
    with pytest.raises(error, match=message):
        measure(fn, **kwargs)


def test_docstring_example() -> None:
    assert doctest.testmod(timing_module).failed == 0


def test_notebook_median_time_agrees_with_library() -> None:
    """Unit 2, notebook 02 builds `median_time` by hand (warm-up, repeats, median) before the library's
    Timer-based helper; both must report the duration of a call of known length."""
    nb = definitions(manifest.get_unit(2).notebook_path("02-broadcasting-and-vectorisation"), names=("median_time",))
    hand = nb["median_time"](lambda: time.sleep(SLEEP_S), repeats=7, warmup=1)
    library = median_seconds(lambda: time.sleep(SLEEP_S), min_run_time=0.03)
    assert SLEEP_S * 0.95 < hand < SLEEP_S * 10 and SLEEP_S * 0.95 < library < SLEEP_S * 10
    assert 0.3 < hand / library < 3
