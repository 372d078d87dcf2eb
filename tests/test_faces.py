"""Package faces: every cross-package import goes through a face, and every name a face lists
resolves (the lazy faces load names on first use, so a stale entry only fails when touched)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGES = sorted(p.parent.name for p in (SRC / "keel").glob("*/__init__.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_listed_name_resolves(package: str) -> None:
    """`getattr(pkg, name)` works for each name in `__all__`, listed once."""
    module = importlib.import_module(f"keel.{package}")
    names = list(getattr(module, "__all__", []))
    assert len(names) == len(set(names)), f"keel.{package}.__all__ lists a name twice"
    for name in names:
        assert getattr(module, name) is not None, f"keel.{package}.{name}"


def _bypasses(path: Path) -> list[str]:
    package = path.relative_to(SRC / "keel").parts[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] == "keel" and len(parts) > 2 and parts[1] != package:
                found.append(f"{path.relative_to(SRC)}:{node.lineno} from {node.module}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "keel" and len(parts) > 2 and parts[1] != package:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} import {alias.name}")
    return found


def test_cross_package_imports_use_faces() -> None:
    """A module imports another layer only through its face (`from keel.monitor import X`)."""
    modules = [
        p for p in (SRC / "keel").rglob("*.py") if len(p.relative_to(SRC / "keel").parts) > 1
    ]
    found = [b for path in modules for b in _bypasses(path)]
    assert not found, "imports that bypass a face:\n" + "\n".join(found)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_name_is_also_a_submodule(package: str) -> None:
    """A lazy face's name that is also a submodule's name is shadowed by the submodule once
    anything imports it (`keel.loop.decide` the module hid `decide` the function)."""
    module = importlib.import_module(f"keel.{package}")
    submodules = {p.stem for p in (SRC / "keel" / package).glob("*.py")}
    assert not submodules & set(getattr(module, "__all__", []))
