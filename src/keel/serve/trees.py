"""Tree ensembles evaluated for a whole batch at once with NumPy, for serving.

Measured (docs/benchmarks.md): scikit-learn's forests and histogram boosting pay a Python-level
cost per tree and per call (RandomForest 100 trees: ~5 ms per `predict_proba` whatever the
batch; HistGradientBoosting 100 iterations: ~0.9 ms for 64 rows), so at serving's batch sizes
the library's call overhead, not the trees, is the wall. Here every tree of the ensemble
descends together, one level per step, over flat arrays of all their nodes; the leaves' values
are then added in the library's own order (a sequential sum, as scikit-learn accumulates), so
the answers are the same floating-point numbers. `compile_trees` refuses what it does not
reproduce (categorical splits, several outputs, other estimators), and the serving runtime
uses the result only after checking it equals the estimator's answers on sample rows at load.

XGBoost and LightGBM boosters are read the same way, from the plain trees of their own model
dumps (XGBoost: `x < threshold` in float32, NaN to the default child, leaves summed in float32
and the objective's transform in float32; LightGBM: `x <= threshold` in float64 with its three
missing-value rules, leaves summed in float64). Their transcendental functions (exp) are NumPy's,
not the libraries' C runtimes', so these answers are within `tree_tolerance` (1e-6) of the
library's rather than bit-identical; the runtime checks that at load. CatBoost (oblivious trees
over its own quantized borders) is not read: the library answers for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from keel.registry import booster_trees

Predict = Callable[[np.ndarray], np.ndarray]


class _Nodes:
    """Every tree's nodes in flat arrays; leaves point to themselves."""

    def __init__(
        self,
        trees: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
        depth: int,
        *,
        strict: bool = False,
        nan_to_zero: np.ndarray | None = None,
        zero_missing: np.ndarray | None = None,
    ) -> None:
        # each tree: (left, right, feature, threshold, missing_go_to_left), local indices,
        # left == -1 at leaves
        lefts, rights, feats, thrs, mlefts, roots = [], [], [], [], [], []
        offset = 0
        for left, right, feature, threshold, missing_left in trees:
            n = len(left)
            own = np.arange(n) + offset
            leaf = left < 0
            lefts.append(np.where(leaf, own, left + offset))
            rights.append(np.where(leaf, own, right + offset))
            feats.append(np.where(leaf, 0, feature))
            thrs.append(np.asarray(threshold, dtype=np.float64))
            mlefts.append(np.asarray(missing_left, dtype=bool))
            roots.append(offset)
            offset += n
        self.left = np.concatenate(lefts).astype(np.intp)
        self.right = np.concatenate(rights).astype(np.intp)
        self.feature = np.concatenate(feats).astype(np.intp)
        self.threshold = np.concatenate(thrs)
        self.missing_left = np.concatenate(mlefts)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth
        self.strict = strict  # XGBoost goes left on x < threshold, the others on x <= threshold
        self.nan_to_zero = nan_to_zero  # LightGBM: NaN compares as 0 where missing_type != NaN
        self.zero_missing = zero_missing  # LightGBM: 0 takes the default child (missing Zero)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees) global index of the leaf each row reaches in each tree."""
        n, d = x.shape
        flat = x.ravel()
        base = (np.arange(n, dtype=np.intp) * d)[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        for _ in range(self.depth):
            value = flat.take(base + self.feature.take(node))
            nan = np.isnan(value)
            if self.nan_to_zero is not None and nan.any():
                value = np.where(nan & self.nan_to_zero.take(node), 0.0, value)
                nan = np.isnan(value)
            if self.zero_missing is not None:
                nan = nan | (self.zero_missing.take(node) & (np.abs(value) <= 1e-35))
            threshold = self.threshold.take(node)
            left = value < threshold if self.strict else value <= threshold
            if nan.any():
                left = np.where(nan, self.missing_left.take(node), left)
            node = np.where(left, self.left.take(node), self.right.take(node))
        return node


def _sequential_sum(parts: np.ndarray, axis: int) -> np.ndarray:
    # np.add.accumulate adds left to right, as scikit-learn's `out += tree` loop does (np.sum
    # would add pairwise and change the last bits)
    return np.asarray(np.add.accumulate(parts, axis=axis).take(-1, axis=axis))


def _forest(model: Any) -> Predict | None:
    trees = []
    depth = 0
    for est in model.estimators_:
        t = est.tree_
        if t.n_outputs != 1:
            return None
        missing = getattr(t, "missing_go_to_left", None)
        trees.append(
            (
                np.asarray(t.children_left),
                np.asarray(t.children_right),
                np.asarray(t.feature),
                np.asarray(t.threshold),
                np.zeros(t.node_count, bool) if missing is None else np.asarray(missing),
            )
        )
        depth = max(depth, int(t.max_depth))
    nodes = _Nodes(trees, depth)
    classifier = hasattr(model, "classes_")
    if classifier:
        k = int(model.n_classes_)
        values = np.concatenate([e.tree_.value[:, 0, :k] for e in model.estimators_])
    else:
        values = np.concatenate([e.tree_.value[:, 0, 0] for e in model.estimators_])
    n_trees = len(model.estimators_)

    def predict(x: np.ndarray) -> np.ndarray:
        # the library's trees read float32 and compare with float64 thresholds
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
        leaf = nodes.leaves(x32)  # (rows, trees)
        per_tree = values[leaf]  # (rows, trees[, classes])
        zero = np.zeros((len(x), 1, *per_tree.shape[2:]))
        total = _sequential_sum(np.concatenate([zero, per_tree], axis=1), axis=1)
        total /= n_trees
        return total

    return predict


def _boosting(model: Any) -> Predict | None:
    if getattr(model, "_preprocessor", None) is not None:
        return None
    trees, order = [], []
    depth = 0
    per_iteration = int(model.n_trees_per_iteration_)
    values = []
    for iteration in model._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            if nodes["is_categorical"].any():
                return None
            leaf = nodes["is_leaf"].astype(bool)
            trees.append(
                (
                    np.where(leaf, -1, nodes["left"].astype(np.intp)),
                    nodes["right"].astype(np.intp),
                    nodes["feature_idx"].astype(np.intp),
                    nodes["num_threshold"],
                    nodes["missing_go_to_left"].astype(bool),
                )
            )
            values.append(nodes["value"].astype(np.float64))
            order.append(k)
            depth = max(depth, int(nodes["depth"].max()))
    compiled = _Nodes(trees, depth)
    leaf_values = np.concatenate(values)
    columns = [np.flatnonzero(np.asarray(order) == k) for k in range(per_iteration)]
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    classifier = hasattr(model, "classes_")

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        per_tree = leaf_values[compiled.leaves(x)]  # (rows, trees)
        raw = np.empty((len(x), per_iteration), order="F")
        for k, cols in enumerate(columns):
            start = np.full((len(x), 1), baseline[k])
            raw[:, k] = _sequential_sum(np.concatenate([start, per_tree[:, cols]], axis=1), 1)
        if classifier:
            return np.asarray(model._loss.predict_proba(raw))
        return np.asarray(model._loss.link.inverse(raw.ravel()))

    return predict


def _flat(trees: list[Any]) -> tuple[list[Any], int]:
    plain = [(t.left, t.right, t.feature, t.threshold, t.default_left) for t in trees]
    return plain, max((t.depth for t in trees), default=0)


def _softmax(raw: np.ndarray, dtype: Any) -> np.ndarray:
    e = np.exp(raw - raw.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=dtype)


def _xgboost(model: Any) -> Predict | None:
    if not (isinstance(model.missing, float) and np.isnan(model.missing)):
        return None  # a non-NaN `missing` marker: the library answers
    parsed = booster_trees(model)
    if parsed is None:
        return None
    trees, facts = parsed
    objective = facts.objective
    if objective not in ("binary:logistic", "reg:logistic", "multi:softprob", "reg:squarederror"):
        return None
    k = max(1, facts.num_class)
    base = np.asarray(facts.base_score, dtype=np.float32).reshape(-1)
    if objective in ("binary:logistic", "reg:logistic"):
        base = np.asarray(np.log(base / (np.float32(1) - base)), dtype=np.float32)
    margin0 = np.broadcast_to(base, (k,)).astype(np.float32)
    plain, depth = _flat(trees)
    nodes = _Nodes(plain, depth, strict=True)
    values = np.concatenate([t.value for t in trees]).astype(np.float32)
    groups = np.asarray(facts.tree_info, dtype=np.intp)
    columns = [np.flatnonzero(groups == g) for g in range(k)]
    classifier = hasattr(model, "classes_")

    def predict(x: np.ndarray) -> np.ndarray:
        x32 = np.asarray(x, dtype=np.float32).astype(np.float64)
        per_tree = values[nodes.leaves(x32)]  # (rows, trees), float32
        raw = np.empty((len(x), k), dtype=np.float32)
        for g, cols in enumerate(columns):
            start = np.full((len(x), 1), margin0[g], dtype=np.float32)
            raw[:, g] = _sequential_sum(np.concatenate([start, per_tree[:, cols]], axis=1), 1)
        if objective == "multi:softprob":
            return _softmax(raw, np.float32)
        if objective == "reg:squarederror":
            return raw[:, 0]
        one = np.float32(1)
        p = (one / (one + np.exp(-raw[:, 0]))).astype(np.float32)
        return np.column_stack([one - p, p]) if classifier else p

    return predict


def _lightgbm(model: Any) -> Predict | None:
    parsed = booster_trees(model)
    if parsed is None:
        return None
    trees, facts = parsed
    k = max(1, facts.num_class)
    best = int(getattr(model, "_best_iteration", 0) or 0)
    if best > 0:
        trees = trees[: best * k]
    objective = facts.objective
    words = dict(w.split(":", 1) for w in facts.objective_full.split(" ")[1:] if ":" in w)
    identity = ("regression", "regression_l1", "huber", "fair", "quantile", "mape")
    if objective not in ("binary", "multiclass", *identity):
        return None
    plain, depth = _flat(trees)
    nodes = _Nodes(
        plain,
        depth,
        nan_to_zero=np.concatenate([t.nan_to_zero for t in trees]),
        zero_missing=np.concatenate([t.zero_missing for t in trees]),
    )
    values = np.concatenate([t.value for t in trees]).astype(np.float64)
    columns = [np.arange(g, len(trees), k) for g in range(k)]
    sigmoid = float(words.get("sigmoid", 1.0))

    def predict(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        per_tree = values[nodes.leaves(x)]
        raw = np.empty((len(x), k))
        for g, cols in enumerate(columns):
            start = np.zeros((len(x), 1))
            raw[:, g] = _sequential_sum(np.concatenate([start, per_tree[:, cols]], axis=1), 1)
        if objective == "multiclass":
            return _softmax(raw, np.float64)
        if objective == "binary":
            p = 1.0 / (1.0 + np.exp(-sigmoid * raw[:, 0]))
            return np.column_stack([1.0 - p, p])
        return raw[:, 0]

    return predict


_BOOSTERS: dict[str, Callable[[Any], Predict | None]] = {
    "XGBClassifier": _xgboost,
    "XGBRegressor": _xgboost,
    "LGBMClassifier": _lightgbm,
    "LGBMRegressor": _lightgbm,
}


def tree_tolerance(model: Any) -> float:
    """How far the batch evaluator may be from the library: 0 (bit-identical) for scikit-learn,
    1e-6 for boosters, whose exp and float32 rounding keel does not replay bit for bit."""
    return 1e-6 if type(model).__name__ in _BOOSTERS else 0.0


BOOSTER_MAX_ROWS = 8
"""The largest batch keel's evaluator answers for a booster; larger ones go to the library.
Measured (docs/benchmarks.md, bench/boosters.py): XGBoost's and LightGBM's predictors pay
~1-3 ms per call but little per row, the evaluator the other way round; at 1-8 rows keel is
1.6-3x faster, from 16-32 rows the library is."""


def tree_max_rows(model: Any) -> int | None:
    """The largest batch the evaluator should answer for this model (None: any size)."""
    return BOOSTER_MAX_ROWS if type(model).__name__ in _BOOSTERS else None


def compile_trees(model: Any) -> Predict | None:
    """A batch predict (probabilities for classifiers) for a scikit-learn forest, single tree
    or histogram gradient boosting, or an XGBoost / LightGBM booster; None for anything else."""
    name = type(model).__name__
    try:
        if name in _BOOSTERS and type(model).__module__.startswith(("xgboost", "lightgbm")):
            return _BOOSTERS[name](model)
        if name in (
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
        ):
            return _forest(model)
        if name in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
            return _boosting(model)
    except (AttributeError, KeyError, ValueError, TypeError, IndexError):
        return None
    return None
