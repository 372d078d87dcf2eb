"""Admin calls: alias moves, rollback and flush, each needing the `admin` scope.

Every alias move goes through keel.train's promotion functions, the same ones `keel models
promote` / `rollback`, the dashboard and the loop call: production re-runs its gates unless
forced with a reason, and every move is audited. Before a serving alias moves, the version is
loaded the way the follower will load it (`KeelServer.verify_move`): a version this server
would refuse answers 422 and the alias stays where it was. keel.train is imported on the first
move, in the worker thread: it pulls SHAP, numba and matplotlib (3 s), which serving never
needs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from keel.data import DatasetStore, shown
from keel.registry import check_alias, check_model_name, check_move, check_reason, says_something
from keel.serve.errors import ProtectedAliasError, RequestError
from keel.serve.routes import authorize, json_response, read_body, read_json
from keel.serve.server import KeelServer

_MOVE_FIELDS = ("version", "reason", "weight", "force")


def _body_object(payload: Any, allowed: tuple[str, ...], call: str) -> dict[str, Any]:
    """An admin body: an object holding only the fields `allowed`."""
    if not isinstance(payload, dict):
        msg = f"The body of {call} is a JSON {_json_kind(payload)}; expected an object with the fields {list(allowed)}."
        raise RequestError(
            msg,
            {
                "field": None,
                "value": _shown(payload),
                "expected": f"an object with {list(allowed)}",
            },
        )
    unknown = sorted(set(payload) - set(allowed))
    if unknown:
        msg = (
            f"The body of {call} has the unknown field(s) {unknown}; expected only {list(allowed)}."
        )
        raise RequestError(
            msg,
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


async def set_alias(request: Request, server: KeelServer) -> Response:
    """Move an alias through the one promotion path (gates for production unless forced)."""
    authorize(request, server, "admin")
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
            verify=server.verify_move,
        )

    state, checked = await asyncio.to_thread(move)
    await server.follow_move(name, alias, state.version)
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
    authorize(request, server, "admin")
    name, alias = request.path_params["name"], request.path_params["alias"]
    unknown = sorted(set(request.query_params) - {"reason"})
    if unknown:
        msg = f"The query has the unknown parameter(s) {unknown}; expected only ['reason']."
        raise RequestError(
            msg,
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
        msg = (
            f"The production alias of {name!r} cannot be removed over HTTP: a served model needs "
            f"one. Move it (POST /v1/models/{name}/aliases/production) or roll back "
            f"(POST /v1/models/{name}/rollback)."
        )
        raise ProtectedAliasError(
            msg,
            {
                "field": "alias",
                "value": alias,
                "expected": "canary, shadow, staging or production:VALUE",
            },
        )
    await asyncio.to_thread(server.models.delete_alias, name, alias, reason=reason, actor="api")
    await server.moved(name)
    return json_response({"model": name, "alias": alias, "deleted": True})


async def flush(request: Request, server: KeelServer) -> Response:
    """Write buffered predictions and feedback to Parquet now, then ask for window profiles to
    be saved (before a backup, a report, or a replay's next step). The Parquet part never
    waits on the database; the profiles' save is waited for at most the database's statement
    timeout, and `profiles_saved` says whether it happened (false: they are kept and retried)."""
    authorize(request, server, "admin")
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
    authorize(request, server, "admin")
    name = request.path_params["name"]
    body = await read_body(request, server)
    reason = None
    if body.strip():
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            msg = f"The body is not valid JSON: {exc}."
            raise RequestError(msg) from exc
        reason = _reason(_body_object(payload, ("reason",), "a rollback"))

    def back() -> Any:
        from keel.train import rollback as roll_back

        return roll_back(
            name, models=server.models, reason=reason, actor="api", verify=server.verify_move
        )

    state = await asyncio.to_thread(back)
    await server.follow_move(name, "production", state.version)
    return json_response({"model": name, "alias": "production", "version": state.version})
