"""The three prediction protocols as pure functions: request → rows, answer → JSON.

keel's own JSON (`/v1/models/{name}/predict`), the Open Inference Protocol v2
(`/v2/models/{name}/infer`, the protocol of Triton, KServe and MLServer; its wire format is
`keel.serve.oip`) and MLflow's scoring format (`/invocations`). Payload → rows for the JSON
row formats is `keel.serve.bodies` (it also runs in the body-parsing process). The routed
handlers (`keel.serve.routes`) and the plain-ASGI hot path (`keel.serve.app.FastPredict`) call
these same functions. Errors are `RequestError`s naming the field, the value and what was
expected.
"""

from __future__ import annotations

import io
from typing import Any

import orjson
import polars as pl

from keel.serve import oip
from keel.serve.bodies import columns_to_rows, too_many_rows
from keel.serve.errors import RequestError
from keel.serve.predictor import Answered
from keel.serve.runtime import ModelRuntime, Prediction


def to_json(data: Any) -> bytes:
    """JSON bytes of an answer (NumPy values included)."""
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)


# ---- keel's own JSON ----------------------------------------------------------------------


def keel_answer(answered: Answered, skip: bool) -> dict[str, Any]:
    """keel's JSON answer. With `skip` (on_error "skip") the refused rows get null and are
    listed under `errors`; without it every row was answered."""
    runtime, predictions, ids = answered.runtime, answered.predictions, answered.ids
    refused = answered.refused if skip else None
    if refused:
        bad = {e.row for e in refused}
        n = len(predictions) + len(bad)
        good = iter(zip(predictions, ids, strict=True))
        slots = [None if i in bad else next(good) for i in range(n)]
        preds: list[Prediction | None] = [s[0] if s else None for s in slots]
        row_ids: list[str | None] = [s[1] if s else None for s in slots]
    else:
        preds, row_ids = list(predictions), list(ids)
    out: dict[str, Any] = {
        "model": runtime.resolved.name,
        "version": runtime.resolved.version,
        "predictions": [p.prediction if p else None for p in preds],
        "prediction_ids": row_ids,
    }
    if any(p.version is not None for p in predictions):  # rows routed to segment versions
        out["versions"] = [(p.version or runtime.resolved.version) if p else None for p in preds]
    if runtime.task == "classification" and (
        predictions[0].probabilities is not None if predictions else bool(runtime.classes)
    ):
        out["probabilities"] = [p.probabilities if p else None for p in preds]
        out["classes"] = runtime.classes
    if refused is not None:
        out["errors"] = [e.to_dict() for e in refused]
    return out


def keel_answer_bytes(answered: Answered, on_error: str) -> bytes:
    """keel's JSON answer as bytes (`on_error` as the request said it)."""
    return orjson.dumps(
        keel_answer(answered, on_error == "skip"), option=orjson.OPT_SERIALIZE_NUMPY
    )


# ---- Open Inference Protocol v2 ------------------------------------------------------------

_DATATYPES = {
    "int": "INT64",
    "float": "FP64",
    "bool": "BOOL",
    "category": "BYTES",
    "string": "BYTES",
    "datetime": "BYTES",
}


def oip_outputs_available(runtime: ModelRuntime) -> list[str]:
    """The outputs a model answers with: the prediction, and a classifier's probabilities."""
    return ["predict", "predict_proba"] if runtime.task == "classification" else ["predict"]


def oip_metadata(runtime: ModelRuntime) -> dict[str, Any]:
    """The model metadata answer (`GET /v2/models/{name}`): inputs and outputs with types."""
    inputs = [
        {"name": f, "datatype": _DATATYPES[runtime.contract.column(f).type], "shape": [-1, 1]}
        for f in runtime.features
    ]
    classifier = runtime.task == "classification"
    outputs = [
        {
            "name": "predict",
            "datatype": class_datatype(runtime) if classifier else "FP64",
            "shape": [-1],
        }
    ]
    if classifier:
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(runtime.classes)]}
        )
    return {
        "name": runtime.resolved.name,
        "versions": [str(runtime.resolved.version)],
        "platform": "keel-sklearn",
        "inputs": inputs,
        "outputs": outputs,
    }


def class_datatype(runtime: ModelRuntime) -> str:
    """The OIP datatype of the predicted label: the type of the classes (ints stay ints)."""
    if runtime.classes and all(isinstance(c, bool) for c in runtime.classes):
        return "BOOL"
    if runtime.classes and all(isinstance(c, int) for c in runtime.classes):
        return "INT64"
    if runtime.classes and all(isinstance(c, float) for c in runtime.classes):
        return "FP64"
    return "BYTES"


def oip_rows(
    runtime: ModelRuntime, payload: Any, binary: bytes | bytearray, max_rows: int
) -> list[dict[str, Any]]:
    """The rows of an inference request: one input per feature (named columns), or one
    [rows, features] tensor for an all-numeric model, columns in feature order."""
    tensors = oip.decode_inputs(payload, binary, max_rows)
    if len(tensors) == 1 and tensors[0].name not in runtime.features:
        t = tensors[0]
        width = len(runtime.features)
        if len(t.shape) != 2 or t.shape[1] != width or len(t.data) != t.shape[0] * width:
            msg = f"Input {t.name!r} is not one of the features {runtime.features}; as a tensor it needs shape [rows, {width}] with features in that order."
            raise RequestError(msg)
        return [
            dict(zip(runtime.features, t.data[i * width : (i + 1) * width], strict=True))
            for i in range(t.shape[0])
        ]
    return columns_to_rows(
        {t.name: [x.decode() if isinstance(x, bytes) else x for x in t.data] for t in tensors},
        max_rows,
        "inputs",
    )


def _oip_outputs(runtime: ModelRuntime, predictions: list[Prediction]) -> list[dict[str, Any]]:
    n = len(predictions)
    if runtime.task != "classification":
        data = [p.prediction for p in predictions]
        return [{"name": "predict", "datatype": "FP64", "shape": [n], "data": data}]
    datatype = class_datatype(runtime)
    labels = [p.prediction for p in predictions]
    return [
        {
            "name": "predict",
            "datatype": datatype,
            "shape": [n],
            "data": [str(x) for x in labels] if datatype == "BYTES" else labels,
        },
        {
            "name": "predict_proba",
            "datatype": "FP64",
            "shape": [n, len(runtime.classes)],
            "data": [x for p in predictions for x in (p.probabilities or [])],
        },
    ]


def oip_answer(
    answered: Answered, payload: Any, wanted: list[tuple[str, bool]]
) -> tuple[bytes, int | None]:
    """The inference response body (the outputs `wanted`, from `oip.requested_outputs`) and,
    when some outputs are binary, the length of its JSON header."""
    runtime, ids = answered.runtime, answered.ids
    produced = {o["name"]: o for o in _oip_outputs(runtime, answered.predictions)}
    return oip.encode_response(
        {
            "model_name": runtime.resolved.name,
            "model_version": str(runtime.resolved.version),
            "id": payload.get("id", ids[0]),
            "parameters": {"prediction_ids": ids},
        },
        [produced[n] for n, _ in wanted],
        {n for n, binary in wanted if binary},
    )


# ---- MLflow scoring -----------------------------------------------------------------------


def mlflow_model(asked: str | None, served: list[str]) -> str:
    """The model an `/invocations` call is for: the one it names (`?model=` or the
    X-Keel-Model header), else the only one served."""
    if asked:
        return asked
    if len(served) == 1:
        return served[0]
    msg = f"This server serves {sorted(served)}; name one with ?model=NAME or the X-Keel-Model header."
    raise RequestError(msg)


def csv_rows(body: bytes | bytearray, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a CSV body (every cell as text; the contract types them), at most
    `max_rows`; counted before any record is built."""
    try:
        frame = pl.read_csv(io.BytesIO(body), infer_schema=False)
    except pl.exceptions.PolarsError as exc:
        msg = f"The CSV body cannot be read: {str(exc).splitlines()[0]}."
        raise RequestError(msg) from exc
    if frame.height > max_rows:
        raise too_many_rows(frame.height, max_rows)
    return frame.to_dicts()


def mlflow_answer(answered: Answered) -> dict[str, Any]:
    """MLflow's scoring answer: the predictions alone."""
    return {"predictions": [p.prediction for p in answered.predictions]}
