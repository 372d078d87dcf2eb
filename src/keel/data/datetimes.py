"""Date-times as real files spell them: ISO 8601 with or without a zone, normalized to UTC.

A value with a zone (`1997-07-01T10:00:00Z`, `+02:00`, offsets that differ row to row) is
converted to UTC. A naive value stays naive, unless the contract names the zone it was written
in (`timezone: Europe/Paris`): then it is localized to that zone and converted to UTC. Stored
date-times are naive and, where a zone was known, in UTC.

Around a daylight-saving change a local time can happen twice or not at all: a repeated time is
read as its first occurrence (`ambiguous="earliest"`, Python's `fold=0`), a time that did not
exist is refused as not a date-time.

The same rules are written twice, as Polars expressions for frames (`iso_datetime`) and in
plain Python for a few records (`parse_record_datetime`), and the tests hold them to agreement.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

import polars as pl

NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
)
"""Naive ISO spellings tried, in order, for a date-time column whose contract names no format."""

ZONED_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M%#z",
    "%Y-%m-%d %H:%M%#z",
)
"""ISO spellings with a zone (`Z`, `+02:00`, `+0200`), converted to UTC."""

ZONE_PATTERN = r"(?:Z|[+-]\d{2}:?\d{2})\s*$"
"""A zone at the end of an ISO date-time: a column whose values never match skips zoned parsing
(measured: the four failing zoned parses cost ~5x the naive ones on a naive column)."""

_ISO_RECORD = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)


def check_timezone(name: str, what: str) -> zoneinfo.ZoneInfo:
    """The zone named `name`, or a ValueError naming `what` and what is expected."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"{what} is {name!r}, which is not a time zone; expected an IANA name such as 'Europe/Paris' or 'UTC'."
        raise ValueError(msg) from exc


def localize_to_utc(value: pl.Expr, timezone: str | None) -> pl.Expr:
    """Naive date-times read in `timezone` (when given), as naive UTC; unchanged without one."""
    if timezone is None:
        return value
    return (
        value.dt.replace_time_zone(timezone, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
    )


def iso_datetime(text: pl.Expr, timezone: str | None = None, *, zoned: bool = True) -> pl.Expr:
    """Parse ISO text: zoned values to UTC, naive ones localized from `timezone` if given.

    `zoned=False` skips the zoned spellings, for a column known to hold none (`ZONE_PATTERN`).

    >>> s = pl.Series(["1997-07-01T10:00:00Z", "1997-07-01 12:00:00+02:00", "1997-07-01T10:00"])
    >>> pl.select(iso_datetime(pl.lit(s))).to_series().to_list()[0:2]
    [datetime.datetime(1997, 7, 1, 10, 0), datetime.datetime(1997, 7, 1, 10, 0)]
    """
    zoned_values = [
        text.str.to_datetime(f, time_unit="us", strict=False)
        .dt.convert_time_zone("UTC")
        .dt.replace_time_zone(None)
        for f in ZONED_FORMATS
    ]
    naive = pl.coalesce(
        [text.str.to_datetime(f, time_unit="us", strict=False) for f in NAIVE_FORMATS]
    )
    if not zoned:
        return localize_to_utc(naive, timezone)
    return pl.coalesce([*zoned_values, localize_to_utc(naive, timezone)])


def formatted_datetime(text: pl.Expr, fmt: str, timezone: str | None = None) -> pl.Expr:
    """Parse text in a strftime format; a format with a zone (`%z`) gives UTC."""
    if "%z" in fmt or "%#z" in fmt or "%:z" in fmt:
        return (
            text.str.to_datetime(fmt, time_unit="us", strict=False)
            .dt.convert_time_zone("UTC")
            .dt.replace_time_zone(None)
        )
    return localize_to_utc(text.str.to_datetime(fmt, time_unit="us", strict=False), timezone)


def typed_datetime(value: pl.Expr, dtype: pl.DataType, timezone: str | None) -> pl.Expr:
    """A typed date-time column (Parquet, a frame) as naive UTC when its zone is known."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return value.dt.convert_time_zone("UTC").dt.replace_time_zone(None).cast(pl.Datetime("us"))
    return localize_to_utc(value.cast(pl.Datetime("us")), timezone)


def parse_record_datetime(value: object, timezone: str | None = None) -> dt.datetime | None:
    """One value as `iso_datetime` reads it, or None when it is not an ISO date-time.

    >>> parse_record_datetime("1997-07-01T10:00:00+02:00")
    datetime.datetime(1997, 7, 1, 8, 0)
    >>> parse_record_datetime("2024-03-31 02:30", "Europe/Paris") is None  # never happened there
    True
    """
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, dt.date):
        parsed = dt.datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if not _ISO_RECORD.match(text):
            return None
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is not None:
        return parsed.astimezone(dt.UTC).replace(tzinfo=None)
    if timezone is None:
        return parsed
    zone = zoneinfo.ZoneInfo(timezone)
    local = parsed.replace(tzinfo=zone, fold=0)
    utc = local.astimezone(dt.UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != parsed:
        return None  # a local time skipped by a daylight-saving change
    return utc.replace(tzinfo=None)
