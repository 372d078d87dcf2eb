"""The one place where errors become HTTP responses.

A client's mistake is a 4xx whose message names the field, the value and what was expected.
Anything else is the server's: a 500 whose body holds a generic sentence and an `error_id`, the
id also logged with the traceback (`keel.serve` logger), so an operator finds it and a caller
learns nothing about the inside (no SQL, no traceback, no path). The metadata database being
unreachable is a 503 with `Retry-After`, never a 500.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

import orjson
from starlette.responses import Response

from keel.store import (
    ConfigError,
    ConflictError,
    GateFailedError,
    IntegrityError,
    KeelError,
    ModelNotFoundError,
    NotFoundError,
    OverloadedError,
    UnsafeArtifactError,
)

log = logging.getLogger("keel.serve")


class RequestError(KeelError, ValueError):
    """A request the server cannot use: malformed, too large, or failing the model's contract;
    also a server too busy to take it now (503, with `retry_after_s`)."""

    def __init__(
        self, status: int, message: str, details: Any = None, *, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details
        self.retry_after_s = retry_after_s


class AuthError(KeelError, PermissionError):
    """A missing token (401) or one without the scope the call needs (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class LoadTimeoutError(KeelError, TimeoutError):
    """A model version did not load and warm up within `load_timeout_s`; it was refused."""


_STATUS: list[tuple[type[BaseException], int]] = [
    (ModelNotFoundError, 404),
    (NotFoundError, 404),
    (ConflictError, 409),
    (GateFailedError, 422),
    (ConfigError, 400),
    (OverloadedError, 503),
    (IntegrityError, 500),
    (UnsafeArtifactError, 500),
]

# exception classes of the database drivers (and SQLAlchemy's wrappers of them) that mean the
# database cannot be reached or answered in time, by module and name: serve does not import the
# drivers (psycopg is optional; the registry's hot path uses raw DBAPI connections)
_UNAVAILABLE = {
    ("sqlalchemy.exc", "OperationalError"),
    ("sqlalchemy.exc", "InterfaceError"),
    ("sqlalchemy.exc", "DisconnectionError"),
    ("sqlalchemy.exc", "TimeoutError"),
    ("sqlite3", "OperationalError"),
    ("psycopg", "OperationalError"),
    ("psycopg", "InterfaceError"),
    ("psycopg.errors", "OperationalError"),
    ("psycopg.errors", "InterfaceError"),
    ("psycopg_pool", "PoolTimeout"),
}
DATABASE_RETRY_S = 5


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the metadata database is down, locked or slow."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for kind in type(current).__mro__:
            if (kind.__module__, kind.__name__) in _UNAVAILABLE:
                return True
        current = current.__cause__ or current.__context__
    return False


def status_of(exc: BaseException) -> int:
    """The HTTP status an exception is answered with."""
    if isinstance(exc, RequestError | AuthError):
        return exc.status
    if database_unavailable(exc):
        return 503
    return next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)


def error_response(exc: BaseException, where: str = "") -> Response:
    """The answer to a request that raised `exc` (`where`: the path, for the log)."""
    status = status_of(exc)
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body: dict[str, Any]
    if isinstance(exc, RequestError) and status == 503:
        body = {"error": str(exc), "kind": type(exc).__name__}
        headers["Retry-After"] = str(exc.retry_after_s or 1)
    elif isinstance(exc, OverloadedError):
        body = {"error": str(exc), "kind": type(exc).__name__}
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif status == 503:
        error_id = uuid.uuid4().hex[:16]
        log.warning("error %s on %s: the database is unavailable", error_id, where, exc_info=exc)
        body = {
            "error": "The metadata database is not reachable right now (down, locked or too "
            f"slow); retry in a few seconds. The server log has the details under error id {error_id}.",
            "kind": "DatabaseUnavailable",
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
    else:
        body = {"error": str(exc), "kind": type(exc).__name__}
        details = getattr(exc, "details", None)
        if details is not None:
            body["details"] = details
    try:
        data = orjson.dumps(body)
    except TypeError:  # details that do not serialize: the message alone still says it
        body.pop("details", None)
        data = orjson.dumps(body)
    return Response(data, status_code=status, media_type="application/json", headers=headers)
