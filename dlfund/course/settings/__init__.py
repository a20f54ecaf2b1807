"""The settings of every unit in each tier: typed, documented, checked when the course is imported.

``dlfund.setup(unit=7, ...)`` returns a run configuration whose settings are
``dlfund.course.settings.unit07.SMOKE`` or ``FULL``; a notebook reads them as ``cfg.epochs`` or, for a
group, ``cfg.vit.dim``. ``dlfund units --settings 7`` prints them with their meaning.
"""

from __future__ import annotations

from types import ModuleType

from dlfund.course.settings.base import Settings, doc, explain, flatten, override

__all__ = ["Settings", "doc", "explain", "flatten", "override", "tiers"]


def tiers(module: ModuleType) -> dict[str, Settings]:
    """``{"smoke": module.SMOKE, "full": module.FULL}``, both of the module's settings class."""
    smoke, full = module.SMOKE, module.FULL
    if type(smoke) is not type(full):
        raise TypeError(f"{module.__name__}: SMOKE and FULL must be of one settings class")
    return {"smoke": smoke, "full": full}
