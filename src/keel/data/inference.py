"""Inferring a contract from a frame: types, nullability, ranges, categories, formats, roles."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, cast

import polars as pl

from keel.data.contract import (
    DEFAULT_MISSING_MARKERS,
    Anonymize,
    Column,
    ColumnType,
    Contract,
    Role,
)
from keel.data.datetimes import iso_datetime
from keel.data.pii import FORMAT_PATTERNS, detect_pii
from keel.data.sources import read_source
from keel.store import ContractError

DATETIME_FORMATS = (
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y",
    "%m/%d/%Y",
)
"""Non-ISO spellings tried when a text column is not ISO 8601 (ISO, zoned or not, is tried
first and needs no format)."""
_SAMPLE = 2000

CLOCK_RANGES: tuple[tuple[str, int, int], ...] = (
    (r"(?:.*_)?(?:hour|hour_of_day)", 0, 23),
    (r"(?:.*_)?minute", 0, 59),
    (r"(?:.*_)?second", 0, 59),
    (r"(?:.*_)?(?:month|month_of_year)", 1, 12),
    (r"(?:.*_)?(?:weekday|dow|day_of_week)", 0, 7),
    (r"(?:.*_)?day_of_month", 1, 31),
)
"""Whole-number columns named like a clock or calendar field (in the singular: `hours` is a
count) get that field's range when their values fit it: an hour is 0..23 whatever hours a
sample held. Weekdays are 0..7, so that both 0..6 and 1..7 numbering fit."""


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
    tolerance: float = 1.0,
    max_categories: int = 50,
    max_bad_share: float = 0.05,
) -> Contract:
    """Infer a contract from data.

    Ranges refuse what cannot be, not what was merely not seen yet (see `infer_bounds`):
    non-negative columns stay >= 0 with no upper bound (counts, amounts and prices spike),
    fractions stay in [0, 1], 0/1 flags in [0, 1], clock fields (hour 0..23, month 1..12...) in
    their range; columns with negative values get the observed range widened by `tolerance`
    times its span on each side. Text columns with at most `max_categories` distinct values (and
    fewer than half the rows) become categories that keep unseen values and report them
    (`unseen: keep`). Columns that had no nulls refuse them. PII detectors add suggestions as
    comments; only the columns named in `pii` are anonymized. Exact repeats of a row are refused
    when an id or a timestamp says rows are unique, and allowed otherwise.

    Args:
        frame: a pandas or Polars frame, or a path to a CSV or Parquet file.
        name: the contract's name (default: the file's stem, or "frame").
        target, id, timestamp, segment: columns with those roles.
        sensitive: columns with the sensitive role (fairness is checked on them).
        pii: columns to anonymize, each with the method its detector suggests.
        ignore: columns kept in the data but never used as features (bookkeeping).
        tolerance: for columns with negative values, how far past the observed range values are
            still accepted, as a share of the range (1.0 = one span on each side).

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
    roles = _roles(
        {"target": target, "id": id, "timestamp": timestamp, "segment": segment},
        {"sensitive": sensitive, "pii": pii, "ignore": ignore},
    )
    unknown = [c for c in roles if c not in df.columns]
    if unknown:
        msg = f"Column(s) {unknown} named for a role are not in {name!r}; its columns are {df.columns}."
        raise ContractError(msg)
    columns = tuple(
        _infer_column(
            df.get_column(c),
            roles.get(c, "feature"),
            markers=DEFAULT_MISSING_MARKERS,
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


def _roles(single: dict[str, str | None], many: dict[str, Sequence[str]]) -> dict[str, Role]:
    """The role of every column named for one: {column: role}, later roles winning."""
    roles: dict[str, Role] = {}
    for role, col_name in single.items():
        if col_name is not None:
            roles[col_name] = cast(Role, role)
    for role, names in many.items():
        for col_name in names:
            roles[col_name] = cast(Role, role)
    return roles


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
        finite = non_null.filter(non_null.is_finite()) if ctype == "float" else non_null
        if finite.len():
            lo, hi = float(finite.min()), float(finite.max())  # type: ignore[arg-type]
            kwargs["min"], kwargs["max"] = infer_bounds(
                name, lo, hi, tolerance=tolerance, integer=ctype == "int"
            )
    finding = None
    if ctype in ("string", "datetime"):
        sample = non_null.head(_SAMPLE).to_list() if ctype == "string" else []
        finding = detect_pii(name, sample, column_type=ctype)
    if ctype == "string" and role not in ("id", "pii") and finding is None:
        n_unique = non_null.n_unique()
        # an all-empty column has no categories to list: it stays free text (`categories: []`
        # would be a contract that no later command could load)
        if 0 < n_unique <= max_categories and n_unique <= max(2, 0.5 * non_null.len()):
            kwargs["type"] = "category"
            kwargs["categories"] = tuple(sorted(str(v) for v in non_null.unique().to_list()))
            kwargs["unseen"] = "keep"
    if kwargs["type"] == "string" and non_null.len():
        for fmt in ("email", "date"):
            if non_null.str.contains(FORMAT_PATTERNS[fmt]).all():
                kwargs["format"] = fmt
                break
    if finding is not None:
        if role == "pii":
            kwargs["anonymize"] = Anonymize(method=finding.method, to=finding.to)  # type: ignore[arg-type]
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
    if pl.select(iso_datetime(pl.lit(sample))).to_series().null_count() == 0:
        full = pl.select(iso_datetime(pl.lit(series))).to_series()
        if full.null_count() == series.null_count():
            # ISO spellings need no format: validation accepts all of them, zoned ones as UTC
            return "datetime", full, None
    for fmt in DATETIME_FORMATS:
        parsed = sample.str.to_datetime(fmt, time_unit="us", strict=False)
        if parsed.null_count() == 0:
            full = series.str.to_datetime(fmt, time_unit="us", strict=False)
            if full.null_count() == series.null_count():
                return "datetime", full, fmt
    return "string", series, None


def infer_bounds(
    name: str, lo: float, hi: float, *, tolerance: float = 1.0, integer: bool = False
) -> tuple[float | None, float | None]:
    """The range an inferred contract states for a numeric column seen from `lo` to `hi`.

    A bound refuses a row, so it states only what cannot be: a sign, a share, a clock field.
    How large a value may get is left to drift monitoring, since real amounts spike.

    - 0/1 whole numbers (flags) and fractions seen within [0, 1]: [0, 1].
    - whole numbers named like a clock field (`hour` 0..23, `month` 1..12, ...) that fit it: it.
    - never negative: >= 0 with no upper bound (counts, amounts, prices, ages).
    - never positive: <= 0 with no lower bound.
    - both signs: the observed range widened by `tolerance` times its span on each side.

    >>> infer_bounds("inlf", 0, 1, integer=True), infer_bounds("share", 0.02, 0.9)
    ((0, 1), (0.0, 1.0))
    >>> infer_bounds("hour", 0, 22, integer=True), infer_bounds("price", 3.5, 990.0)
    ((0, 23), (0.0, None))
    >>> infer_bounds("change", -5, 15, integer=True), infer_bounds("loss", -9.0, -1.0)
    ((-25, 35), (None, 0.0))
    """
    if integer:
        header = re.sub(r"[^a-z]+", "_", name.lower()).strip("_")
        for pattern, low, high in CLOCK_RANGES:
            if re.fullmatch(pattern, header) and low <= lo and hi <= high:
                return low, high
    if lo >= 0 and hi <= 1:
        return (0, 1) if integer else (0.0, 1.0)
    if lo >= 0:
        return (0 if integer else 0.0), None
    if hi <= 0:
        return None, (0 if integer else 0.0)
    span = hi - lo
    if integer:
        step = math.ceil(tolerance * span)
        return math.floor(lo) - step, math.ceil(hi) + step
    return lo - tolerance * span, hi + tolerance * span
