"""Stores: settings, errors, the metadata database, artifact storage and the clock."""

from keel.store.artifacts import ArtifactStore, StoredObject, sha256_file
from keel.store.clock import Clock, FakeClock, SystemClock
from keel.store.database import Database, as_utc
from keel.store.errors import (
    ConfigError,
    ConflictError,
    ContractError,
    DatasetNotFoundError,
    IntegrityError,
    KeelError,
    NotFoundError,
    SchemaError,
    SourceError,
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
    "IntegrityError",
    "KeelError",
    "NotFoundError",
    "SchemaError",
    "Settings",
    "SourceError",
    "StoredObject",
    "SystemClock",
    "ValidationFailedError",
    "as_utc",
    "load_settings",
    "sha256_file",
]
