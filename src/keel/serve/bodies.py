"""Request bodies, bounded: read under a byte budget, turned into rows, at most `max_rows`.

Measured: building a 9 MB body by `bytes +=` over 64 KiB chunks cost ~950 ms on the event loop
(every chunk copies all before it); it is gathered in a list and joined once.

The functions that turn a payload into rows (`keel_rows`, `mlflow_rows`, `feedback_rows`,
`columns_to_rows`, `check_oip_sizes`) are pure and raise `RequestError` naming the field, the
value and what was expected; the same ones run in the server and in the parsing process
(`keel.serve.parsing`), which imports only this module, orjson and the error types.
"""

from __future__ import annotations

import asyncio
import math
import reprlib
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from keel.serve.errors import RequestError, RetryLaterError, TooLargeError

RESERVED = "keel.reserved_bytes"
"""The ASGI scope key holding the bytes a request reserved from the budget."""
LARGE = "keel.large_body"
"""The ASGI scope key marking a request that holds the large-body turn."""
INLINE_PARSE_BYTES = 64 * 1024
"""Bodies up to this size are parsed on the event loop (well under a millisecond); larger ones
take their turn (one at a time) and go to the parsing process."""

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Scope = MutableMapping[str, Any]


@dataclass(frozen=True)
class Rows:
    """The rows of a request and how to treat the ones that do not fit the contract."""

    rows: list[Any]
    on_error: str = "fail"
    rest: dict[str, Any] | None = None  # the payload's other keys (feedback: none needed)


class BodyBudget:
    """Bytes of request bodies held at once, across concurrent requests, and the turn of large
    bodies (event loop only).

    One large body at a time is parsed, checked, predicted and answered; the others wait for
    their turn with their bytes counted. Measured (bench/isolation.py): four concurrent 10 MB
    requests decoded side by side grew the server by their rows, clean rows and answers at
    once; in turn, by one request's."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._large = asyncio.Semaphore(1)

    async def take_turn(self, scope: Scope) -> None:
        """Wait for the large-body turn; released with the reservation."""
        await self._large.acquire()
        scope[LARGE] = True

    def reserve(self, scope: Scope, n: int) -> None:
        if self.used + n > self.limit:
            msg = (
                f"The server holds {self.used:,} bytes of request bodies and this one needs "
                f"{n:,} more; at most {self.limit:,} are held at once (max_inflight_bytes). "
                "Retry in a moment."
            )
            raise RetryLaterError(msg, retry_after_s=1)
        self.used += n
        scope[RESERVED] = scope.get(RESERVED, 0) + n

    def release(self, scope: Scope) -> None:
        self.used -= scope.pop(RESERVED, 0)
        if scope.pop(LARGE, False):
            self._large.release()


def too_large(n: int, limit: int) -> TooLargeError:
    return TooLargeError(
        f"The body is {n:,} bytes; this server reads at most {limit:,} (max_body_bytes)."
    )


def too_many_rows(n: int, max_rows: int) -> TooLargeError:
    return TooLargeError(
        f"The request has {n:,} rows; this server answers at most {max_rows:,} rows per request "
        f"(max_rows). Send them in requests of at most {max_rows:,} rows.",
    )


async def receive_body(
    receive: Receive,
    scope: Scope,
    declared: str | None,
    *,
    limit: int,
    budget: BodyBudget,
) -> bytes | bytearray:
    """The whole body, under the size limit and the budget (reserved up front when the length
    is declared, else chunk by chunk); the reservation is released by whoever owns `scope`."""
    if declared is not None and declared.strip().isdigit():
        size = int(declared)
        if size > limit:
            raise too_large(size, limit)
        budget.reserve(scope, size)
    else:
        size = -1
    # a declared length fills one buffer in place (joining chunks would hold the body twice)
    filled = bytearray(size) if size > 0 else None
    parts: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            msg = "The client went away before sending the whole body."
            raise RequestError(msg)
        chunk = message.get("body", b"")
        if chunk:
            if total + len(chunk) > limit:
                raise too_large(total + len(chunk), limit)
            if filled is not None:
                if total + len(chunk) > size:
                    msg = f"The body is longer than its Content-Length ({size:,} bytes)."
                    raise RequestError(msg)
                filled[total : total + len(chunk)] = chunk
            else:
                if size < 0:
                    budget.reserve(scope, len(chunk))
                parts.append(chunk)
            total += len(chunk)
        if not message.get("more_body", False):
            break
    if filled is not None:
        if total < size:
            msg = f"The body is shorter than its Content-Length ({total:,} of {size:,} bytes)."
            raise RequestError(msg)
        body: bytes | bytearray = filled  # bytes-like: orjson, pipes and slices take it
    elif size == 0 and total:
        msg = "The body is longer than its Content-Length (0 bytes)."
        raise RequestError(msg)
    else:
        body = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(body) > INLINE_PARSE_BYTES:
        await budget.take_turn(scope)
    return body


_HINTS = {"oip": " Binary tensors need the Inference-Header-Content-Length header."}


def loads(body: bytes | bytearray, kind: str = "json") -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"The body is not valid JSON: {exc}.{_HINTS.get(kind, '')}"
        raise RequestError(msg) from exc


# ---- payload -> rows (pure; run in the server and in the parsing process) ----------------------


_SHOWN = reprlib.Repr()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 80, 80
_SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxtuple = 8


def _described(value: Any) -> str:
    """A value as a message shows it: its repr, cut short (three levels of nesting at most: a
    full repr of a value nested a thousand deep is a RecursionError)."""
    return _SHOWN.repr(value)


def on_error_of(payload: dict[str, Any]) -> str:
    """The body's `on_error`: "fail" (the default) or "skip"."""
    value = payload.get("on_error", "fail")
    if value not in ("fail", "skip"):
        msg = (
            f"'on_error' has the value {_described(value)}; expected 'fail' (the default: one bad "
            "row fails the request with 422) or 'skip' (bad rows answered with null and listed "
            "in 'errors')."
        )
        raise RequestError(
            msg,
        )
    return str(value)


def columns_to_rows(columns: Any, max_rows: int, field: str = "columns") -> list[dict[str, Any]]:
    """`{name: [values]}` as records, after checking the shape and the row count."""
    if not isinstance(columns, dict):
        msg = (
            f"{field!r} has the value {_described(columns)}; expected an object of name: [values]."
        )
        raise RequestError(msg)
    for name, values in columns.items():
        if not isinstance(values, list):
            msg = f"{field!r} column {name!r} has the value {_described(values)}; expected a list of values."
            raise RequestError(msg)
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        shown = dict(list(lengths.items())[:20])
        msg = f"The columns of {field!r} have different lengths: {shown}."
        raise RequestError(msg)
    n = next(iter(lengths.values()), 0)
    if n > max_rows:
        raise too_many_rows(n, max_rows)
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _records(value: Any, field: str, max_rows: int) -> list[Any]:
    if not isinstance(value, list):
        msg = f"{field!r} has the value {_described(value)}; expected a list of records (objects of field: value)."
        raise RequestError(msg)
    if len(value) > max_rows:
        raise too_many_rows(len(value), max_rows)
    return value


def keel_rows(payload: Any, max_rows: int) -> Rows:
    """keel's JSON: `{"rows": [{...}]}` or `{"columns": {name: [values]}}`, and `on_error`."""
    if not isinstance(payload, dict):
        msg = f"The body is a JSON {type(payload).__name__}; expected an object with 'rows' or 'columns'."
        raise RequestError(msg)
    on_error = on_error_of(payload)
    if "rows" in payload:
        return Rows(_records(payload["rows"], "rows", max_rows), on_error)
    if "columns" in payload:
        return Rows(columns_to_rows(payload["columns"], max_rows), on_error)
    shown = sorted(payload)[:20]
    msg = f"The body has the keys {shown}; expected 'rows' or 'columns'."
    raise RequestError(msg)


def mlflow_rows(payload: Any, max_rows: int) -> Rows:
    """MLflow's scoring JSON: dataframe_split, dataframe_records, instances or inputs."""
    formats = "dataframe_split, dataframe_records, instances or inputs"
    if not isinstance(payload, dict):
        msg = f"The body is a JSON {type(payload).__name__}; expected an object with one of {formats}."
        raise RequestError(msg)
    if "dataframe_split" in payload:
        split = payload["dataframe_split"]
        if not isinstance(split, dict) or "columns" not in split or "data" not in split:
            msg = f"'dataframe_split' has the value {_described(split)}; expected an object with 'columns' (names) and 'data' (rows as lists)."
            raise RequestError(msg)
        columns, data = split["columns"], split["data"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            msg = f"'dataframe_split.columns' has the value {_described(columns)}; expected a list of column names (strings)."
            raise RequestError(msg)
        data = _records(data, "dataframe_split.data", max_rows)
        for i, row in enumerate(data):
            if not isinstance(row, list) or len(row) != len(columns):
                msg = f"'dataframe_split.data' row {i} has the value {_described(row)}; expected a list of {len(columns)} values, one per column."
                raise RequestError(msg)
        return Rows([dict(zip(columns, row, strict=True)) for row in data])
    if "dataframe_records" in payload:
        return Rows(_records(payload["dataframe_records"], "dataframe_records", max_rows))
    for key in ("instances", "inputs"):
        if key in payload:
            value = payload[key]
            if isinstance(value, dict):
                return Rows(columns_to_rows(value, max_rows, key))
            if not isinstance(value, list):
                msg = f"{key!r} has the value {_described(value)}; expected a list of records or an object of name: [values]."
                raise RequestError(msg)
            return Rows(_records(value, key, max_rows))
    shown = sorted(payload)[:20]
    msg = f"The body has the keys {shown}; expected one of {formats}."
    raise RequestError(msg)


def feedback_rows(payload: Any, max_rows: int) -> Rows:
    """Feedback: `{"labels": [{"prediction_id": ..., "label": ...}, ...]}`."""
    labels = payload.get("labels") if isinstance(payload, dict) else None
    if not isinstance(labels, list) or not all(
        isinstance(x, dict) and "prediction_id" in x and "label" in x for x in labels
    ):
        msg = "Expected {'labels': [{'prediction_id': ..., 'label': ...}, ...]}."
        raise RequestError(msg)
    if len(labels) > max_rows:
        raise too_many_rows(len(labels), max_rows)
    return Rows(labels)


def check_oip_sizes(payload: Any, max_rows: int) -> None:
    """An Open Inference Protocol request's sizes, before anything is built from it: each input
    named once, with a shape of sizes whose first (rows) is at most `max_rows`, and JSON `data`
    that holds exactly the shape's number of elements, flat or nested regularly by the shape."""
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list) or not inputs:
        msg = "Expected {'inputs': [{'name', 'shape', 'datatype', 'data'}, ...]}."
        raise RequestError(msg)
    if "id" in payload and not isinstance(payload["id"], str):
        msg = f"'id' has the value {_described(payload['id'])}; expected a string."
        raise RequestError(msg)
    names: set[str] = set()
    for t in inputs:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            msg = f"An input has the value {_described(t)}; each input needs 'name', 'shape', 'datatype' and 'data'."
            raise RequestError(msg)
        name = t["name"]
        if name in names:
            msg = f"Input {name!r} is given twice; expected each input once."
            raise RequestError(msg)
        names.add(name)
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
        ):
            msg = f"Input {name!r} has shape {_described(shape)}; expected a list of sizes (integers >= 0)."
            raise RequestError(msg)
        if shape and shape[0] > max_rows:
            raise too_many_rows(shape[0], max_rows)
        if "data" in t:
            flat_data(name, t["data"], shape)


def flat_data(name: str, data: Any, shape: list[int]) -> list[Any]:
    """An input's JSON `data` as a flat list, row-major, checked against its shape: a flat list
    of prod(shape) elements, or lists nested as the shape says (every row the same length).
    Iterative: a list nested a thousand deep is refused, not a RecursionError."""
    expected = math.prod(shape)
    if not isinstance(data, list):
        msg = f"Input {name!r} has data {_described(data)}; expected a list of {expected} elements (shape {shape})."
        raise RequestError(msg)
    if not any(isinstance(x, list) for x in data):
        if len(data) != expected:
            msg = f"Input {name!r} has shape {shape} ({expected} elements) but its data holds {len(data)}; expected data that fits the shape."
            raise RequestError(msg)
        return data
    level: list[Any] = [data]
    for size in shape:
        below: list[Any] = []
        for x in level:
            if not isinstance(x, list) or len(x) != size:
                break
            below.extend(x)
        else:
            level = below
            continue
        break
    else:
        if not any(isinstance(x, list) for x in level):
            return level
    msg = (
        f"Input {name!r} has nested data that does not fit its shape {shape}; expected a flat "
        f"list of {expected} elements, or lists nested {len(shape)} deep with those sizes "
        "(every row the same length)."
    )
    raise RequestError(msg)


EXTRACT: dict[str, Callable[[Any, int], Rows]] = {
    "keel": keel_rows,
    "mlflow": mlflow_rows,
    "feedback": feedback_rows,
}
"""Row formats by name: payload and max_rows to rows."""
