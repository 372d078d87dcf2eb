"""The code's shape, as issue 13 states it: no import cycle between modules, no module over
500 lines, no function over 80 lines except the declarative tables listed in ALLOWED.

Run: .venv/bin/python scripts/shape.py   (prints every violation; exit 1 if any)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "src"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
# Declarative tables: one literal, long because it lists things, not because it branches.
ALLOWED = {"keel.serve.openapi.openapi_document"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Modules `name` imports anywhere in its body (inside functions too: a hidden cycle is one)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names if alias.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
            edges.update(submodules)
            # `from pkg import submodule` needs pkg's __init__ only for its own names.
            if base in known and len(submodules) < len(node.names):
                edges.add(base)
    edges.discard(name)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def violations() -> list[str]:
    known = modules()
    problems = [
        f"import cycle: {' <-> '.join(c)}"
        for c in cycles({n: imports(n, p, known) for n, p in known.items()})
    ]
    for name, path in known.items():
        text = path.read_text()
        lines = text.count("\n")
        if lines > MAX_MODULE_LINES:
            problems.append(
                f"{path.relative_to(ROOT.parent)}: {lines} lines (at most {MAX_MODULE_LINES})"
            )
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES and f"{name}.{node.name}" not in ALLOWED:
                    problems.append(
                        f"{path.relative_to(ROOT.parent)}:{node.lineno} {node.name}: {length} lines "
                        f"(at most {MAX_FUNCTION_LINES})"
                    )
    return problems


if __name__ == "__main__":
    found = violations()
    print("\n".join(found) or "shape: ok")
    sys.exit(1 if found else 0)
