"""Where refused rows go: the quarantine frame (rows as they arrived, with rule and reason), the
good rows that are versioned, and the transforms a version records in its lineage."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import polars as pl

from keel.data.contract import Contract
from keel.data.findings import Failure, ValidationReport


def id_failure(report: ValidationReport, column: str, rows: np.ndarray, expected: str) -> Failure:
    values = report.cleaned.get_column(column)
    examples = [{"row": r, "value": _plain(values[r])} for r in rows[:5].tolist()]
    return Failure("duplicate_id_across_versions", column, rows, examples, expected)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.datetime | dt.date) else value


def good_rows(report: ValidationReport) -> pl.DataFrame:
    if not len(report.bad_rows):
        return report.cleaned
    keep = np.ones(report.rows, dtype=bool)
    keep[report.bad_rows] = False
    return report.cleaned.filter(pl.Series(keep))


def quarantine_frame(
    raw: pl.DataFrame,
    report: ValidationReport,
    first: tuple[np.ndarray, list[str], list[str | None]],
) -> pl.DataFrame:
    """The refused rows as they arrived (as text), with where they were and why."""
    rows, rules, columns = first
    # per row: one rule on one column can have several reasons (ids repeated from different
    # earlier versions), so each row gets the reason of the failure that holds it
    reasons: dict[tuple[int, str, str | None], str] = {}
    for f in report.failures:
        for r in f.rows.tolist():
            reasons.setdefault((r, f.rule, f.column), f.expected)
    refused = (
        raw.select(pl.all().cast(pl.String)).gather(rows)
        if len(rows)
        else raw.clear().select(pl.all().cast(pl.String))
    )
    all_rules: dict[int, list[str]] = {}
    for f in report.failures:
        for r in f.rows.tolist():
            all_rules.setdefault(r, []).append(f"{f.column or '*'}:{f.rule}")
    return refused.with_columns(
        pl.Series("source_row", rows, dtype=pl.Int64),
        pl.Series("rule", rules, dtype=pl.String),
        pl.Series("column", columns, dtype=pl.String),
        pl.Series(
            "reason",
            [
                f"{c or 'row'}: expected {reasons[(row, r, c)]}"
                for row, r, c in zip(rows.tolist(), rules, columns, strict=True)
            ],
            dtype=pl.String,
        ),
        pl.Series("all_rules", [";".join(all_rules[r]) for r in rows.tolist()], dtype=pl.String),
    )


def transforms(raw: pl.DataFrame, contract: Contract) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "step": "clean",
            "missing_markers": list(contract.missing_markers),
            "trimmed": [
                c.name
                for c in contract.columns
                if c.name in raw.columns and raw.schema[c.name] == pl.String
            ],
            "case": {c.name: c.case for c in contract.columns if c.case},
            "typed_from_text": [
                c.name
                for c in contract.columns
                if c.name in raw.columns
                and raw.schema[c.name] == pl.String
                and c.type not in ("string", "category")
            ],
            "unseen_to_other": [
                c.name for c in contract.columns if c.categories and c.unseen == "other"
            ],
        },
        {"step": "quarantine", "rules": "first broken rule per row, in keel.data.RULES order"},
    ]
    anonymized = {c.name: c.anonymize.method for c in contract.columns if c.anonymize}
    if anonymized:
        out.append(
            {"step": "anonymize", "columns": anonymized, "key": "settings.secret_key (HMAC-SHA256)"}
        )
    extra = [c for c in raw.columns if c not in contract.names]
    if extra:
        out.append({"step": "drop_extra_columns", "columns": extra})
    return out
