"""Factories of monitoring statuses for rule and status tests: `make_window`, `make_status`."""

from __future__ import annotations

import datetime as dt
from typing import Any

from keel.monitor import ColumnDrift, ModelStatus, RecentPerformance, WindowStatus

T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def make_column(name: str, *, drifted: bool = False, psi: float = 0.0) -> ColumnDrift:
    return ColumnDrift(
        name=name,
        kind="numeric",
        method="wasserstein",
        statistic=0.2 if drifted else 0.01,
        p_value=0.001 if drifted else 0.5,
        threshold=0.05,
        drifted=drifted,
        test="ks",
        n_reference=1000,
        n_current=500,
        psi=psi,
        jensen_shannon=0.0,
    )


def make_window(
    i: int,
    *,
    drifted: tuple[str, ...] = (),
    columns: tuple[str, ...] = ("a", "b", "c"),
    psi: float = 0.0,
    output_psi: float | None = None,
    rows: int = 500,
    complete: bool = True,
    judged: bool = True,
    **figures: Any,
) -> WindowStatus:
    """Window `i` (day i after T0): these columns drifted, every column with this PSI."""
    drift = tuple(make_column(c, drifted=c in drifted, psi=psi) for c in columns)
    output = None if output_psi is None else make_column("__output__", psi=output_psi)
    values: dict[str, Any] = {
        "estimated": {},
        "error_rate": 0.0,
        "latency_p99_ms": 10.0,
        "unseen_share": 0.0,
        **figures,
    }
    return WindowStatus(
        start=T0 + DAY * i,
        version=1,
        rows=rows,
        drift=drift,
        drifted=tuple(c.name for c in drift if c.drifted),
        output_drift=output,
        latency_counts=(rows,),
        complete=complete,
        judged=judged,
        note=None if judged else f"too few rows to judge ({rows} < 100)",
        **values,
    )


def make_recent(
    value: float, low: float, high: float, *, labels: int = 2000, windows: int = 7
) -> RecentPerformance:
    return RecentPerformance(
        metric="roc_auc",
        labels=labels,
        value=value,
        low=low,
        high=high,
        windows=windows,
        first_window=T0,
        last_window=T0 + DAY * (windows - 1),
    )


def make_status(
    windows: tuple[WindowStatus, ...] = (),
    *,
    training: dict[str, float] | None = None,
    recent: RecentPerformance | None = None,
    metric: str = "roc_auc",
) -> ModelStatus:
    return ModelStatus(
        model="fraud",
        version=1,
        task="classification",
        metric=metric,
        training=training if training is not None else {"roc_auc": 0.9},
        windows=windows,
        recent=recent,
    )
