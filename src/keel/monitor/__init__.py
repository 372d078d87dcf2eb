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
    from keel.monitor.alerts import Alert as Alert
    from keel.monitor.alerts import AlertStore as AlertStore
    from keel.monitor.appender import (
        LogFullError as LogFullError,
    )
    from keel.monitor.appender import (
        ParquetAppender as ParquetAppender,
    )
    from keel.monitor.drift import (
        ColumnDrift as ColumnDrift,
    )
    from keel.monitor.drift import (
        DriftConfig as DriftConfig,
    )
    from keel.monitor.drift import (
        DriftReport as DriftReport,
    )
    from keel.monitor.drift import (
        compare_frames as compare_frames,
    )
    from keel.monitor.drift import (
        compare_profiles as compare_profiles,
    )
    from keel.monitor.labels import LabelChecker as LabelChecker
    from keel.monitor.labels import RefusedLabel as RefusedLabel
    from keel.monitor.logfiles import (
        LogBatch as LogBatch,
    )
    from keel.monitor.logfiles import (
        Refused as Refused,
    )
    from keel.monitor.logfiles import (
        prediction_ids as prediction_ids,
    )
    from keel.monitor.offline import drift_between as drift_between
    from keel.monitor.performance import PerformanceConfig as PerformanceConfig
    from keel.monitor.predlog import PredictionLog as PredictionLog
    from keel.monitor.profiler import Profiler as Profiler
    from keel.monitor.profiles import (
        ProfileSpec as ProfileSpec,
    )
    from keel.monitor.profiles import (
        Window as Window,
    )
    from keel.monitor.profiles import (
        merge as merge,
    )
    from keel.monitor.profiles import (
        read_windows as read_windows,
    )
    from keel.monitor.rules import (
        DEFAULT_RULES as DEFAULT_RULES,
    )
    from keel.monitor.rules import (
        RULES as RULES,
    )
    from keel.monitor.rules import (
        AlertRule as AlertRule,
    )
    from keel.monitor.rules import (
        DriftRule as DriftRule,
    )
    from keel.monitor.rules import (
        ErrorRateRule as ErrorRateRule,
    )
    from keel.monitor.rules import (
        EstimatedPerformanceRule as EstimatedPerformanceRule,
    )
    from keel.monitor.rules import (
        LatencyP99Rule as LatencyP99Rule,
    )
    from keel.monitor.rules import (
        PerformanceRule as PerformanceRule,
    )
    from keel.monitor.rules import (
        UnseenCategoriesRule as UnseenCategoriesRule,
    )
    from keel.monitor.rules import (
        rule_from_section as rule_from_section,
    )
    from keel.monitor.rules import (
        rules_from_settings as rules_from_settings,
    )
    from keel.monitor.service import Monitor as Monitor
    from keel.monitor.status import (
        LiveWindow as LiveWindow,
    )
    from keel.monitor.status import (
        ModelStatus as ModelStatus,
    )
    from keel.monitor.status import (
        PooledMetric as PooledMetric,
    )
    from keel.monitor.status import (
        RecentPerformance as RecentPerformance,
    )
    from keel.monitor.status import (
        SegmentStatus as SegmentStatus,
    )
    from keel.monitor.status import (
        ShadowComparison as ShadowComparison,
    )
    from keel.monitor.status import (
        WindowStatus as WindowStatus,
    )
    from keel.monitor.windows import latency_quantile as latency_quantile


__getattr__ = lazy_getattr("keel.monitor", _NAMES)

__all__ = sorted(_NAMES)
