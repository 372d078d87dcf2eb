"""ONNX export of a registered pipeline, with a parity check on its dataset's holdout.

Numbers enter as float32 (onnxruntime has no double Imputer), categories as strings. The
parity figure is the largest absolute difference between scikit-learn's and onnxruntime's
probabilities (or predictions, for regressors) on the holdout rows.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ConfigError
from keel.train.features import to_pandas
from keel.train.spec import spec_from_dict
from keel.train.trainer import prepare


def export_onnx(
    ref: str,
    output: Path,
    *,
    models: ModelStore,
    datasets: DatasetStore,
    fmt: str = "onnx",
    max_rows: int = 5000,
) -> dict[str, Any]:
    if fmt != "onnx":
        msg = f"Export format {fmt!r} is not supported; expected 'onnx'."
        raise ConfigError(msg)
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    version, pipeline = models.load(ref)
    contract = models.contract(version.ref)
    ev = version.evaluation
    features, categorical = ev["features"], set(ev.get("categorical", []))
    types = [
        (f, StringTensorType([None, 1]) if f in categorical else FloatTensorType([None, 1]))
        for f in features
    ]
    estimator = pipeline[-1]
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
        msg = f"{version.ref} ({type(estimator).__name__}) cannot be converted to ONNX by skl2onnx: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        raise ConfigError(msg) from exc
    data = onx.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rows = _holdout(version, models, datasets, max_rows)
    x = to_pandas(rows, features, contract)
    feeds = {
        f: (x[[f]].to_numpy() if f in categorical else x[[f]].to_numpy().astype(np.float32))
        for f in features
    }
    outputs = session.run(None, feeds)
    if hasattr(estimator, "predict_proba"):
        theirs, ours = np.asarray(outputs[1]), pipeline.predict_proba(x)
    else:
        theirs, ours = np.asarray(outputs[0]).reshape(-1), pipeline.predict(x)
    parity = float(np.max(np.abs(theirs - ours))) if len(x) else 0.0
    tmp = output.with_name(output.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(output)
    return {
        "ref": version.ref,
        "output": str(output),
        "bytes": len(data),
        "rows": len(x),
        "parity_max_abs_diff": parity,
        "inputs": {f: ("string" if f in categorical else "float32") for f in features},
    }


def _holdout(version: Any, models: ModelStore, datasets: DatasetStore, max_rows: int) -> Any:
    if version.dataset_version is None:
        msg = f"{version.ref} has no dataset version to check parity on."
        raise ConfigError(msg)
    frame = datasets.load(version.dataset_version)
    prep = prepare(frame, models.contract(version.ref), spec_from_dict(version.spec))
    return prep.frame[prep.test_idx[:max_rows].tolist()]
