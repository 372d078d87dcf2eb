"""What monitoring concludes about a model, as typed frozen objects: `ModelStatus` and its parts.

Every time is a timezone-aware `datetime`; `to_json()` gives the JSON the command line
(`keel monitor status --json`) and the pages show, and is the only place times become text.

    ModelStatus
      windows, year: WindowStatus        drift and window figures of one window (or day)
      live, segment_live: LiveWindow     live metrics of one window (and segment) from feedback
      recent: RecentPerformance          the primary metric pooled over the latest judged windows
      shadow: ShadowComparison           production against shadow on the same requests
      segments: SegmentStatus            per segment over the lookback
      alerts: Alert                      the open alerts
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from keel.monitor.alerts import Alert
from keel.monitor.drift import ColumnDrift


def _aware(field: str, value: dt.datetime) -> None:
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        msg = f"{field} is {value!r}; expected a timezone-aware datetime"
        raise ValueError(msg)


def rounded(column: ColumnDrift) -> ColumnDrift:
    """A column's drift figures to 6 significant digits: the verdicts are made, these are for
    people and charts (and a stored year of them parses twice as fast)."""
    changes: dict[str, Any] = {
        f.name: float(f"{v:.6g}")
        for f in dataclasses.fields(column)
        if isinstance(v := getattr(column, f.name), float) and math.isfinite(v)
    }
    return dataclasses.replace(column, **changes)


@dataclass(frozen=True, slots=True)
class WindowStatus:
    """What monitoring concluded about one window (or one day of windows) of a version."""

    start: dt.datetime
    version: int
    rows: int
    drift: tuple[ColumnDrift, ...]
    """Every feature's drift against the version's reference."""
    drifted: tuple[str, ...]
    output_drift: ColumnDrift | None
    estimated: Mapping[str, float | None]
    """The metrics estimated from the scores alone (binary classifiers), before labels."""
    error_rate: float
    latency_p99_ms: float | None
    latency_counts: tuple[int, ...]
    unseen_share: float
    complete: bool
    judged: bool = True
    """Whether the window had the rows to be judged (drift and window alerts)."""
    note: str | None = None
    """Why it was not, for people and JSON: "too few rows to judge (42 < 100)"."""

    def __post_init__(self) -> None:
        _aware("WindowStatus.start", self.start)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "version": self.version,
            "rows": self.rows,
            "drift": [c.to_dict() for c in self.drift],
            "drifted": list(self.drifted),
            "output_drift": None if self.output_drift is None else self.output_drift.to_dict(),
            "estimated": dict(self.estimated),
            "error_rate": self.error_rate,
            "latency_p99_ms": self.latency_p99_ms,
            "latency_counts": list(self.latency_counts),
            "unseen_share": self.unseen_share,
            "complete": self.complete,
            "judged": self.judged,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, start: dt.datetime, complete: bool) -> Self:
        """A window status from its JSON without `start` and `complete` (a stored summary)."""
        output = data["output_drift"]
        return cls(
            start=start,
            version=int(data["version"]),
            rows=int(data["rows"]),
            drift=tuple(ColumnDrift(**c) for c in data["drift"]),
            drifted=tuple(data["drifted"]),
            output_drift=None if output is None else ColumnDrift(**output),
            estimated=dict(data["estimated"]),
            error_rate=float(data["error_rate"]),
            latency_p99_ms=data["latency_p99_ms"],
            latency_counts=tuple(data["latency_counts"]),
            unseen_share=float(data["unseen_share"]),
            complete=complete,
            judged=bool(data.get("judged", True)),
            note=data.get("note"),
        )


@dataclass(frozen=True, slots=True)
class LiveWindow:
    """Live metrics of one window, version and role (and segment) with the labels so far."""

    window_start: dt.datetime
    version: int
    role: str
    predictions: int
    labels: int
    coverage: float
    """Share of the window's predictions that have a label."""
    judged: bool
    """Whether enough labels came for a verdict (`PerformanceConfig`)."""
    metrics: Mapping[str, float | None]
    segment: str | None = None
    """Set in per-segment rows only."""

    def __post_init__(self) -> None:
        _aware("LiveWindow.window_start", self.window_start)

    def to_json(self) -> dict[str, Any]:
        head: dict[str, Any] = {
            "window_start": self.window_start.isoformat(),
            "version": self.version,
            "role": self.role,
        }
        if self.segment is not None:
            head["segment"] = self.segment
        return {
            **head,
            "predictions": self.predictions,
            "labels": self.labels,
            "coverage": self.coverage,
            "judged": self.judged,
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True, slots=True)
class PooledMetric:
    """One metric over every labelled prediction given, with its 95 % bootstrap interval
    (`low`, `high`: None with too few resamples; `value`: None with too few labels)."""

    metric: str
    labels: int
    value: float | None = None
    low: float | None = None
    high: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "labels": self.labels,
            "value": self.value,
            "low": self.low,
            "high": self.high,
        }


@dataclass(frozen=True, slots=True)
class RecentPerformance:
    """The primary metric pooled over the latest judged windows of the production version."""

    metric: str
    labels: int
    value: float | None
    low: float | None
    high: float | None
    windows: int
    first_window: dt.datetime
    """The start of the first window pooled (`from` in JSON)."""
    last_window: dt.datetime
    """The start of the last window pooled (`to` in JSON)."""

    def __post_init__(self) -> None:
        _aware("RecentPerformance.first_window", self.first_window)
        _aware("RecentPerformance.last_window", self.last_window)

    @classmethod
    def pooled(
        cls,
        pooled: PooledMetric,
        *,
        first_window: dt.datetime,
        last_window: dt.datetime,
        windows: int,
    ) -> Self:
        return cls(
            pooled.metric,
            pooled.labels,
            pooled.value,
            pooled.low,
            pooled.high,
            windows=windows,
            first_window=first_window,
            last_window=last_window,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "labels": self.labels,
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "windows": self.windows,
            "from": self.first_window.isoformat(),
            "to": self.last_window.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class ShadowComparison:
    """Production against shadow on the same requests: agreement, and once labels are in, the
    metric difference (shadow - production) with a 95 % paired-bootstrap interval of the
    improvement (`low`, `high`: positive means the shadow is better)."""

    requests: int
    agreement: float | None
    metric: str
    labels: int = 0
    difference: float | None = None
    low: float | None = None
    high: float | None = None
    shadow_version: int | None = None
    production_version: int | None = None
    improvement: float | None = None
    production_value: float | None = None
    shadow_value: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "requests": self.requests,
            "agreement": self.agreement,
            "metric": self.metric,
            "labels": self.labels,
            "difference": self.difference,
            "low": self.low,
            "high": self.high,
            "shadow_version": self.shadow_version,
            "production_version": self.production_version,
        }
        if self.improvement is not None:
            out["improvement"] = self.improvement
            out["production_value"] = self.production_value
            out["shadow_value"] = self.shadow_value
        return out


@dataclass(frozen=True, slots=True)
class SegmentStatus:
    """One segment over the lookback: rows, label coverage, the live metric with its interval,
    the estimated metric (binary classifiers) and the figure at training."""

    segment: str
    rows: int
    labels: int
    coverage: float
    live: float | None
    low: float | None
    high: float | None
    estimated: float | None
    training: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "segment": self.segment,
            "rows": self.rows,
            "labels": self.labels,
            "coverage": self.coverage,
            "live": self.live,
            "low": self.low,
            "high": self.high,
            "estimated": self.estimated,
            "training": self.training,
        }


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """What monitoring concludes about a model's production version over the lookback."""

    model: str
    version: int | None
    """The production version; None when the model has none (everything else is empty)."""
    task: str
    metric: str
    training: Mapping[str, float]
    """The holdout metrics at training, and `estimated_<metric>` from the holdout's scores."""
    windows: tuple[WindowStatus, ...] = ()
    live: tuple[LiveWindow, ...] = ()
    shadow: ShadowComparison | None = None
    recent: RecentPerformance | None = None
    alerts: tuple[Alert, ...] = ()
    segments: tuple[SegmentStatus, ...] = ()
    segment_live: tuple[LiveWindow, ...] = ()
    """Live metric per window and segment (the per-segment chart)."""
    year: tuple[WindowStatus, ...] = ()
    """With `Monitor.overview`: a year by day, when that reaches past the lookback."""

    def judged_windows(self) -> list[WindowStatus]:
        """The complete windows with the rows to be judged (what window alerts look at)."""
        return [w for w in self.windows if w.complete and w.judged]

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "task": self.task,
            "metric": self.metric,
            "training": dict(self.training),
            "windows": [w.to_json() for w in self.windows],
            "live": [x.to_json() for x in self.live],
            "shadow": None if self.shadow is None else self.shadow.to_json(),
            "recent": None if self.recent is None else self.recent.to_json(),
            "alerts": [a.to_json() for a in self.alerts],
            "segments": [s.to_json() for s in self.segments],
            "segment_live": [x.to_json() for x in self.segment_live],
            "year": [w.to_json() for w in self.year],
        }
