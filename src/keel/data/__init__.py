"""Data: contracts, validation with quarantine, cleaning, anonymization and dataset versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

# names load on first use (PEP 562): a command that needs one function does not pay for all
_NAMES = {
    "Anonymize": "keel.data.contract",
    "anonymize_frame": "keel.data.anonymization",
    "Column": "keel.data.contract",
    "column_stats": "keel.data.dataset_version",
    "Contract": "keel.data.contract",
    "contract_from_dict": "keel.data.contract",
    "contract_from_yaml": "keel.data.contract",
    "DatasetStore": "keel.data.versions",
    "DatasetVersion": "keel.data.dataset_version",
    "detect_pii": "keel.data.pii",
    "Failure": "keel.data.findings",
    "iban_valid": "keel.data.pii",
    "infer_contract": "keel.data.inference",
    "ingest": "keel.data.versions",
    "IngestResult": "keel.data.dataset_version",
    "k_anonymity": "keel.data.anonymization",
    "load_contract": "keel.data.contract",
    "load_version": "keel.data.versions",
    "luhn_valid": "keel.data.pii",
    "MISSING": "keel.data.contract",
    "OTHER": "keel.data.contract",
    "PiiFinding": "keel.data.pii",
    "pseudonymize_values": "keel.data.anonymization",
    "read_source": "keel.data.sources",
    "RecordChecker": "keel.data.records",
    "RecordError": "keel.data.records",
    "shown": "keel.data.records",
    "RULES": "keel.data.findings",
    "save_contract": "keel.data.versions",
    "SchemaIssue": "keel.data.findings",
    "Source": "keel.data.sources",
    "validate": "keel.data.validation",
    "ValidationReport": "keel.data.findings",
    "with_column": "keel.data.contract",
}

if TYPE_CHECKING:
    from keel.data.anonymization import anonymize_frame, k_anonymity, pseudonymize_values
    from keel.data.contract import (
        MISSING,
        OTHER,
        Anonymize,
        Column,
        Contract,
        contract_from_dict,
        contract_from_yaml,
        load_contract,
        with_column,
    )
    from keel.data.dataset_version import DatasetVersion, IngestResult, column_stats
    from keel.data.findings import RULES, Failure, SchemaIssue, ValidationReport
    from keel.data.inference import infer_contract
    from keel.data.pii import PiiFinding, detect_pii, iban_valid, luhn_valid
    from keel.data.records import RecordChecker, RecordError, shown
    from keel.data.sources import Source, read_source
    from keel.data.validation import validate
    from keel.data.versions import DatasetStore, ingest, load_version, save_contract


__getattr__ = lazy_getattr("keel.data", _NAMES)

__all__ = [
    "MISSING",
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
    "shown",
    "validate",
    "with_column",
]
