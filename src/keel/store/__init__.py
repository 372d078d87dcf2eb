"""Stores: settings, errors, the metadata database, artifact storage and the clock.

Names load on first use (PEP 562), so that importing an error class does not import
SQLAlchemy and pydantic: measured, that was half a second of every command's start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "ALERT_RULE_KINDS": "keel.store.sections",
    "AlertRuleSection": "keel.store.sections",
    "ArtifactStore": "keel.store.artifacts",
    "as_utc": "keel.store.database",
    "Clock": "keel.store.clock",
    "ConfigError": "keel.store.errors",
    "ConflictError": "keel.store.errors",
    "ContractError": "keel.store.errors",
    "Database": "keel.store.database",
    "DatasetNotFoundError": "keel.store.errors",
    "DriftSection": "keel.store.sections",
    "FakeClock": "keel.store.clock",
    "GateFailedError": "keel.store.errors",
    "IntegrityError": "keel.store.errors",
    "KeelError": "keel.store.errors",
    "load_settings": "keel.store.settings",
    "LoopPolicy": "keel.store.loop_section",
    "ModelNotFoundError": "keel.store.errors",
    "NotFoundError": "keel.store.errors",
    "PerformanceSection": "keel.store.sections",
    "SchemaError": "keel.store.errors",
    "Settings": "keel.store.settings",
    "sha256_file": "keel.store.artifacts",
    "SourceError": "keel.store.errors",
    "StoredObject": "keel.store.artifacts",
    "SystemClock": "keel.store.clock",
    "UnsafeArtifactError": "keel.store.errors",
    "ValidationFailedError": "keel.store.errors",
}

if TYPE_CHECKING:
    from keel.store.artifacts import ArtifactStore, StoredObject, sha256_file
    from keel.store.clock import Clock, FakeClock, SystemClock
    from keel.store.database import Database, as_utc
    from keel.store.errors import (
        ConfigError,
        ConflictError,
        ContractError,
        DatasetNotFoundError,
        GateFailedError,
        IntegrityError,
        KeelError,
        ModelNotFoundError,
        NotFoundError,
        SchemaError,
        SourceError,
        UnsafeArtifactError,
        ValidationFailedError,
    )
    from keel.store.loop_section import LoopPolicy
    from keel.store.sections import (
        ALERT_RULE_KINDS,
        AlertRuleSection,
        DriftSection,
        PerformanceSection,
    )
    from keel.store.settings import Settings, load_settings


__getattr__ = lazy_getattr("keel.store", _NAMES)

__all__ = [
    "ALERT_RULE_KINDS",
    "AlertRuleSection",
    "ArtifactStore",
    "Clock",
    "ConfigError",
    "ConflictError",
    "ContractError",
    "Database",
    "DatasetNotFoundError",
    "DriftSection",
    "FakeClock",
    "GateFailedError",
    "IntegrityError",
    "KeelError",
    "LoopPolicy",
    "ModelNotFoundError",
    "NotFoundError",
    "PerformanceSection",
    "SchemaError",
    "Settings",
    "SourceError",
    "StoredObject",
    "SystemClock",
    "UnsafeArtifactError",
    "ValidationFailedError",
    "as_utc",
    "load_settings",
    "sha256_file",
]
