"""Route handlers: thin adapters from each protocol to the serving core.

A handler reads the request, calls `KeelServer` and a protocol function
(`keel.serve.protocols`), and answers; it raises what the core raises, and `keel.serve.app`
answers every error through its one table. Admin calls are in `keel.serve.admin`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable, MutableMapping
from functools import cache
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response

from keel import __version__
from keel.monitor import LabelChecker
from keel.serve import oip, protocols
from keel.serve.bodies import INLINE_PARSE_BYTES, Receive, Rows, receive_body
from keel.serve.errors import UnsupportedMediaError
from keel.serve.predictor import INLINE_ROWS, Answered
from keel.serve.runtime import ModelRuntime
from keel.serve.server import KeelServer

Handler = Callable[[Request, KeelServer], Awaitable[Response]]


# ---- reading and answering ----------------------------------------------------------------


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer (NumPy values included)."""
    return Response(protocols.to_json(data), status_code=status, media_type="application/json")


def authorize(request: Request, server: KeelServer, scope: str) -> None:
    """Let the call through, or raise an `AuthError` (see `KeelServer.authorize`)."""
    server.authorize(request.headers.get("authorization"), scope)


async def read_body(request: Request, server: KeelServer) -> bytes | bytearray:
    """The raw body, within `max_body_bytes` and the server's byte budget (released when the
    request is answered)."""
    return await receive_body(
        request.receive,
        request.scope,
        request.headers.get("content-length"),
        limit=server.settings.max_body_bytes,
        budget=server.budget,
    )


async def read_json(request: Request, server: KeelServer, kind: str = "json") -> Any:
    """The body's JSON (a large body parsed where it cannot stall the server)."""
    return await server.parser.payload(await read_body(request, server), kind)


async def read_rows(request: Request, server: KeelServer, kind: str) -> Rows:
    """The rows of a body in a row format: "keel" (rows or columns, on_error), "mlflow",
    "feedback" (labels); at most `max_rows`."""
    return await server.parser.rows(await read_body(request, server), kind)


def count(server: KeelServer, name: str | None, endpoint: str, status: int) -> None:
    """One request in `keel_requests_total`. A name that is not served is counted under
    model "" (names sent by callers must not grow the label set without bound)."""
    model = (name or "").partition("@")[0]
    if model not in server.served:
        model = ""
    server.metrics.requests.labels(model, "", endpoint, str(status)).inc()


def observe(server: KeelServer, endpoint: str, t0: float, runtime: ModelRuntime) -> None:
    """A request answered (200) by `runtime`: counted with its version, and timed."""
    name = runtime.resolved.name
    server.metrics.requests.labels(name, str(runtime.resolved.version), endpoint, "200").inc()
    server.metrics.latency.labels(name, endpoint).observe(time.perf_counter() - t0)


# ---- keel's own API -----------------------------------------------------------------------


async def predict_keel(
    server: KeelServer,
    name: str,
    scope: MutableMapping[str, Any],
    receive: Receive,
    *,
    authorization: str | None,
    content_length: str | None,
    request_key: str | None,
    keel_time: str | None,
) -> bytes:
    """`POST /v1/models/{name}/predict` from the request's parts (its ASGI scope and receive,
    and the headers it reads) to the answer's bytes: the routed handler and the plain-ASGI hot
    path (`keel.serve.app.FastPredict`) both call it."""
    t0 = time.perf_counter()
    server.authorize(authorization, "predict")
    body = await receive_body(
        receive,
        scope,
        content_length,
        limit=server.settings.max_body_bytes,
        budget=server.budget,
    )
    found = await server.parser.rows(body, "keel")
    del body
    answered = await server.predict(
        name,
        found.rows,
        key=request_key,
        at=server.replay_time(keel_time),
        on_error=found.on_error,
    )
    data = await _keel_bytes(server, answered, found.on_error)
    observe(server, "predict", t0, answered.runtime)
    return data


async def _keel_bytes(server: KeelServer, answered: Answered, on_error: str) -> bytes:
    """keel's JSON answer as bytes; a big one built in the bulk thread."""
    if len(answered.predictions) + len(answered.refused) > INLINE_ROWS:
        return await server.offload(protocols.keel_answer_bytes, answered, on_error)
    return protocols.keel_answer_bytes(answered, on_error)


async def predict(request: Request, server: KeelServer) -> Response:
    h = request.headers
    data = await predict_keel(
        server,
        request.path_params["name"],
        request.scope,
        request.receive,
        authorization=h.get("authorization"),
        content_length=h.get("content-length"),
        request_key=h.get("x-request-key"),
        keel_time=h.get("x-keel-time"),
    )
    return Response(data, media_type="application/json")


async def feedback(request: Request, server: KeelServer) -> Response:
    name = request.path_params["name"]
    authorize(request, server, "feedback")
    production = server.model(name).production
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
    authorize(request, server, "explain")
    runtime = server.runtime(name)  # an unknown model is a 404 before the body is read
    rows = (await read_rows(request, server, "keel")).rows
    result = await server.explain(runtime, rows)
    return json_response(
        {"model": runtime.resolved.name, "version": runtime.resolved.version, **result}
    )


async def list_models(request: Request, server: KeelServer) -> Response:
    authorize(request, server, "predict")  # names and versions: as open as predict, no more
    out = [
        {"name": name, "versions": served.versions(), "canary_weight": served.canary_weight}
        for name, served in server.served.items()
    ]
    return json_response({"models": out})


# ---- probes and metrics -------------------------------------------------------------------


async def healthz(_request: Request, _server: KeelServer) -> Response:
    """Liveness: the process answers. Touches nothing else (never the database)."""
    return json_response({"status": "ok"})


async def readyz(_request: Request, server: KeelServer) -> Response:
    """Readiness (see `KeelServer.readiness`): 503 when this replica should leave rotation."""
    ok, body = server.readiness()
    return json_response(body, status=200 if ok else 503)


async def metrics(_request: Request, server: KeelServer) -> Response:
    for name, served in server.served.items():
        for rt_role, b in served.batchers.items():
            server.metrics.queue.labels(name, str(served.runtimes[rt_role].resolved.version)).set(
                b.queue_depth
            )
    return Response(server.metrics.text(), media_type="text/plain; version=0.0.4")


# ---- Open Inference Protocol v2 ------------------------------------------------------------


async def v2_live(_request: Request, _server: KeelServer) -> Response:
    return json_response({"live": True})


async def v2_ready(_request: Request, server: KeelServer) -> Response:
    ready = server.all_ready()
    return json_response({"ready": ready}, status=200 if ready else 503)


async def v2_server(_request: Request, _server: KeelServer) -> Response:
    return json_response(
        {"name": "keel", "version": __version__, "extensions": ["binary_tensor_data"]}
    )


def _oip_runtime(request: Request, server: KeelServer) -> ModelRuntime:
    """The runtime an OIP call names; the caller needs what predict needs (`predict` scope,
    unless predict is open): model metadata tells the features and the classes."""
    authorize(request, server, "predict")
    name = request.path_params["name"]
    version = request.path_params.get("version")
    return server.runtime(f"{name}@{version}" if version else name)


async def v2_model(request: Request, server: KeelServer) -> Response:
    return json_response(protocols.oip_metadata(_oip_runtime(request, server)))


async def v2_model_ready(request: Request, server: KeelServer) -> Response:
    _oip_runtime(request, server)  # an unknown model is a 404 with the usual error body
    return json_response({"ready": True})


async def v2_infer(request: Request, server: KeelServer) -> Response:
    t0 = time.perf_counter()
    runtime = _oip_runtime(request, server)
    body = await read_body(request, server)
    large = len(body) > INLINE_PARSE_BYTES
    head, binary = oip.split_raw(body, request.headers.get(oip.HEADER))
    payload = await server.parser.payload(head, "oip")
    del body, head
    max_rows = server.settings.max_rows
    rows = (
        await server.offload(protocols.oip_rows, runtime, payload, binary, max_rows)
        if large
        else protocols.oip_rows(runtime, payload, binary, max_rows)
    )
    wanted = oip.requested_outputs(payload, protocols.oip_outputs_available(runtime))
    ref = f"{runtime.resolved.name}@{runtime.resolved.version}"
    answered = await server.predict(ref, rows, key=request.headers.get("x-request-key"))
    data, header_length = protocols.oip_answer(answered, payload, wanted)
    observe(server, "v2_infer", t0, answered.runtime)
    if header_length is None:
        return Response(data, media_type="application/json")
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


# ---- MLflow scoring -----------------------------------------------------------------------


async def ping(_request: Request, server: KeelServer) -> Response:
    return Response(b"\n", status_code=200 if server.ready else 503, media_type="text/plain")


def mlflow_model(request: Request, server: KeelServer) -> str:
    """The model an `/invocations` call is for (see `protocols.mlflow_model`)."""
    asked = request.query_params.get("model") or request.headers.get("x-keel-model")
    return protocols.mlflow_model(asked, list(server.served))


async def invocations(request: Request, server: KeelServer) -> Response:
    t0 = time.perf_counter()
    name = mlflow_model(request, server)
    authorize(request, server, "predict")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype == "text/csv":
        body = await read_body(request, server)
        rows: list[Any] = await server.offload(protocols.csv_rows, body, server.settings.max_rows)
    elif ctype == "application/json":
        rows = (await read_rows(request, server, "mlflow")).rows
    else:
        msg = f"Content type {ctype!r} is not accepted; expected application/json or text/csv."
        raise UnsupportedMediaError(msg)
    answered = await server.predict(name, rows, key=request.headers.get("x-request-key"))
    observe(server, "invocations", t0, answered.runtime)
    return json_response(protocols.mlflow_answer(answered))


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
