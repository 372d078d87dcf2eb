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
    "ModelNotFoundError": "keel.store.errors",
    "NotFoundError": "keel.store.errors",
    "PerformanceSection": "keel.store.sections",
    "OverloadedError": "keel.store.errors",
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
    from keel.store.artifacts import (
        ArtifactStore as ArtifactStore,
    )
    from keel.store.artifacts import (
        StoredObject as StoredObject,
    )
    from keel.store.artifacts import (
        sha256_file as sha256_file,
    )
    from keel.store.clock import Clock as Clock
    from keel.store.clock import FakeClock as FakeClock
    from keel.store.clock import SystemClock as SystemClock
    from keel.store.database import Database as Database
    from keel.store.database import as_utc as as_utc
    from keel.store.errors import (
        ConfigError as ConfigError,
    )
    from keel.store.errors import (
        ConflictError as ConflictError,
    )
    from keel.store.errors import (
        ContractError as ContractError,
    )
    from keel.store.errors import (
        DatasetNotFoundError as DatasetNotFoundError,
    )
    from keel.store.errors import (
        GateFailedError as GateFailedError,
    )
    from keel.store.errors import (
        IntegrityError as IntegrityError,
    )
    from keel.store.errors import (
        KeelError as KeelError,
    )
    from keel.store.errors import (
        ModelNotFoundError as ModelNotFoundError,
    )
    from keel.store.errors import (
        NotFoundError as NotFoundError,
    )
    from keel.store.errors import (
        OverloadedError as OverloadedError,
    )
    from keel.store.errors import (
        SchemaError as SchemaError,
    )
    from keel.store.errors import (
        SourceError as SourceError,
    )
    from keel.store.errors import (
        UnsafeArtifactError as UnsafeArtifactError,
    )
    from keel.store.errors import (
        ValidationFailedError as ValidationFailedError,
    )
    from keel.store.sections import (
        ALERT_RULE_KINDS as ALERT_RULE_KINDS,
    )
    from keel.store.sections import (
        AlertRuleSection as AlertRuleSection,
    )
    from keel.store.sections import (
        DriftSection as DriftSection,
    )
    from keel.store.sections import (
        PerformanceSection as PerformanceSection,
    )
    from keel.store.settings import Settings as Settings
    from keel.store.settings import load_settings as load_settings


__getattr__ = lazy_getattr("keel.store", _NAMES)

__all__ = sorted(_NAMES)
