"""Registry: immutable model versions, aliases with audited moves, safe artifacts."""

from keel.registry.boosters import BOOSTER_CLASSES, ForestFacts, booster_trees
from keel.registry.checks import (
    ALIASES,
    check_alias,
    check_model_name,
    check_move,
    check_reason,
    says_something,
)
from keel.registry.events import AliasMove, AuditEvent
from keel.registry.models import ModelStore
from keel.registry.onnx_model import OnnxClassifier, OnnxModel, load_onnx
from keel.registry.records import AliasState, ModelVersion, ResolvedVersion
from keel.registry.serialization import (
    FORMATS,
    REVIEWED_TYPES,
    ArtifactFormat,
    SavedModel,
    check_model_contents,
    check_storable,
    dump_model,
    load_container,
    load_model,
    save_model,
)

__all__ = [
    "ALIASES",
    "BOOSTER_CLASSES",
    "FORMATS",
    "REVIEWED_TYPES",
    "AliasMove",
    "AliasState",
    "ArtifactFormat",
    "AuditEvent",
    "ForestFacts",
    "ModelStore",
    "ModelVersion",
    "OnnxClassifier",
    "OnnxModel",
    "ResolvedVersion",
    "SavedModel",
    "booster_trees",
    "check_alias",
    "check_model_contents",
    "check_model_name",
    "check_move",
    "check_reason",
    "check_storable",
    "dump_model",
    "load_container",
    "load_model",
    "load_onnx",
    "save_model",
    "says_something",
]
