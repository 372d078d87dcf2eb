"""Route handlers: thin adapters from each protocol to `KeelServer.predict` and friends."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2
import orjson
from starlette.requests import Request
from starlette.responses import Response

from keel.data import DatasetStore, RecordError, shown
from keel.monitor import LabelChecker
from keel.registry import (
    check_alias,
    check_model_name,
    check_move,
    check_reason,
    says_something,
)
from keel.serve import oip
from keel.serve.app import (
    INLINE_ROWS,
    KeelServer,
    csv_rows,
    json_response,
    log,
    metrics_text,
    read_body,
    read_json,
    read_rows,
)
from keel.serve.bodies import INLINE_PARSE_BYTES, columns_to_rows
from keel.serve.errors import RequestError
from keel.serve.runtime import ModelRuntime, Prediction
from keel.store import KeelError


def answer(
    runtime: ModelRuntime,
    predictions: list[Prediction],
    ids: list[str],
    refused: list[RecordError] | None = None,
) -> dict[str, Any]:
    """keel's JSON answer. `refused` is None when the request asked for on_error=fail (then
    every row was answered); otherwise its rows get null and are listed under `errors`."""
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


async def answer_bytes(
    server: KeelServer,
    runtime: ModelRuntime,
    predictions: list[Prediction],
    ids: list[str],
    refused: list[RecordError],
    on_error: str,
) -> bytes:
    """keel's JSON answer as bytes; a big one built in the bulk thread."""

    def build() -> bytes:
        data = answer(runtime, predictions, ids, refused if on_error == "skip" else None)
        return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY)

    if len(predictions) + len(refused) > INLINE_ROWS:
        return await server.offload(build)
    return build()


def _observe(
    server: KeelServer, name: str, endpoint: str, t0: float, version: Any, status: int
) -> None:
    server.metrics.requests.labels(name, str(version), endpoint, str(status)).inc()
    server.metrics.latency.labels(name, endpoint).observe(time.perf_counter() - t0)


# ---- keel's own API -----------------------------------------------------------------------


async def predict(request: Request, server: KeelServer) -> Response:
    t0 = time.perf_counter()
    name = request.path_params["name"]
    server.authorize(request, "predict")
    found = await read_rows(request, server, "keel")
    runtime, predictions, ids, refused = await server.predict(
        name,
        found.rows,
        key=request.headers.get("x-request-key"),
        at=server.replay_time(request.headers.get("x-keel-time")),
        on_error=found.on_error,
    )
    data = await answer_bytes(server, runtime, predictions, ids, refused, found.on_error)
    _observe(server, runtime.resolved.name, "predict", t0, runtime.resolved.version, 200)
    return Response(data, media_type="application/json")


async def feedback(request: Request, server: KeelServer) -> Response:
    name = request.path_params["name"]
    server.authorize(request, "feedback")
    production = server._served(name).runtimes["production"]
    labels = (await read_rows(request, server, "feedback")).rows
    # labels cleaned by the target's contract rules, and checked against the production
    # version's classes: a label that matches nothing is refused by name, never stored
    checker = LabelChecker(
        production.contract, production.target, production.task, production.classes
    )
    accepted, refused = checker.check([(str(x["prediction_id"]), x["label"]) for x in labels])
    count, unknown = await asyncio.to_thread(
        server.log.add_feedback,
        name.partition("@")[0],
        accepted,
        server.replay_time(request.headers.get("x-keel-time")) or dt.datetime.now(dt.UTC),
    )
    return json_response(
        {"accepted": count, "unknown_ids": unknown, "refused": [r.to_dict() for r in refused]}
    )


async def explain(request: Request, server: KeelServer) -> Response:
    name = request.path_params["name"]
    server.authorize(request, "explain")
    served = server._served(name)
    _, runtime, _ = server._choose(served, name, None)
    rows = (await read_rows(request, server, "keel")).rows
    if not rows:
        raise RequestError(
            400, "The request has no rows; expected a non-empty list of records to explain."
        )
    clean, errors = (
        await server.offload(runtime.checker.check, rows)
        if len(rows) > INLINE_ROWS
        else runtime.checker.check(rows)
    )
    limit = server.settings.max_explain_rows
    if len(rows) > limit:
        raise RequestError(
            413,
            f"The request has {len(rows)} rows to explain; at most {limit} per request "
            "(max_explain_rows): SHAP holds the interpreter for a long time per row.",
            {"field": "rows", "value": len(rows), "expected": f"at most {limit} rows"},
        )
    if errors:
        raise RequestError(
            422,
            f"Input does not fit model {runtime.ref}: {errors[0].message()}.",
            [e.to_dict() for e in errors[:20]],
        )
    # one explanation at a time per server: SHAP's tree code holds the GIL, and two at once
    # would double the time every other request waits (the bound above keeps each one short)
    async with server.explaining:
        result = await asyncio.to_thread(runtime.explain, clean)
    return json_response(
        {"model": runtime.resolved.name, "version": runtime.resolved.version, **result}
    )


async def list_models(request: Request, server: KeelServer) -> Response:
    server.authorize(request, "predict")  # names and versions: as open as predict, no more
    out = []
    for name, served in server.served.items():
        out.append(
            {
                "name": name,
                "versions": {role: rt.resolved.version for role, rt in served.runtimes.items()},
                "canary_weight": served.canary_weight,
            }
        )
    return json_response({"models": out})


# ---- admin --------------------------------------------------------------------------------
#
# Every alias move goes through keel.train's promotion functions, the same ones `keel models
# promote` / `rollback`, the dashboard and the loop call: production re-runs its gates unless
# forced with a reason, and every move is audited. Before a serving alias moves, the version is
# loaded the way the follower will load it (`verifier`): a version this server would refuse
# answers 422 and the alias stays where it was. keel.train is imported on the first move, in
# the worker thread: it pulls SHAP, numba and matplotlib (3 s), which serving never needs.

_MOVE_FIELDS = ("version", "reason", "weight", "force")
_SERVED_ROLES = ("production", "canary", "shadow")


def _body_object(payload: Any, allowed: tuple[str, ...], call: str) -> dict[str, Any]:
    """An admin body: an object holding only the fields `allowed`."""
    if not isinstance(payload, dict):
        raise RequestError(
            400,
            f"The body of {call} is a JSON {_json_kind(payload)}; expected an object with the fields {list(allowed)}.",
            {
                "field": None,
                "value": _shown(payload),
                "expected": f"an object with {list(allowed)}",
            },
        )
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        raise RequestError(
            400,
            f"The body of {call} has the unknown field(s) {unknown}; expected only {list(allowed)}.",
            {
                "field": unknown[0],
                "value": _shown(payload[unknown[0]]),
                "expected": f"one of {list(allowed)}",
            },
        )
    return payload


def _field_error(*, field: str, value: Any, expected: str) -> RequestError:
    """A 400 naming the field, the value given and what was expected."""
    return RequestError(
        400,
        f"Field {field!r} is {_shown(value)!r} ({_json_kind(value)}); expected {expected}.",
        {"field": field, "value": _shown(value), "expected": expected},
    )


def _shown(value: Any) -> Any:
    """A value to echo in an error: short scalars as they are, anything else cut to 80 characters."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value).decode()
        except orjson.JSONEncodeError:  # nested deeper than orjson writes (~254): cut short
            text = shown(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _json_kind(value: Any) -> str:
    kinds = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
    }
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _reason(payload: dict[str, Any]) -> str | None:
    reason = payload.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise _field_error(
            field="reason", value=reason, expected="text saying why, kept in the audit log"
        )
    check_reason(reason)
    return reason


def _serving(alias: str) -> bool:
    return alias in _SERVED_ROLES or alias.startswith("production:")


def verifier(server: KeelServer) -> Callable[[str, str, int], None]:
    """What promotion calls before a move: load the version as the follower would (hash,
    contents, contract, warm-up, within `load_timeout_s`) and refuse the move if that fails.
    Runs in a worker thread."""

    def verify(name: str, alias: str, version: int) -> None:
        if not _serving(alias):
            return
        ref = f"{name}@{version}"
        now = server.served[name].runtimes.get(alias) if name in server.served else None
        stays = f"{alias} stays at {now.ref}" if now else f"{alias} was not set"
        if (name, version) in server._refused:
            raise RequestError(
                422,
                f"This server refused to load {ref} earlier (see the version_refused alert); {stays}.",
                {"version": version, "alias": alias},
            )
        try:
            server.load_from_thread(server.models.resolve(ref))
        except KeelError as exc:
            # the store's own paths are no business of a caller: shown relative to the store
            why = str(exc).replace(str(server.models.artifacts.root).rstrip("/") + "/", "")
            why = why.rstrip(".") + "."
            raise RequestError(
                422,
                f"This server cannot serve {ref}: {why} Nothing was moved: {stays}.",
                {"version": version, "alias": alias, "error": why},
            ) from exc
        except Exception as exc:  # any failure to load is a refusal, never a move
            log.exception("loading %s to check a move of %s failed", ref, alias)
            raise RequestError(
                422,
                f"This server cannot serve {ref}: loading it failed ({type(exc).__name__}). Nothing was moved: {stays}.",
                {"version": version, "alias": alias, "error": type(exc).__name__},
            ) from exc

    return verify


async def _follow_now(server: KeelServer, name: str, alias: str, version: int) -> None:
    """Serve the move at once; if this server still does not answer with the version it was
    checked to load (its follower refused it on the second load), say so instead of a 200."""
    if name not in server.served:
        return
    await server._sync(name)
    if not _serving(alias):
        return
    runtime = server.served[name].runtimes.get(alias)
    swapped = runtime is not None and runtime.resolved.version == version
    if not swapped and (name, version) in server._refused:  # not someone else's later move
        keeps = runtime.ref if runtime else "nothing"
        raise RequestError(
            503,
            f"The alias {alias!r} of {name!r} moved to version {version}, but this server did not "
            f"load it and {keeps} keeps answering (see the version_refused alert). Roll back with "
            f"POST /v1/models/{name}/rollback or move the alias again.",
            {"version": version, "alias": alias},
        )


async def set_alias(request: Request, server: KeelServer) -> Response:
    """Move an alias through the one promotion path (gates for production unless forced)."""
    server.authorize(request, "admin")
    name, alias = request.path_params["name"], request.path_params["alias"]
    payload = _body_object(await read_json(request, server), _MOVE_FIELDS, "an alias move")
    if "version" not in payload:
        raise _field_error(
            field="version", value=None, expected="a version number (a whole number from 1)"
        )
    version, weight, force = payload["version"], payload.get("weight"), payload.get("force", False)
    if isinstance(version, bool) or not isinstance(version, int):
        raise _field_error(
            field="version", value=version, expected="a version number (a whole number from 1)"
        )
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int | float)):
        raise _field_error(
            field="weight",
            value=weight,
            expected="a number in (0, 1], the canary's share of traffic",
        )
    if not isinstance(force, bool):
        raise _field_error(
            field="force",
            value=force,
            expected='true or false (true skips the gates; needs a "reason")',
        )
    reason = _reason(payload)
    check_model_name(name)
    check_move(alias, version, weight=weight, reason=reason)  # before any model is loaded
    if force and not says_something(reason):
        raise _field_error(
            field="reason",
            value=reason,
            expected='text saying why: a forced move ("force": true) needs one',
        )

    def move() -> tuple[Any, dict[str, Any]]:
        from keel.train import promote

        return promote(
            name,
            version,
            alias,
            models=server.models,
            datasets=_datasets(server),
            reason=reason,
            force=force,
            weight=weight,
            actor="api",
            verify=verifier(server),
        )

    state, checked = await asyncio.to_thread(move)
    await _follow_now(server, name, alias, state.version)
    return json_response(
        {
            "model": name,
            "alias": alias,
            "version": state.version,
            "weight": state.weight,
            "forced": force,
            "gates": checked.get("gates", []),
        }
    )


def _datasets(server: KeelServer) -> DatasetStore:
    models = server.models
    return DatasetStore(models.db, models.artifacts, server.settings.resolved_secret_key())


async def delete_alias(request: Request, server: KeelServer) -> Response:
    server.authorize(request, "admin")
    name, alias = request.path_params["name"], request.path_params["alias"]
    unknown = sorted(set(request.query_params) - {"reason"})
    if unknown:
        raise RequestError(
            400,
            f"The query has the unknown parameter(s) {unknown}; expected only ['reason'].",
            {
                "field": unknown[0],
                "value": _shown(request.query_params[unknown[0]]),
                "expected": "reason",
            },
        )
    reason = check_reason(request.query_params.get("reason"))
    check_model_name(name)
    check_alias(alias)
    if alias == "production":
        raise RequestError(
            409,
            f"The production alias of {name!r} cannot be removed over HTTP: a served model needs "
            f"one. Move it (POST /v1/models/{name}/aliases/production) or roll back "
            f"(POST /v1/models/{name}/rollback).",
            {
                "field": "alias",
                "value": alias,
                "expected": "canary, shadow, staging or production:VALUE",
            },
        )
    await asyncio.to_thread(server.models.delete_alias, name, alias, reason=reason, actor="api")
    if name in server.served:
        await server._sync(name)
    return json_response({"model": name, "alias": alias, "deleted": True})


async def flush(request: Request, server: KeelServer) -> Response:
    """Write buffered predictions and feedback to Parquet now, then ask for window profiles to
    be saved (before a backup, a report, or a replay's next step). The Parquet part never
    waits on the database; the profiles' save is waited for at most the database's statement
    timeout, and `profiles_saved` says whether it happened (false: they are kept and retried)."""
    server.authorize(request, "admin")
    written = await asyncio.to_thread(server.log.flush)
    p = server.log.predictions
    saved = await asyncio.to_thread(
        server.profiler.save_now, server.settings.db_statement_timeout_s + 2
    )
    return json_response(
        {
            "written": written,
            "dropped": p.dropped,
            "backlog": p.backlog,
            "profiles_saved": saved,
            "profile_windows_unsaved": server.profiler.unsaved_windows,
        }
    )


async def rollback(request: Request, server: KeelServer) -> Response:
    """Move production back to its previous version, through the same audited function as
    `keel models rollback` and the loop; the version going back is loaded first."""
    server.authorize(request, "admin")
    name = request.path_params["name"]
    body = await read_body(request, server)
    reason = None
    if body.strip():
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RequestError(400, f"The body is not valid JSON: {exc}.") from exc
        reason = _reason(_body_object(payload, ("reason",), "a rollback"))

    def back() -> Any:
        from keel.train import rollback as roll_back

        return roll_back(
            name, models=server.models, reason=reason, actor="api", verify=verifier(server)
        )

    state = await asyncio.to_thread(back)
    await _follow_now(server, name, "production", state.version)
    return json_response({"model": name, "alias": "production", "version": state.version})


# ---- probes and metrics -------------------------------------------------------------------


async def healthz(_request: Request, _server: KeelServer) -> Response:
    """Liveness: the process answers. Touches nothing else (never the database)."""
    return json_response({"status": "ok"})


async def readyz(_request: Request, server: KeelServer) -> Response:
    """Readiness (see `KeelServer.readiness`): 503 when this replica should leave rotation."""
    status, body = server.readiness()
    return json_response(body, status=status)


async def metrics(_request: Request, server: KeelServer) -> Response:
    for name, served in server.served.items():
        for rt_role, b in served.batchers.items():
            server.metrics.queue.labels(name, str(served.runtimes[rt_role].resolved.version)).set(
                b.queue_depth
            )
    return Response(metrics_text(server), media_type="text/plain; version=0.0.4")


# ---- Open Inference Protocol v2 ------------------------------------------------------------

_DATATYPES = {
    "int": "INT64",
    "float": "FP64",
    "bool": "BOOL",
    "category": "BYTES",
    "string": "BYTES",
    "datetime": "BYTES",
}


async def v2_live(_request: Request, _server: KeelServer) -> Response:
    return json_response({"live": True})


async def v2_ready(_request: Request, server: KeelServer) -> Response:
    ready = server.ready and all("production" in s.runtimes for s in server.served.values())
    return json_response({"ready": ready}, status=200 if ready else 503)


async def v2_server(_request: Request, _server: KeelServer) -> Response:
    from keel import __version__

    return json_response(
        {"name": "keel", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


def _oip_runtime(request: Request, server: KeelServer) -> ModelRuntime:
    """The runtime an OIP call names; the caller needs what predict needs (`predict` scope,
    unless predict is open): model metadata tells the features and the classes."""
    server.authorize(request, "predict")
    name = request.path_params["name"]
    version = request.path_params.get("version")
    served = server._served(name)
    _, runtime, _ = server._choose(served, f"{name}@{version}" if version else name, None)
    return runtime


async def v2_model(request: Request, server: KeelServer) -> Response:
    runtime = _oip_runtime(request, server)
    inputs = [
        {"name": f, "datatype": _DATATYPES[runtime.contract.column(f).type], "shape": [-1, 1]}
        for f in runtime.features
    ]
    outputs = [
        {
            "name": "predict",
            "datatype": _class_datatype(runtime) if runtime.task == "classification" else "FP64",
            "shape": [-1],
        }
    ]
    if runtime.task == "classification":
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(runtime.classes)]}
        )
    return json_response(
        {
            "name": runtime.resolved.name,
            "versions": [str(runtime.resolved.version)],
            "platform": "keel-sklearn",
            "inputs": inputs,
            "outputs": outputs,
        }
    )


async def v2_model_ready(request: Request, server: KeelServer) -> Response:
    _oip_runtime(request, server)  # an unknown model is a 404 with the usual error body
    return json_response({"ready": True})


def _class_datatype(runtime: ModelRuntime) -> str:
    """The OIP datatype of the predicted label: the type of the classes (ints stay ints)."""
    if runtime.classes and all(isinstance(c, bool) for c in runtime.classes):
        return "BOOL"
    if runtime.classes and all(isinstance(c, int) for c in runtime.classes):
        return "INT64"
    if runtime.classes and all(isinstance(c, float) for c in runtime.classes):
        return "FP64"
    return "BYTES"


def _oip_outputs(runtime: ModelRuntime, predictions: list[Prediction]) -> list[dict[str, Any]]:
    n = len(predictions)
    if runtime.task != "classification":
        data = [p.prediction for p in predictions]
        return [{"name": "predict", "datatype": "FP64", "shape": [n], "data": data}]
    datatype = _class_datatype(runtime)
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


def _rows_of(
    runtime: ModelRuntime, tensors: list[oip.Tensor], max_rows: int
) -> list[dict[str, Any]]:
    if len(tensors) == 1 and tensors[0].name not in runtime.features:
        # tensor form: one [rows, features] input for an all-numeric model, columns in feature order
        t = tensors[0]
        width = len(runtime.features)
        if len(t.shape) != 2 or t.shape[1] != width or len(t.data) != t.shape[0] * width:
            raise RequestError(
                400,
                f"Input {t.name!r} is not one of the features {runtime.features}; as a tensor it needs shape [rows, {width}] with features in that order.",
            )
        return [
            dict(zip(runtime.features, t.data[i * width : (i + 1) * width], strict=True))
            for i in range(t.shape[0])
        ]
    return columns_to_rows(
        {t.name: [x.decode() if isinstance(x, bytes) else x for x in t.data] for t in tensors},
        max_rows,
        "inputs",
    )


async def v2_infer(request: Request, server: KeelServer) -> Response:
    t0 = time.perf_counter()
    runtime = _oip_runtime(request, server)
    body = await read_body(request, server)
    large = len(body) > INLINE_PARSE_BYTES
    head, binary = oip.split_raw(body, request.headers.get(oip.HEADER))
    payload = await server.parser.payload(head, "oip")
    del body, head
    max_rows = server.settings.max_rows

    def rows_of() -> list[dict[str, Any]]:
        return _rows_of(runtime, oip.decode_inputs(payload, binary, max_rows), max_rows)

    rows = await server.offload(rows_of) if large else rows_of()
    wanted = oip.requested_outputs(
        payload, ["predict", "predict_proba"] if runtime.task == "classification" else ["predict"]
    )
    name = f"{runtime.resolved.name}@{runtime.resolved.version}"
    runtime, predictions, ids, _ = await server.predict(
        name, rows, key=request.headers.get("x-request-key"), endpoint="v2_infer"
    )
    produced = {o["name"]: o for o in _oip_outputs(runtime, predictions)}
    body, header_length = oip.encode_response(
        {
            "model_name": runtime.resolved.name,
            "model_version": str(runtime.resolved.version),
            "id": payload.get("id", ids[0]),
            "parameters": {"prediction_ids": ids},
        },
        [produced[n] for n, _ in wanted],
        {n for n, binary in wanted if binary},
    )
    _observe(server, runtime.resolved.name, "v2_infer", t0, runtime.resolved.version, 200)
    if header_length is None:
        return Response(body, media_type="application/json")
    return Response(
        body,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


# ---- MLflow scoring -----------------------------------------------------------------------


async def ping(_request: Request, server: KeelServer) -> Response:
    return Response(b"\n", status_code=200 if server.ready else 503, media_type="text/plain")


def _default_model(request: Request, server: KeelServer) -> str:
    name = request.query_params.get("model") or request.headers.get("x-keel-model")
    if name:
        return name
    if len(server.served) == 1:
        return next(iter(server.served))
    raise RequestError(
        400,
        f"This server serves {sorted(server.served)}; name one with ?model=NAME or the X-Keel-Model header.",
    )


async def invocations(request: Request, server: KeelServer) -> Response:
    t0 = time.perf_counter()
    name = _default_model(request, server)
    server.authorize(request, "predict")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype == "text/csv":
        body = await read_body(request, server)
        rows: list[Any] = await server.offload(csv_rows, body, server.settings.max_rows)
    elif ctype == "application/json":
        rows = (await read_rows(request, server, "mlflow")).rows
    else:
        raise RequestError(
            415, f"Content type {ctype!r} is not accepted; expected application/json or text/csv."
        )
    runtime, predictions, _ids, _ = await server.predict(
        name, rows, key=request.headers.get("x-request-key"), endpoint="invocations"
    )
    _observe(server, runtime.resolved.name, "invocations", t0, runtime.resolved.version, 200)
    return json_response({"predictions": [p.prediction for p in predictions]})


def docs_page(spec: dict[str, Any]) -> str:
    """/docs: every operation of the OpenAPI document, from `templates/docs.html`."""
    operations = [
        (method.upper(), path, op.get("summary", ""))
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    ]
    return _docs_template().render(operations=operations)


@cache
def _docs_template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("keel.serve", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("docs.html")


# handlers that count their 200s themselves, with the version that answered
COUNTS_OWN_SUCCESS = frozenset({"predict", "v2_infer", "invocations"})

ROUTES: list[tuple[str, Any, list[str]]] = [
    ("/v1/models", list_models, ["GET"]),
    ("/v1/models/{name}/predict", predict, ["POST"]),
    ("/v1/models/{name}/feedback", feedback, ["POST"]),
    ("/v1/models/{name}/explain", explain, ["POST"]),
    ("/v1/models/{name}/aliases/{alias}", set_alias, ["POST"]),
    ("/v1/models/{name}/aliases/{alias}", delete_alias, ["DELETE"]),
    ("/v1/models/{name}/rollback", rollback, ["POST"]),
    ("/v1/admin/flush", flush, ["POST"]),
    ("/healthz", healthz, ["GET"]),
    ("/readyz", readyz, ["GET"]),
    ("/metrics", metrics, ["GET"]),
    ("/v2/health/live", v2_live, ["GET"]),
    ("/v2/health/ready", v2_ready, ["GET"]),
    ("/v2", v2_server, ["GET"]),
    ("/v2/models/{name}", v2_model, ["GET"]),
    ("/v2/models/{name}/ready", v2_model_ready, ["GET"]),
    ("/v2/models/{name}/versions/{version}", v2_model, ["GET"]),
    ("/v2/models/{name}/versions/{version}/ready", v2_model_ready, ["GET"]),
    ("/v2/models/{name}/infer", v2_infer, ["POST"]),
    ("/v2/models/{name}/versions/{version}/infer", v2_infer, ["POST"]),
    ("/ping", ping, ["GET"]),
    ("/invocations", invocations, ["POST"]),
]
