"""A window profile as readers get it: typed, frozen, validated when read from its stored JSON.

The profiler folds batches into plain accumulators (`keel.monitor.profiles`, in place, fast);
what leaves the profiler, through the database, is read back as a `WindowProfile` whose JSON
(`to_json`, the `window_profiles.profile` column) is the stored shape, unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NoReturn

__all__ = ["CategoryCounts", "LatencyCounts", "NumericCounts", "OutputCounts", "WindowProfile"]


def _fail(path: str, value: Any, expected: str) -> NoReturn:
    msg = f"window profile field {path} is {value!r}; expected {expected}."
    raise ValueError(msg)


def _count(data: Mapping[str, Any], key: str, path: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        _fail(f"{path}.{key}", value, "a count of at least 0")
    return value


def _counts(data: Mapping[str, Any], key: str, path: str) -> tuple[int, ...]:
    value = data.get(key, [])
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) for v in value):
        _fail(f"{path}.{key}", value, "a list of counts")
    return tuple(value)


def _number(data: Mapping[str, Any], key: str, path: str, *, optional: bool = False) -> Any:
    value = data.get(key, None if optional else 0.0)
    if value is None and optional:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        _fail(f"{path}.{key}", value, "a number" + (" or null" if optional else ""))
    return float(value)


def _category_counts(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, int]:
    value = data.get(key, {})
    if not isinstance(value, Mapping) or not all(isinstance(v, int) for v in value.values()):
        _fail(f"{path}.{key}", value, "an object of category: count")
    return MappingProxyType(dict(value))


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    # bins of another length (a reference refit under the same version): the first is kept
    return tuple(x + y for x, y in zip(a, b, strict=True)) if len(a) == len(b) else a


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _add_categories(a: Mapping[str, int], b: Mapping[str, int]) -> Mapping[str, int]:
    out = dict(a)
    for k, n in b.items():
        out[k] = out.get(k, 0) + n
    return MappingProxyType(out)


@dataclass(frozen=True, slots=True)
class NumericCounts:
    """A numeric column's counts on its reference bins, its nulls and moments."""

    counts: tuple[int, ...] = ()
    nulls: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    min: float | None = None
    max: float | None = None

    @property
    def kind(self) -> str:
        return "numeric"

    @property
    def values(self) -> int:
        """Non-null values counted (in bins or not)."""
        return sum(self.counts)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str) -> NumericCounts:
        return cls(
            counts=_counts(data, "counts", path),
            nulls=_count(data, "nulls", path, 0),
            sum=_number(data, "sum", path),
            sumsq=_number(data, "sumsq", path),
            min=_number(data, "min", path, optional=True),
            max=_number(data, "max", path, optional=True),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "numeric", "counts": list(self.counts), "nulls": self.nulls,
            "sum": self.sum, "sumsq": self.sumsq, "min": self.min, "max": self.max,
        }  # fmt: skip

    def merge(self, other: NumericCounts) -> NumericCounts:
        return NumericCounts(
            _add(self.counts, other.counts),
            self.nulls + other.nulls,
            self.sum + other.sum,
            self.sumsq + other.sumsq,
            _lo(self.min, other.min),
            _hi(self.max, other.max),
        )


@dataclass(frozen=True, slots=True)
class CategoryCounts:
    """A categorical column's count per value (missing under `MISSING`)."""

    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def kind(self) -> str:
        return "categorical"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: str) -> CategoryCounts:
        return cls(_category_counts(data, "counts", path))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "categorical", "counts": dict(self.counts)}

    def merge(self, other: CategoryCounts) -> CategoryCounts:
        return CategoryCounts(_add_categories(self.counts, other.counts))


@dataclass(frozen=True, slots=True)
class OutputCounts:
    """The model's output: numeric counts on the reference output bins, the predicted
    classes, and for binary classifiers the positive-class score histogram."""

    values: NumericCounts = field(default_factory=NumericCounts)
    classes: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    scores: tuple[int, ...] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutputCounts:
        scores = data.get("scores")
        return cls(
            NumericCounts.from_json(data, "output"),
            _category_counts(data, "classes", "output"),
            _counts(data, "scores", "output") if scores is not None else None,
        )

    def to_json(self) -> dict[str, Any]:
        out = self.values.to_json()
        out["classes"] = dict(self.classes)
        if self.scores is not None:
            out["scores"] = list(self.scores)
        return out

    def merge(self, other: OutputCounts) -> OutputCounts:
        a, b = self.scores, other.scores
        return OutputCounts(
            self.values.merge(other.values),
            _add_categories(self.classes, other.classes),
            b if a is None else a if b is None else _add(a, b),
        )


@dataclass(frozen=True, slots=True)
class LatencyCounts:
    """Answers per latency bucket (`LATENCY_BUCKETS_MS`) and their total time."""

    counts: tuple[int, ...] = ()
    sum_ms: float = 0.0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencyCounts:
        return cls(_counts(data, "counts", "latency"), _number(data, "sum_ms", "latency"))

    def to_json(self) -> dict[str, Any]:
        return {"counts": list(self.counts), "sum_ms": self.sum_ms}

    def merge(self, other: LatencyCounts) -> LatencyCounts:
        return LatencyCounts(_add(self.counts, other.counts), self.sum_ms + other.sum_ms)


ColumnCounts = NumericCounts | CategoryCounts


@dataclass(frozen=True, slots=True)
class WindowProfile:
    """What one version answered in one window (per segment, or summed): rows, refused
    inputs, every feature's counts, the output and latency. Profiles add up (`merge`)."""

    rows: int = 0
    columns: Mapping[str, ColumnCounts] = field(default_factory=lambda: MappingProxyType({}))
    output: OutputCounts = field(default_factory=OutputCounts)
    latency: LatencyCounts = field(default_factory=LatencyCounts)
    errors: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.rows, int) or self.rows < 0:
            _fail("rows", self.rows, "a count of at least 0")
        if not isinstance(self.columns, MappingProxyType):
            object.__setattr__(self, "columns", MappingProxyType(dict(self.columns)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WindowProfile:
        """A stored profile; the first wrong field is named with its value."""
        if not isinstance(data, Mapping):
            _fail("(the profile)", type(data).__name__, "an object")
        columns: dict[str, ColumnCounts] = {}
        raw = data.get("columns", {})
        if not isinstance(raw, Mapping):
            _fail("columns", raw, "an object of column: counts")
        for name, col in raw.items():
            kind = col.get("kind") if isinstance(col, Mapping) else None
            if kind == "categorical":
                columns[name] = CategoryCounts.from_json(col, f"columns.{name}")
            elif kind == "numeric":
                columns[name] = NumericCounts.from_json(col, f"columns.{name}")
            else:
                _fail(f"columns.{name}.kind", kind, "'numeric' or 'categorical'")
        return cls(
            rows=_count(data, "rows", "profile"),
            columns=columns,
            output=OutputCounts.from_json(data.get("output") or {}),
            latency=LatencyCounts.from_json(data.get("latency") or {}),
            errors=_count(data, "errors", "profile", 0),
        )

    def to_json(self) -> dict[str, Any]:
        """The stored shape (no bin edges: they are the version's reference edges)."""
        return {
            "rows": self.rows,
            "columns": {n: c.to_json() for n, c in self.columns.items()},
            "output": self.output.to_json(),
            "latency": self.latency.to_json(),
            "errors": self.errors,
        }

    def merge(self, other: WindowProfile) -> WindowProfile:
        """The profile of both: counts add, minima and maxima combine; a column of one only
        is kept as it is."""
        columns = dict(self.columns)
        for name, col in other.columns.items():
            mine = columns.get(name)
            if mine is None:
                columns[name] = col
            elif isinstance(mine, NumericCounts):
                if isinstance(col, NumericCounts):  # a column whose kind changed: kept
                    columns[name] = mine.merge(col)
            elif isinstance(col, CategoryCounts):
                columns[name] = mine.merge(col)
        return WindowProfile(
            self.rows + other.rows,
            columns,
            self.output.merge(other.output),
            self.latency.merge(other.latency),
            self.errors + other.errors,
        )

    @property
    def error_rate(self) -> float:
        """Refused inputs over everything asked (answered + refused)."""
        asked = self.rows + self.errors
        return self.errors / asked if asked else 0.0
