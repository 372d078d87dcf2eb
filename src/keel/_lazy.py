"""Package faces that import their modules on first use (PEP 562).

Measured: importing `keel.store`, `keel.data` and `keel.monitor` eagerly pulled in SQLAlchemy,
pydantic, scipy.stats and the validation engine; `keel.cli` took 1.6 s to import, 0.35 s lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that loads `names[attr]` (a module path) and returns its attr."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        return getattr(importlib.import_module(module), name)

    return __getattr__
