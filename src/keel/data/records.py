"""Checking a few records (JSON rows) against contract columns, in plain Python.

Measured: `validate` on a one-row Polars frame costs about a millisecond of frame building and
expression planning; a serving request of one row needs its answer in far less. This checks the
same rules as `validate` for rows given as dicts, and says for the first bad cell which field,
which value and what was expected.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keel.data.contract import OTHER, Column, Contract
from keel.data.datetimes import parse_record_datetime
from keel.data.pii import FORMAT_PATTERNS

_INT64 = (-(2**63), 2**63 - 1)
MAX_TEXT_CHARS = 1000
"""The longest text a record's cell may hold: logged values end up in the prediction log and on
the dashboard, and no feature or attribute of a person needs more."""


@dataclass(frozen=True)
class RecordError:
    """Why one cell of one record was refused."""

    row: int
    field: str
    value: Any
    rule: str
    expected: str

    def message(self) -> str:
        return f"row {self.row}: field {self.field!r} has value {shown(self.value)}; expected {self.expected}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "field": self.field,
            "value": _plain(self.value),
            "rule": self.rule,
            "expected": self.expected,
        }


def _bound(v: Any) -> str:
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    return "-inf/+inf" if v is None else f"{v:g}"


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 120, 120
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = 8


def shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short. A nested value is shown three
    levels deep (a full repr of a value nested a thousand deep is a RecursionError)."""
    return _SHOWN.repr(value)


def _plain(v: Any) -> Any:
    if isinstance(v, str) and len(v) > MAX_TEXT_CHARS:
        return shown(v)
    return v if v is None or isinstance(v, str | int | float | bool) else shown(v)


class RecordChecker:
    """Checks and cleans records for a set of contract columns (the model's inputs).

    Args:
        contract: the contract.
        columns: the names to check; other fields in a record are ignored.
        optional: those of `columns` a record may leave out (they are then left out of the
            cleaned record too); when given, they are checked like the others.
    """

    def __init__(
        self, contract: Contract, columns: Sequence[str], *, optional: Sequence[str] = ()
    ) -> None:
        self.contract = contract
        self.columns = [contract.column(c) for c in columns]
        self._optional = set(optional)
        self._markers = set(contract.missing_markers)
        self._cats = {c.name: set(c.categories) for c in self.columns if c.categories is not None}
        self._formats = {
            c.name: re.compile(FORMAT_PATTERNS[c.format]) for c in self.columns if c.format
        }

    def check(self, rows: Sequence[Any]) -> tuple[list[dict[str, Any]], list[RecordError]]:
        """Cleaned records (only the checked columns) and the errors; a row with an error is
        left out of the cleaned records."""
        clean: list[dict[str, Any]] = []
        errors: list[RecordError] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                errors.append(RecordError(i, "*", row, "type", "an object of field: value"))
                continue
            out: dict[str, Any] = {}
            ok = True
            for col in self.columns:
                if col.name not in row:
                    if col.name in self._optional:
                        continue
                    if col.nullable:
                        out[col.name] = None
                        continue
                    errors.append(
                        RecordError(
                            i,
                            col.name,
                            None,
                            "missing_column",
                            f"the field {col.name!r} ({col.type})",
                        )
                    )
                    ok = False
                    break
                value, error = self._cell(col, row[col.name])
                if error is not None:
                    errors.append(RecordError(i, col.name, row[col.name], error[0], error[1]))
                    ok = False
                    break
                out[col.name] = value
            if ok:
                clean.append(out)
        return clean, errors

    def _cell(self, col: Column, value: Any) -> tuple[Any, tuple[str, str] | None]:
        if isinstance(value, dict | list):
            return None, ("type", f"a single value ({col.type}), not a nested object or list")
        if isinstance(value, str):
            # the order of validate's text cleaning: trim, fold case, then missing markers
            value = value.strip()
            if col.case == "lower":
                value = value.lower()
            elif col.case == "upper":
                value = value.upper()
            if value in self._markers:
                value = None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None, None if col.nullable else ("null", "a value (the field is not nullable)")
        t = col.type
        if t in ("int", "float"):
            if isinstance(value, bool):
                return None, ("type", f"a number ({t})")
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    return None, ("type", f"a number ({t})")
            if not isinstance(value, int | float) or not math.isfinite(value):
                return None, ("type", f"a number ({t})")
            if t == "int" and float(value) != math.floor(float(value)):
                return None, ("type", "a whole number")
            if t == "int" and not _INT64[0] <= value <= _INT64[1]:
                # the log stores integers in 64 bits; a bigger one could be answered, not logged
                return None, ("range", "a whole number within 64 bits (|n| < 2**63)")
            lo, hi = (
                col.min,
                col.max,
            )  # numbers for numeric columns (the contract parser sees to it)
            if (isinstance(lo, int | float) and value < lo) or (
                isinstance(hi, int | float) and value > hi
            ):
                return None, ("range", f"a number between {_bound(col.min)} and {_bound(col.max)}")
            return (int(value) if t == "int" else float(value)), None
        if t == "bool":
            if isinstance(value, bool):
                return value, None
            low = str(value).lower()
            if low in ("true", "t", "yes", "y", "1"):
                return True, None
            if low in ("false", "f", "no", "n", "0"):
                return False, None
            return None, ("type", "true or false")
        if t == "datetime":
            parsed = parse_record_datetime(value, col.timezone)
            if parsed is None:
                return None, ("timestamp", "an ISO date-time like 2024-01-31T12:00:00")
            lo, hi = col.min, col.max
            if (isinstance(lo, dt.datetime) and parsed < lo) or (
                isinstance(hi, dt.datetime) and parsed > hi
            ):
                return None, ("range", f"a date-time between {_bound(lo)} and {_bound(hi)}")
            return parsed, None
        text = str(value)
        if len(text) > MAX_TEXT_CHARS:
            return None, ("length", f"text of at most {MAX_TEXT_CHARS:,} characters")
        if col.case == "lower":
            text = text.lower()
        elif col.case == "upper":
            text = text.upper()
        cats = self._cats.get(col.name)
        if cats is not None and text not in cats:
            if col.unseen == "keep":
                return text, None  # kept as it came; the monitor counts unseen values
            if col.unseen == "other":
                return OTHER, None
            shown = ", ".join(sorted(cats)[:8]) + (" ..." if len(cats) > 8 else "")
            return None, ("category", f"one of {shown}")
        fmt = self._formats.get(col.name)
        if fmt is not None and not fmt.match(text):
            return None, ("format", f"a {col.format}")
        return text, None
