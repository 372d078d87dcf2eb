"""The HTTP server: keel's JSON API, the Open Inference Protocol v2, MLflow's scoring format,
feedback, admin, explanations, metrics and probes, over one `KeelServer`.

`create_app` builds the core and puts Starlette in front of it: the route table, the
plain-ASGI hot path for predict (`FastPredict`), and the one table (`ERRORS`) that answers
every error the core, the body readers and the protocols raise. A client's mistake is a 4xx
whose message names the field, the value and what was expected. Anything else is the
server's: a 500 whose body holds a generic sentence and an `error_id`, the id also logged with
the traceback (`keel.serve` logger), so an operator finds it and a caller learns nothing about
the inside (no SQL, no traceback, no path). The metadata database being unreachable is a 503
with `Retry-After`, never a 500. The dashboard answers its JSON errors with the same table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from keel.registry import ModelStore
from keel.serve import admin, jobs, routes
from keel.serve.errors import (
    AuthError,
    InputRefusedError,
    ModelFailedError,
    ProtectedAliasError,
    RequestError,
    RetryLaterError,
    ScopeError,
    TokenRequiredError,
    TooLargeError,
    UnsupportedMediaError,
    VersionRefusedError,
    database_unavailable,
)
from keel.serve.jobrunner import JobRunner
from keel.serve.openapi import openapi_document
from keel.serve.server import KeelServer
from keel.store import (
    ConfigError,
    ConflictError,
    GateFailedError,
    IntegrityError,
    ModelNotFoundError,
    NotFoundError,
    OverloadedError,
    Settings,
    UnsafeArtifactError,
)

log = logging.getLogger("keel.serve")

# ---- errors -> HTTP -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """How one error type is answered: its status, and the body's `kind` when it is not the
    type's own name (the request and auth errors keep the names clients have seen)."""

    status: int
    kind: str | None = None


ERRORS: tuple[tuple[type[BaseException], Answer], ...] = (
    (TokenRequiredError, Answer(401, "AuthError")),
    (ScopeError, Answer(403, "AuthError")),
    (AuthError, Answer(403)),
    (TooLargeError, Answer(413, "RequestError")),
    (UnsupportedMediaError, Answer(415, "RequestError")),
    (InputRefusedError, Answer(422, "RequestError")),
    (VersionRefusedError, Answer(422, "RequestError")),
    (ProtectedAliasError, Answer(409, "RequestError")),
    (RetryLaterError, Answer(503, "RequestError")),
    (RequestError, Answer(400)),
    (ModelFailedError, Answer(500)),
    (OverloadedError, Answer(503)),
    # the store's errors; a driver's error that says the database is down comes first
    (ModelNotFoundError, Answer(404)),
    (NotFoundError, Answer(404)),
    (ConflictError, Answer(409)),
    (GateFailedError, Answer(422)),
    (ConfigError, Answer(400)),
    (IntegrityError, Answer(500)),
    (UnsafeArtifactError, Answer(500)),
)
"""Error type -> answer, most specific first; anything else is a 500."""

_OWN = (RequestError, AuthError, ModelFailedError, OverloadedError)
"""serve's own errors: answered by the table even when a database error caused them."""
DATABASE_RETRY_S = 5


def answer_of(exc: BaseException) -> Answer:
    """The answer an exception gets: by `ERRORS`; 503 when the database is unavailable."""
    if not isinstance(exc, _OWN) and database_unavailable(exc):
        return Answer(503, "DatabaseUnavailable")
    return next((a for kind, a in ERRORS if isinstance(exc, kind)), Answer(500))


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception is answered with."""
    return answer_of(exc).status


def error_body(exc: BaseException, where: str = "") -> tuple[int, dict[str, Any], dict[str, str]]:
    """The status, JSON body and headers that answer `exc` (`where`: the path, for the log)."""
    answer = answer_of(exc)
    status, kind = answer.status, answer.kind or type(exc).__name__
    headers: dict[str, str] = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    body: dict[str, Any] = {"error": str(exc), "kind": kind}
    if isinstance(exc, RetryLaterError):
        headers["Retry-After"] = str(exc.retry_after_s or 1)
    elif isinstance(exc, OverloadedError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif kind == "DatabaseUnavailable":
        error_id = uuid.uuid4().hex[:16]
        log.warning("error %s on %s: the database is unavailable", error_id, where, exc_info=exc)
        body = {
            "error": "The metadata database is not reachable right now (down, locked or too "
            f"slow); retry in a few seconds. The server log has the details under error id {error_id}.",
            "kind": kind,
            "error_id": error_id,
        }
        headers["Retry-After"] = str(DATABASE_RETRY_S)
    elif status >= 500:
        error_id = uuid.uuid4().hex[:16]
        log.error("error %s on %s: %s", error_id, where, exc, exc_info=exc)
        body = {
            "error": "The server failed on this request; nothing about it is shown here. The "
            f"server log has the details under error id {error_id}.",
            "kind": "InternalError",
            "error_id": error_id,
        }
    elif getattr(exc, "details", None) is not None:
        body["details"] = exc.details  # type: ignore[attr-defined]
    return status, body, headers


def error_response(exc: BaseException, where: str = "") -> Response:
    """The answer to a request that raised `exc` (`where`: the path, for the log)."""
    status, body, headers = error_body(exc, where)
    try:
        data = orjson.dumps(body)
    except TypeError:  # details that do not serialize: the message alone still says it
        body.pop("details", None)
        data = orjson.dumps(body)
    return Response(data, status_code=status, media_type="application/json", headers=headers)


# ---- the app --------------------------------------------------------------------------------

ROUTES: list[tuple[str, routes.Handler, list[str]]] = [
    ("/v1/models", routes.list_models, ["GET"]),
    ("/v1/models/{name}/predict", routes.predict, ["POST"]),
    ("/v1/models/{name}/feedback", routes.feedback, ["POST"]),
    ("/v1/models/{name}/explain", routes.explain, ["POST"]),
    ("/v1/models/{name}/aliases/{alias}", admin.set_alias, ["POST"]),
    ("/v1/models/{name}/aliases/{alias}", admin.delete_alias, ["DELETE"]),
    ("/v1/models/{name}/rollback", admin.rollback, ["POST"]),
    ("/v1/admin/flush", admin.flush, ["POST"]),
    ("/v1/models/{name}/jobs", jobs.create_job, ["POST"]),
    ("/v1/models/{name}/jobs/{job_id}", jobs.get_job, ["GET"]),
    ("/healthz", routes.healthz, ["GET"]),
    ("/readyz", routes.readyz, ["GET"]),
    ("/metrics", routes.metrics, ["GET"]),
    ("/v2/health/live", routes.v2_live, ["GET"]),
    ("/v2/health/ready", routes.v2_ready, ["GET"]),
    ("/v2", routes.v2_server, ["GET"]),
    ("/v2/models/{name}", routes.v2_model, ["GET"]),
    ("/v2/models/{name}/ready", routes.v2_model_ready, ["GET"]),
    ("/v2/models/{name}/versions/{version}", routes.v2_model, ["GET"]),
    ("/v2/models/{name}/versions/{version}/ready", routes.v2_model_ready, ["GET"]),
    ("/v2/models/{name}/infer", routes.v2_infer, ["POST"]),
    ("/v2/models/{name}/versions/{version}/infer", routes.v2_infer, ["POST"]),
    ("/ping", routes.ping, ["GET"]),
    ("/invocations", routes.invocations, ["POST"]),
]

COUNTS_OWN_SUCCESS = frozenset({"predict", "v2_infer", "invocations"})
"""Handlers that count their 200s themselves, with the version that answered."""


def create_app(
    settings: Settings, models: ModelStore | None = None, names: list[str] | None = None
) -> Starlette:
    """Build the server: the models named (all registered models by default)."""
    server = KeelServer(settings, models or ModelStore.open(settings), names)
    runner = JobRunner(settings, server.models)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await server.start()
        await asyncio.to_thread(runner.start)  # batch jobs: a worker thread, off the loop
        try:
            yield
        finally:
            await asyncio.to_thread(runner.stop)
            await server.stop()

    route_list = [
        Route(path, _endpoint(server, handler), methods=methods)
        for path, handler, methods in ROUTES
    ]
    route_list.append(
        Route("/openapi.json", lambda _r: routes.json_response(openapi_document()), methods=["GET"])
    )
    route_list.append(
        Route(
            "/docs", lambda _r: HTMLResponse(routes.docs_page(openapi_document())), methods=["GET"]
        )
    )
    app = Starlette(routes=route_list, lifespan=lifespan)
    app.add_middleware(FastPredict, server=server)
    app.state.server = server
    app.state.jobs = runner
    return app


def _endpoint(
    server: KeelServer, handler: routes.Handler
) -> Callable[[Request], Awaitable[Response]]:
    """A handler as a Starlette endpoint: errors answered by the table, every request
    counted, the body's bytes given back to the budget."""
    label = handler.__name__
    counts_own_success = label in COUNTS_OWN_SUCCESS

    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request, server)
        except Exception as exc:  # 4xx for the caller's mistakes; else 500 with an id, logged
            response = error_response(exc, request.url.path)
        else:
            if counts_own_success and response.status_code == 200:
                return response  # counted with its version by the handler
        finally:
            server.budget.release(request.scope)
        name = request.path_params.get("name")
        if name is None and label == "invocations":  # MLflow names no model in the path
            with contextlib.suppress(RequestError):
                name = routes.mlflow_model(request, server)
        routes.count(server, name, label, response.status_code)
        return response

    return endpoint


_PREFIX, _SUFFIX = "/v1/models/", "/predict"


class FastPredict:
    """The predict hot path as plain ASGI, in front of Starlette's routing.

    Measured: at 64 connections the per-request cost of Starlette's Request, routing and
    Response objects was the wall once the model answered in microseconds. This handles
    `POST /v1/models/{name}/predict` through the same function as the routed endpoint
    (`routes.predict_keel`) and the same error table; the routed endpoint stays for the
    OpenAPI document and any other path; everything else goes on.
    """

    def __init__(self, app: Any, server: KeelServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and path.startswith(_PREFIX)
            and path.endswith(_SUFFIX)
        ):
            name = path[len(_PREFIX) : -len(_SUFFIX)]
            if name and "/" not in name:
                await self._predict(name, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _predict(self, name: str, scope: Any, receive: Any, send: Any) -> None:
        server = self.server
        headers: dict[bytes, bytes] = dict(scope["headers"])
        try:
            data = await routes.predict_keel(
                server,
                name,
                scope,
                receive,
                authorization=_text(headers.get(b"authorization")),
                content_length=_text(headers.get(b"content-length")),
                request_key=_text(headers.get(b"x-request-key")),
                keel_time=_text(headers.get(b"x-keel-time")),
            )
        except Exception as exc:  # 4xx for the caller's mistakes; else 500 with an id, logged
            response = error_response(exc, scope.get("path", ""))
            routes.count(server, name, "predict", response.status_code)
            await response(scope, receive, send)
            return
        finally:
            server.budget.release(scope)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})


def _text(value: bytes | None) -> str | None:
    """A raw ASGI header value as text (HTTP headers are latin-1)."""
    return None if value is None else value.decode("latin-1")
