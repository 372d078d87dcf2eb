"""Monitor: window profiles, drift statistics, live and estimated performance, alerts.

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
    "merge": "keel.monitor.profiles",
    "ModelStatus": "keel.monitor.status",
    "Monitor": "keel.monitor.service",
    "Profiler": "keel.monitor.profiles",
    "ProfileSpec": "keel.monitor.profiles",
    "read_windows": "keel.monitor.profiles",
    "RefusedLabel": "keel.monitor.labels",
    "Window": "keel.monitor.profiles",
}

if TYPE_CHECKING:
    from keel.monitor.alerts import Alert, AlertStore
    from keel.monitor.drift import (
        ColumnDrift,
        DriftConfig,
        DriftReport,
        compare_frames,
        compare_profiles,
    )
    from keel.monitor.labels import LabelChecker, RefusedLabel
    from keel.monitor.offline import drift_between
    from keel.monitor.performance import PerformanceConfig
    from keel.monitor.profiles import Profiler, ProfileSpec, Window, merge, read_windows
    from keel.monitor.rules import (
        DEFAULT_RULES,
        RULES,
        AlertRule,
        DriftRule,
        ErrorRateRule,
        EstimatedPerformanceRule,
        LatencyP99Rule,
        PerformanceRule,
        UnseenCategoriesRule,
        rule_from_section,
        rules_from_settings,
    )
    from keel.monitor.service import Monitor
    from keel.monitor.status import (
        LiveWindow,
        ModelStatus,
        PooledMetric,
        RecentPerformance,
        SegmentStatus,
        ShadowComparison,
        WindowStatus,
    )
    from keel.monitor.windows import latency_quantile


__getattr__ = lazy_getattr("keel.monitor", _NAMES)

__all__ = [
    "DEFAULT_RULES",
    "RULES",
    "Alert",
    "AlertRule",
    "AlertStore",
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "DriftRule",
    "ErrorRateRule",
    "EstimatedPerformanceRule",
    "LabelChecker",
    "LatencyP99Rule",
    "LiveWindow",
    "ModelStatus",
    "Monitor",
    "PerformanceConfig",
    "PerformanceRule",
    "PooledMetric",
    "ProfileSpec",
    "Profiler",
    "RecentPerformance",
    "RefusedLabel",
    "SegmentStatus",
    "ShadowComparison",
    "UnseenCategoriesRule",
    "Window",
    "WindowStatus",
    "compare_frames",
    "compare_profiles",
    "drift_between",
    "latency_quantile",
    "merge",
    "read_windows",
    "rule_from_section",
    "rules_from_settings",
]
