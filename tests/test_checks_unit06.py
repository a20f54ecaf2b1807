"""The unit-06 checks accept the committed solutions and reject stubs and typical wrong answers."""

from __future__ import annotations

import math

import pytest
import torch
from check_helpers import rejects, solution, stub
from torch import nn

from dlfund.checks import CheckFailed, unit06

# --- ex01: cosine with warmup -------------------------------------------------------------------


def schedule(
    *, warmup: str = "right", span: str = "right", floor: str = "right", clamp: bool = True, progress: str = "right"
):
    """A learner's cosine_warmup_multiplier with one typical mistake switched on."""

    def fn(step, *, warmup_steps, total_steps, min_lr_ratio=0.0):
        w, t, m = warmup_steps, total_steps, min_lr_ratio
        if step < w:
            return {"right": (step + 1) / w, "from zero": step / w, "w+1": (step + 1) / (w + 1)}[warmup]
        p = (step - w) / (t - w) if span == "right" else step / t
        if progress == "off by one":
            p = (step - w + 1) / (t - w)
        if clamp:
            p = min(p, 1.0)
        cos = 0.5 * (1 + math.cos(math.pi * p))
        return {"right": m + (1 - m) * cos, "none": cos, "times": m * cos, "max": max(m, cos)}[floor]

    return fn


COSINE_MISTAKES = [
    ({"warmup": "from zero"}, r"fn\(0, .*expected .* \(during the warmup\), found 0: warmup off by one: step / warmup"),
    ({"warmup": "w+1"}, r"warmup off by one: divide by warmup_steps, not warmup_steps \+ 1"),
    ({"span": "total"}, r"the cosine runs over total_steps; it should run over the total_steps - warmup_steps"),
    ({"floor": "none"}, r"no floor: the multiplier should decay to min_lr_ratio"),
    ({"floor": "times"}, r"the floor multiplies the cosine; it should be added"),
    ({"floor": "max"}, r"expected .* \(in the cosine part\), found"),
    ({"clamp": False}, r"\(after total_steps\), found .*: past total_steps the cosine climbs back up: clamp progress"),
    ({"progress": "off by one"}, r"fn\(\d+, .*expected 1 \(in the cosine part\), found 0\.9"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cosine_warmup_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit06.cosine_warmup(solution(6, "ex01-cosine-warmup", "cosine_warmup_multiplier"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ cosine with warmup")


def test_cosine_warmup_accepts_library_and_tensor_results() -> None:
    from dlfund.train.schedules import cosine_with_warmup

    unit06.cosine_warmup(cosine_with_warmup)
    unit06.cosine_warmup(lambda *a, **k: torch.tensor(schedule()(*a, **k)))


def test_cosine_warmup_rejects_stub() -> None:
    rejects(unit06.cosine_warmup, stub, match=r"fn\(0, warmup_steps=\d+.*is not implemented yet")


@pytest.mark.parametrize(("kwargs", "match"), COSINE_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_cosine_warmup_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    message = rejects(unit06.cosine_warmup, schedule(**kwargs), match=match, seed=seed)
    assert f"(seed {seed})" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), COSINE_MISTAKES)
def test_cosine_warmup_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit06.cosine_warmup, schedule(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_cosine_warmup_solution_passes_on_every_seed() -> None:
    fn = solution(6, "ex01-cosine-warmup", "cosine_warmup_multiplier")
    for seed in range(200):
        unit06.cosine_warmup(fn, seed=seed)


def test_cosine_warmup_rejects_non_numbers() -> None:
    rejects(unit06.cosine_warmup, lambda *a, **k: [1.0], match="expected a number .*found list")
    rejects(unit06.cosine_warmup, lambda *a, **k: None, match="expected a number .*found NoneType")


# --- ex02: AdamW and weight decay ---------------------------------------------------------------


def groups_variant(kind: str = "right"):
    """A learner's decay_groups with one typical mistake switched on."""
    norms = (nn.modules.batchnorm._NormBase, nn.LayerNorm)

    def fn(model, weight_decay):
        in_norms = {id(p) for m in model.modules() if isinstance(m, norms) for p in m.parameters(recurse=False)}
        params = list(model.parameters())
        if kind == "all decay":
            return [{"params": params, "weight_decay": weight_decay}]
        if kind == "by name":  # 'bias' in the name: norm scales are decayed
            named = list(model.named_parameters())
            return [
                {"params": [p for n, p in named if "bias" not in n], "weight_decay": weight_decay},
                {"params": [p for n, p in named if "bias" in n], "weight_decay": 0.0},
            ]
        decay = [p for p in params if p.ndim >= 2 and id(p) not in in_norms]
        no_decay = [p for p in params if not (p.ndim >= 2 and id(p) not in in_norms)]
        if kind == "twice":
            return [{"params": decay, "weight_decay": weight_decay}, {"params": params, "weight_decay": 0.0}]
        if kind == "drop norms":
            no_decay = [p for p in no_decay if id(p) not in in_norms]
        if kind == "no key":
            return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
        if kind == "fixed decay":
            return [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]

    return fn


def update_variant(kind: str = "right"):
    """A learner's adamw_update with one typical mistake switched on."""

    def fn(p, grad, exp_avg, exp_avg_sq, step, *, lr, betas, eps, weight_decay):
        b1, b2 = betas
        if kind == "swapped betas":
            b1, b2 = b2, b1
        if kind == "coupled":
            grad = grad + weight_decay * p
        elif kind == "no lr":
            p = p * (1 - weight_decay)
        elif kind not in ("none", "decay after"):
            p = p * (1 - lr * weight_decay)
        m = b1 * exp_avg + (1 - b1) * grad
        v = b2 * exp_avg_sq + (1 - b2) * grad * grad
        if kind == "no correction":
            return p - lr * m / (v.sqrt() + eps), m, v
        if kind == "in place":
            exp_avg.mul_(0)
        t = step - 1 if kind == "step from 0" else step
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        if kind == "eps inside":
            return p - lr * m_hat / (v_hat + eps).sqrt(), m, v
        new_p = p - lr * m_hat / (v_hat.sqrt() + eps)
        if kind == "decay after":
            new_p = new_p * (1 - lr * weight_decay)
        return new_p, m, v

    return fn


ADAMW_MISTAKES = [
    ({"groups": "all decay"}, r"'conv.bias' is a bias and should get weight_decay 0.0"),
    ({"groups": "by name"}, r"'bn.weight' is a normalisation parameter .*should get weight_decay 0.0"),
    ({"groups": "twice"}, r"parameter 'conv.weight' is in more than one group"),
    (
        {"groups": "drop norms"},
        r"parameters missing from every group: \['bn.weight', 'bn.bias', 'norm.weight', 'norm.bias'\]",
    ),
    ({"groups": "no key"}, r"group 0 should have the keys 'params' and 'weight_decay'"),
    (
        {"groups": "fixed decay"},
        r"'conv.weight' is a weight matrix/kernel and should get weight_decay 0\.\d+, found 0.01",
    ),
    ({"update": "coupled"}, r"that is Adam with L2: the decay was added to the gradient"),
    ({"update": "none"}, r"no weight decay was applied"),
    ({"update": "no lr"}, r"the decay is missing the learning rate"),
    ({"update": "no correction"}, r"no bias correction"),
    ({"update": "in place"}, r"the inputs were changed in place"),
    ({"update": "swapped betas"}, r"beta1 and beta2 swapped"),
    ({"update": "eps inside"}, r"eps went inside the square root"),
    ({"update": "decay after"}, r"the decay shrank the already updated weights"),
    ({"update": "step from 0"}, r"step=1.*holds NaN or inf: is the bias correction 1 - beta\*\*step with step counted"),
]


def adamw_variant(*, groups: str = "right", update: str = "right"):
    return groups_variant(groups), update_variant(update)


@pytest.mark.parametrize("seed", [0, 1])
def test_adamw_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    groups, update = solution(6, "ex02-adamw-weight-decay", "decay_groups", "adamw_update")
    unit06.adamw_weight_decay(groups, update, seed=seed)
    assert capsys.readouterr().out.startswith("✓ AdamW")


def test_adamw_accepts_library_groups_and_reference_update() -> None:
    from dlfund.train.optim import param_groups

    unit06.adamw_weight_decay(param_groups, unit06.reference_adamw_update)
    unit06.adamw_weight_decay(*adamw_variant())


def test_adamw_rejects_stubs() -> None:
    rejects(unit06.adamw_weight_decay, stub, update_variant(), match=r"groups_fn\(model, .*is not implemented yet")
    rejects(unit06.adamw_weight_decay, groups_variant(), stub, match=r"update_fn\(p, grad, .*is not implemented yet")


@pytest.mark.parametrize(("kwargs", "match"), ADAMW_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_adamw_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    rejects(unit06.adamw_weight_decay, *adamw_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), ADAMW_MISTAKES)
def test_adamw_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit06.adamw_weight_decay, *adamw_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_adamw_solution_passes_on_every_seed() -> None:
    groups, update = solution(6, "ex02-adamw-weight-decay", "decay_groups", "adamw_update")
    for seed in range(200):
        unit06.adamw_weight_decay(groups, update, seed=seed)


def test_adamw_rejects_wrong_return_type() -> None:
    rejects(unit06.adamw_weight_decay, groups_variant(), lambda *a, **k: a[0], match=r"expected a tuple \(p, exp_avg")
    with pytest.raises(CheckFailed, match="expected a list of dicts"):
        unit06.adamw_weight_decay(lambda m, wd: m.parameters(), update_variant(), seed=0)
    rejects(unit06.adamw_weight_decay, groups_variant(), lambda *a, **k: (None, None, None), match=r"expected a tensor")


# --- ex03: warmup-stable-decay ------------------------------------------------------------------


def wsd_variant(*, warmup: str = "right", plateau: int = 0, decay: str = "right", clamp: bool = True):
    """A learner's wsd_multiplier with one typical mistake switched on (``plateau``: steps too many)."""

    def fn(step, *, warmup_steps, stable_steps, decay_steps, start_ratio, min_lr_ratio):
        w, s, d, s0, m = warmup_steps, stable_steps + plateau, decay_steps, start_ratio, min_lr_ratio
        if step < w:
            return {
                "right": s0 + (1 - s0) * step / w,
                "ahead": s0 + (1 - s0) * (step + 1) / w,
                "from zero": step / w,
                "early peak": s0 + (1 - s0) * step / (w - 1),
            }[warmup]
        if step < w + s:
            return 1.0
        p = {
            "right": (step - w - s) / d,
            "from warmup": (step - w) / d,
            "early floor": (step - w - s) / (d - 1),
            "to zero": (step - w - s) / d,
            "cosine": (step - w - s) / d,
        }[decay]
        if clamp:
            p = min(p, 1.0)
        if decay == "to zero":
            return 1.0 - p
        if decay == "cosine":
            return m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p))
        return 1.0 - (1.0 - m) * p

    return fn


WSD_MISTAKES = [
    ({"warmup": "ahead"}, r"step 0: expected start_ratio = .*the ramp is one step ahead"),
    ({"warmup": "from zero"}, r"step 0: expected start_ratio = .*the warmup ignores start_ratio"),
    ({"warmup": "early peak"}, r"step 1 \(warmup\): expected .*it reaches 1 already at step W - 1: divide by W"),
    ({"plateau": -1}, r"\(first step of the decay\): expected 1, found .*the decay started one step early"),
    ({"plateau": 1}, r"expected the floor .*the decay is one step behind, it started one step late"),
    ({"plateau": -3}, r"step of the plateau, steps \d+ … \d+\): expected 1 \(the peak\).*lasts exactly stable_steps"),
    ({"decay": "from warmup"}, r"\(first step of the decay\): expected 1, found .*a jump down from the plateau"),
    (
        {"decay": "early floor"},
        r"found the floor .* already: the floor is reached one step early: divide by decay_steps",
    ),
    ({"decay": "to zero"}, r"expected the floor min_lr_ratio = .*found 0: the decay ends at 0, not at min_lr_ratio"),
    ({"decay": "cosine"}, r"step \d+ \(decay\): expected .* on the straight line"),
    ({"clamp": False}, r"\(after T = \d+\): expected the floor .*stays at min_lr_ratio after the decay"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wsd_accepts_solution(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    unit06.wsd_schedule(solution(6, "ex03-warmup-stable-decay", "wsd_multiplier"), seed=seed)
    assert capsys.readouterr().out.startswith("✓ warmup-stable-decay")


def test_wsd_accepts_the_reference_and_tensor_results() -> None:
    unit06.wsd_schedule(unit06.reference_wsd)
    unit06.wsd_schedule(lambda *a, **k: torch.tensor(wsd_variant()(*a, **k), dtype=torch.float64))


def test_wsd_rejects_stub_and_non_numbers() -> None:
    rejects(unit06.wsd_schedule, stub, match=r"fn\(0, warmup_steps=\d+.*is not implemented yet")
    rejects(unit06.wsd_schedule, lambda *a, **k: None, match="expected a number .*found NoneType")


@pytest.mark.parametrize(("kwargs", "match"), WSD_MISTAKES)
@pytest.mark.parametrize("seed", range(3))
def test_wsd_rejects_typical_mistakes(kwargs: dict, match: str, seed: int) -> None:
    message = rejects(unit06.wsd_schedule, wsd_variant(**kwargs), match=match, seed=seed)
    assert f"(seed {seed})" in message


@pytest.mark.seeds
@pytest.mark.parametrize(("kwargs", "match"), WSD_MISTAKES)
def test_wsd_rejects_typical_mistakes_on_every_seed(kwargs: dict, match: str) -> None:
    for seed in range(50):
        rejects(unit06.wsd_schedule, wsd_variant(**kwargs), match=match, seed=seed)


@pytest.mark.seeds
def test_wsd_solution_passes_on_every_seed() -> None:
    fn = solution(6, "ex03-warmup-stable-decay", "wsd_multiplier")
    for seed in range(200):
        unit06.wsd_schedule(fn, seed=seed)
        unit06.wsd_schedule(wsd_variant(), seed=seed)
