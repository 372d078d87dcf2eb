"""Inferring a contract from a frame: types, nullability, ranges, categories, formats, roles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import polars as pl

from keel.data.contract import Anonymize, Column, ColumnType, Contract, Role
from keel.data.pii import FORMAT_PATTERNS, detect_pii
from keel.data.sources import read_source
from keel.store import ContractError

DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.fZ",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y",
    "%m/%d/%Y",
)
_SAMPLE = 2000


def infer_contract(
    frame: Any,
    *,
    name: str | None = None,
    target: str | None = None,
    id: str | None = None,
    timestamp: str | None = None,
    segment: str | None = None,
    sensitive: Sequence[str] = (),
    pii: Sequence[str] = (),
    ignore: Sequence[str] = (),
    tolerance: float = 0.1,
    max_categories: int = 50,
    max_bad_share: float = 0.05,
) -> Contract:
    """Infer a contract from data.

    Numeric ranges are the observed ones widened by `tolerance` times their span, without ever
    crossing zero: a column that was never negative stays non-negative. Text columns with at most
    `max_categories` distinct values (and fewer than half the rows) become categories that reject
    unseen values. Columns that had no nulls refuse them. PII detectors add suggestions as
    comments; only the columns named in `pii` are anonymized. Exact repeats of a row are refused
    when an id or a timestamp says rows are unique, and allowed otherwise.

    Args:
        frame: a pandas or Polars frame, or a path to a CSV or Parquet file.
        name: the contract's name (default: the file's stem, or "frame").
        target, id, timestamp, segment: columns with those roles.
        sensitive: columns with the sensitive role (fairness is checked on them).
        pii: columns to anonymize, each with the method its detector suggests.
        ignore: columns kept in the data but never used as features (bookkeeping).
        tolerance: how far past the observed range values are still accepted, as a share of
            the range (0.1 = 10 %).

    Raises:
        ContractError: a named column does not exist, or the frame has no rows.
    """
    src = read_source(frame)
    df = src.frame
    if name is None:
        name = (
            src.uri.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if src.kind in ("csv", "parquet")
            else "frame"
        )
    if df.height == 0:
        msg = f"Cannot infer a contract for {name!r} from a frame with no rows; expected data."
        raise ContractError(msg)
    roles: dict[str, Role] = {}
    for col_name, role in (
        (target, "target"),
        (id, "id"),
        (timestamp, "timestamp"),
        (segment, "segment"),
    ):
        if col_name is not None:
            roles[col_name] = role  # type: ignore[assignment]
    for col_name in sensitive:
        roles[col_name] = "sensitive"
    for col_name in pii:
        roles[col_name] = "pii"
    for col_name in ignore:
        roles[col_name] = "ignore"
    unknown = [c for c in roles if c not in df.columns]
    if unknown:
        msg = f"Column(s) {unknown} named for a role are not in {name!r}; its columns are {df.columns}."
        raise ContractError(msg)
    markers = ("", "NA", "N/A", "NaN", "nan", "null", "NULL", "None")
    columns = tuple(
        _infer_column(
            df.get_column(c),
            roles.get(c, "feature"),
            markers=markers,
            tolerance=tolerance,
            max_categories=max_categories,
        )
        for c in df.columns
    )
    # Repeated rows are a fault only where rows are meant to be unique: tables with an id or a
    # timestamp. A table of categorical records (people with the same age, sex and outcome) has
    # legitimate repeats, so without either the inferred contract allows them.
    unique_rows = id is not None or timestamp is not None
    return Contract(
        name=name,
        columns=columns,
        max_bad_share=max_bad_share,
        duplicate_rows="reject" if unique_rows else "allow",
    )


def _infer_column(
    series: pl.Series, role: Role, *, markers: Sequence[str], tolerance: float, max_categories: int
) -> Column:
    name = series.name
    datetime_format = None
    if series.dtype == pl.String:
        series = series.str.strip_chars()
        series = pl.select(
            pl.when(series.is_in(list(markers))).then(None).otherwise(series)
        ).to_series()
        ctype, series, datetime_format = _type_of_text(series)
    else:
        ctype = _type_of(series.dtype)
        if ctype == "float":
            series = series.fill_nan(None)
    nullable = series.null_count() > 0
    kwargs: dict[str, Any] = {"name": name, "type": ctype, "role": role, "nullable": nullable}
    if datetime_format:
        kwargs["datetime_format"] = datetime_format
    non_null = series.drop_nulls()
    if role == "id":
        kwargs["unique"] = non_null.n_unique() == non_null.len()
    if role == "timestamp" and ctype != "datetime":
        msg = f"Column {name!r} was named the timestamp but its values are {ctype}, not date-times; expected e.g. '2024-01-31 12:00:00'."
        raise ContractError(msg)
    if ctype in ("int", "float") and role not in ("id",) and non_null.len():
        lo, hi = float(non_null.min()), float(non_null.max())  # type: ignore[arg-type]
        kwargs["min"], kwargs["max"] = _widen(lo, hi, tolerance, integer=ctype == "int")
    finding = None
    if ctype == "string" and non_null.len():
        finding = detect_pii(name, non_null.head(_SAMPLE).to_list())
    if ctype == "string" and role not in ("id", "pii") and finding is None:
        n_unique = non_null.n_unique()
        if n_unique <= max_categories and n_unique <= max(2, 0.5 * non_null.len()):
            kwargs["type"] = "category"
            kwargs["categories"] = tuple(sorted(str(v) for v in non_null.unique().to_list()))
    if kwargs["type"] == "string" and non_null.len():
        for fmt in ("email", "date"):
            if non_null.str.contains(FORMAT_PATTERNS[fmt]).all():
                kwargs["format"] = fmt
                break
    if finding is not None:
        if role == "pii":
            kwargs["anonymize"] = Anonymize(method=finding.method)  # type: ignore[arg-type]
        else:
            kwargs["suggestion"] = finding.describe(name)
    if role == "pii" and "anonymize" not in kwargs:
        kwargs["anonymize"] = Anonymize(method="pseudonymize")
    return Column(**kwargs)


def _type_of(dtype: pl.DataType) -> ColumnType:
    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_integer():
        return "int"
    if dtype.is_float() or dtype.is_decimal():
        return "float"
    if isinstance(dtype, pl.Datetime | pl.Date):
        return "datetime"
    return "string"


def _type_of_text(series: pl.Series) -> tuple[ColumnType, pl.Series, str | None]:
    non_null = series.drop_nulls()
    if non_null.len() == 0:
        return "string", series, None
    lowered = non_null.str.to_lowercase()
    if lowered.is_in(["true", "false", "yes", "no", "t", "f"]).all():
        return "bool", series, None
    as_float = non_null.cast(pl.Float64, strict=False)
    if as_float.null_count() == 0:
        integral = (as_float.round(0) == as_float).all() and not non_null.str.contains(r"\.").any()
        if integral:
            return "int", series.cast(pl.Float64, strict=False).cast(pl.Int64), None
        return "float", series.cast(pl.Float64, strict=False), None
    sample = non_null.head(_SAMPLE)
    for fmt in DATETIME_FORMATS:
        parsed = sample.str.to_datetime(fmt, time_unit="us", strict=False)
        if parsed.null_count() == 0:
            full = series.str.to_datetime(fmt, time_unit="us", strict=False)
            if full.null_count() == series.null_count():
                # ISO spellings need no format: validation accepts all of them
                return "datetime", full, None if fmt.startswith("%Y-%m-%d") else fmt
    return "string", series, None


def _widen(lo: float, hi: float, tolerance: float, *, integer: bool) -> tuple[float, float]:
    """Widen an observed range by `tolerance` of its span, never across zero.

    >>> _widen(0.0, 100.0, 0.1, integer=True)
    (0, 110)
    >>> _widen(0.0, 1.0, 0.1, integer=True)
    (0, 1)
    >>> _widen(-5.0, -1.0, 0.5, integer=False)
    (-7.0, 0.0)
    """
    span = hi - lo if hi > lo else max(abs(hi), 1.0)
    new_lo, new_hi = lo - tolerance * span, hi + tolerance * span
    if lo >= 0 > new_lo:
        new_lo = 0.0
    if hi <= 0 < new_hi:
        new_hi = 0.0
    if integer:
        # whole units only: a 0/1 column stays 0..1, ages 18..90 become 11..97
        step = math.floor(tolerance * span)
        int_lo, int_hi = math.floor(lo) - step, math.ceil(hi) + step
        return (0 if lo >= 0 > int_lo else int_lo), (0 if hi <= 0 < int_hi else int_hi)
    return new_lo, new_hi
