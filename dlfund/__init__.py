"""dlfund: the helper library of the dlfund deep-learning course."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlfund.course.config import RunConfig, setup

__all__ = ["RunConfig", "setup", "__version__"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``dlfund.setup`` and ``dlfund.RunConfig``, imported on first use (PEP 562)."""
    if name in ("setup", "RunConfig"):
        # the run configuration imports torch (seconds): `dlfund progress` and the package's light
        # modules (the manifest, the workspace) must not pay for it
        from dlfund.course import config

        return getattr(config, name)
    raise AttributeError(f"module 'dlfund' has no attribute {name!r}")
