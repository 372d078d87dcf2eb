"""`POST /v1/models/{name}/jobs` and `GET /v1/models/{name}/jobs/{id}`: asynchronous batch
scoring of a file (`keel.serve.jobrunner` runs them).

Who may: a token with the `jobs` scope (or `admin`). A job reads and writes files on the
server's disk, which predict never does, and moves no alias, which admin does: a scope of its
own lets a batch system submit jobs without being able to move production.

Where: `input` and `output` are paths under one of `job_roots` (default `KEEL_HOME/data`),
checked after `..` and symlinks are resolved; anything else is a 400 naming the roots. A
relative path is taken from the first root. The output must not exist yet. A job root may be
an object-store prefix (`s3://bucket/batch`): a URL under it is read (Parquet, in chunks) or
written the way `keel predict` does.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from keel.registry import check_model_name
from keel.serve.errors import RequestError, ScopeError
from keel.serve.jobrunner import JobRunner
from keel.serve.routes import authorize, json_response, read_json
from keel.serve.server import KeelServer
from keel.store import ConfigError, NotFoundError, check_url, new_secret, secret_key

FIELDS = ("input", "output", "callback", "callback_secret")
INPUT_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")
OUTPUT_SUFFIXES = (".csv", ".parquet", ".pq")
MAX_PATH = 1024


def _bad(field: str, value: Any, expected: str) -> RequestError:
    shown = value if not isinstance(value, str) else value[:80]
    return RequestError(
        f"Field {field!r} is {shown!r}; expected {expected}.",
        {"field": field, "value": shown, "expected": expected},
    )


def job_path(
    field: str,
    value: Any,
    roots: tuple[Path, ...],
    *,
    output: bool,
    url_roots: tuple[str, ...] = (),
) -> Path | str:
    """A job's input or output, checked to lie under one of `roots` (local folders) or
    `url_roots` (object-store prefixes such as `s3://bucket/batch/`).

    Raises:
        RequestError: not text, outside every root (after `..` and symlinks), the wrong kind
            of file; an input that is missing, an output that exists.
    """
    where = ", ".join([*(str(r) for r in roots), *url_roots])
    suffixes = OUTPUT_SUFFIXES if output else INPUT_SUFFIXES
    if not isinstance(value, str) or not value or len(value) > MAX_PATH or "\x00" in value:
        raise _bad(field, value, f"a path (text up to {MAX_PATH} characters) under {where}")
    if "://" in value:
        return _job_url(field, value, url_roots, output=output, where=where)
    path = Path(value)
    resolved = (path if path.is_absolute() else roots[0] / path).resolve()
    if not any(resolved.is_relative_to(r) for r in roots):
        raise _bad(
            field, value, f"a path under the job roots ({where}); set job_roots to allow others"
        )
    if resolved.suffix.lower() not in suffixes:
        raise _bad(field, value, f"a file ending in one of {list(suffixes)}")
    if output:
        if resolved.exists():
            raise _bad(field, value, "a path that does not exist yet (jobs never overwrite)")
        if resolved.name.endswith(".refused.csv"):
            raise _bad(
                field,
                value,
                "an output name not ending in .refused.csv (that is the refused rows' file)",
            )
    elif not resolved.is_file():
        raise _bad(field, value, f"an existing file under {where}")
    return resolved


def _job_url(
    field: str, value: str, url_roots: tuple[str, ...], *, output: bool, where: str
) -> str:
    """An object-store input or output under one of `url_roots`: no `..` or empty segment,
    Parquet in (a URL is streamed in chunks), a new file out."""
    rest = value.split("://", 1)[1]
    if (
        not any(value.startswith(r) for r in url_roots)
        or any(part in ("", ".", "..") for part in rest.split("/"))
        or "\\" in value
    ):
        raise _bad(
            field, value,
            f"a path under the job roots ({where or 'none set'}); an object-store URL must lie "
            "under a job root that is one (job_roots = ['s3://bucket/batch'])",
        )  # fmt: skip
    suffixes = OUTPUT_SUFFIXES if output else (".parquet", ".pq")
    if not value.lower().endswith(suffixes):
        raise _bad(field, value, f"a file ending in one of {list(suffixes)} (URLs: Parquet in)")
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(value)
        exists = fs.exists(path)
    except Exception as exc:  # credentials, endpoint, bucket: said without the secret
        raise _bad(
            field, value, f"a readable object-store path (the store said {type(exc).__name__})"
        ) from exc
    if output and exists:
        raise _bad(field, value, "a path that does not exist yet (jobs never overwrite)")
    if not output and not exists:
        raise _bad(field, value, f"an existing file under {where}")
    return value


def _runner(request: Request) -> JobRunner:
    runner: JobRunner = request.app.state.jobs
    return runner


def _authorize(request: Request, server: KeelServer) -> None:
    try:
        authorize(request, server, "jobs")
    except ScopeError:
        authorize(request, server, "admin")  # admin may too; its error names what it has


async def create_job(request: Request, server: KeelServer) -> Response:
    """Accept a batch job: 202 with its id; the work happens in the worker thread."""
    _authorize(request, server)
    name = request.path_params["name"]
    payload = await read_json(request, server)
    if not isinstance(payload, dict):
        raise _bad(
            field="(body)", value=str(payload)[:80], expected=f"a JSON object with {list(FIELDS)}"
        )
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise _bad(unknown[0], payload[unknown[0]], f"only the fields {list(FIELDS)}")
    check_model_name(name)
    roots = server.settings.resolved_job_roots
    url_roots = server.settings.job_url_roots
    for required in ("input", "output"):
        if required not in payload:
            raise _bad(required, None, f"a path under {', '.join([*map(str, roots), *url_roots])}")
    callback, secret = payload.get("callback"), payload.get("callback_secret")
    made = False
    if callback is not None:
        try:
            check_url(callback, "callback URL")
        except ConfigError as exc:
            raise _bad(
                field="callback", value=callback, expected="an http:// or https:// URL"
            ) from exc
        if secret is None:
            secret, made = new_secret(), True
    if secret is not None:
        if callback is None:
            raise _bad(
                field="callback_secret",
                value="(not shown)",
                expected="no secret without a callback",
            )
        try:
            secret_key(secret)
        except ConfigError as exc:  # never echo a secret: the message says what form it takes
            raise _bad(
                field="callback_secret",
                value="(not shown)",
                expected="whsec_ followed by base64 of 16 to 128 bytes",
            ) from exc

    def accept() -> dict[str, Any]:
        source = job_path("input", payload["input"], roots, output=False, url_roots=url_roots)
        output = job_path("output", payload["output"], roots, output=True, url_roots=url_roots)
        version = server.models.get(name).version  # pinned now: 404 when there is none
        job = _runner(request).submit(
            name, version, source, output, callback=callback, callback_secret=secret
        )
        return job.to_json()

    body = await asyncio.to_thread(accept)
    body["status_url"] = f"/v1/models/{name}/jobs/{body['id']}"
    if made:
        body["callback_secret"] = secret  # shown this once: the receiver verifies with it
    response = json_response(body, status=202)
    response.headers["Location"] = body["status_url"]
    return response


async def get_job(request: Request, server: KeelServer) -> Response:
    """A job's state and counts."""
    _authorize(request, server)
    name, job_id = request.path_params["name"], request.path_params["job_id"]
    job = await asyncio.to_thread(_runner(request).get, job_id)
    if job is None or job.model != name:
        msg = f"Model {name!r} has no job {job_id[:64]!r}; the id is the one POST /v1/models/{name}/jobs answered."
        raise NotFoundError(msg)
    return json_response(job.to_json())


_JOB = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "model": {"type": "string"},
        "version": {"type": "integer"},
        "state": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        "input": {"type": "string"},
        "output": {"type": "string"},
        "refused_output": {"type": ["string", "null"]},
        "rows_in": {"type": "integer"},
        "rows_scored": {"type": "integer"},
        "rows_refused": {"type": "integer"},
        "error": {"type": ["string", "null"]},
        "callback": {"type": ["string", "null"]},
        "callback_status": {"type": ["string", "null"]},
        "created_at": {"type": "string"},
        "started_at": {"type": ["string", "null"]},
        "finished_at": {"type": ["string", "null"]},
        "status_url": {"type": "string"},
        "callback_secret": {
            "type": "string",
            "description": "only in the 202, only when the server made it: signs the callback",
        },
    },
    "required": ["id", "model", "version", "state", "rows_in", "rows_scored", "rows_refused"],
}


def openapi_paths(errors: Any, json_content: Any) -> dict[str, Any]:
    """The jobs' operations in the OpenAPI document (`errors(*codes)`, `json_content(schema)`
    are the document's own helpers)."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    job_id = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
    body = {
        "type": "object",
        "properties": {
            "input": {"type": "string", "description": "a CSV or Parquet file under job_roots"},
            "output": {"type": "string", "description": "a new .csv or .parquet under job_roots"},
            "callback": {"type": "string", "description": "http(s) URL POSTed when it ends"},
            "callback_secret": {
                "type": "string",
                "description": "whsec_<base64>; made if left out",
            },
        },
        "required": ["input", "output"],
        "additionalProperties": False,
    }
    return {
        "/v1/models/{name}/jobs": {
            "post": {
                "summary": "Submit a batch scoring job (jobs or admin scope); 202 with its id",
                "description": "Scores `input` in chunks like `keel predict` in a worker thread: "
                "predictions to `output`, refused rows beside it (OUTPUT.refused.csv). Paths "
                "must lie under the server's job_roots. The callback gets one signed POST "
                "(Standard Webhooks) when the job ends.",
                "parameters": [name],
                "requestBody": {"required": True, **json_content(body)},
                "responses": {
                    "202": {"description": "accepted", **json_content(_JOB)},
                    **errors(400, 401, 403, 404, 413, 503),
                },
            }
        },
        "/v1/models/{name}/jobs/{job_id}": {
            "get": {
                "summary": "A batch job's state and counts (jobs or admin scope)",
                "parameters": [name, job_id],
                "responses": {
                    "200": {"description": "ok", **json_content(_JOB)},
                    **errors(401, 403, 404, 503),
                },
            }
        },
    }
