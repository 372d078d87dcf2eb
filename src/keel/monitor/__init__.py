"""Monitor: the prediction log, window profiles, drift statistics, live and estimated
performance, alerts.

Names load on first use (PEP 562): `keel monitor drift` on two files needs NumPy and Polars,
not the database layer that profiles and alerts bring.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "read_log": "keel.monitor.logfiles",
    "log_files": "keel.monitor.logfiles",
    "labelled": "keel.monitor.performance",
    "day_of": "keel.monitor.logfiles",
    "VersionComparison": "keel.monitor.compare",
    "Backtest": "keel.monitor.compare",
    "Alert": "keel.monitor.alerts",
    "AlertRule": "keel.monitor.rules",
    "AlertStore": "keel.monitor.alerts",
    "ColumnDrift": "keel.monitor.drift",
    "DEFAULT_RULES": "keel.monitor.rules",
    "DriftRule": "keel.monitor.rules",
    "ErrorRateRule": "keel.monitor.rules",
    "EstimatedPerformanceRule": "keel.monitor.rules",
    "LatencyP99Rule": "keel.monitor.rules",
    "latency_quantile": "keel.monitor.windows",
    "LiveWindow": "keel.monitor.status",
    "PerformanceConfig": "keel.monitor.performance",
    "PerformanceRule": "keel.monitor.rules",
    "PooledMetric": "keel.monitor.status",
    "RecentPerformance": "keel.monitor.status",
    "rule_from_section": "keel.monitor.rules",
    "RULES": "keel.monitor.rules",
    "rules_from_settings": "keel.monitor.rules",
    "SegmentStatus": "keel.monitor.status",
    "ShadowComparison": "keel.monitor.status",
    "UnseenCategoriesRule": "keel.monitor.rules",
    "WindowStatus": "keel.monitor.status",
    "compare_frames": "keel.monitor.drift",
    "compare_profiles": "keel.monitor.drift",
    "drift_between": "keel.monitor.offline",
    "drift_between_ray": "keel.monitor.ray_profiles",
    "DriftConfig": "keel.monitor.drift",
    "DriftReport": "keel.monitor.drift",
    "LabelChecker": "keel.monitor.labels",
    "LogBatch": "keel.monitor.logfiles",
    "LogFullError": "keel.monitor.appender",
    "merge": "keel.monitor.profiles",
    "ModelStatus": "keel.monitor.status",
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
    from keel.monitor.alerts import Alert as Alert, AlertStore as AlertStore
    from keel.monitor.appender import (
        LogFullError as LogFullError,
        ParquetAppender as ParquetAppender,
    )
    from keel.monitor.compare import Backtest as Backtest, VersionComparison as VersionComparison
    from keel.monitor.drift import (
        ColumnDrift as ColumnDrift,
        DriftConfig as DriftConfig,
        DriftReport as DriftReport,
        compare_frames as compare_frames,
        compare_profiles as compare_profiles,
    )
    from keel.monitor.labels import LabelChecker as LabelChecker, RefusedLabel as RefusedLabel
    from keel.monitor.logfiles import (
        LogBatch as LogBatch,
        Refused as Refused,
        day_of as day_of,
        log_files as log_files,
        prediction_ids as prediction_ids,
        read_log as read_log,
    )
    from keel.monitor.offline import drift_between as drift_between
    from keel.monitor.performance import (
        PerformanceConfig as PerformanceConfig,
        labelled as labelled,
    )
    from keel.monitor.predlog import PredictionLog as PredictionLog
    from keel.monitor.profiler import Profiler as Profiler
    from keel.monitor.profiles import (
        ProfileSpec as ProfileSpec,
        Window as Window,
        merge as merge,
        read_windows as read_windows,
    )
    from keel.monitor.ray_profiles import drift_between_ray as drift_between_ray
    from keel.monitor.rules import (
        DEFAULT_RULES as DEFAULT_RULES,
        RULES as RULES,
        AlertRule as AlertRule,
        DriftRule as DriftRule,
        ErrorRateRule as ErrorRateRule,
        EstimatedPerformanceRule as EstimatedPerformanceRule,
        LatencyP99Rule as LatencyP99Rule,
        PerformanceRule as PerformanceRule,
        UnseenCategoriesRule as UnseenCategoriesRule,
        rule_from_section as rule_from_section,
        rules_from_settings as rules_from_settings,
    )
    from keel.monitor.service import Monitor as Monitor
    from keel.monitor.status import (
        LiveWindow as LiveWindow,
        ModelStatus as ModelStatus,
        PooledMetric as PooledMetric,
        RecentPerformance as RecentPerformance,
        SegmentStatus as SegmentStatus,
        ShadowComparison as ShadowComparison,
        WindowStatus as WindowStatus,
    )
    from keel.monitor.windows import latency_quantile as latency_quantile


__getattr__ = lazy_getattr("keel.monitor", _NAMES)

__all__ = sorted(_NAMES)
