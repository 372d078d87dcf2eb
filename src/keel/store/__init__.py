"""Stores: settings, errors, the metadata database, artifact storage and the clock.

Names load on first use (PEP 562), so that importing an error class does not import
SQLAlchemy and pydantic: measured, that was half a second of every command's start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "LoopPolicy": "keel.store.loop_section",
    "ALERT_RULE_KINDS": "keel.store.sections",
    "AlertRuleSection": "keel.store.sections",
    "ArtifactStore": "keel.store.artifacts",
    "as_utc": "keel.store.database",
    "check_url": "keel.store.signing",
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
    "mask_secret": "keel.store.signing",
    "new_secret": "keel.store.signing",
    "load_settings": "keel.store.settings",
    "configure_object_storage": "keel.store.settings",
    "ModelNotFoundError": "keel.store.errors",
    "NotFoundError": "keel.store.errors",
    "PerformanceSection": "keel.store.sections",
    "OverloadedError": "keel.store.errors",
    "SchemaError": "keel.store.errors",
    "secret_key": "keel.store.signing",
    "sign": "keel.store.signing",
    "SignatureError": "keel.store.signing",
    "signed_headers": "keel.store.signing",
    "Settings": "keel.store.settings",
    "sha256_file": "keel.store.artifacts",
    "SourceError": "keel.store.errors",
    "StoredObject": "keel.store.artifacts",
    "SystemClock": "keel.store.clock",
    "UnsafeArtifactError": "keel.store.errors",
    "ValidationFailedError": "keel.store.errors",
    "verify_signature": "keel.store.signing",
}

if TYPE_CHECKING:
    from keel.store.artifacts import (
        ArtifactStore as ArtifactStore,
        StoredObject as StoredObject,
        sha256_file as sha256_file,
    )
    from keel.store.clock import Clock as Clock, FakeClock as FakeClock, SystemClock as SystemClock
    from keel.store.database import Database as Database, as_utc as as_utc
    from keel.store.errors import (
        ConfigError as ConfigError,
        ConflictError as ConflictError,
        ContractError as ContractError,
        DatasetNotFoundError as DatasetNotFoundError,
        GateFailedError as GateFailedError,
        IntegrityError as IntegrityError,
        KeelError as KeelError,
        ModelNotFoundError as ModelNotFoundError,
        NotFoundError as NotFoundError,
        OverloadedError as OverloadedError,
        SchemaError as SchemaError,
        SourceError as SourceError,
        UnsafeArtifactError as UnsafeArtifactError,
        ValidationFailedError as ValidationFailedError,
    )
    from keel.store.loop_section import LoopPolicy as LoopPolicy
    from keel.store.sections import (
        ALERT_RULE_KINDS as ALERT_RULE_KINDS,
        AlertRuleSection as AlertRuleSection,
        DriftSection as DriftSection,
        PerformanceSection as PerformanceSection,
    )
    from keel.store.settings import (
        Settings as Settings,
        configure_object_storage as configure_object_storage,
        load_settings as load_settings,
    )
    from keel.store.signing import (
        SignatureError as SignatureError,
        check_url as check_url,
        mask_secret as mask_secret,
        new_secret as new_secret,
        secret_key as secret_key,
        sign as sign,
        signed_headers as signed_headers,
        verify_signature as verify_signature,
    )


__getattr__ = lazy_getattr("keel.store", _NAMES)

__all__ = sorted(_NAMES)
