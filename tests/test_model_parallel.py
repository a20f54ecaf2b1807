"""Tensor and pipeline parallelism (unit 11, lecture 05): the GPipe schedule, and two real CPU ranks."""

from __future__ import annotations

import pytest

from dlfund.perf import model_parallel as mp


@pytest.mark.parametrize(("stages", "micro"), [(1, 1), (2, 1), (2, 4), (3, 5), (4, 8)])
def test_gpipe_schedule_idles_p_minus_1_over_m_plus_p_minus_1(stages: int, micro: int) -> None:
    slots = mp.gpipe_schedule(stages, micro)
    assert len(slots) == 2 * stages * micro
    assert len({(s.rank, s.step) for s in slots}) == len(slots), "a rank does two things at once"
    when = {(s.phase, s.rank, s.micro): s.step for s in slots}
    for s in slots:  # a stage works on a micro-batch only after the stage before (forward) or after (backward)
        if s.phase == "F" and s.rank > 0:
            assert when["F", s.rank - 1, s.micro] < s.step
        if s.phase == "B" and s.rank < stages - 1:
            assert when["B", s.rank + 1, s.micro] < s.step
    assert mp.idle_fraction(slots) == pytest.approx(mp.bubble_fraction(stages, micro))


def test_reference_gives_the_input_a_gradient() -> None:
    x, target = mp.make_data(6, 5, seed=1)
    ref = mp.reference(mp.make_mlp(5, 7, seed=1), x, target)
    assert ref["input_grad"].shape == x.shape and not x.requires_grad
    assert set(ref["grads"]) == {"0.weight", "0.bias", "2.weight", "2.bias"}


def test_tensor_and_pipeline_parallel_on_two_cpu_ranks_equal_one_process(tmp_path) -> None:
    spec = {"dim": 12, "hidden": 20, "batch": 8, "blocks": 4, "micro": 4, "seed": 5}
    result = mp.launch(tmp_path, **spec, nproc=2, timeout=120)
    assert result.ok("tp"), result.error("tp")
    assert result.ok("pp"), result.error("pp")
    x, target = mp.make_data(spec["batch"], spec["dim"], spec["seed"])

    ref = mp.reference(mp.make_mlp(spec["dim"], spec["hidden"], spec["seed"]), x, target)
    for rank, report in enumerate(result.reports["tp"]):
        assert (report["output"] - ref["output"]).abs().max() <= 1e-5, f"rank {rank}: output"
        assert (report["input_grad"] - ref["input_grad"]).abs().max() <= 1e-5, f"rank {rank}: input gradient"
        for name, grad in ref["grads"].items():
            assert (report["grads"][name] - grad).abs().max() <= 1e-5, f"rank {rank}: gradient of {name}"
        # column-parallel first layer, row-parallel second; the second bias is whole on every rank
        assert report["local_shapes"] == {"0.weight": [10, 12], "0.bias": [10], "2.weight": [12, 10], "2.bias": [12]}
        assert report["forward_collectives"] == {"c10d_functional.all_reduce": 1}
        assert report["backward_collectives"] == {"c10d_functional.all_reduce": 1}

    ref = mp.reference(mp.make_stack(spec["blocks"], spec["dim"], spec["seed"]), x, target)
    first, last = result.reports["pp"]
    assert first["stage_blocks"] == [0, 1] and last["stage_blocks"] == [2, 3]
    assert (last["output"] - ref["output"]).abs().max() <= 1e-5
    assert abs(last["loss"] - ref["loss"]) <= 1e-5
    grads = {**first["grads"], **last["grads"]}
    assert grads.keys() == ref["grads"].keys()
    assert max((grads[k] - g).abs().max().item() for k, g in ref["grads"].items()) <= 1e-5
    for report in (first, last):  # one forward and one backward per micro-batch, in order
        for phase in "FB":
            assert [e[1] for e in report["events"] if e[0] == phase] == list(range(spec["micro"]))


def test_launch_refuses_an_unknown_demo(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown demo"):
        mp.launch(tmp_path, dim=4, hidden=4, batch=4, blocks=2, micro=2, demos=("zero-bubble",))
