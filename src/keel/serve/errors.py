"""Serving's domain errors: what went wrong, never an HTTP status.

`keel.serve.app.ERRORS` is the one table that answers each of them over HTTP (the status, the
body's `kind`, `Retry-After`); the core (`keel.serve.server`), the body readers and the protocol
functions only raise them. This module imports nothing of the web framework: the body-parsing
process (`keel.serve.parsing`) imports it.

    KeelError (keel.store)
    ├── RequestError (ValueError)       a request the server cannot use as sent
    │   ├── TooLargeError               a body, a row count or an explanation over its limit
    │   ├── UnsupportedMediaError       a content type the endpoint does not read
    │   ├── InputRefusedError           rows that do not fit the model's input contract
    │   ├── VersionRefusedError         an alias move to a version this server cannot load
    │   ├── ProtectedAliasError         a call that would leave a served model without production
    │   └── RetryLaterError             a request the server cannot take now (says when to retry)
    ├── AuthError (PermissionError)
    │   ├── TokenRequiredError          no token, or one this server does not know
    │   └── ScopeError                  a known token without the scope the call needs
    ├── OverloadedError (RuntimeError)  a model's queue or the prediction log is full
    ├── ModelFailedError (RuntimeError) the model raised on this input (a server failure)
    └── LoadTimeoutError (TimeoutError) a version did not load within `load_timeout_s`
"""

from __future__ import annotations

from typing import Any

from keel.store import KeelError


class RequestError(KeelError, ValueError):
    """Raised when a request cannot be used as sent: malformed, or naming what is not there.
    `details` (JSON-able) says more, field by field or row by row."""

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.details = details


class TooLargeError(RequestError):
    """Raised when a body, its rows or the rows to explain are over the server's limit."""


class UnsupportedMediaError(RequestError):
    """Raised when an endpoint is sent a content type it does not read."""


class InputRefusedError(RequestError):
    """Raised when rows do not fit the model's input contract (`details`: the first errors)."""


class VersionRefusedError(RequestError):
    """Raised before an alias move when this server cannot load the version it would serve;
    nothing is moved."""


class ProtectedAliasError(RequestError):
    """Raised when a call would remove the alias a served model answers with (production)."""


class RetryLaterError(RequestError):
    """Raised when the server cannot take this request now (the bytes of bodies in flight, the
    body parser restarting, an alias move not yet served); `retry_after_s` says when to retry."""

    def __init__(self, message: str, details: Any = None, *, retry_after_s: int = 1) -> None:
        super().__init__(message, details)
        self.retry_after_s = retry_after_s


class AuthError(KeelError, PermissionError):
    """Raised when the caller may not make this call (see the two kinds below)."""


class TokenRequiredError(AuthError):
    """Raised when a call needs a token and none, or one this server does not know, was sent."""


class ScopeError(AuthError):
    """Raised when the caller's token lacks the scope the call needs."""


class ModelFailedError(KeelError, RuntimeError):
    """Raised when the model itself failed on a request's rows: the server's failure, never
    shown to the caller beyond an error id."""


class LoadTimeoutError(KeelError, TimeoutError):
    """A model version did not load and warm up within `load_timeout_s`; it was refused."""


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


REQUEST_ERRORS: dict[str, type[RequestError]] = {
    cls.__name__: cls
    for cls in (
        RequestError,
        TooLargeError,
        UnsupportedMediaError,
        InputRefusedError,
        RetryLaterError,
    )
}
"""The request errors a body parser may raise, by name: the parsing process sends the name
and the message back, and the server raises the same type."""
