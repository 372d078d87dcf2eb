"""Errors become HTTP answers in one place: 4xx say what was wrong; a 500 says nothing about
the inside and gives an id that is in the log; an unreachable database is a 503."""

from __future__ import annotations

import logging
import sqlite3

import orjson
import pytest
import sqlalchemy as sa

from keel.serve.app import error_response
from keel.serve.errors import (
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
from keel.store import ConfigError, ModelNotFoundError, OverloadedError, UnsafeArtifactError

SECRET = "INSERT INTO audit_events (actor, reason) VALUES ('api', {'x': 1}) /srv/keel/keel.db"


def _body(response: object) -> dict[str, object]:
    return dict(orjson.loads(response.body))  # type: ignore[attr-defined]


def test_a_500_body_holds_a_generic_message_and_an_error_id_that_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No SQL, no traceback, no path in the body; the id finds the traceback in the log."""
    try:
        raise TypeError(SECRET)
    except TypeError as exc:
        with caplog.at_level(logging.ERROR, logger="keel.serve"):
            response = error_response(exc, "/v1/models/m/predict")

    body = _body(response)
    assert response.status_code == 500
    assert set(body) == {"error", "kind", "error_id"}
    assert body["kind"] == "InternalError"
    assert "INSERT" not in str(body)
    assert "/srv" not in str(body)
    assert "Traceback" not in str(body)
    (record,) = caplog.records
    assert str(body["error_id"]) in record.getMessage()
    assert record.exc_info is not None


def test_model_failures_and_unsafe_artifacts_are_500s_that_show_nothing() -> None:
    """Server-side failures that keel raises itself are shown no more than bugs."""
    for exc in (ModelFailedError(SECRET), UnsafeArtifactError(SECRET)):
        body = _body(error_response(exc))

        assert SECRET not in str(body)
        assert "error_id" in body


def test_database_unavailable_is_503_with_retry_after_and_no_sql() -> None:
    """SQLAlchemy's OperationalError carries the statement and its parameters: never shown."""
    exc = sa.exc.OperationalError(SECRET, {"reason": {"x": 1}}, sqlite3.OperationalError("locked"))

    response = error_response(exc)

    body = _body(response)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert body["kind"] == "DatabaseUnavailable"
    assert "INSERT" not in str(body)
    assert "database" in str(body["error"])


def test_database_errors_are_recognised_through_their_causes() -> None:
    """A driver error wrapped in another exception still says the database is down."""
    outer = RuntimeError("while moving an alias")
    outer.__cause__ = sqlite3.OperationalError("database is locked")

    assert database_unavailable(outer)
    assert not database_unavailable(ValueError("no"))


def test_client_errors_keep_their_message_and_details() -> None:
    """4xx bodies say what was wrong, with details when there are some."""
    response = error_response(InputRefusedError("row 0 is wrong", [{"row": 0}]))
    missing = error_response(ModelNotFoundError("No model 'x'"))
    busy = error_response(RetryLaterError("busy", retry_after_s=2))

    assert _body(response) == {
        "error": "row 0 is wrong",
        "kind": "RequestError",
        "details": [{"row": 0}],
    }
    assert missing.status_code == 404
    assert busy.headers["retry-after"] == "2"


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        (TokenRequiredError("no token"), 401, "AuthError"),
        (ScopeError("no scope"), 403, "AuthError"),
        (RequestError("bad"), 400, "RequestError"),
        (TooLargeError("big"), 413, "RequestError"),
        (UnsupportedMediaError("xml"), 415, "RequestError"),
        (InputRefusedError("unfit"), 422, "RequestError"),
        (VersionRefusedError("cannot load"), 422, "RequestError"),
        (ProtectedAliasError("production stays"), 409, "RequestError"),
        (RetryLaterError("later"), 503, "RequestError"),
        (OverloadedError("queue full"), 503, "OverloadedError"),
        (ModelNotFoundError("no model"), 404, "ModelNotFoundError"),
        (ConfigError("bad setting"), 400, "ConfigError"),
        (ModelFailedError("model raised"), 500, "InternalError"),
    ],
    ids=lambda x: type(x).__name__ if isinstance(x, Exception) else str(x),
)
def test_each_error_type_has_one_status_and_kind(error: Exception, status: int, kind: str) -> None:
    """The one table answers every domain error with the status and kind clients have seen."""
    response = error_response(error)

    assert response.status_code == status
    assert _body(response)["kind"] == kind
    assert ("www-authenticate" in response.headers) == (status == 401)
    assert ("retry-after" in response.headers) == (status == 503)
