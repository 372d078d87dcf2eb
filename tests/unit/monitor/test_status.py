"""The monitoring status: typed frozen parts with aware datetimes, and the JSON the command
line and pages have always shown (pinned here key by key, in order)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from status_factories import DAY, T0, make_recent, make_status, make_window

from keel.monitor import (
    Alert,
    LiveWindow,
    ModelStatus,
    PooledMetric,
    SegmentStatus,
    ShadowComparison,
    WindowStatus,
)
from keel.monitor.status import rounded


def _live(segment: str | None = None) -> LiveWindow:
    return LiveWindow(
        window_start=T0,
        version=1,
        role="production",
        predictions=300,
        labels=120,
        coverage=0.4,
        judged=True,
        metrics={"roc_auc": 0.91, "accuracy": None},
        segment=segment,
    )


def test_every_time_is_an_aware_datetime() -> None:
    """Windows, live rows and pooled figures refuse naive times, naming the field."""
    naive = dt.datetime(2025, 3, 1)

    with pytest.raises(ValueError, match=r"WindowStatus\.start is .*; expected a timezone-aware"):
        dataclasses.replace(make_window(0), start=naive)
    with pytest.raises(ValueError, match=r"LiveWindow\.window_start"):
        dataclasses.replace(_live(), window_start=naive)
    with pytest.raises(ValueError, match=r"RecentPerformance\.last_window"):
        dataclasses.replace(make_recent(0.9, 0.8, 1.0), last_window=naive)


def test_the_status_is_frozen() -> None:
    """A status and its parts cannot be changed once made."""
    status = make_status((make_window(0),))

    with pytest.raises(dataclasses.FrozenInstanceError):
        status.version = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        status.windows[0].rows = 1  # type: ignore[misc]


def test_window_json_keeps_its_keys_and_order() -> None:
    """A window's JSON: the keys of old, in their order, times as ISO text."""
    data = make_window(1, drifted=("a",), columns=("a",), estimated={"roc_auc": 0.8}).to_json()

    assert list(data) == [
        "start", "version", "rows", "drift", "drifted", "output_drift", "estimated",
        "error_rate", "latency_p99_ms", "latency_counts", "unseen_share", "complete", "judged",
        "note",
    ]  # fmt: skip
    assert data["start"] == "2025-03-02T00:00:00+00:00"
    assert data["drifted"] == ["a"]
    assert data["latency_counts"] == [500]
    assert list(data["drift"][0]) == [
        "name", "kind", "method", "statistic", "p_value", "threshold", "drifted", "test",
        "n_reference", "n_current", "psi", "jensen_shannon", "ks", "error_bound", "judged",
    ]  # fmt: skip


def test_a_stored_window_reads_back_equal() -> None:
    """from_json(to_json) without start and complete gives the same window."""
    window = make_window(2, drifted=("b",), output_psi=0.3)
    stored = {k: v for k, v in json.loads(json.dumps(window.to_json())).items()}

    again = WindowStatus.from_json(stored, start=window.start, complete=True)

    assert again == window


def test_live_rows_name_their_segment_only_when_per_segment() -> None:
    """Live rows carry `segment` in JSON only in the per-segment chart's rows."""
    assert list(_live().to_json()) == [
        "window_start", "version", "role", "predictions", "labels", "coverage", "judged",
        "metrics",
    ]  # fmt: skip
    assert list(_live("north").to_json())[3] == "segment"
    assert _live().to_json()["window_start"] == "2025-03-01T00:00:00+00:00"


def test_shadow_json_adds_the_metric_difference_only_once_measured() -> None:
    """improvement, production_value and shadow_value appear once labels gave a difference."""
    early = ShadowComparison(requests=10, agreement=0.9, metric="roc_auc")
    judged = dataclasses.replace(
        early,
        labels=500,
        difference=0.02,
        low=0.01,
        high=0.03,
        shadow_version=2,
        production_version=1,
        improvement=0.02,
        production_value=0.88,
        shadow_value=0.90,
    )

    assert early.to_json() == {
        "requests": 10, "agreement": 0.9, "metric": "roc_auc", "labels": 0,
        "difference": None, "low": None, "high": None, "shadow_version": None,
        "production_version": None,
    }  # fmt: skip
    assert list(judged.to_json())[-3:] == ["improvement", "production_value", "shadow_value"]


def test_model_status_json_is_the_shape_of_old() -> None:
    """The whole status in JSON: the keys of old, `recent` with `from` and `to` as ISO text,
    segments and alerts as plain objects."""
    alert = Alert("fraud", "drift", "warning", "m", T0, {"columns": ["a"]}, time=T0 + DAY, id=3)
    segment = SegmentStatus("north", 300, 100, 1 / 3, 0.9, 0.85, 0.95, 0.88, 0.91)
    status = dataclasses.replace(
        make_status((make_window(0),), recent=make_recent(0.9, 0.85, 0.95, windows=2)),
        live=(_live(),),
        segment_live=(_live("north"),),
        segments=(segment,),
        alerts=(alert,),
    )

    data = json.loads(json.dumps(status.to_json()))

    assert list(data) == [
        "model", "version", "task", "metric", "training", "windows", "live", "shadow",
        "recent", "alerts", "segments", "segment_live", "year",
    ]  # fmt: skip
    assert data["recent"] == {
        "metric": "roc_auc", "labels": 2000, "value": 0.9, "low": 0.85, "high": 0.95,
        "windows": 2, "from": "2025-03-01T00:00:00+00:00", "to": "2025-03-02T00:00:00+00:00",
    }  # fmt: skip
    assert data["alerts"] == [
        {
            "model": "fraud", "rule": "drift", "severity": "warning", "message": "m",
            "window_start": "2025-03-01T00:00:00+00:00", "evidence": {"columns": ["a"]},
            "trigger": False, "time": "2025-03-02T00:00:00+00:00", "id": 3,
        }
    ]  # fmt: skip
    assert data["segments"] == [
        {
            "segment": "north", "rows": 300, "labels": 100, "coverage": 1 / 3, "live": 0.9,
            "low": 0.85, "high": 0.95, "estimated": 0.88, "training": 0.91,
        }
    ]  # fmt: skip
    assert data["segment_live"][0]["segment"] == "north"
    assert data["shadow"] is None
    assert data["year"] == []


def test_a_model_without_production_is_an_empty_status() -> None:
    """version None and every part empty, in JSON too."""
    data = ModelStatus("fraud", None, "", "", {}).to_json()

    assert data["version"] is None
    assert data["windows"] == data["live"] == data["alerts"] == []


def test_drift_figures_are_rounded_to_six_digits_for_people() -> None:
    """Statistics keep 6 significant digits; infinities, Nones and verdicts stay."""
    column = dataclasses.replace(
        make_window(0).drift[0], statistic=0.123456789, psi=float("inf"), ks=None
    )

    r = rounded(column)

    assert (r.statistic, r.psi, r.ks, r.drifted) == (0.123457, float("inf"), None, False)


def test_pooled_metric_defaults_to_no_value() -> None:
    """Too few labels: the metric and its count, no value and no interval."""
    assert PooledMetric("roc_auc", 1).to_json() == {
        "metric": "roc_auc",
        "labels": 1,
        "value": None,
        "low": None,
        "high": None,
    }
