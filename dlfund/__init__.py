"""dlfund: the helper library of the dlfund deep-learning course."""

from __future__ import annotations

from dlfund.course.config import RunConfig, setup

__all__ = ["RunConfig", "setup", "__version__"]
__version__ = "0.1.0"
