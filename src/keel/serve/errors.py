"""The one place where errors become HTTP responses."""

from __future__ import annotations

import math
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
    UnsafeArtifactError,
)


class RequestError(KeelError, ValueError):
    """A request the server cannot use: malformed, too large, or failing the model's contract."""

    def __init__(self, status: int, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.details = details


class AuthError(KeelError, PermissionError):
    """A missing token (401) or one without the scope the call needs (403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class OverloadedError(KeelError, RuntimeError):
    """The server cannot take this work now and says when to retry (503 with `Retry-After`):
    a model's queue is full or waited too long, or the prediction log's buffers are full."""

    def __init__(self, message: str, *, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


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


def error_response(exc: BaseException) -> Response:
    if isinstance(exc, RequestError | AuthError):
        status = exc.status
    else:
        status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 500)
    body: dict[str, Any] = {"error": str(exc), "kind": type(exc).__name__}
    details = getattr(exc, "details", None)
    if details is not None:
        body["details"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if isinstance(exc, OverloadedError):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )
