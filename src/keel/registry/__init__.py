"""Registry: immutable model versions, aliases with audited moves, safe artifacts."""

from keel.registry.models import ALIASES, AliasState, ModelStore, ModelVersion, ResolvedVersion
from keel.registry.onnx_model import OnnxClassifier, OnnxModel, load_onnx
from keel.registry.serialization import REVIEWED_TYPES, check_model_contents, dump_model, load_model

__all__ = [
    "ALIASES",
    "REVIEWED_TYPES",
    "AliasState",
    "ModelStore",
    "ModelVersion",
    "OnnxClassifier",
    "OnnxModel",
    "ResolvedVersion",
    "check_model_contents",
    "dump_model",
    "load_model",
    "load_onnx",
]
