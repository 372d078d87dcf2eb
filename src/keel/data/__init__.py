"""Data: contracts, validation with quarantine, cleaning, anonymization and dataset versions."""

from __future__ import annotations

from typing import Any

import polars as pl

from keel.data.anonymization import anonymize_frame, k_anonymity, pseudonymize_values
from keel.data.contract import (
    OTHER,
    Anonymize,
    Column,
    Contract,
    contract_from_dict,
    contract_from_yaml,
    load_contract,
    with_column,
)
from keel.data.inference import infer_contract
from keel.data.pii import PiiFinding, detect_pii, iban_valid, luhn_valid
from keel.data.records import RecordChecker, RecordError
from keel.data.sources import Source, read_source
from keel.data.validation import RULES, Failure, SchemaIssue, ValidationReport, validate
from keel.data.versions import (
    DatasetStore,
    DatasetVersion,
    IngestResult,
    column_stats,
    save_contract,
)


def ingest(
    source: Any,
    contract: Contract | str,
    name: str,
    *,
    store: DatasetStore | None = None,
    **kwargs: Any,
) -> IngestResult:
    """Check, clean, anonymize and version a source; see `DatasetStore.ingest`.

    Args:
        source: a CSV or Parquet path, or a pandas or Polars frame.
        contract: a contract, or the path of its YAML file.
        name: the dataset's name.
        store: where to keep it (default: the store named by settings).
    """
    if not isinstance(contract, Contract):
        contract = load_contract(contract)
    return (store or DatasetStore.open()).ingest(source, contract, name, **kwargs)


def load_version(ref: str, *, store: DatasetStore | None = None) -> pl.DataFrame:
    """The rows of a dataset version, by `NAME@ID`, `NAME@latest` or `NAME`."""
    return (store or DatasetStore.open()).load(ref)


__all__ = [
    "OTHER",
    "RULES",
    "Anonymize",
    "Column",
    "Contract",
    "DatasetStore",
    "DatasetVersion",
    "Failure",
    "IngestResult",
    "PiiFinding",
    "RecordChecker",
    "RecordError",
    "SchemaIssue",
    "Source",
    "ValidationReport",
    "anonymize_frame",
    "column_stats",
    "contract_from_dict",
    "contract_from_yaml",
    "detect_pii",
    "iban_valid",
    "infer_contract",
    "ingest",
    "k_anonymity",
    "load_contract",
    "load_version",
    "luhn_valid",
    "pseudonymize_values",
    "read_source",
    "save_contract",
    "validate",
    "with_column",
]
