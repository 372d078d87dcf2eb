"""ONNX export of a registered pipeline, with a parity check on its dataset's holdout.

Numbers enter as float32 (onnxruntime has no double Imputer), categories as strings, one
[N, 1] input per feature named exactly as the column (hyphens and spaces kept). The parity
figure is the largest absolute difference between scikit-learn's and onnxruntime's
probabilities (or predictions, for regressors) on the holdout rows. HistGradientBoosting,
XGBoost and LightGBM convert through the converters of `keel.train.onnx_converters`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ConfigError
from keel.train.features import to_pandas
from keel.train.onnx_converters import finish_graph, register_converters
from keel.train.prepare import prepare
from keel.train.report import report_of
from keel.train.spec import spec_from_dict


@dataclass(frozen=True, slots=True)
class OnnxExport:
    """An exported ONNX file and its parity with the registered pipeline.

    Attributes:
        ref: the version exported (`NAME@VERSION`).
        output: where the .onnx file was written.
        bytes: its size.
        rows: holdout rows the parity was measured on.
        parity_max_abs_diff: the largest |scikit-learn - onnxruntime| over those rows.
        inputs: per input tensor, its element type ("float32" or "string").
    """

    ref: str
    output: str
    bytes: int
    rows: int
    parity_max_abs_diff: float
    inputs: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """The JSON of `keel models export --json`."""
        return {
            "ref": self.ref,
            "output": self.output,
            "bytes": self.bytes,
            "rows": self.rows,
            "parity_max_abs_diff": self.parity_max_abs_diff,
            "inputs": dict(self.inputs),
        }


def export_onnx(
    ref: str,
    output: Path,
    *,
    models: ModelStore,
    datasets: DatasetStore,
    fmt: str = "onnx",
    max_rows: int = 5000,
) -> OnnxExport:
    if fmt != "onnx":
        msg = f"Export format {fmt!r} is not supported; expected 'onnx'."
        raise ConfigError(msg)
    version, pipeline = models.load(ref)
    contract = models.contract(version.ref)
    ev = report_of(version)
    features, categorical = list(ev.features), set(ev.categorical)
    if getattr(pipeline, "format", None) == "onnx":
        msg = f"{version.ref} is an imported ONNX graph already; its artifact is the .onnx file (sha256 {version.artifact_sha256}). Copy it from {version.artifact_uri}."
        raise ConfigError(msg)
    data = pipeline_to_onnx(pipeline, features, categorical, label=version.ref)
    rows = _holdout(version, models, datasets, max_rows)
    x = to_pandas(rows, features, contract)
    parity = onnx_parity(data, pipeline, x, categorical)
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(output)
    return OnnxExport(
        ref=version.ref,
        output=str(output),
        bytes=len(data),
        rows=len(x),
        parity_max_abs_diff=parity,
        inputs={f: ("string" if f in categorical else "float32") for f in features},
    )


def pipeline_to_onnx(
    pipeline: Any, features: list[str], categorical: set[str], *, label: str = "the model"
) -> bytes:
    """The ONNX bytes of a fitted pipeline taking one [N, 1] input per feature, named exactly
    as the feature (float32 for numbers, string for categories); classifiers give `label` and a
    [N, classes] `probabilities` tensor, regressors one `variable` column.

    Raises:
        ConfigError: skl2onnx (or a converter keel registers) cannot convert the model; the
            message names the model, its estimator and the converter's reason.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_converters()
    types = [
        (f, StringTensorType([None, 1]) if f in categorical else FloatTensorType([None, 1]))
        for f in features
    ]
    estimator = pipeline[-1] if hasattr(pipeline, "steps") else pipeline
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "predict_proba") else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onx = convert_sklearn(
                pipeline,
                initial_types=types,
                options=options,
                target_opset={"": 17, "ai.onnx.ml": 3},
            )
    except Exception as exc:  # skl2onnx raises many kinds for unsupported models
        msg = f"{label} ({type(estimator).__name__}) cannot be converted to ONNX by skl2onnx: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        raise ConfigError(msg) from exc
    finish_graph(onx)
    _restore_input_names(onx, features)
    return bytes(onx.SerializeToString())


def onnx_parity(data: bytes, pipeline: Any, x: pd.DataFrame, categorical: set[str]) -> float:
    """The largest absolute difference between the pipeline's probabilities (or predictions,
    for regressors) and onnxruntime's on the graph `data`, over the rows of `x`."""
    import onnxruntime as ort

    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    feeds = {
        f: (
            x[[f]].to_numpy().astype(object)
            if f in categorical
            else x[[f]].to_numpy().astype(np.float32)
        )
        for f in x.columns
    }
    if not len(x):
        return 0.0
    outputs = session.run(None, feeds)
    if hasattr(pipeline, "predict_proba"):
        theirs, ours = np.asarray(outputs[1]), pipeline.predict_proba(x)
    else:
        theirs, ours = np.asarray(outputs[0]).reshape(-1), pipeline.predict(x)
    return float(np.max(np.abs(theirs.astype(np.float64) - ours)))


def _restore_input_names(onx: Any, features: list[str]) -> None:
    """Give the graph's inputs the features' own names back, in place.

    skl2onnx turns names that are not identifiers ('credit-score', 'num of loans') into
    'credit_score', 'num_of_loans'. ONNX names are any strings, and keeping the column names
    makes the graph's inputs match the contract (what `keel models import` maps by)."""
    inputs = list(onx.graph.input)
    if len(inputs) != len(features):
        msg = f"The ONNX graph has {len(inputs)} inputs for {len(features)} features {features}; expected one per feature."
        raise ConfigError(msg)
    taken = {o for n in onx.graph.node for o in n.output} | {i.name for i in onx.graph.initializer}
    taken |= {o.name for o in onx.graph.output}
    renames = {}
    for inp, feature in zip(inputs, features, strict=True):
        if inp.name == feature:
            continue
        if feature in taken:
            msg = f"Feature {feature!r} has the name of a tensor inside the ONNX graph; rename the column to export this model."
            raise ConfigError(msg)
        renames[inp.name] = feature
        inp.name = feature
    for n in onx.graph.node:
        for i, name in enumerate(n.input):
            if name in renames:
                n.input[i] = renames[name]


def _holdout(version: Any, models: ModelStore, datasets: DatasetStore, max_rows: int) -> Any:
    if version.dataset_version is None:
        msg = f"{version.ref} has no dataset version to check parity on."
        raise ConfigError(msg)
    frame = datasets.load(version.dataset_version)
    prep = prepare(frame, models.contract(version.ref), spec_from_dict(version.spec))
    return prep.frame[prep.test_idx[:max_rows].tolist()]
