"""The small vocabulary every check is written in."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import torch


class CheckFailed(Exception):
    """The learner's answer is not right yet; the message says what was expected and what was found."""


def fresh_seed(seed: int | None) -> int:
    """``seed``, or a new random one: each check call draws fresh inputs, and says which seed it used
    so a failure can be replayed with ``seed=...``."""
    return secrets.randbelow(2**31) if seed is None else seed


def expect(condition: bool, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def call_learner(fn: Callable[..., Any], *args: Any, what: str, **kwargs: Any) -> Any:
    """Call the learner's function, turning a stub or a crash into a clear :class:`CheckFailed`."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as err:
        hint = f" (hint: {err})" if str(err) else ""
        raise CheckFailed(
            f"{what} is not implemented yet: replace the `raise NotImplementedError` line{hint}"
        ) from None
    except CheckFailed:
        raise
    except Exception as err:  # the learner's code crashed: say where, keep the original as the cause
        raise CheckFailed(f"{what} raised {type(err).__name__}: {err}") from err


def expect_close(found: Any, expected: Any, what: str, *, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Compare tensors (or numbers): type, shape, dtype, then values, each with its own message."""
    if not isinstance(expected, torch.Tensor):
        expected = torch.as_tensor(expected)
    if not isinstance(found, torch.Tensor):
        try:
            found = torch.as_tensor(found)
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailed(f"{what}: expected a tensor, found {type(found).__name__}") from None
    expect(found.shape == expected.shape, f"{what}: expected shape {tuple(expected.shape)}, found {tuple(found.shape)}")
    expect(found.dtype == expected.dtype, f"{what}: expected dtype {expected.dtype}, found {found.dtype}")
    found_cpu, expected_cpu = found.detach().cpu(), expected.detach().cpu()
    if expected_cpu.dtype.is_floating_point:
        ok = torch.allclose(found_cpu, expected_cpu, atol=atol, rtol=rtol, equal_nan=False)
    else:
        ok = torch.equal(found_cpu, expected_cpu)
    if not ok:
        diff = (found_cpu.double() - expected_cpu.double()).abs()
        idx = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0]) if diff.numel() else ()
        raise CheckFailed(
            f"{what}: values differ (largest difference {diff.max().item():.3g} at index {idx}: "
            f"expected {expected_cpu[idx].item():.6g}, found {found_cpu[idx].item():.6g})"
        )


def passed(message: str) -> None:
    print(f"✓ {message}")
