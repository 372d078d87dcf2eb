"""The code's shape (issue 13): no import cycle between modules, no module over 500 lines, no
function over 80 lines except declarative tables. `scripts/shape.py` prints the same list."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "shape.py"


def test_shape() -> None:
    spec = importlib.util.spec_from_file_location("shape", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    shape = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shape)
    assert shape.violations() == []
