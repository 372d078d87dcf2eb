"""The reference profile of the training data: what monitoring compares live traffic with.

`ReferenceProfile` is the typed, frozen profile; its JSON (`to_json`) is the `reference`
section of a version's stored evaluation report, unchanged from the dicts keel always wrote
(old reports load with `from_json`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from keel._frozen import FrozenDict
from keel.data import MISSING
from keel.store import ConfigError

_BINS = 20
_SCORE_BINS = 50  # the same bins as serving's window profiles (keel.monitor.profiles)


def _refuse(where: str, value: Any, expected: str) -> NoReturn:
    msg = f"reference profile: {where} is {value!r}; expected {expected}. The stored evaluation report is damaged: retrain or re-register the version."
    raise ConfigError(msg)


@dataclass(frozen=True, slots=True)
class NumericReference:
    """A numeric column (or the model's output) in training: counts on quantile bin edges.

    Attributes:
        edges: the bin edges (empty when the column had no finite value).
        counts: rows per bin (one fewer than the edges).
        nulls: rows without a finite value.
        mean, std: of the finite values (None when there was none).
        scores: for the output of a binary classifier, its holdout scores on 50 equal bins of
            [0, 1] (what performance estimation compares windows with); None otherwise.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    nulls: int = 0
    mean: float | None = None
    std: float | None = None
    scores: tuple[int, ...] | None = None

    kind = "numeric"

    def __post_init__(self) -> None:
        if self.edges and len(self.counts) != len(self.edges) - 1:
            _refuse(
                "counts",
                list(self.counts),
                f"{len(self.edges) - 1} counts for {len(self.edges)} edges",
            )

    @property
    def spread(self) -> float:
        """The standard deviation drift scales by (1.0 where none was measured)."""
        return 1.0 if self.std is None else self.std

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "numeric",
            "edges": list(self.edges),
            "counts": list(self.counts),
            "nulls": self.nulls,
        }
        if self.mean is not None:
            out["mean"] = self.mean
        if self.std is not None:
            out["std"] = self.std
        if self.scores is not None:
            out["scores"] = list(self.scores)
        return out

    @classmethod
    def from_json(cls, where: str, data: Any) -> NumericReference:
        if not isinstance(data, Mapping):
            _refuse(where, data, "a JSON object with edges and counts")
        try:
            scores = data.get("scores")
            return cls(
                edges=tuple(float(e) for e in data.get("edges") or ()),
                counts=tuple(int(c) for c in data.get("counts") or ()),
                nulls=int(data.get("nulls", 0)),
                mean=None if data.get("mean") is None else float(data["mean"]),
                std=None if data.get("std") is None else float(data["std"]),
                scores=None if scores is None else tuple(int(c) for c in scores),
            )
        except (TypeError, ValueError):
            _refuse(where, data, "numbers in edges, counts, nulls, mean, std and scores")


@dataclass(frozen=True, slots=True)
class CategoricalReference:
    """A categorical column in training: rows per category (a missing one under MISSING)."""

    counts: Mapping[str, int]
    rows: int

    kind = "categorical"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "counts", FrozenDict({str(k): int(v) for k, v in self.counts.items()})
        )

    def to_json(self) -> dict[str, Any]:
        return {"kind": "categorical", "counts": dict(self.counts), "rows": self.rows}

    @classmethod
    def from_json(cls, where: str, data: Mapping[str, Any]) -> CategoricalReference:
        counts = data.get("counts") or {}
        if not isinstance(counts, Mapping):
            _refuse(f"{where}.counts", counts, "a JSON object of counts per category")
        try:
            rows = int(data.get("rows", sum(int(v) for v in counts.values())))
            return cls(counts={str(k): int(v) for k, v in counts.items()}, rows=rows)
        except (TypeError, ValueError):
            _refuse(where, data, "whole numbers in counts and rows")


ColumnReference = NumericReference | CategoricalReference


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    """What a version saw in training: per feature its distribution, and its output's.

    Attributes:
        rows: training rows profiled.
        columns: per feature, a `NumericReference` or a `CategoricalReference`.
        output: the model's output on the training rows (None for an old or partial report).
    """

    rows: int
    columns: Mapping[str, ColumnReference] = field(default_factory=dict)
    output: NumericReference | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", FrozenDict(dict(self.columns)))

    def column(self, name: str) -> ColumnReference | None:
        return self.columns.get(name)

    def categories(self, name: str) -> Mapping[str, int]:
        """The training counts per category of a column ({} when it is not categorical)."""
        ref = self.columns.get(name)
        return ref.counts if isinstance(ref, CategoricalReference) else {}

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rows": self.rows,
            "columns": {k: v.to_json() for k, v in self.columns.items()},
        }
        if self.output is not None:
            out["output"] = self.output.to_json()
        return out

    @classmethod
    def from_json(cls, data: Any) -> ReferenceProfile:
        """The profile a stored report's `reference` section holds.

        Raises:
            ConfigError: a part has a wrong shape (naming it and what was expected)."""
        if isinstance(data, ReferenceProfile):
            return data
        if not isinstance(data, Mapping):
            _refuse("(the profile)", data, "a JSON object with rows, columns and output")
        columns: dict[str, ColumnReference] = {}
        raw = data.get("columns") or {}
        if not isinstance(raw, Mapping):
            _refuse("columns", raw, "a JSON object per feature")
        for name, col in raw.items():
            where = f"columns.{name}"
            if isinstance(col, Mapping) and col.get("kind") == "categorical":
                columns[str(name)] = CategoricalReference.from_json(where, col)
            else:
                columns[str(name)] = NumericReference.from_json(where, col)
        output = data.get("output")
        return cls(
            rows=int(data.get("rows") or 0),
            columns=columns,
            output=None if not output else NumericReference.from_json("output", output),
        )


EMPTY_REFERENCE = ReferenceProfile(rows=0)
"""The profile of a version evaluated without data: no column, no output."""


def reference_profile(
    frame: pd.DataFrame,
    features: list[str],
    categorical: list[str],
    output: np.ndarray,
    holdout_output: np.ndarray | None = None,
) -> ReferenceProfile:
    """Per numeric feature: quantile bin edges and counts; per category: frequencies; and the
    distribution of the model's output on the same rows. For a binary classifier, also the
    histogram of its holdout scores on 50 equal bins of [0, 1] (what performance estimation
    compares windows with: training scores would flatter the model)."""
    columns: dict[str, ColumnReference] = {}
    for f in features:
        s = frame[f]
        if f in categorical:
            # the model's input carries a missing category as "" (to_pandas), a raw frame as
            # None or NaN: all are counted as MISSING, the key window profiles count them under
            values = s.astype(object).where(s.notna(), MISSING).astype(str).replace("", MISSING)
            counts = values.value_counts()
            columns[f] = CategoricalReference({str(k): int(v) for k, v in counts.items()}, len(s))
        else:
            columns[f] = _numeric(np.asarray(s, dtype=float))
    out = np.asarray(output, dtype=float)
    profile = _numeric(out if out.ndim == 1 else out[:, -1])
    if holdout_output is not None and holdout_output.ndim == 2 and holdout_output.shape[1] == 2:
        idx = np.clip((holdout_output[:, 1] * _SCORE_BINS).astype(int), 0, _SCORE_BINS - 1)
        scores = np.bincount(idx, minlength=_SCORE_BINS)
        profile = NumericReference(
            profile.edges, profile.counts, profile.nulls, profile.mean, profile.std,
            scores=tuple(int(c) for c in scores),
        )  # fmt: skip
    return ReferenceProfile(rows=len(frame), columns=columns, output=profile)


def _numeric(x: np.ndarray) -> NumericReference:
    finite = x[np.isfinite(x)]
    if len(finite) == 0:
        return NumericReference(edges=(), counts=(), nulls=len(x))
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, _BINS + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0] + 1e-9])
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return NumericReference(
        edges=tuple(float(e) for e in edges),
        counts=tuple(int(c) for c in counts),
        nulls=int(len(x) - len(finite)),
        mean=float(finite.mean()),
        std=float(finite.std()),
    )
