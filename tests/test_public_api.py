"""The public faces of each layer are pinned: changing one is a decision, not an accident."""

from __future__ import annotations

import keel
import keel.data
import keel.store


def test_keel_exports() -> None:
    """The top package exports only its version."""
    assert keel.__all__ == ["__version__"]


def test_store_exports() -> None:
    """keel.store's public names."""
    assert sorted(keel.store.__all__) == [
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
        "OverloadedError",
        "PerformanceSection",
        "SchemaError",
        "Settings",
        "SignatureError",
        "SourceError",
        "StoredObject",
        "SystemClock",
        "UnsafeArtifactError",
        "ValidationFailedError",
        "as_utc",
        "check_url",
        "configure_object_storage",
        "load_settings",
        "mask_secret",
        "new_secret",
        "secret_key",
        "sha256_file",
        "sign",
        "signed_headers",
        "verify_signature",
    ]


def test_data_exports() -> None:
    """keel.data's public names."""
    assert sorted(keel.data.__all__) == [
        "Anonymize",
        "Column",
        "Contract",
        "DatasetStore",
        "DatasetVersion",
        "Failure",
        "IngestResult",
        "MISSING",
        "OTHER",
        "PiiFinding",
        "RULES",
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
        "inject_faults",
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


def test_registry_exports() -> None:
    """keel.registry's public names."""
    import keel.registry

    assert sorted(keel.registry.__all__) == [
        "ALIASES", "AliasMove", "AliasState", "ArtifactFormat", "AuditEvent", "BOOSTER_CLASSES", "FORMATS", "ForestFacts", "ModelStore",
        "ModelVersion", "OnnxClassifier", "OnnxModel", "REVIEWED_TYPES", "ResolvedVersion", "SavedModel", "booster_trees",
        "check_alias", "check_model_contents", "check_model_name", "check_move", "check_reason",
        "check_storable", "dump_model", "load_container", "load_model", "load_onnx", "save_model",
        "says_something",
    ]  # fmt: skip


def test_train_exports() -> None:
    """keel.train's public names."""
    import keel.train

    assert sorted(keel.train.__all__) == [
        "Candidate",
        "CategoricalReference",
        "EMPTY_REFERENCE",
        "EvaluationReport",
        "FailedCandidate",
        "GateResult",
        "LOWER_IS_BETTER",
        "NumericReference",
        "PromotionRefusedError",
        "ReferenceProfile",
        "ScoreResult",
        "Split",
        "SqlSink",
        "TableResult",
        "TrainResult",
        "TrainSpec",
        "check_gates",
        "export_onnx",
        "import_onnx",
        "load_spec",
        "pareto_front",
        "parse_gate",
        "promote",
        "recommend",
        "render_card_html",
        "render_card_markdown",
        "report_of",
        "rollback",
        "score",
        "score_file",
        "score_file_ray",
        "score_to_sql",
        "shap_values",
        "spec_from_dict",
        "to_pandas",
        "train",
        "weighted_binary",
        "weighted_regression",
    ]


def test_serve_exports() -> None:
    """keel.serve's public names."""
    import keel.serve

    assert sorted(keel.serve.__all__) == [
        "AuthError",
        "Client",
        "ClientError",
        "KeelServer",
        "MicroBatcher",
        "RayScaling",
        "RequestError",
        "ScopeError",
        "TokenRequiredError",
        "create_app",
        "error_response",
        "exposure_warnings",
        "ray_deployment",
        "status_of",
    ]


def test_errors_are_catchable_as_builtins() -> None:
    """Each error also subclasses the builtin a caller would naturally catch."""
    assert issubclass(keel.store.SchemaError, ValueError)
    assert issubclass(keel.store.DatasetNotFoundError, KeyError)
    assert issubclass(keel.store.IntegrityError, RuntimeError)
    assert str(keel.store.DatasetNotFoundError("plain text")) == "plain text"


def test_hooks_exports() -> None:
    """keel.hooks's public names."""
    import keel.hooks

    assert sorted(keel.hooks.__all__) == [
        "Delivery",
        "DispatchPass",
        "Dispatcher",
        "EVENTS",
        "FORMATS",
        "Hook",
        "HookEvent",
        "HookStore",
        "is_loopback",
        "retry_after_s",
    ]
