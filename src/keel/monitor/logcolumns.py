"""From the values serving hands the log to the columns of a batch, without holding the GIL
for long: the writer thread builds a batch while the event loop waits for the interpreter.

Measured (bench/log_flush.py, 10,000 one-row requests, a busy 2-core machine): Polars built
the flush's frame in 66-360 ms holding the GIL, ~30 ms of it converting tz-aware datetimes and
most of the rest the lists of probabilities, one Python object at a time; with times as epoch
microseconds (converted as each request is appended, ~1-2 us each) and the probabilities
through one NumPy array, 5-47 ms (8-12x less, same run).
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

import numpy as np
import polars as pl

__all__ = ["batch_frame", "micros"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)


def micros(values: list[Any]) -> list[int]:
    """Epoch microseconds of datetimes (naive ones taken as UTC; integers kept as they are).

    Polars converts tz-aware datetimes one by one while holding the GIL, 25-44 ms per 10,000
    records at each flush, which the event loop waited for (the serving p99). Here each
    request's records are converted as they are appended (one time per request: once), and
    the flush casts integers.
    """
    n = len(values)
    if n == 1 or (n and values.count(values[0]) == n):  # one request: one time (by identity)
        return [_micro(values[0])] * n
    seen: dict[Any, int] = {}
    return [seen[v] if v in seen else seen.setdefault(v, _micro(v)) for v in values]


def _micro(value: Any) -> int:
    if type(value) is dt.datetime:  # the common case first: ~1 us on the request's path
        d = value - (_NAIVE_EPOCH if value.tzinfo is None else _EPOCH)
        return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, dt.datetime):  # a subclass (pandas' Timestamp)
        return _micro(dt.datetime.fromisoformat(value.isoformat()))
    msg = f"A log record's time is {value!r}; expected a datetime."
    raise TypeError(msg)


def batch_frame(
    columns: dict[str, list[Any]], buffered: dict[str, Any], schema: dict[str, Any]
) -> pl.DataFrame:
    """A batch's frame from the buffer's lists (times as microseconds, see `micros`)."""
    lists = {c: _float_lists(c, columns[c]) for c, t in schema.items() if isinstance(t, pl.List)}
    rest = {c: v for c, v in columns.items() if c not in lists or lists[c] is None}
    frame = pl.DataFrame(rest, schema={c: buffered[c] for c in rest})
    frame = frame.with_columns(
        *(s for s in lists.values() if s is not None),
        *(pl.col(c).cast(schema[c]) for c in schema if buffered[c] != schema[c]),
    )
    return frame.select(list(schema))


def _float_lists(name: str, values: list[Any]) -> pl.Series | None:
    """A list-of-floats column (the probabilities) through one NumPy array when every row
    holds as many values, or none; None otherwise (Polars converts it then). Measured
    (bench/log_flush.py): Polars converted 10,000 lists in ~70 ms holding the GIL, this ~1 ms."""
    n = len(values)
    if n == 0 or values.count(None) == n:
        return pl.Series(name, [None] * n, dtype=pl.List(pl.Float64))
    try:
        lengths = set(map(len, values))
    except TypeError:  # some rows without values
        return None
    if len(lengths) != 1:
        return None
    (k,) = lengths
    try:
        flat = np.fromiter(itertools.chain.from_iterable(values), dtype=float, count=n * k)
    except (TypeError, ValueError):
        return None
    return pl.Series(name, flat.reshape(n, k)).cast(pl.List(pl.Float64))
