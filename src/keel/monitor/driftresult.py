"""What a drift comparison is asked and what it answers: `DriftConfig` in, `DriftReport` out.

Frozen and validated when built; `to_dict()` is the JSON of `keel monitor drift --json` and of
the drift inside a model's status (the shape is unchanged), `from_json` reads it back and
names the first field that is wrong.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

__all__ = ["ColumnDrift", "DomainDrift", "DriftConfig", "DriftReport"]

KINDS = ("numeric", "categorical")
METHODS = ("wasserstein", "jensen_shannon")
MODES = ("exact", "profile")


def _require(ok: bool, owner: str, name: str, value: Any, expected: str) -> None:
    """ValueError naming the field, its value and what was expected, unless `ok`."""
    if not ok:
        msg = f"{owner}.{name} is {value!r}; expected {expected}."
        raise ValueError(msg)


def _check_fields(owner: type, data: Mapping[str, Any], *, required: bool = True) -> None:
    """Unknown keys named with the valid ones; missing required keys named."""
    if not isinstance(data, Mapping):
        msg = f"A {owner.__name__} is read from an object; got {type(data).__name__}."
        raise TypeError(msg)
    fields = {f.name: f for f in dataclasses.fields(owner)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        msg = (
            f"{owner.__name__} has no field {unknown[0]!r}; valid fields: "
            f"{', '.join(sorted(fields))}."
        )
        raise ValueError(msg)
    if not required:
        return
    for name, f in fields.items():
        no_default = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if no_default and name not in data:
            msg = f"{owner.__name__} lacks the field {name!r}."
            raise ValueError(msg)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class DriftConfig:
    """Thresholds of the drift verdict."""

    alpha: float = 0.01
    """A column is drifted only if its test's p-value is under this."""
    wasserstein: float = 0.05
    """Numeric effect size: Wasserstein distance in reference standard deviations."""
    jensen_shannon: float = 0.02
    """Categorical effect size: Jensen-Shannon distance, base 2."""
    min_rows: int = 100
    """Windows with fewer rows are not judged."""

    def __post_init__(self) -> None:
        ok = _number(self.alpha) and 0 < self.alpha < 1
        _require(ok, "drift", "alpha", self.alpha, "a number between 0 and 1, e.g. 0.01")
        for name in ("wasserstein", "jensen_shannon"):
            value = getattr(self, name)
            ok = _number(value) and math.isfinite(value) and value >= 0
            _require(ok, "drift", name, value, "a number of at least 0")
        ok = isinstance(self.min_rows, int) and self.min_rows >= 1
        _require(ok, "drift", "min_rows", self.min_rows, "a whole number of at least 1")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftConfig:
        """The `[drift]` settings section: unknown keys are named with the valid ones."""
        _check_fields(cls, data, required=False)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The drift of one column between reference and current."""

    name: str
    kind: Literal["numeric", "categorical"]
    method: Literal["wasserstein", "jensen_shannon"]
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    test: str
    n_reference: int
    n_current: int
    psi: float
    jensen_shannon: float
    ks: float | None = None
    error_bound: float | None = None
    judged: bool = True

    def __post_init__(self) -> None:
        owner = "ColumnDrift"
        _require(self.kind in KINDS, owner, "kind", self.kind, f"one of {', '.join(KINDS)}")
        ok = self.method in METHODS
        _require(ok, owner, "method", self.method, f"one of {', '.join(METHODS)}")
        ok = self.p_value is None or 0 <= self.p_value <= 1
        _require(ok, owner, "p_value", self.p_value, "a probability in [0, 1] or None")
        for name in ("n_reference", "n_current"):
            value = getattr(self, name)
            ok = isinstance(value, int) and value >= 0
            _require(ok, owner, name, value, "a count of at least 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnDrift:
        _check_fields(cls, data)
        return cls(**data)


@dataclass(frozen=True, slots=True)
class DomainDrift:
    """Whether a classifier tells the two samples apart (`--multivariate`)."""

    auc: float
    auc_lower: float
    threshold: float
    drifted: bool
    rows: tuple[int, int]
    method: str = "domain_classifier"

    def __post_init__(self) -> None:
        ok = _number(self.auc) and 0 <= self.auc <= 1
        _require(ok, "DomainDrift", "auc", self.auc, "a ROC AUC in [0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "auc": self.auc,
            "auc_lower": self.auc_lower,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "rows": list(self.rows),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DomainDrift:
        _check_fields(cls, data)
        rows = data["rows"]
        ok = isinstance(rows, list | tuple) and len(rows) == 2
        _require(ok, "DomainDrift", "rows", rows, "two counts [reference, current]")
        return cls(**{**data, "rows": (int(rows[0]), int(rows[1]))})


@dataclass(frozen=True, slots=True)
class DriftReport:
    """Every column's drift, and which drifted.

    `missing_columns` and `rows` are set by comparisons of two data sets (`drift_between`):
    the reference's columns absent from the current data, and the rows of each.
    """

    columns: tuple[ColumnDrift, ...]
    mode: Literal["exact", "profile"]
    multivariate: DomainDrift | None = None
    missing_columns: tuple[str, ...] | None = None
    rows: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        _require(self.mode in MODES, "DriftReport", "mode", self.mode, f"one of {', '.join(MODES)}")
        if not isinstance(self.columns, tuple):
            object.__setattr__(self, "columns", tuple(self.columns))

    @property
    def drifted_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.drifted]

    def column(self, name: str) -> ColumnDrift:
        """One column's drift; KeyError naming the compared columns."""
        for c in self.columns:
            if c.name == name:
                return c
        msg = f"No column {name!r} in this drift report; columns: {[c.name for c in self.columns]}"
        raise KeyError(msg)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "columns": [c.to_dict() for c in self.columns],
            "drifted_columns": self.drifted_columns,
            "multivariate": self.multivariate.to_dict() if self.multivariate else None,
        }
        if self.missing_columns is not None:
            out["missing_columns"] = list(self.missing_columns)
        if self.rows is not None:
            out["rows"] = {"reference": self.rows[0], "current": self.rows[1]}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReport:
        """A report from its `to_dict()` JSON (`drifted_columns` is derived, so ignored)."""
        if not isinstance(data, Mapping):
            msg = f"A DriftReport is read from an object; got {type(data).__name__}."
            raise TypeError(msg)
        known = {"mode", "columns", "drifted_columns", "multivariate", "missing_columns", "rows"}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"DriftReport has no field {unknown[0]!r}; valid fields: {', '.join(sorted(known))}."
            raise ValueError(msg)
        columns = data.get("columns")
        ok = isinstance(columns, list)
        _require(ok, "DriftReport", "columns", columns, "a list of column drifts")
        rows = data.get("rows")
        ok = rows is None or (isinstance(rows, Mapping) and set(rows) == {"reference", "current"})
        _require(ok, "DriftReport", "rows", rows, "{'reference': n, 'current': m}")
        missing = data.get("missing_columns")
        multivariate = data.get("multivariate")
        return cls(
            columns=tuple(ColumnDrift.from_json(c) for c in cast(list[Any], columns)),
            mode=cast(Literal["exact", "profile"], data.get("mode")),
            multivariate=DomainDrift.from_json(multivariate) if multivariate else None,
            missing_columns=tuple(missing) if missing is not None else None,
            rows=(int(rows["reference"]), int(rows["current"])) if rows is not None else None,
        )
