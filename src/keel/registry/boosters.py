"""Gradient-boosting libraries in their own formats: XGBoost UBJSON, LightGBM text, CatBoost cbm.

skops cannot store these estimators without trusting the libraries' C++ objects through pickle,
so keel stores the booster with the library's own saver and restores it with the library's own
loader, never pickle. The scikit-learn wrapper around it (`XGBClassifier`, ...) is rebuilt from
a fixed table of classes, keyword parameters that are plain JSON values, and (LightGBM) a few
reviewed attributes of plain types. A manifest can only name a class of this table; nothing it
holds is imported by name.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from keel.registry.tree_checks import lightgbm_text_trees, tree_depths
from keel.store import UnsafeArtifactError


@dataclass(frozen=True)
class BoosterClass:
    """One estimator class keel stores natively: which library, which format, which member."""

    path: str  # the public import path users write in specs, e.g. "xgboost.XGBClassifier"
    library: str  # the format name in the artifact manifest: "xgboost", "lightgbm", "catboost"
    member: str  # the container member holding the booster's own bytes
    classifier: bool

    def load_class(self) -> Any:
        module, _, name = self.path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), name)
        except ImportError as exc:
            msg = (
                f"The artifact holds a {self.path} model but {module} is not installed; "
                "install it with: pip install 'keel[boosting]'."
            )
            raise UnsafeArtifactError(msg) from exc


BOOSTER_CLASSES: dict[str, BoosterClass] = {
    c.path: c
    for c in (
        BoosterClass("xgboost.XGBClassifier", "xgboost", "model.ubj", True),
        BoosterClass("xgboost.XGBRegressor", "xgboost", "model.ubj", False),
        BoosterClass("lightgbm.LGBMClassifier", "lightgbm", "model.txt", True),
        BoosterClass("lightgbm.LGBMRegressor", "lightgbm", "model.txt", False),
        BoosterClass("catboost.CatBoostClassifier", "catboost", "model.cbm", True),
        BoosterClass("catboost.CatBoostRegressor", "catboost", "model.cbm", False),
    )
}
"""The estimators stored in their library's own format, by the path a spec names them with."""


def booster_class(model: Any) -> BoosterClass | None:
    """The table entry for exactly this estimator's class (not a subclass); None otherwise."""
    cls = type(model)
    root = cls.__module__.partition(".")[0]
    for entry in BOOSTER_CLASSES.values():
        if entry.library == root and cls.__name__ == entry.path.rpartition(".")[2]:
            return entry if cls is entry.load_class() else None
    return None


def _refuse(what: str) -> NoReturn:
    msg = f"The model artifact {what}; it was refused as corrupt or crafted."
    raise UnsafeArtifactError(msg)


def _json_value(value: Any) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return True  # NaN (XGBoost's `missing`) round-trips through Python's json
    if isinstance(value, list | tuple):
        return all(_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_value(v) for k, v in value.items())
    return False


def storable_params(model: Any, path: str) -> dict[str, Any]:
    """The estimator's constructor parameters, refused unless every one is a JSON value."""
    params = model.get_params(deep=False)
    bad = {k: type(v).__name__ for k, v in params.items() if not _json_value(v)}
    if bad:
        msg = (
            f"{path} has parameters keel cannot store without pickle: {bad}. Give them as plain "
            "values (numbers, strings, lists) in the spec's params, or leave them at their default."
        )
        raise UnsafeArtifactError(msg)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}


# ---- saving ---------------------------------------------------------------------------------


def save_booster(model: Any, entry: BoosterClass) -> tuple[bytes, dict[str, Any]]:
    """The booster's bytes in its library's format and the facts needed to rebuild the wrapper."""
    meta: dict[str, Any] = {
        "estimator": entry.path,
        "params": storable_params(model, entry.path),
    }
    if entry.library == "xgboost":
        return bytes(model.get_booster().save_raw(raw_format="ubj")), meta
    if entry.library == "lightgbm":
        meta["attributes"] = {
            name: _plain(getattr(model, name)) for name in _LGBM_ATTRIBUTES[entry.classifier]
        }
        return model.booster_.model_to_string().encode(), meta
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.cbm")
        model.save_model(path, format="cbm")
        with open(path, "rb") as fh:
            return fh.read(), meta


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---- loading --------------------------------------------------------------------------------

_LGBM_ATTRIBUTES: dict[bool, tuple[str, ...]] = {
    True: (
        "_n_features",
        "_n_features_in",
        "_objective",
        "_best_iteration",
        "_fitted_with_feature_names",
        "_classes",
        "_n_classes",
    ),
    False: (
        "_n_features",
        "_n_features_in",
        "_objective",
        "_best_iteration",
        "_fitted_with_feature_names",
    ),
}
"""The sklearn wrapper's fitted attributes LightGBM has no loader for: ints, the objective's
name, a flag, and the class labels (ints or strings). Nothing else is set from a manifest."""


def load_booster(raw: bytes, meta: dict[str, Any]) -> Any:
    """Rebuild the estimator a manifest names from its booster bytes, by the library's loader."""
    path = meta.get("estimator")
    entry = BOOSTER_CLASSES.get(path) if isinstance(path, str) else None
    if entry is None:
        _refuse(
            f"names the estimator {path!r}, which keel does not store natively "
            f"(expected one of {sorted(BOOSTER_CLASSES)})"
        )
    params = meta.get("params")
    if not isinstance(params, dict) or not _json_value(params):
        _refuse("holds estimator parameters that are not plain JSON values")
    cls = entry.load_class()
    try:
        model = cls(**params)
    except (TypeError, ValueError) as exc:
        _refuse(f"holds parameters {entry.path} does not take ({exc})")
    try:
        _RESTORE[entry.library](model, raw, meta, entry)
    except UnsafeArtifactError:
        raise
    except Exception as exc:  # each library raises its own kinds on a malformed file
        _refuse(
            f"holds a {entry.library} booster its library could not read ({type(exc).__name__}: {exc})"
        )
    return model


def _restore_xgboost(model: Any, raw: bytes, _meta: dict[str, Any], _entry: BoosterClass) -> None:
    model.load_model(bytearray(raw))
    check_xgboost_trees(model.get_booster())


_TREE_SIZES = re.compile(r"^tree_sizes=.*$\n?", re.MULTILINE)


def _restore_lightgbm(model: Any, raw: bytes, meta: dict[str, Any], entry: BoosterClass) -> None:
    import lightgbm
    from sklearn.preprocessing import LabelEncoder

    attrs = meta.get("attributes")
    names = _LGBM_ATTRIBUTES[entry.classifier]
    if not isinstance(attrs, dict) or sorted(attrs) != sorted(names):
        _refuse(f"holds LightGBM attributes other than {list(names)}")
    for key in ("_n_features", "_n_features_in", "_best_iteration"):
        if not isinstance(attrs[key], int) or isinstance(attrs[key], bool) or attrs[key] < 0:
            _refuse(f"holds LightGBM attribute {key} = {attrs[key]!r}; expected a count")
    if not isinstance(attrs["_fitted_with_feature_names"], bool):
        _refuse("holds a LightGBM feature-names flag that is not true or false")
    if not isinstance(attrs["_objective"], str):
        _refuse("holds a LightGBM objective that is not a name")
    # Without `tree_sizes` LightGBM reads the trees one after the other and a malformed one is
    # an exception; with it, it reads them in parallel and a malformed one aborts the process
    # (measured: "terminate called without an active exception").
    text = _TREE_SIZES.sub("", raw.decode("utf-8"))
    booster = lightgbm.Booster(model_str=text)
    if booster.num_feature() != attrs["_n_features"]:
        _refuse("holds a LightGBM booster whose width differs from its manifest")
    # the trees as the library holds them, from the text it writes back without walking them:
    # checked before anything walks them (dump_model on a cycle crashes the process)
    for left, right, feature in lightgbm_text_trees(booster.model_to_string()):
        tree_depths(left, right, what="LightGBM")
        inner = left >= 0
        if ((feature[inner] < 0) | (feature[inner] >= attrs["_n_features"])).any():
            _refuse("holds a LightGBM tree with a feature index out of range")
    for key in names:
        setattr(model, key, attrs[key])
    if entry.classifier:
        classes = attrs["_classes"]
        if (
            not isinstance(classes, list)
            or len(classes) < 2
            or not all(isinstance(c, int | str) and not isinstance(c, bool) for c in classes)
            or attrs["_n_classes"] != len(classes)
        ):
            _refuse("holds LightGBM class labels that are not a list of ints or strings")
        model._classes = np.asarray(classes)
        model._le = LabelEncoder().fit(model._classes)
        model._class_map = None
    model._Booster = booster
    model._best_score = {}
    model._evals_result = {}
    model.fitted_ = True
    check_lightgbm_trees(booster, attrs["_n_features"])


def _restore_catboost(model: Any, raw: bytes, _meta: dict[str, Any], _entry: BoosterClass) -> None:
    model.load_model(blob=raw, format="cbm")


_RESTORE: dict[str, Callable[[Any, bytes, dict[str, Any], BoosterClass], None]] = {
    "xgboost": _restore_xgboost,
    "lightgbm": _restore_lightgbm,
    "catboost": _restore_catboost,
}


# ---- the trees, as plain arrays (for the checks here and keel's batch evaluator) -------------


@dataclass(frozen=True)
class PlainTree:
    """One tree in flat arrays, local node indices, `left == -1` at leaves."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    default_left: np.ndarray
    value: np.ndarray  # leaf values (0 at inner nodes)
    nan_to_zero: np.ndarray | None = None  # LightGBM missing_type None: NaN compares as 0
    zero_missing: np.ndarray | None = None  # LightGBM missing_type Zero: 0 goes the default way

    @property
    def depth(self) -> int:
        """The longest root-to-leaf path (the nodes checked to form one tree)."""
        return int(tree_depths(self.left, self.right, what="booster", unreached_ok=True).max())


@dataclass(frozen=True, slots=True)
class ForestFacts:
    """What a booster's trees need beside themselves to give its outputs.

    Attributes:
        objective: the objective's name ("binary:logistic", "binary", "multiclass", ...).
        objective_full: LightGBM's objective with its parameters ("binary sigmoid:1"); for
            XGBoost the same as `objective`.
        num_class: classes of a multi-class model (0 or 1 otherwise).
        n_features: the number of input columns the trees index.
        base_score: XGBoost's starting margin(s), as probabilities for logistic objectives
            (empty for LightGBM, which starts at 0).
        tree_info: XGBoost's class group of each tree (empty for LightGBM: round-robin).
        num_deleted: XGBoost's pruned nodes kept in each tree's arrays (empty for LightGBM).
    """

    objective: str
    objective_full: str
    num_class: int
    n_features: int
    base_score: tuple[float, ...] = ()
    tree_info: tuple[int, ...] = ()
    num_deleted: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        for name in ("num_class", "n_features"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                msg = f"ForestFacts field {name!r} is {value!r}; expected a whole number from 0."
                raise ValueError(msg)


def _check_tree(tree: PlainTree, n_features: int, what: str, *, unreached_ok: bool = False) -> None:
    tree_depths(tree.left, tree.right, what=what, unreached_ok=unreached_ok)
    inner = tree.left >= 0
    if ((tree.feature[inner] < 0) | (tree.feature[inner] >= n_features)).any():
        _refuse(f"holds a {what} tree with a feature index out of range")


def xgboost_trees(booster: Any) -> tuple[list[PlainTree], ForestFacts]:
    """The trees of an XGBoost gbtree model and its learner facts (objective, base score)."""
    model = json.loads(bytes(booster.save_raw(raw_format="json")))
    learner = model["learner"]
    gbm = learner["gradient_booster"]
    if gbm["name"] != "gbtree":
        msg = f"booster {gbm['name']!r} is not a tree booster"
        raise ValueError(msg)
    param = learner["learner_model_param"]
    n_features = int(param["num_feature"])
    trees = []
    for t in gbm["model"]["trees"]:
        if int(t["tree_param"].get("num_feature", n_features)) > n_features or any(t["split_type"]):
            msg = "categorical splits"
            raise ValueError(msg)
        left = np.asarray(t["left_children"], dtype=np.int64)
        cond = np.asarray(t["split_conditions"], dtype=np.float32)
        leaf = left < 0
        trees.append(
            PlainTree(
                left,
                np.asarray(t["right_children"], dtype=np.int64),
                np.asarray(t["split_indices"], dtype=np.int64),
                np.where(leaf, 0, cond).astype(np.float32),
                np.asarray(t["default_left"], dtype=bool),
                np.where(leaf, cond, 0).astype(np.float32),
            )
        )
    objective = str(learner["objective"]["name"])
    facts = ForestFacts(
        objective=objective,
        objective_full=objective,
        num_class=int(param["num_class"]),
        n_features=n_features,
        base_score=tuple(float(b) for b in np.asarray(json.loads(param["base_score"])).reshape(-1)),
        tree_info=tuple(int(i) for i in gbm["model"]["tree_info"]),
        num_deleted=tuple(
            int(t["tree_param"].get("num_deleted", 0)) for t in gbm["model"]["trees"]
        ),
    )
    return trees, facts


def check_xgboost_trees(booster: Any) -> None:
    """Every tree of a loaded XGBoost model forms one tree from its root (the library loads
    without walking them). Pruned nodes XGBoost keeps in its arrays (`num_deleted`) may be
    unreached; nothing may be reached twice."""
    try:
        trees, facts = xgboost_trees(booster)
    except (ValueError, KeyError, TypeError):
        return  # linear / dart / categorical boosters: the library alone answers for them
    for tree, deleted in zip(trees, facts.num_deleted, strict=True):
        _check_tree(tree, facts.n_features, "XGBoost", unreached_ok=deleted > 0)


def lightgbm_trees(booster: Any) -> tuple[list[PlainTree], ForestFacts]:
    """The trees of a LightGBM model (numerical splits only) and its objective."""
    dump = booster.dump_model()
    trees = []
    for info in dump["tree_info"]:
        nodes: list[dict[str, Any]] = []
        _flatten(info["tree_structure"], nodes)
        n = len(nodes)
        arr = {
            k: np.zeros(n, dtype=t)
            for k, t in (
                ("left", np.int64),
                ("right", np.int64),
                ("feature", np.int64),
                ("threshold", np.float64),
                ("default_left", bool),
                ("value", np.float64),
                ("nan_to_zero", bool),
                ("zero_missing", bool),
            )
        }
        for i, node in enumerate(nodes):
            if "leaf_value" in node or "split_index" not in node:
                arr["left"][i] = arr["right"][i] = -1
                arr["value"][i] = float(node.get("leaf_value", 0.0))
                continue
            if node["decision_type"] != "<=":
                msg = "categorical splits"
                raise ValueError(msg)
            arr["left"][i], arr["right"][i] = node["_left"], node["_right"]
            arr["feature"][i] = int(node["split_feature"])
            arr["threshold"][i] = float(node["threshold"])
            arr["default_left"][i] = bool(node["default_left"])
            arr["nan_to_zero"][i] = node["missing_type"] != "NaN"
            arr["zero_missing"][i] = node["missing_type"] == "Zero"
        trees.append(PlainTree(**arr))
    facts = ForestFacts(
        objective=str(dump.get("objective", "")).split(" ")[0],
        objective_full=str(dump.get("objective", "")),
        num_class=int(dump["num_class"]),
        n_features=int(dump["max_feature_idx"]) + 1,
    )
    return trees, facts


def _flatten(node: dict[str, Any], out: list[dict[str, Any]]) -> int:
    """Number a dumped tree depth-first (parents before children); returns the node's index."""
    index = len(out)
    out.append(node)
    if "split_index" in node and "leaf_value" not in node:
        node["_left"] = _flatten(node["left_child"], out)
        node["_right"] = _flatten(node["right_child"], out)
    return index


def check_lightgbm_trees(booster: Any, n_features: int) -> None:
    try:
        trees, _facts = lightgbm_trees(booster)
    except (ValueError, KeyError, TypeError):
        return  # categorical splits: the library alone answers for them
    for tree in trees:
        _check_tree(tree, n_features, "LightGBM")


def booster_trees(model: Any) -> tuple[list[PlainTree], ForestFacts] | None:
    """The plain trees of a fitted XGBoost or LightGBM estimator, for keel's batch evaluator;
    None when its model is not plain numerical trees (linear or dart boosters, categorical
    splits) or the estimator is not one of `BOOSTER_CLASSES`."""
    entry = booster_class(model)
    try:
        if entry is not None and entry.library == "xgboost":
            return xgboost_trees(model.get_booster())
        if entry is not None and entry.library == "lightgbm":
            return lightgbm_trees(model.booster_)
    except (ValueError, KeyError, TypeError):
        return None
    return None
