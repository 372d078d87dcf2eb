"""Monitor: window profiles, drift statistics, live and estimated performance, alerts."""

from keel.monitor.drift import (
    ColumnDrift,
    DriftConfig,
    DriftReport,
    compare_frames,
    compare_profiles,
)
from keel.monitor.profiles import Profiler, ProfileSpec, Window, merge, read_windows

__all__ = [
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "ProfileSpec",
    "Profiler",
    "Window",
    "compare_frames",
    "compare_profiles",
    "merge",
    "read_windows",
]
