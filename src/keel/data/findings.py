"""What validating a frame found: per rule and column the refused rows with examples, problems
with the frame as a whole, and the report that holds them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

RULES = (
    "type",
    "timestamp",
    "null",
    "range",
    "category",
    "format",
    "duplicate_id",
    "duplicate_row",
    "duplicate_id_across_versions",
)
"""Row rules in the order a refused row is attributed to: the first rule it breaks."""

EXAMPLES = 5
"""Example cells kept per failure."""


@dataclass
class Failure:
    """The rows one rule refused in one column (column is None for whole-row rules)."""

    rule: str
    column: str | None
    rows: np.ndarray
    examples: list[dict[str, Any]]
    expected: str

    @property
    def count(self) -> int:
        return len(self.rows)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "column": self.column,
            "count": self.count,
            "expected": self.expected,
            "examples": self.examples,
        }


@dataclass
class SchemaIssue:
    """A problem with the frame as a whole: a missing or unexpected column, a wrong type."""

    rule: str
    column: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class ValidationReport:
    """What a contract found in a frame (frozen: later checks return a new report, see
    `with_failures`, `with_k_anonymity`).

    Attributes:
        rows: rows checked.
        failures: per rule and column, the refused rows with examples.
        schema_issues: problems with the frame as a whole.
        bad_rows: sorted 0-based positions of every refused row.
        cleaned: the frame after cleaning and typing (all rows, good and bad).
    """

    contract: str
    rows: int
    failures: tuple[Failure, ...]
    schema_issues: tuple[SchemaIssue, ...]
    bad_rows: np.ndarray
    max_bad_share: float
    cleaned: pl.DataFrame = field(repr=False)
    k_anonymity: int | None = None
    k_anonymity_target: int | None = None
    unseen_categories: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per column, values outside its categories that were kept (`unseen: keep`) or mapped to
    `__other__` (`unseen: other`), with how many rows held each: a signal, not a refusal."""
    rules: tuple[tuple[str, str | None, str], ...] = ()
    """Every row rule the contract states, as (rule, column, expected), refusing or not."""

    @property
    def bad_share(self) -> float:
        return len(self.bad_rows) / self.rows if self.rows else 0.0

    @property
    def counts_by_rule(self) -> dict[str, int]:
        """Distinct refused rows per rule."""
        out: dict[str, int] = {}
        for rule in RULES:
            rows = [f.rows for f in self.failures if f.rule == rule]
            if rows:
                out[rule] = len(np.unique(np.concatenate(rows)))
        return out

    @property
    def counts_by_check(self) -> dict[str, int]:
        """Refused rows per `column:rule`."""
        return {f"{f.column or '*'}:{f.rule}": f.count for f in self.failures}

    @property
    def refusals(self) -> list[dict[str, Any]]:
        """Every rule the contract states and how many rows it refused (0 included), then
        rules found outside the contract (ids repeated from earlier versions, per version)."""
        counts: dict[tuple[str, str | None], int] = {}
        for f in self.failures:
            counts[(f.rule, f.column)] = counts.get((f.rule, f.column), 0) + f.count
        stated = {(rule, column) for rule, column, _ in self.rules}
        out = [
            {
                "rule": rule,
                "column": column,
                "expected": expected,
                "rows": counts.get((rule, column), 0),
            }
            for rule, column, expected in self.rules
        ]
        out += [
            {"rule": f.rule, "column": f.column, "expected": f.expected, "rows": f.count}
            for f in self.failures
            if (f.rule, f.column) not in stated
        ]
        return out

    def with_failures(self, extra: Sequence[Failure]) -> ValidationReport:
        """This report with more refused rows (ingest's cross-version check), `bad_rows`
        recomputed."""
        if not extra:
            return self
        failures = (*self.failures, *extra)
        bad = np.unique(np.concatenate([f.rows for f in failures]))
        return dataclasses.replace(self, failures=failures, bad_rows=bad)

    def with_k_anonymity(self, k: int | None) -> ValidationReport:
        """This report with the k-anonymity measured on the rows it keeps."""
        return dataclasses.replace(self, k_anonymity=k)

    @property
    def passed(self) -> bool:
        k_ok = (
            self.k_anonymity_target is None
            or self.k_anonymity is None
            or self.k_anonymity >= self.k_anonymity_target
        )
        return not self.schema_issues and self.bad_share <= self.max_bad_share and k_ok

    def first_rules(self) -> tuple[np.ndarray, list[str], list[str | None]]:
        """For every refused row, the first rule it broke (in `RULES` order) and its column."""
        order = {rule: i for i, rule in enumerate(RULES)}
        chosen: dict[int, tuple[int, str, str | None]] = {}
        for f in sorted(self.failures, key=lambda f: order[f.rule]):
            rank = order[f.rule]
            for row in f.rows.tolist():
                if row not in chosen:
                    chosen[row] = (rank, f.rule, f.column)
        rows = np.array(sorted(chosen), dtype=np.int64)
        return rows, [chosen[r][1] for r in rows.tolist()], [chosen[r][2] for r in rows.tolist()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "contract": self.contract,
            "rows": self.rows,
            "bad_rows": len(self.bad_rows),
            "bad_share": round(self.bad_share, 6),
            "max_bad_share": self.max_bad_share,
            "passed": self.passed,
            "counts_by_rule": self.counts_by_rule,
            "schema_issues": [s.to_dict() for s in self.schema_issues],
            "failures": [f.to_dict() for f in self.failures],
            "refusals": self.refusals,
            "unseen_categories": self.unseen_categories,
            "k_anonymity": self.k_anonymity,
            "k_anonymity_target": self.k_anonymity_target,
        }


def failure(
    raw: pl.DataFrame, rule: str, column: str | None, expected: str, rows: np.ndarray
) -> Failure:
    examples = []
    for r in rows[:EXAMPLES].tolist():
        value = raw.get_column(column)[r] if column is not None else None
        examples.append({"row": r, "value": jsonable(value)})
    return Failure(rule, column, rows, examples, expected)


def jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value
