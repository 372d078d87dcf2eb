"""The served OpenAPI document (written out, since routes parse JSON by hand for speed)."""

from __future__ import annotations

from functools import cache
from typing import Any

from keel import __version__
from keel.serve import jobs

_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "kind": {"type": "string"},
        "details": {},
        "error_id": {
            "type": "string",
            "description": "on a 500 or a database 503: the id under which the server log has the details",
        },
    },
    "required": ["error", "kind"],
}
_BODY_LIMITS = (
    "At most `max_rows` rows per request (413 naming the limit and the count) and "
    "`max_body_bytes` per body (413); 503 with Retry-After while the server holds "
    "`max_inflight_bytes` of bodies."
)
_ROW = {"type": "object", "additionalProperties": True}
_ON_ERROR = {
    "type": "string",
    "enum": ["fail", "skip"],
    "default": "fail",
    "description": "fail: one row that does not fit the model's contract fails the request "
    "with 422. skip: such rows are answered with null and listed in 'errors'; the others are "
    "answered, logged and profiled as usual.",
}
_PREDICT_BODY = {
    "oneOf": [
        {
            "type": "object",
            "properties": {
                "rows": {"type": "array", "items": _ROW, "minItems": 1},
                "on_error": _ON_ERROR,
            },
            "required": ["rows"],
        },
        {
            "type": "object",
            "properties": {
                "columns": {"type": "object", "additionalProperties": {"type": "array"}},
                "on_error": _ON_ERROR,
            },
            "required": ["columns"],
        },
    ]
}
_LABEL = {
    "description": "The label with the type of the training target: integer, boolean or string."
}
_ROW_ERROR = {
    "type": "object",
    "properties": {
        "row": {"type": "integer", "description": "index of the row in the request"},
        "field": {"type": "string"},
        "value": {},
        "rule": {"type": "string"},
        "expected": {"type": "string"},
    },
    "required": ["row", "field", "value", "expected"],
}
_ANSWER = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "integer"},
        "predictions": {
            "type": "array",
            "items": {"anyOf": [_LABEL, {"type": "number"}, {"type": "null"}]},
            "description": "null for a row refused with on_error=skip",
        },
        "probabilities": {
            "type": "array",
            "items": {"anyOf": [{"type": "array", "items": {"type": "number"}}, {"type": "null"}]},
        },
        "classes": {"type": "array", "items": _LABEL},
        "prediction_ids": {
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "errors": {
            "type": "array",
            "items": _ROW_ERROR,
            "description": "with on_error=skip only: the refused rows, in request order",
        },
    },
    "required": ["model", "version", "predictions", "prediction_ids"],
}
_V2_BINARY = (
    "Binary tensor extension (what tritonclient sends by default): send the JSON header's "
    "length in the Inference-Header-Content-Length header and each binary input's byte count "
    "in parameters.binary_data_size (no 'data'); the raw little-endian values follow the JSON "
    "in input order (BYTES: a 4-byte little-endian length before each element). Ask for binary "
    "outputs per output (parameters.binary_data) or for all (parameters.binary_data_output); "
    "the answer then has Inference-Header-Content-Length and each binary output's "
    "binary_data_size. Sizes that do not match the shapes, the datatypes or the body are a 400."
)


def _errors(*codes: int) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(
    summary: str,
    *,
    body: dict[str, Any] | None = None,
    ok: dict[str, Any] | None = None,
    errors: tuple[int, ...] = (400, 404),
    params: tuple[str, ...] = ("name",),
    text: bool = False,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {
                "description": "ok",
                **(
                    _json(ok or {})
                    if not text
                    else {"content": {"text/plain": {"schema": {"type": "string"}}}}
                ),
            },
            **_errors(*errors),
        },
    }
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
        # every body is held under the byte budget: a busy server answers 503 + Retry-After
        op["responses"].update(_errors(413, 503))
        op["description"] = _BODY_LIMITS
    return op


def _optional_body(op: dict[str, Any]) -> dict[str, Any]:
    """An operation whose body may be left out (a rollback without a reason)."""
    op["requestBody"]["required"] = False
    return op


def _v2_infer(op: dict[str, Any]) -> dict[str, Any]:
    """The binary tensor extension on an infer operation: header, octet-stream bodies."""
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    op["description"] = f"{_V2_BINARY} {_BODY_LIMITS}"
    op["parameters"] = [
        *op.get("parameters", []),
        {
            "name": "Inference-Header-Content-Length",
            "in": "header",
            "required": False,
            "schema": {"type": "integer", "minimum": 1},
        },
    ]
    op["requestBody"]["content"].update(binary)
    op["responses"]["200"]["content"].update(binary)
    return op


@cache
def openapi_document() -> dict[str, Any]:
    v2_tensor = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer"}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
            "parameters": {
                "type": "object",
                "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
            },
        },
        "required": ["name", "shape", "datatype"],
    }
    v2_body = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "items": v2_tensor},
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                    "required": ["name"],
                },
            },
            "parameters": {
                "type": "object",
                "properties": {"binary_data_output": {"type": "boolean"}},
            },
        },
        "required": ["inputs"],
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "keel",
            "version": __version__,
            "description": "keel's JSON API, the Open Inference Protocol v2 and MLflow's scoring format.",
        },
        "paths": {
            "/v1/models": {
                "get": _op(
                    "Served models and the versions behind their aliases",
                    ok={"type": "object"},
                    errors=(401, 403),
                    params=(),
                )
            },
            "/v1/models/{name}/predict": {
                "post": _op(
                    "Predict rows (name, name@alias or name@version)",
                    body=_PREDICT_BODY,
                    ok=_ANSWER,
                    errors=(400, 401, 403, 404, 413, 422, 503),
                )
            },
            "/v1/models/{name}/feedback": {
                "post": _op(
                    "Ground-truth labels for earlier predictions, by prediction id",
                    body={
                        "type": "object",
                        "properties": {
                            "labels": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "prediction_id": {"type": "string"},
                                        "label": {},
                                    },
                                    "required": ["prediction_id", "label"],
                                },
                            }
                        },
                        "required": ["labels"],
                    },
                    ok={
                        "type": "object",
                        "properties": {
                            "accepted": {"type": "integer"},
                            "unknown_ids": {"type": "array", "items": {"type": "string"}},
                            "refused": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "properties": {
                                        "prediction_id": {"type": "string"},
                                        "label": {},
                                        "reason": {"type": "string"},
                                    },
                                    "required": ["prediction_id", "label", "reason"],
                                },
                            },
                        },
                        "required": ["accepted", "unknown_ids", "refused"],
                    },
                    errors=(400, 401, 403, 404, 413, 503),
                )
            },
            "/v1/models/{name}/explain": {
                "post": _op(
                    "SHAP values of rows against the training background",
                    body=_PREDICT_BODY,
                    ok={"type": "object"},
                    errors=(400, 401, 403, 404, 413, 422),
                )
            },
            "/v1/models/{name}/aliases/{alias}": {
                "post": _op(
                    "Move an alias (admin): production re-runs its gates against production "
                    "unless forced with a reason; the version is loaded before the alias moves",
                    body={
                        "type": "object",
                        "properties": {
                            "version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
                            "reason": {"type": "string", "maxLength": 2000},
                            "weight": {
                                "type": "number",
                                "exclusiveMinimum": 0,
                                "maximum": 1,
                                "description": "canary only: its share of traffic",
                            },
                            "force": {
                                "type": "boolean",
                                "default": False,
                                "description": "skip the gates (production); needs a reason",
                            },
                        },
                        "required": ["version"],
                        "additionalProperties": False,
                    },
                    ok={"type": "object"},
                    errors=(400, 401, 403, 404, 409, 422, 503),
                    params=("name", "alias"),
                ),
                "delete": _op(
                    "Remove an alias (admin; production cannot be removed: move it or roll back)",
                    ok={"type": "object"},
                    errors=(400, 401, 403, 404, 409, 503),
                    params=("name", "alias"),
                ),
            },
            "/v1/models/{name}/rollback": {
                "post": _optional_body(
                    _op(
                        "Move production back to its previous version (admin)",
                        body={
                            "type": "object",
                            "properties": {"reason": {"type": "string", "maxLength": 2000}},
                            "additionalProperties": False,
                        },
                        ok={"type": "object"},
                        errors=(400, 401, 403, 404, 409, 413, 422, 503),
                    )
                )
            },
            **jobs.openapi_paths(_errors, _json),
            "/v1/admin/flush": {
                "post": _op(
                    "Write buffered predictions and feedback now, then save window profiles "
                    "(admin; never waits on the database for the Parquet part)",
                    ok={"type": "object"},
                    errors=(401, 403),
                    params=(),
                )
            },
            "/healthz": {"get": _op("Liveness", ok={"type": "object"}, errors=(), params=())},
            "/readyz": {
                "get": _op(
                    "Readiness: every model has a production version loaded and the server is "
                    "not shedding; 200 with status 'degraded' and reasons while it serves with "
                    "the database or the artifact store failing",
                    ok={"type": "object"},
                    errors=(503,),
                    params=(),
                )
            },
            "/metrics": {"get": _op("Prometheus metrics", errors=(), params=(), text=True)},
            "/v2/health/live": {
                "get": _op("OIP: live", ok={"type": "object"}, errors=(), params=())
            },
            "/v2/health/ready": {
                "get": _op("OIP: ready", ok={"type": "object"}, errors=(503,), params=())
            },
            "/v2": {
                "get": _op("OIP: server metadata", ok={"type": "object"}, errors=(), params=())
            },
            "/v2/models/{name}": {
                "get": _op("OIP: model metadata", ok={"type": "object"}, errors=(401, 403, 404))
            },
            "/v2/models/{name}/ready": {
                "get": _op("OIP: model ready", ok={"type": "object"}, errors=(401, 403, 404))
            },
            "/v2/models/{name}/versions/{version}": {
                "get": _op(
                    "OIP: model version metadata",
                    ok={"type": "object"},
                    errors=(401, 403, 404),
                    params=("name", "version"),
                )
            },
            "/v2/models/{name}/versions/{version}/ready": {
                "get": _op(
                    "OIP: model version ready",
                    ok={"type": "object"},
                    errors=(401, 403, 404),
                    params=("name", "version"),
                )
            },
            "/v2/models/{name}/infer": {
                "post": _v2_infer(
                    _op(
                        "OIP: inference",
                        body=v2_body,
                        ok={"type": "object"},
                        errors=(400, 401, 403, 404, 413, 422, 503),
                    )
                )
            },
            "/v2/models/{name}/versions/{version}/infer": {
                "post": _v2_infer(
                    _op(
                        "OIP: inference on a version",
                        body=v2_body,
                        ok={"type": "object"},
                        errors=(400, 401, 403, 404, 413, 422, 503),
                        params=("name", "version"),
                    )
                )
            },
            "/ping": {"get": _op("MLflow: ping", errors=(503,), params=(), text=True)},
            "/invocations": {
                "post": _op(
                    "MLflow scoring: dataframe_split, dataframe_records, instances, inputs, or text/csv",
                    body={"type": "object"},
                    ok={
                        "type": "object",
                        "properties": {"predictions": {"type": "array"}},
                        "required": ["predictions"],
                    },
                    errors=(400, 401, 403, 404, 413, 415, 422, 503),
                    params=(),
                )
            },
        },
    }
