"""Storing fitted scikit-learn pipelines safely: skops, a reviewed trust list, content checks.

skops refuses to load any type it does not trust. Some types that supported estimators need are
not trusted by skops, for good reason: scikit-learn does not bounds-check the node and feature
indices of `TreePredictor` (HistGradientBoosting) or `Tree` (decision trees and forests), so a
crafted file could crash the process or read out of bounds. keel trusts exactly the reviewed
types below, and before a loaded model is used it checks every node and feature index of every
such tree. Anything else is refused with the list of untrusted types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import numpy as np
import skops.io as sio

from keel.registry.onnx_model import FORMAT as ONNX_FORMAT
from keel.registry.onnx_model import is_onnx, load_onnx
from keel.store import UnsafeArtifactError

FORMAT = "skops"

_TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
_TREE = "sklearn.tree._tree.Tree"

REVIEWED_TYPES: dict[str, str] = {
    "numpy.dtype": "a dtype description; holds no code and no indices",
    _TREE_PREDICTOR: "HistGradientBoosting trees; node, feature and bitset indices checked on load",
    _TREE: "decision trees and forests; child and feature indices checked on load",
}
"""Types skops calls unsafe that keel trusts, each with the reason it may."""


def dump_model(model: Any) -> tuple[bytes, list[str]]:
    """Serialize a fitted model with skops; returns the bytes and the untrusted types it needs.

    Raises:
        UnsafeArtifactError: the model needs a type outside the reviewed list.
    """
    if getattr(model, "format", None) == ONNX_FORMAT:
        return model.data, []  # the .onnx file itself (keel.registry.onnx_model)
    data = sio.dumps(model)
    needed = sorted(sio.get_untrusted_types(data=data))
    _refuse_unreviewed(needed, "Saving")
    return data, needed


def load_model(data: bytes) -> Any:
    """Load skops bytes (or an ONNX model: `keel.registry.onnx_model`), trusting only the reviewed types, then check every tree's indices.

    Raises:
        UnsafeArtifactError: an untrusted type, or tree contents out of range.
    """
    if is_onnx(data):
        return load_onnx(data)
    needed = sorted(sio.get_untrusted_types(data=data))
    _refuse_unreviewed(needed, "Loading")
    try:
        model = sio.loads(data, trusted=needed)
    except Exception as exc:  # skops raises many kinds on a malformed file
        msg = f"The model artifact could not be read by skops ({type(exc).__name__}: {exc}); it was refused."
        raise UnsafeArtifactError(msg) from exc
    check_model_contents(model)
    return model


def _refuse_unreviewed(needed: list[str], verb: str) -> None:
    unreviewed = [t for t in needed if t not in REVIEWED_TYPES]
    if unreviewed:
        msg = (
            f"{verb} the model needs types keel does not trust: {unreviewed}. Reviewed types: "
            f"{sorted(REVIEWED_TYPES)}. Use a supported estimator, or review the type and add it "
            "to keel.registry.serialization.REVIEWED_TYPES with a content check."
        )
        raise UnsafeArtifactError(msg)


def check_model_contents(model: Any) -> None:
    """Check every tree reachable from a model: indices in range, shapes consistent."""
    for obj, n_features in _walk(model, None, set()):
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        checker = _CHECKERS.get(name)
        if checker is not None:
            checker(obj, n_features)


def _walk(obj: Any, n_features: int | None, seen: set[int]) -> Iterator[tuple[Any, int | None]]:
    """Every object reachable from `obj`, with the input width of the nearest estimator."""
    if id(obj) in seen or isinstance(obj, str | bytes | int | float | np.ndarray | np.generic):
        return
    seen.add(id(obj))
    yield obj, n_features
    width = getattr(obj, "__dict__", {}).get("n_features_in_")
    if isinstance(width, int | np.integer):
        n_features = int(width)
    if isinstance(obj, dict):
        children: Any = obj.values()
    elif isinstance(obj, list | tuple | set):
        children = obj
    elif hasattr(obj, "__dict__"):
        children = vars(obj).values()
    else:
        return  # sklearn's Tree is a Cython object without __dict__: a leaf here
    for v in children:
        yield from _walk(v, n_features, seen)


def _fail(what: str) -> NoReturn:
    msg = f"The model artifact holds a tree with {what}; it was refused as corrupt or crafted."
    raise UnsafeArtifactError(msg)


def _check_tree_predictor(pred: Any, n_features: int | None) -> None:
    nodes = pred.nodes
    n = len(nodes)
    if n == 0:
        _fail("no nodes")
    inner = ~nodes["is_leaf"].astype(bool)
    for field in ("left", "right"):
        idx = nodes[field][inner].astype(np.int64)
        if ((idx <= 0) | (idx >= n)).any():
            _fail(f"a child index outside 1..{n - 1}")
    if n_features is None:
        _fail("no owning estimator that says how many features it takes")
    feat = nodes["feature_idx"][inner].astype(np.int64)
    if (feat < 0).any() or (n_features is not None and (feat >= n_features).any()):
        _fail("a feature index out of range")
    cat = inner & nodes["is_categorical"].astype(bool)
    if cat.any():
        bitsets = pred.raw_left_cat_bitsets
        bidx = nodes["bitset_idx"][cat].astype(np.int64)
        if ((bidx < 0) | (bidx >= len(bitsets))).any():
            _fail("a category bitset index out of range")


def _check_tree(tree: Any, _n_features: int | None) -> None:
    n = int(tree.node_count)
    left = np.asarray(tree.children_left, dtype=np.int64)
    right = np.asarray(tree.children_right, dtype=np.int64)
    feature = np.asarray(tree.feature, dtype=np.int64)
    if not (len(left) == len(right) == len(feature) == n) or n == 0:
        _fail("arrays whose lengths disagree with its node count")
    leaf = left == -1
    if (leaf != (right == -1)).any():
        _fail("a node with only one child")
    inner = ~leaf
    for idx in (left[inner], right[inner]):
        if ((idx <= 0) | (idx >= n)).any():
            _fail(f"a child index outside 1..{n - 1}")
    if ((feature[inner] < 0) | (feature[inner] >= int(tree.n_features))).any():
        _fail("a feature index out of range")
    if np.asarray(tree.value).shape[0] != n:
        _fail("values for a different number of nodes")


_CHECKERS: dict[str, Callable[[Any, int | None], None]] = {
    _TREE_PREDICTOR: _check_tree_predictor,
    _TREE: _check_tree,
}
