"""What a stream message holds and what keel writes back: pure functions, no broker.

A message body is one JSON object (a row, as the items of `{"rows": [...]}`) or
`{"rows": [...]}`. Each answered row becomes one score, the fields of the HTTP answer:
`{"message_id", "prediction_id", "model", "version", "prediction", "probabilities",
"classes"}`. Rows the contract refuses, and bodies that are not such JSON, become one dead
letter per message with the reasons in the format of HTTP 422 details (`RecordError.to_dict`)
and the refused input, so nothing is dropped and it can be sent again once fixed.

Prediction ids are derived from the source and the message id (`prediction_id_of`), so a
message delivered twice logs the same ids twice, which readers of the log count once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "Parsed",
    "dead_letter",
    "label_of",
    "parse_body",
    "prediction_id_of",
    "score_json",
]

NAMESPACE = uuid.UUID("5b0c1f7e-8d7a-4c38-9a41-6b2f0e0c5e11")
"""The uuid5 namespace of stream prediction ids (fixed: ids must not change between runs)."""

MAX_ROWS_PER_MESSAGE = 10_000


@dataclass(frozen=True, slots=True)
class Parsed:
    """One message read: its rows, or why it has none (`error`, a 422-style detail)."""

    rows: list[dict[str, Any]]
    error: dict[str, Any] | None = None


def _problem(rule: str, expected: str, value: Any) -> Parsed:
    shown = value if isinstance(value, str | int | float | bool) or value is None else repr(value)
    if isinstance(shown, str) and len(shown) > 200:
        shown = shown[:200] + "..."
    detail = {"row": None, "field": "body", "value": shown, "rule": rule, "expected": expected}
    return Parsed([], detail)


def parse_body(body: bytes | str) -> Parsed:
    """The rows of one message body.

    >>> parse_body(b'{"amount": 3}').rows
    [{'amount': 3}]
    >>> parse_body(b'{"rows": [{"a": 1}, {"a": 2}]}').rows
    [{'a': 1}, {'a': 2}]
    >>> parse_body(b"not json").error["rule"]
    'json'
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return _problem("json", f"a JSON object ({exc})", text)
    if not isinstance(data, dict):
        return _problem("shape", 'a JSON object: one row, or {"rows": [...]}', data)
    if "rows" not in data:
        return Parsed([data]) if data else _problem("shape", "a non-empty row", data)
    rows = data["rows"]
    extra = sorted(set(data) - {"rows"})
    if extra:
        return _problem("shape", f'{{"rows": [...]}} alone, not also {extra}', extra)
    if not isinstance(rows, list) or not rows:
        return _problem("shape", '"rows": a non-empty list of objects', rows)
    if len(rows) > MAX_ROWS_PER_MESSAGE:
        return _problem("size", f"at most {MAX_ROWS_PER_MESSAGE} rows a message", len(rows))
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        return _problem("shape", f"rows[{bad}] an object (a row)", rows[bad])
    return Parsed(rows)


def prediction_id_of(identity: str, message_id: str, row: int) -> str:
    """The prediction id of row `row` of message `message_id` read from `identity` (32 hex
    digits, a UUIDv5: the same message always gets the same ids).

    >>> prediction_id_of("redis://h:1/0/s/g", "1-0", 0) == prediction_id_of("redis://h:1/0/s/g", "1-0", 0)
    True
    """
    return uuid.uuid5(NAMESPACE, f"{identity}\x00{message_id}\x00{row}").hex


def score_json(
    *,
    message_id: str,
    prediction_id: str,
    model: str,
    version: int,
    prediction: Any,
    probabilities: list[float] | None,
    classes: list[Any] | None,
) -> bytes:
    """One score as the sink gets it (the fields of the HTTP answer, for one row)."""
    return orjson.dumps(
        {
            "message_id": message_id,
            "prediction_id": prediction_id,
            "model": model,
            "version": version,
            "prediction": prediction,
            "probabilities": probabilities,
            "classes": classes,
        },
        option=orjson.OPT_SERIALIZE_NUMPY,
        default=str,
    )


def dead_letter(
    *,
    stream: str,
    message_id: str,
    reason: str,
    errors: list[dict[str, Any]],
    rows: list[dict[str, Any]] | None = None,
    body: bytes | None = None,
) -> bytes:
    """A dead letter: the message id, a one-line reason, the details (each
    `{"row", "field", "value", "rule", "expected"}`, `row` the index in the message) and the
    refused rows (or the raw body when it had none)."""
    out: dict[str, Any] = {
        "stream": stream,
        "message_id": message_id,
        "reason": reason,
        "errors": errors,
    }
    if rows is not None:
        out["rows"] = rows
    if body is not None:
        out["body"] = body.decode("utf-8", "replace")
    return orjson.dumps(out, default=str)


def label_of(body: bytes) -> tuple[str | None, int, Any, str | None]:
    """A labels message `{"prediction_id" | "message_id", "row"?, "label"}`: (prediction id or
    None, row, label, message id or None); `ValueError` with the reason when it is not one.

    >>> label_of(b'{"message_id": "1-0", "label": 1}')
    (None, 0, 1, '1-0')
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"not JSON ({exc}); expected {{'prediction_id' or 'message_id', 'label'}}"
        raise ValueError(msg) from exc
    if not isinstance(data, dict) or "label" not in data:
        msg = "expected a JSON object with 'label' and 'prediction_id' or 'message_id'"
        raise ValueError(msg)
    pid, mid, row = data.get("prediction_id"), data.get("message_id"), data.get("row", 0)
    if (pid is None) == (mid is None):
        msg = "expected exactly one of 'prediction_id' and 'message_id'"
        raise ValueError(msg)
    if not isinstance(row, int) or isinstance(row, bool) or row < 0:
        msg = f"'row' is {row!r}; expected the row's index in its message (0, 1, ...)"
        raise ValueError(msg)
    for name, value in (("prediction_id", pid), ("message_id", mid)):
        if value is not None and (not isinstance(value, str | int) or len(str(value)) > 200):
            msg = f"{name!r} is {value!r}; expected a string of at most 200 characters"
            raise ValueError(msg)
    return (
        None if pid is None else str(pid),
        row,
        data["label"],
        None if mid is None else str(mid),
    )
