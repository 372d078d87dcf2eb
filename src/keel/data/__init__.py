"""Data: contracts, validation with quarantine, cleaning, anonymization and dataset versions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

# names load on first use (PEP 562): a command that needs one function does not pay for all
_NAMES = {
    "inject_faults": "keel.data.faults",
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
    from keel.data.anonymization import (
        anonymize_frame as anonymize_frame,
        k_anonymity as k_anonymity,
        pseudonymize_values as pseudonymize_values,
    )
    from keel.data.contract import (
        MISSING as MISSING,
        OTHER as OTHER,
        Anonymize as Anonymize,
        Column as Column,
        Contract as Contract,
        contract_from_dict as contract_from_dict,
        contract_from_yaml as contract_from_yaml,
        load_contract as load_contract,
        with_column as with_column,
    )
    from keel.data.dataset_version import (
        DatasetVersion as DatasetVersion,
        IngestResult as IngestResult,
        column_stats as column_stats,
    )
    from keel.data.faults import inject_faults as inject_faults
    from keel.data.findings import (
        RULES as RULES,
        Failure as Failure,
        SchemaIssue as SchemaIssue,
        ValidationReport as ValidationReport,
    )
    from keel.data.inference import infer_contract as infer_contract
    from keel.data.pii import (
        PiiFinding as PiiFinding,
        detect_pii as detect_pii,
        iban_valid as iban_valid,
        luhn_valid as luhn_valid,
    )
    from keel.data.records import (
        RecordChecker as RecordChecker,
        RecordError as RecordError,
        shown as shown,
    )
    from keel.data.sources import Source as Source, read_source as read_source
    from keel.data.validation import validate as validate
    from keel.data.versions import (
        DatasetStore as DatasetStore,
        ingest as ingest,
        load_version as load_version,
        save_contract as save_contract,
    )


__getattr__ = lazy_getattr("keel.data", _NAMES)

__all__ = sorted(_NAMES)
