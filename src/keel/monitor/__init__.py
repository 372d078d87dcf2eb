"""Monitor: window profiles, drift statistics, live and estimated performance, alerts.

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
    "merge": "keel.monitor.profiles",
    "ModelStatus": "keel.monitor.service",
    "Monitor": "keel.monitor.service",
    "Profiler": "keel.monitor.profiles",
    "ProfileSpec": "keel.monitor.profiles",
    "read_windows": "keel.monitor.profiles",
    "RefusedLabel": "keel.monitor.labels",
    "Window": "keel.monitor.profiles",
}

if TYPE_CHECKING:
    from keel.monitor.alerts import Alert, AlertRule, AlertStore
    from keel.monitor.drift import (
        ColumnDrift,
        DriftConfig,
        DriftReport,
        compare_frames,
        compare_profiles,
    )
    from keel.monitor.labels import LabelChecker, RefusedLabel
    from keel.monitor.offline import drift_between
    from keel.monitor.profiles import Profiler, ProfileSpec, Window, merge, read_windows
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
    "ModelStatus",
    "Monitor",
    "ProfileSpec",
    "Profiler",
    "RefusedLabel",
    "Window",
    "compare_frames",
    "compare_profiles",
    "drift_between",
    "merge",
    "read_windows",
]
