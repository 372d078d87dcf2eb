"""Registry: immutable model versions, aliases with audited moves, safe artifacts."""

from keel.registry.boosters import BOOSTER_CLASSES, booster_trees
from keel.registry.models import (
    ALIASES,
    AliasState,
    ModelStore,
    ModelVersion,
    ResolvedVersion,
    check_alias,
    check_model_name,
    check_move,
    check_reason,
    says_something,
)
from keel.registry.onnx_model import OnnxClassifier, OnnxModel, load_onnx
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
    "AliasState",
    "ArtifactFormat",
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
