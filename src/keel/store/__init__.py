"""Stores: settings, errors, the metadata database, artifact storage and the clock."""

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
from keel.store.settings import Settings, load_settings

__all__ = [
    "ArtifactStore",
    "Clock",
    "ConfigError",
    "ConflictError",
    "ContractError",
    "Database",
    "DatasetNotFoundError",
    "FakeClock",
    "GateFailedError",
    "IntegrityError",
    "KeelError",
    "ModelNotFoundError",
    "NotFoundError",
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
