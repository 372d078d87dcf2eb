"""Monitor: the prediction log, window profiles, drift statistics, live and estimated
performance, alerts.

Names load on first use (PEP 562): `keel monitor drift` on two files needs NumPy and Polars,
not the database layer that profiles and alerts bring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "Alert": "keel.monitor.alerts",
    "AlertRule": "keel.monitor.alerts",
    "AlertStore": "keel.monitor.alerts",
    "ColumnDrift": "keel.monitor.drift",
    "compare_frames": "keel.monitor.drift",
    "compare_profiles": "keel.monitor.drift",
    "drift_between": "keel.monitor.offline",
    "DriftConfig": "keel.monitor.drift",
    "DriftReport": "keel.monitor.drift",
    "LabelChecker": "keel.monitor.labels",
    "LogBatch": "keel.monitor.logfiles",
    "LogFullError": "keel.monitor.appender",
    "merge": "keel.monitor.profiles",
    "ModelStatus": "keel.monitor.service",
    "Monitor": "keel.monitor.service",
    "ParquetAppender": "keel.monitor.appender",
    "PredictionLog": "keel.monitor.predlog",
    "prediction_ids": "keel.monitor.logfiles",
    "Profiler": "keel.monitor.profiler",
    "ProfileSpec": "keel.monitor.profiles",
    "read_windows": "keel.monitor.profiles",
    "Refused": "keel.monitor.logfiles",
    "RefusedLabel": "keel.monitor.labels",
    "Window": "keel.monitor.profiles",
}

if TYPE_CHECKING:
    from keel.monitor.alerts import Alert, AlertRule, AlertStore
    from keel.monitor.appender import LogFullError, ParquetAppender
    from keel.monitor.drift import (
        ColumnDrift,
        DriftConfig,
        DriftReport,
        compare_frames,
        compare_profiles,
    )
    from keel.monitor.labels import LabelChecker, RefusedLabel
    from keel.monitor.logfiles import LogBatch, Refused, prediction_ids
    from keel.monitor.offline import drift_between
    from keel.monitor.predlog import PredictionLog
    from keel.monitor.profiler import Profiler
    from keel.monitor.profiles import ProfileSpec, Window, merge, read_windows
    from keel.monitor.service import ModelStatus, Monitor


__getattr__ = lazy_getattr("keel.monitor", _NAMES)

__all__ = [
    "Alert",
    "AlertRule",
    "AlertStore",
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "LabelChecker",
    "LogBatch",
    "LogFullError",
    "ModelStatus",
    "Monitor",
    "ParquetAppender",
    "PredictionLog",
    "ProfileSpec",
    "Profiler",
    "Refused",
    "RefusedLabel",
    "Window",
    "compare_frames",
    "compare_profiles",
    "drift_between",
    "merge",
    "prediction_ids",
    "read_windows",
]
