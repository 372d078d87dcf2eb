"""Injecting known faults into clean data, so that a contract's catch can be counted exactly.

Used by the tests, the demo and the benchmarks: every fault lands on its own row, and the truth
says which rows hold which fault and which rule must refuse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import polars as pl

from keel.data.contract import Column, Contract

FAULT_KINDS = ("type", "range", "null", "category", "duplicate_id", "duplicate_row")


@dataclass
class FaultTruth:
    """Where faults were put: per rule, the 0-based rows that must be refused for it."""

    rows_by_rule: dict[str, list[int]] = field(default_factory=dict)

    @property
    def bad_rows(self) -> list[int]:
        return sorted({r for rows in self.rows_by_rule.values() for r in rows})

    def add(self, rule: str, rows: Sequence[int]) -> None:
        self.rows_by_rule.setdefault(rule, []).extend(int(r) for r in rows)


def inject_faults(
    frame: pl.DataFrame,
    contract: Contract,
    *,
    rate: float = 0.02,
    seed: int = 0,
    kinds: Sequence[str] = FAULT_KINDS,
) -> tuple[pl.DataFrame, FaultTruth]:
    """Put realistic faults into a clean frame, each on its own row.

    The result is all text (as a CSV would arrive), so type faults can be real junk strings.
    About `rate` of the rows get a fault, shared evenly among the kinds that the contract can
    catch (a range fault needs a column with a range, and so on).

    Returns:
        The faulty frame and the truth: per rule, the rows that must be refused.
    """
    rng = np.random.default_rng(seed)
    text = frame.select(pl.all().cast(pl.String))
    cols = {c: text.get_column(c).to_list() for c in text.columns}
    n = frame.height
    usable = _usable(contract, cols)
    active = [k for k in kinds if usable.get(k)]
    per_kind = max(1, int(n * rate / max(1, len(active))))
    order = rng.permutation(n)
    truth = FaultTruth()
    pos = 0

    def take(count: int) -> np.ndarray:
        nonlocal pos
        picked = order[pos : pos + count]
        pos += count
        return picked

    for kind in active:
        targets = take(per_kind)
        if kind == "duplicate_row" or kind == "duplicate_id":
            _duplicate(kind, cols, take(per_kind), targets, usable, truth)
            continue
        for row in targets.tolist():
            spec = usable[kind][int(rng.integers(len(usable[kind])))]
            cols[spec.name][row] = _bad_cell(kind, spec, rng)
            truth.add(kind, [row])
    out = pl.DataFrame({c: pl.Series(c, v, dtype=pl.String) for c, v in cols.items()})
    return out, truth


def _usable(contract: Contract, cols: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Per fault kind, the columns (or, for whole-row kinds, a None marker) it can go in."""
    numeric = [c for c in contract.columns if c.type in ("int", "float") and c.name in cols]
    return {
        "type": numeric,
        "range": [c for c in numeric if c.min is not None or c.max is not None],
        "null": [c for c in contract.columns if not c.nullable and c.name in cols],
        "category": [
            c for c in contract.columns if c.categories and c.refuses_unseen and c.name in cols
        ],
        "duplicate_id": [c for c in contract.columns if c.unique and c.name in cols],
        "duplicate_row": [None] if contract.duplicate_rows == "reject" else [],
    }


def _duplicate(
    kind: str,
    cols: dict[str, list[Any]],
    sources: np.ndarray,
    targets: np.ndarray,
    usable: dict[str, list[Any]],
    truth: FaultTruth,
) -> None:
    """Copy each source row (or its id) onto the later of the pair."""
    for src, dst in zip(sources.tolist(), targets.tolist(), strict=True):
        src, dst = min(src, dst), max(src, dst)
        if kind == "duplicate_row":
            for c in cols:
                cols[c][dst] = cols[c][src]
            truth.add("duplicate_row", [dst])
        else:
            col = usable["duplicate_id"][0].name
            cols[col][dst] = cols[col][src]
            truth.add("duplicate_id", [src, dst])


def _bad_cell(kind: str, spec: Column, rng: np.random.Generator) -> str | None:
    """A cell that breaks rule `kind` in column `spec`."""
    if kind == "type":
        return str(rng.choice(["n/a?", "abc", "1,5", "--", "12.3.4", "#REF!"]))
    if kind == "range":
        up = spec.max is not None
        bound = cast(float, spec.max if up else spec.min)  # range faults go in numeric columns
        return str(_beyond(float(bound), up=up, integer=spec.type == "int"))
    if kind == "category":
        return f"UNSEEN_{int(rng.integers(1000))}"
    return None  # "null"


def _beyond(bound: float, *, up: bool, integer: bool) -> float | int:
    step = max(abs(bound), 1.0)
    value = bound + step if up else bound - step
    return int(value) if integer else value
