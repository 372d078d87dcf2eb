"""Validating a frame against a contract: every row and cell, every failure kept.

The whole check is a handful of Polars expressions evaluated in two parallel `select`s: one
that cleans and types each column (only where the column needs it), one that computes every
rule's mask at once. Failing rows are then gathered per rule. This is the same work a
hand-written Polars validator does; `bench/data_check.py` measures it against one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from keel.data.contract import OTHER, Column, Contract
from keel.data.datetimes import (
    NAIVE_FORMATS,
    ZONE_PATTERN,
    formatted_datetime,
    iso_datetime,
    typed_datetime,
)
from keel.data.pii import FORMAT_PATTERNS
from keel.data.sources import read_source

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

SCHEMA_RULES = ("missing_column", "extra_column", "dtype")

_POLARS_TYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "string": pl.String(),
    "category": pl.String(),
    "datetime": pl.Datetime("us"),
}
ISO_FORMATS = NAIVE_FORMATS
"""Naive formats tried, in order, for a date-time column whose contract names no format (zoned
ISO spellings are tried too: see `keel.data.datetimes`)."""
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_EXAMPLES = 5
_FORMAT_WORDS = {
    "email": "an email address",
    "phone": "a phone number",
    "ip": "an IPv4 address",
    "iban": "an IBAN",
    "card": "a card number",
    "date": "a date like 2024-01-31",
}


def polars_type(col: Column) -> pl.DataType:
    """The Polars type a contract column is stored as in a dataset version."""
    return _POLARS_TYPES[col.type]


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


@dataclass
class ValidationReport:
    """What a contract found in a frame.

    Attributes:
        rows: rows checked.
        failures: per rule and column, the refused rows with examples.
        schema_issues: problems with the frame as a whole.
        bad_rows: sorted 0-based positions of every refused row.
        cleaned: the frame after cleaning and typing (all rows, good and bad).
    """

    contract: str
    rows: int
    failures: list[Failure]
    schema_issues: list[SchemaIssue]
    bad_rows: np.ndarray
    max_bad_share: float
    cleaned: pl.DataFrame = field(repr=False)
    k_anonymity: int | None = None
    k_anonymity_target: int | None = None
    unseen_categories: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per column, values outside its categories that were kept (`unseen: keep`) or mapped to
    `__other__` (`unseen: other`), with how many rows held each: a signal, not a refusal."""
    rules: list[tuple[str, str | None, str]] = field(default_factory=list)
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

    def recount(self) -> None:
        """Recompute `bad_rows` after failures were added (ingest's cross-version check)."""
        self.bad_rows = (
            np.unique(np.concatenate([f.rows for f in self.failures]))
            if self.failures
            else np.zeros(0, dtype=np.int64)
        )

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


def validate(frame: Any, contract: Contract) -> ValidationReport:
    """Check every row and cell of a frame against a contract.

    Args:
        frame: a pandas or Polars frame, or a path to a CSV or Parquet file.
        contract: the contract to check against.

    Returns:
        A report whose `bad_rows` are the positions of the refused rows and whose
        `counts_by_rule` counts them per rule.

    >>> from keel.data import infer_contract
    >>> train = pl.DataFrame({"age": [31, 45, 27], "region": ["north", "south", "north"]})
    >>> contract = infer_contract(train)
    >>> report = validate(pl.DataFrame({"age": [33, -4], "region": ["north", "mars"]}), contract)
    >>> report.bad_rows.tolist(), report.counts_by_rule, report.unseen_categories
    ([1], {'range': 1}, {'region': {'mars': 1}})
    """
    df = frame if isinstance(frame, pl.DataFrame) else read_source(frame).frame
    return _validate(df, contract)


def _validate(df: pl.DataFrame, contract: Contract) -> ValidationReport:
    schema = df.schema
    issues: list[SchemaIssue] = []
    for col in contract.columns:
        if col.name not in schema:
            issues.append(
                SchemaIssue(
                    "missing_column",
                    col.name,
                    f"Column {col.name!r} ({col.type}) is missing; the frame has {list(schema)}.",
                )
            )
    if contract.extra_columns == "reject":
        for name in schema:
            if name not in contract.names:
                issues.append(
                    SchemaIssue(
                        "extra_column",
                        name,
                        f"Column {name!r} is not in contract {contract.name!r}; add it to the "
                        "contract or set `extra_columns: drop`.",
                    )
                )
    present = [c for c in contract.columns if c.name in schema]

    # 1) clean and type: one parallel select; columns that already fit are passed through.
    typed_exprs: list[pl.Expr] = []
    parse_checks: list[tuple[Column, str]] = []
    markers = list(contract.missing_markers)
    zoned = _zoned_columns(df, present)
    for col in present:
        value, parse_failed, issue = _typed(col, schema[col.name], markers, col.name in zoned)
        if issue is not None:
            issues.append(issue)
        typed_exprs.append(value.alias(col.name))
        if parse_failed is not None:
            flag = f"__parse__{col.name}"
            typed_exprs.append(parse_failed.fill_null(False).alias(flag))
            parse_checks.append((col, flag))
    first: pl.Expr | None = None
    if contract.duplicate_rows == "reject" and present:
        # duplicates are judged on rows as they arrived: an exact repeat of an earlier row
        typed_exprs.append(
            pl.struct([c.name for c in present]).is_first_distinct().alias("__first_distinct")
        )
        first = pl.col("__first_distinct")
    work = df.select(typed_exprs) if typed_exprs else pl.DataFrame()

    # 2) every rule's mask in one parallel select.
    checks: list[tuple[str, str | None, str, pl.Expr]] = []
    for col, flag in parse_checks:
        rule = "timestamp" if col.type == "datetime" else "type"
        checks.append((rule, col.name, _expected_type(col), pl.col(flag)))
    parse_flags = {c.name: flag for c, flag in parse_checks}
    # integer ids are counted in NumPy on another thread while Polars computes the rest
    # (Polars releases the GIL while it works, so the two overlap on two cores)
    counted_ids = counted_columns(work, present)
    with ThreadPoolExecutor(max_workers=1) as pool:
        counted = pool.submit(_integer_duplicates, df, work, counted_ids, first is not None)
        within, has_nan = _summaries(work, present)
        for col in present:
            checks += _row_checks(
                col,
                parse_flags.get(col.name),
                first,
                no_nulls=work.get_column(col.name).null_count() == 0 and col.name not in has_nan,
                in_range=col.name in within,
                has_nan=col.name in has_nan,
                skip_unique=col.name in counted_ids,
            )
        if first is not None:
            checks.append(("duplicate_row", None, "each row at most once", ~first))
        failures = _gather(df, work, checks)
        failures += counted.result()
    work, failures, unseen = _reclean(df, work, failures, contract, markers)
    work = _nan_to_null(work, sorted(has_nan))
    bad = (
        np.unique(np.concatenate([f.rows for f in failures]))
        if failures
        else np.zeros(0, dtype=np.int64)
    )
    cleaned = work.select([c.name for c in present]) if present else work
    report = ValidationReport(
        contract=contract.name,
        rows=df.height,
        failures=failures,
        schema_issues=issues,
        bad_rows=bad,
        max_bad_share=contract.max_bad_share,
        cleaned=cleaned,
        k_anonymity_target=contract.k_anonymity,
        unseen_categories=unseen,
        rules=stated_rules(contract, present),
    )
    return report


def stated_rules(contract: Contract, present: list[Column]) -> list[tuple[str, str | None, str]]:
    """The row rules a contract states for the columns present, in report order."""
    out: list[tuple[str, str | None, str]] = []
    for col in present:
        if col.type not in ("string", "category"):
            out.append(
                ("timestamp" if col.type == "datetime" else "type", col.name, _expected_type(col))
            )
        if not col.nullable:
            out.append(("null", col.name, "a value (the column is not nullable)"))
        if col.min is not None or col.max is not None:
            out.append(("range", col.name, _range_words(col)))
        if col.refuses_unseen:
            out.append(("category", col.name, _category_words(col)))
        if col.format is not None:
            out.append(("format", col.name, _FORMAT_WORDS[col.format]))
        if col.unique:
            out.append(("duplicate_id", col.name, "each value once"))
    if contract.duplicate_rows == "reject" and present:
        out.append(("duplicate_row", None, "each row at most once"))
    return out


def _range_words(col: Column) -> str:
    return f"between {_show(col.min, '-inf')} and {_show(col.max, '+inf')}"


def _category_words(col: Column) -> str:
    cats = col.categories or ()
    return "one of " + ", ".join(cats[:8]) + (" ..." if len(cats) > 8 else "")


def _expected_type(col: Column) -> str:
    if col.type == "datetime":
        fmt = f" in the format {col.datetime_format!r}" if col.datetime_format else ""
        return f"a date-time{fmt}"
    return {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(
        col.type, col.type
    )


def _clean_text(expr: pl.Expr, markers: list[str], case: str | None) -> pl.Expr:
    stripped = expr.str.strip_chars()
    if case == "lower":
        stripped = stripped.str.to_lowercase()
    elif case == "upper":
        stripped = stripped.str.to_uppercase()
    return pl.when(stripped.is_in(markers)).then(None).otherwise(stripped)


def _zoned_columns(df: pl.DataFrame, present: list[Column]) -> set[str]:
    """ISO date-time text columns where some value ends in a zone (one parallel scan)."""
    names = [
        c.name
        for c in present
        if c.type == "datetime" and not c.datetime_format and df.schema[c.name] == pl.String
    ]
    if not names:
        return set()
    found = df.select(pl.col(n).str.contains(ZONE_PATTERN).any().alias(n) for n in names).row(0)
    return {n for n, hit in zip(names, found, strict=True) if hit}


def _typed(
    col: Column, dtype: pl.DataType, markers: list[str], zoned: bool = True
) -> tuple[pl.Expr, pl.Expr | None, SchemaIssue | None]:
    """The cleaned, typed value of a column, and a mask of values that did not parse."""
    src = pl.col(col.name)
    target = polars_type(col)
    if dtype == pl.String and col.type == "category" and col.categories is not None:
        # Measured: stripping and marker-matching every cell costs ~17 ms per 1M-row column,
        # more than every other check together. A value that already is an allowed category
        # is clean, so only the rows that miss are cleaned, after the masks (_reclean).
        return src, None, None
    if dtype == pl.String:
        text = _clean_text(src, markers, col.case)
        if col.type in ("string", "category"):
            value = text
        elif col.type == "bool":
            low = text.str.to_lowercase()
            value = (
                pl.when(low.is_in(_TRUE))
                .then(True)
                .when(low.is_in(_FALSE))
                .then(False)
                .otherwise(None)
            )
        elif col.type == "datetime":
            if col.datetime_format:
                value = formatted_datetime(text, col.datetime_format, col.timezone)
            else:
                # ISO 8601 in any of its usual spellings ('T' or ' ', with or without fraction,
                # with or without a zone): zoned values become UTC
                value = iso_datetime(text, col.timezone, zoned=zoned)
        elif col.type == "int":
            as_float = text.str.replace_all("_", "").cast(pl.Float64, strict=False)
            value = (
                pl.when(as_float.round(0) == as_float)
                .then(as_float)
                .otherwise(None)
                .cast(pl.Int64, strict=False)
            )
        else:
            value = text.cast(pl.Float64, strict=False)
            value = value.fill_nan(None)
        return value, text.is_not_null() & value.is_null(), None
    # A typed source (Parquet, pandas, Polars).
    if col.type == "datetime" and isinstance(dtype, pl.Datetime | pl.Date):
        # a zoned column becomes naive UTC; a naive one is localized when the contract names
        # its zone; typed values need no parsing, so no value is refused here
        if dtype == target and col.timezone is None:
            return src, None, None
        value = typed_datetime(src, dtype, col.timezone)
        return value, src.is_not_null() & value.is_null(), None
    if dtype == target:
        value = src
        # NaN in a typed float column counts as missing: the masks see it (_row_checks) and
        # _nan_to_null stores it as null; filling every float column up front costs a copy
        if col.type in ("string", "category") and (col.case or _needs_text_clean(col)):
            value = _clean_text(src, markers, col.case)
        return value, None, None
    numeric = dtype.is_numeric() or dtype == pl.Boolean
    if col.type in ("int", "float") and numeric:
        as_float = src.cast(pl.Float64, strict=False).fill_nan(None)
        if col.type == "float":
            return as_float, None, None
        value = pl.when(as_float.round(0) == as_float).then(as_float).otherwise(None)
        return value.cast(pl.Int64, strict=False), src.is_not_null() & value.is_null(), None
    if col.type in ("string", "category"):
        text = src.cast(pl.String, strict=False)
        return _clean_text(text, markers, col.case), None, None
    if col.type == "bool" and dtype.is_integer():
        return src.cast(pl.Boolean), src.is_not_null() & ~src.is_in([0, 1]), None
    issue = SchemaIssue(
        "dtype",
        col.name,
        f"Column {col.name!r} has dtype {dtype}; expected {col.type}. Fix the source data or "
        f"declare `type:` for {col.name!r} in the contract.",
    )
    return pl.lit(None, dtype=target).alias(col.name), None, issue


def _needs_text_clean(col: Column) -> bool:
    # Typed free text from Parquet or a frame is cleaned only where a format restricts it:
    # stray spaces in free text are the data's, not an error.
    return col.format is not None


def _summaries(work: pl.DataFrame, present: list[Column]) -> tuple[set[str], set[str]]:
    """Columns whose every value is within range, and float columns that hold a NaN.

    One parallel pass of min, max and NaN presence settles the range check of every column
    whose extremes are inside its bounds, so its row mask is never built (measured: range
    masks were ~12 ms of ~95 ms on 1M rows x 22 columns; the summaries cost ~3 ms).
    """
    aggs: list[pl.Expr] = []
    schema = work.schema  # built once: each `.schema` call costs a walk over every column
    for col in present:
        dtype = schema[col.name]
        v = pl.col(col.name)
        if col.type == "float" and dtype.is_float():
            aggs.append(v.is_nan().any().alias(f"{col.name}\0nan"))
        if (col.min is not None or col.max is not None) and (
            dtype.is_numeric() or dtype.is_temporal()
        ):
            aggs += [v.min().alias(f"{col.name}\0min"), v.max().alias(f"{col.name}\0max")]
    if not aggs:
        return set(), set()
    summary = work.select(aggs).row(0, named=True)
    has_nan = {c.name for c in present if summary.get(f"{c.name}\0nan")}
    within = set()
    for col in present:
        lo, hi = summary.get(f"{col.name}\0min"), summary.get(f"{col.name}\0max")
        if lo is None or hi is None or col.name in has_nan:
            continue
        if (col.min is None or lo >= col.min) and (col.max is None or hi <= col.max):
            within.add(col.name)
    return within, has_nan


def counted_columns(work: pl.DataFrame, present: list[Column]) -> set[str]:
    """Unique columns whose duplicates are found by counting (`_integer_duplicates`)."""
    out = set()
    for col in present:
        if not col.unique:
            continue
        s = work.get_column(col.name)
        if not s.dtype.is_integer() or s.len() == 0 or s.null_count() == s.len():
            continue
        if int(s.max()) - int(s.min()) <= 8 * s.len() + 1024:  # type: ignore[arg-type]
            out.add(col.name)
    return out


def _integer_duplicates(
    raw: pl.DataFrame, work: pl.DataFrame, columns: set[str], after_first: bool
) -> list[Failure]:
    """Duplicate masks of unique integer columns by counting, not hashing.

    Measured: `is_duplicated` on 1M int64 ids takes ~57 ms on one core, the largest single
    cost of a validation. Ids of integer type usually span a range near their count, where a
    bincount over value - min finds every repeat in a few milliseconds. Wider ranges, and ids of
    other types, keep Polars' hash-based check.
    """
    out = []
    for name in sorted(columns):
        s = work.get_column(name)
        lo, hi = int(s.min()), int(s.max())  # type: ignore[arg-type]
        offsets = s.fill_null(lo).to_numpy() if s.null_count() else s.to_numpy()
        offsets = offsets - lo  # one copy, in the column's own integer type
        valid: np.ndarray | None = None
        if s.null_count():
            valid = s.is_not_null().to_numpy()
        if after_first:
            first = work.get_column("__first_distinct").to_numpy()
            valid = first if valid is None else valid & first
        counts = np.bincount(offsets if valid is None else offsets[valid], minlength=hi - lo + 1)
        dup = counts[offsets] > 1
        rows = np.flatnonzero(dup if valid is None else dup & valid).astype(np.int64)
        if len(rows):
            out.append(_failure(raw, "duplicate_id", name, "each value once", rows))
    return out


def _row_checks(
    col: Column,
    parse_flag: str | None,
    first: pl.Expr | None,
    no_nulls: bool = False,
    in_range: bool = False,
    has_nan: bool = True,
    skip_unique: bool = False,
) -> list[tuple[str, str | None, str, pl.Expr]]:
    v = pl.col(col.name)
    out: list[tuple[str, str | None, str, pl.Expr]] = []
    # a column without nulls or NaN (the null count is known for free) needs no null mask
    if not col.nullable and not no_nulls:
        null = v.is_null() if parse_flag is None else v.is_null() & ~pl.col(parse_flag)
        if col.type == "float" and has_nan:
            null = null | v.is_nan()
        out.append(("null", col.name, "a value (the column is not nullable)", null))
    if (col.min is not None or col.max is not None) and not in_range:
        lo, hi = _bound(col.min), _bound(col.max)
        if lo is not None and hi is not None:
            mask = ~v.is_between(lo, hi)
        elif lo is not None:
            mask = v < lo
        else:
            mask = v > hi
        if col.type == "float" and has_nan:
            mask = mask & ~v.is_nan()
        out.append(("range", col.name, _range_words(col), mask))
    if col.categories is not None:
        # under keep and other the mask finds the unseen values; _reclean keeps or maps them
        allowed = list(col.categories) if col.refuses_unseen else [*col.categories, OTHER]
        out.append(("category", col.name, _category_words(col), ~v.is_in(allowed)))
    if col.format is not None:
        pattern = FORMAT_PATTERNS[col.format]
        what = _FORMAT_WORDS[col.format]
        out.append(("format", col.name, what, ~v.str.contains(pattern)))
    if col.unique and not skip_unique:
        if first is None:
            dup = v.is_duplicated() & v.is_not_null()
        # an exact repeat of an earlier row is a duplicate row; its id is not a second id
        else:
            kept = pl.when(first).then(v).otherwise(None)
            dup = kept.is_duplicated() & kept.is_not_null()
        out.append(("duplicate_id", col.name, "each value once", dup))
    return out


def _nan_to_null(work: pl.DataFrame, floats: list[str]) -> pl.DataFrame:
    """NaN is stored as null; only the float columns that hold a NaN are rewritten."""
    if not floats:
        return work
    has_nan = work.select(pl.col(floats).is_nan().any()).row(0)
    fix = [name for name, nan in zip(floats, has_nan, strict=True) if nan]
    return work.with_columns(pl.col(fix).fill_nan(None)) if fix else work


def _reclean(
    raw: pl.DataFrame,
    work: pl.DataFrame,
    failures: list[Failure],
    contract: Contract,
    markers: list[str],
) -> tuple[pl.DataFrame, list[Failure], dict[str, dict[str, int]]]:
    """Clean the category cells that missed the allowed set, and judge them again.

    A cell that is an allowed value once trimmed and case-folded is accepted and stored
    cleaned; a missing marker becomes a null (refused for 'null' where the column needs a
    value). Anything else is unseen: kept as cleaned under `unseen: keep`, stored as __other__
    under `unseen: other` (both counted in the returned signal), refused otherwise.
    """
    out: list[Failure] = []
    nulls: dict[str, tuple[np.ndarray, list[Any]]] = {}
    unseen: dict[str, dict[str, int]] = {}
    for f in failures:
        col = contract.column(f.column) if f.column in contract.names else None
        if f.rule != "category" or col is None or col.categories is None:
            out.append(f)
            continue
        raw_cells = work.get_column(col.name).gather(f.rows)
        cleaned = pl.select(_clean_text(pl.lit(raw_cells), markers, col.case)).to_series()
        allowed = list(col.categories) if col.refuses_unseen else [*col.categories, OTHER]
        ok = cleaned.is_in(allowed).fill_null(False).to_numpy()
        missing = cleaned.is_null().to_numpy()
        still_bad = ~ok & ~missing
        values = cleaned.to_list()
        if still_bad.any() and not col.refuses_unseen:
            seen: dict[str, int] = {}
            for v, bad in zip(values, still_bad, strict=True):
                if bad:
                    seen[v] = seen.get(v, 0) + 1
            unseen[col.name] = dict(sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])))
            if col.unseen == "other":
                values = [OTHER if bad else v for v, bad in zip(values, still_bad, strict=True)]
            still_bad = np.zeros(len(values), dtype=bool)
        changed = ~still_bad
        if changed.any():  # rewriting a column copies it: only when a kept value changes
            fixed = pl.Series(
                [v for v, c in zip(values, changed, strict=True) if c], dtype=pl.String
            )
            series = work.get_column(col.name).scatter(f.rows[changed], fixed)
            work = work.with_columns(series.alias(col.name))
        if missing.any() and not col.nullable:
            nulls[col.name] = (f.rows[missing], raw_cells.filter(pl.Series(missing)).to_list())
        if still_bad.any():
            # examples are the refused rows' own values: the first rows the mask found may
            # have been accepted once cleaned, so the mask's examples cannot be reused
            out.append(_failure(raw, f.rule, f.column, f.expected, f.rows[still_bad]))
    for name, (rows, values) in nulls.items():
        existing = next((f for f in out if f.rule == "null" and f.column == name), None)
        merged = np.union1d(existing.rows, rows) if existing else rows
        arrived = dict(zip(rows.tolist(), values, strict=True))
        ex = [{"row": r, "value": arrived.get(r)} for r in merged[:_EXAMPLES].tolist()]
        if existing:
            out.remove(existing)
        out.append(Failure("null", name, merged, ex, "a value (the column is not nullable)"))
    order = {name: i for i, name in enumerate(contract.names)}
    out.sort(key=lambda f: (order.get(f.column or "", len(order)), RULES.index(f.rule)))
    return work, out, unseen


def _bound(value: float | dt.datetime | None) -> Any:
    return pl.lit(value, dtype=pl.Datetime("us")) if isinstance(value, dt.datetime) else value


def _show(value: float | dt.datetime | None, missing: str = "-inf") -> str:
    if value is None:
        return missing
    return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else f"{value:g}"


def _gather(
    raw: pl.DataFrame, work: pl.DataFrame, checks: Iterable[tuple[str, str | None, str, pl.Expr]]
) -> list[Failure]:
    checks = list(checks)
    if not checks:
        return []
    # Each check's failing positions come straight out of one parallel select, one list per
    # check; the boolean masks are never materialized as columns (measured: keeping them and
    # scanning them again with any() and arg_true() cost as much as computing them).
    found = work.select(
        [
            pl.arg_where(e.fill_null(False)).implode().alias(f"m{i}")
            for i, (*_, e) in enumerate(checks)
        ]
    )
    failures = []
    for i, (rule, column, expected, _) in enumerate(checks):
        positions = found.get_column(f"m{i}")[0]
        if len(positions) == 0:
            continue
        failures.append(
            _failure(raw, rule, column, expected, positions.to_numpy().astype(np.int64))
        )
    return failures


def _failure(
    raw: pl.DataFrame, rule: str, column: str | None, expected: str, rows: np.ndarray
) -> Failure:
    examples = []
    for r in rows[:_EXAMPLES].tolist():
        value = raw.get_column(column)[r] if column is not None else None
        examples.append({"row": r, "value": _jsonable(value)})
    return Failure(rule, column, rows, examples, expected)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value
