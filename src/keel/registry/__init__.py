"""Registry: immutable model versions, aliases with audited moves, safe artifacts.

Names load on first use (PEP 562), as in every face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "ALIASES": "keel.registry.checks",
    "AliasMove": "keel.registry.events",
    "AliasState": "keel.registry.records",
    "ArtifactFormat": "keel.registry.serialization",
    "AuditEvent": "keel.registry.events",
    "BOOSTER_CLASSES": "keel.registry.boosters",
    "booster_trees": "keel.registry.boosters",
    "check_alias": "keel.registry.checks",
    "check_model_contents": "keel.registry.serialization",
    "check_model_name": "keel.registry.checks",
    "check_move": "keel.registry.checks",
    "check_reason": "keel.registry.checks",
    "check_storable": "keel.registry.serialization",
    "dump_model": "keel.registry.serialization",
    "ForestFacts": "keel.registry.boosters",
    "FORMATS": "keel.registry.serialization",
    "load_container": "keel.registry.serialization",
    "load_model": "keel.registry.serialization",
    "load_onnx": "keel.registry.onnx_model",
    "ModelStore": "keel.registry.models",
    "ModelVersion": "keel.registry.records",
    "OnnxClassifier": "keel.registry.onnx_model",
    "OnnxModel": "keel.registry.onnx_model",
    "ResolvedVersion": "keel.registry.records",
    "REVIEWED_TYPES": "keel.registry.serialization",
    "save_model": "keel.registry.serialization",
    "SavedModel": "keel.registry.serialization",
    "says_something": "keel.registry.checks",
}

if TYPE_CHECKING:
    from keel.registry.boosters import (
        BOOSTER_CLASSES as BOOSTER_CLASSES,
        ForestFacts as ForestFacts,
        booster_trees as booster_trees,
    )
    from keel.registry.checks import (
        ALIASES as ALIASES,
        check_alias as check_alias,
        check_model_name as check_model_name,
        check_move as check_move,
        check_reason as check_reason,
        says_something as says_something,
    )
    from keel.registry.events import AliasMove as AliasMove, AuditEvent as AuditEvent
    from keel.registry.models import ModelStore as ModelStore
    from keel.registry.onnx_model import (
        OnnxClassifier as OnnxClassifier,
        OnnxModel as OnnxModel,
        load_onnx as load_onnx,
    )
    from keel.registry.records import (
        AliasState as AliasState,
        ModelVersion as ModelVersion,
        ResolvedVersion as ResolvedVersion,
    )
    from keel.registry.serialization import (
        FORMATS as FORMATS,
        REVIEWED_TYPES as REVIEWED_TYPES,
        ArtifactFormat as ArtifactFormat,
        SavedModel as SavedModel,
        check_model_contents as check_model_contents,
        check_storable as check_storable,
        dump_model as dump_model,
        load_container as load_container,
        load_model as load_model,
        save_model as save_model,
    )

__getattr__ = lazy_getattr("keel.registry", _NAMES)

__all__ = sorted(_NAMES)
