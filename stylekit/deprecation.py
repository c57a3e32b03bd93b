"""Names that moved or were renamed keep working at their old import path, with a :class:`DeprecationWarning`.

A module whose names moved ends with ``__getattr__ = moved(__name__, {"old": "new.module:new_name"})``;
Python calls it only for names the module no longer defines (PEP 562). The new module is imported on
first use, so an old path never pulls its new home into the import graph.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any, Callable


def moved(module: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving each old name from ``"package.module:name"``, warning once per use site."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        target_module, target = names[name].split(":")
        where = (f"is now spelled {module}.{target}" if target_module == module
                 else f"moved to {target_module}.{target}; import it from there")
        warnings.warn(f"{module}.{name} {where} (the old name will be removed)", DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(target_module), target)

    return __getattr__
