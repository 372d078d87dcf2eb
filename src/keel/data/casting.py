"""Cleaning and typing a column's values as its contract says, as Polars expressions: text
trimmed and missing markers nulled, numbers, booleans and date-times parsed, typed sources cast.

Each function returns the typed value and a mask of the values that did not parse, which
`keel.data.validation` turns into `type` and `timestamp` refusals.
"""

from __future__ import annotations

import polars as pl

from keel.data.contract import Column
from keel.data.datetimes import ZONE_PATTERN, formatted_datetime, iso_datetime, typed_datetime
from keel.data.findings import SchemaIssue

_POLARS_TYPES: dict[str, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "bool": pl.Boolean(),
    "string": pl.String(),
    "category": pl.String(),
    "datetime": pl.Datetime("us"),
}
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def polars_type(col: Column) -> pl.DataType:
    """The Polars type a contract column is stored as in a dataset version."""
    return _POLARS_TYPES[col.type]


def expected_type(col: Column) -> str:
    if col.type == "datetime":
        fmt = f" in the format {col.datetime_format!r}" if col.datetime_format else ""
        return f"a date-time{fmt}"
    return {"int": "a whole number", "float": "a number", "bool": "true or false"}.get(
        col.type, col.type
    )


def clean_text(expr: pl.Expr, markers: list[str], case: str | None) -> pl.Expr:
    stripped = expr.str.strip_chars()
    if case == "lower":
        stripped = stripped.str.to_lowercase()
    elif case == "upper":
        stripped = stripped.str.to_uppercase()
    return pl.when(stripped.is_in(markers)).then(None).otherwise(stripped)


def zoned_columns(df: pl.DataFrame, present: list[Column]) -> set[str]:
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


def typed(
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
        text = clean_text(src, markers, col.case)
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
            value = clean_text(src, markers, col.case)
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
        return clean_text(text, markers, col.case), None, None
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
