"""Converters keel registers with skl2onnx: HistGradientBoosting from its node arrays, and the
XGBoost and LightGBM estimators through onnxmltools.

skl2onnx 1.20's own HistGradientBoosting converter writes booleans into an integer attribute
for scikit-learn 1.9's trees, so the graph is refused. keel builds the `TreeEnsemble` node
(ai.onnx.ml opset 5) from the same arrays its tree evaluator reads (`TreePredictor.nodes`): one tree
per iteration and class, `x <= num_threshold` goes left, a missing value follows
`missing_go_to_left`. The trees work in double precision, as scikit-learn's do (the
thresholds are float64 and the input is cast to double), so the raw scores are the library's
to ~1e-15; the link (logistic, softmax, exp) is applied with standard ONNX operators.
Probabilities leave as float32 (what skl2onnx declares for classifiers); a regressor's value
leaves as double, so a large target (house prices) keeps its parity.

Categorical splits are refused with a message saying so: scikit-learn 1.9 runs categorical
features through its own OrdinalEncoder and moves them first before the trees, which this
converter does not translate (the opset-5 node's BRANCH_MEMBER mode could express the splits
themselves).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

_PENDING_DOMAIN = "keel.pending.ai.onnx.ml.5"
"""skl2onnx 1.20 refuses ai.onnx.ml opset 5 (whose `TreeEnsemble` takes doubles): the node is
written in this placeholder domain and `finish_graph` moves it to ai.onnx.ml 5 after conversion."""
_ML_OPSET = 5

_PROBA_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False]}


@functools.cache
def register_converters() -> None:
    """Register keel's converters with skl2onnx once per process (idempotent)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    update_registered_converter(
        HistGradientBoostingClassifier,
        "SklearnHistGradientBoostingClassifier",
        calculate_linear_classifier_output_shapes,
        _convert_hgb,
        options=_PROBA_OPTIONS,
    )
    update_registered_converter(
        HistGradientBoostingRegressor,
        "SklearnHistGradientBoostingRegressor",
        _regressor_shape,
        _convert_hgb,
    )
    _register_boosters(calculate_linear_classifier_output_shapes)


def _register_boosters(classifier_shape: Any) -> None:
    """XGBoost and LightGBM through onnxmltools' converters, when those libraries are installed
    (the `keel[boosting]` extra)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import (  # type: ignore[import-untyped]
            convert_xgboost,
        )
        from xgboost import XGBClassifier, XGBRegressor
    except ImportError:
        pass
    else:
        update_registered_converter(
            XGBClassifier,
            "XGBoostXGBClassifier",
            classifier_shape,
            convert_xgboost,
            options=_PROBA_OPTIONS,
        )
        update_registered_converter(
            XGBRegressor,
            "XGBoostXGBRegressor",
            calculate_linear_regressor_output_shapes,
            convert_xgboost,
        )
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import (  # type: ignore[import-untyped]
            convert_lightgbm,
        )
    except ImportError:
        return
    update_registered_converter(
        LGBMClassifier,
        "LightGbmLGBMClassifier",
        classifier_shape,
        convert_lightgbm,
        options={**_PROBA_OPTIONS, "split": None},
    )
    update_registered_converter(
        LGBMRegressor,
        "LightGbmLGBMRegressor",
        calculate_linear_regressor_output_shapes,
        convert_lightgbm,
        options={"split": None},
    )


def finish_graph(model: Any) -> Any:
    """Move the nodes written in the placeholder domain to ai.onnx.ml opset 5, in place.

    ai.onnx.ml 5 keeps every operator of 3 that skl2onnx writes (Imputer, OneHotEncoder,
    Scaler, ZipMap, TreeEnsembleClassifier...), so raising the whole domain is safe."""
    pending = [n for n in model.graph.node if n.domain == _PENDING_DOMAIN]
    if not pending:
        return model
    for n in pending:
        n.domain = "ai.onnx.ml"
    kept = [o for o in model.opset_import if o.domain not in (_PENDING_DOMAIN, "ai.onnx.ml")]
    del model.opset_import[:]
    model.opset_import.extend(kept)
    ml = model.opset_import.add()
    ml.domain, ml.version = "ai.onnx.ml", _ML_OPSET
    return model


def _regressor_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = DoubleTensorType([n, 1])


def check_hgb(model: Any) -> None:
    """Refuse what the TreeEnsemble node cannot express, naming the reason.

    Raises:
        ValueError: categorical splits, or a loss whose link keel does not convert.
    """
    name = type(model).__name__
    cats = getattr(model, "is_categorical_", None)
    if getattr(model, "_preprocessor", None) is not None or (
        cats is not None and bool(np.asarray(cats).any())
    ):
        idx = [] if cats is None else np.flatnonzero(np.asarray(cats)).tolist()
        msg = (
            f"{name} uses categorical splits (feature indices {idx}); keel's converter does not "
            "translate the ordinal encoding and column reordering scikit-learn applies to them, "
            "so it cannot be exported. Train it without categorical_features (keel's pipeline "
            "one-hot encodes categories) to export it."
        )
        raise ValueError(msg)
    link = type(model._loss.link).__name__
    if link not in ("IdentityLink", "LogLink", "LogitLink", "MultinomialLogit"):
        msg = f"{name} with loss {model.loss!r} (link {link}) cannot be exported; expected a squared-error, absolute-error, Poisson, gamma or log-loss model."
        raise ValueError(msg)


def hgb_tree_attributes(model: Any) -> dict[str, Any]:
    """The attributes of a `TreeEnsemble` node (ai.onnx.ml opset 5, double precision) giving
    the model's raw scores without the baseline, one target per class (one in all for binary
    and regression)."""
    from onnx import numpy_helper

    n_targets = int(model._baseline_prediction.shape[1])
    keys = ("featureids", "truenodeids", "trueleafs", "falsenodeids", "falseleafs", "missing")
    a: dict[str, list[int]] = {k: [] for k in keys}
    splits: list[float] = []
    roots: list[int] = []
    leaf_targets: list[int] = []
    leaf_weights: list[float] = []
    for iteration in model._predictors:
        for target, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            # global indices: interior nodes into the node arrays, leaves into the leaf arrays
            local = np.where(
                leaf, np.cumsum(leaf) - 1 + len(leaf_weights), np.cumsum(~leaf) - 1 + len(splits)
            )
            roots.append(len(splits))
            if leaf[0]:  # a tree of one leaf: a split every row takes to that leaf
                a["featureids"].append(0)
                splits.append(np.inf)
                for side in ("true", "false"):
                    a[f"{side}nodeids"].append(int(local[0]))
                    a[f"{side}leafs"].append(1)
                a["missing"].append(1)
            for i in np.flatnonzero(~leaf):
                a["featureids"].append(int(nodes["feature_idx"][i]))
                splits.append(float(nodes["num_threshold"][i]))
                for side, child in (("true", nodes["left"][i]), ("false", nodes["right"][i])):
                    a[f"{side}nodeids"].append(int(local[child]))
                    a[f"{side}leafs"].append(int(leaf[child]))
                a["missing"].append(int(nodes["missing_go_to_left"][i]))
            leaf_targets += [target] * int(leaf.sum())
            leaf_weights += nodes["value"][leaf].astype(np.float64).tolist()
    if not roots:  # no iteration: one split to one leaf that adds nothing
        roots, splits, leaf_targets, leaf_weights = [0], [np.inf], [0], [0.0]
        a = {k: [1 if k != "featureids" else 0] for k in keys}
        a["truenodeids"] = a["falsenodeids"] = [0]
    return {
        "tree_roots": roots,
        "nodes_featureids": a["featureids"],
        "nodes_modes": numpy_helper.from_array(np.zeros(len(splits), np.uint8), "nodes_modes"),
        "nodes_splits": numpy_helper.from_array(np.asarray(splits, np.float64), "nodes_splits"),
        "nodes_truenodeids": a["truenodeids"],
        "nodes_trueleafs": a["trueleafs"],
        "nodes_falsenodeids": a["falsenodeids"],
        "nodes_falseleafs": a["falseleafs"],
        "nodes_missing_value_tracks_true": a["missing"],
        "leaf_targetids": leaf_targets,
        "leaf_weights": numpy_helper.from_array(
            np.asarray(leaf_weights, np.float64), "leaf_weights"
        ),
        "n_targets": n_targets,
        "aggregate_function": 1,  # SUM
        "post_transform": 0,  # NONE
    }


def _convert_hgb(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model = operator.raw_operator
    check_hgb(model)

    def name(hint: str) -> str:
        return str(scope.get_unique_variable_name(hint))

    def node(op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        domain = attrs.pop("op_domain", None)
        version = attrs.pop("op_version", None)
        kwargs: dict[str, Any] = {"name": scope.get_unique_operator_name(op), **attrs}
        if domain is not None:
            kwargs.update(op_domain=domain, op_version=version)
        container.add_node(op, inputs, outputs, **kwargs)

    x64, trees, base, raw = name("hgb_x64"), name("hgb_trees"), name("hgb_base"), name("hgb_raw")
    node("Cast", [operator.inputs[0].full_name], [x64], to=TensorProto.DOUBLE)
    node(
        "TreeEnsemble",
        [x64],
        [trees],
        op_domain=_PENDING_DOMAIN,
        op_version=1,
        **hgb_tree_attributes(model),
    )
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(-1)
    container.add_initializer(base, TensorProto.DOUBLE, [1, len(baseline)], baseline.tolist())
    node("Add", [trees, base], [raw])
    link = type(model._loss.link).__name__
    if not hasattr(model, "classes_"):
        out = operator.outputs[0].full_name
        if link == "LogLink":
            node("Exp", [raw], [out])
        else:
            node("Identity", [raw], [out])
        return
    proba64, proba = name("hgb_proba64"), operator.outputs[1].full_name
    if link == "MultinomialLogit":
        node("Softmax", [raw], [proba64], axis=1)
    else:  # binary: [1 - p, p], p = expit(raw), as scikit-learn stacks them
        p, one, q = name("hgb_p"), name("hgb_one"), name("hgb_q")
        node("Sigmoid", [raw], [p])
        container.add_initializer(one, TensorProto.DOUBLE, [1], [1.0])
        node("Sub", [one, p], [q])
        node("Concat", [q, p], [proba64], axis=1)
    node("Cast", [proba64], [proba], to=TensorProto.FLOAT)
    index, label = name("hgb_argmax"), operator.outputs[0].full_name
    node("ArgMax", [proba64], [index], axis=1, keepdims=0)
    classes = np.asarray(model.classes_)
    table = name("hgb_classes")
    if np.issubdtype(classes.dtype, np.integer):
        container.add_initializer(
            table, TensorProto.INT64, [len(classes)], classes.astype(np.int64).tolist()
        )
    else:
        container.add_initializer(
            table, TensorProto.STRING, [len(classes)], [str(c).encode() for c in classes]
        )
    node("Gather", [table, index], [label], axis=0)
