"""One micro-batch of messages through keel's serving core: rows out of the messages, one
`KeelServer.predict` call per side of the canary split, scores and dead letters back in
message order.

The serving core does everything HTTP's predict does (contract checks, micro-batching into the
model, segment routing, the shadow's copy, the prediction log, window profiles, metrics); here
the only differences are the prediction ids, derived from the message ids
(`prediction_id_of`), and `on_error="skip"`, so one bad row refuses only itself and goes to
the dead letters with its reasons. The canary split is sticky by message id: each message
goes to the version `KeelServer.runtime(model, key=message id)` names, exactly as an HTTP
request with that `X-Request-Key`.

A message the broker delivers again (after a crash before its ack) whose predictions are
already in the log is answered from the log: its scores are written to the sink again, and
nothing is predicted or logged twice, so the log and the window profiles count it once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from keel.monitor import read_log
from keel.store import KeelError, OverloadedError
from keel.stream.brokers import Delivery
from keel.stream.messages import dead_letter, parse_body, prediction_id_of, score_json

if TYPE_CHECKING:
    from keel.serve import KeelServer

__all__ = ["Scored", "score_batch"]

log = logging.getLogger("keel.stream")


@dataclass
class Scored:
    """What one batch produced: score bodies and their prediction ids (in message order), and
    dead letters with their message ids."""

    scores: list[bytes] = field(default_factory=list)
    score_ids: list[str] = field(default_factory=list)
    dead: list[bytes] = field(default_factory=list)
    dead_ids: list[str] = field(default_factory=list)
    rows: int = 0
    from_log: int = 0  # redelivered messages answered from the log


@dataclass
class _Message:
    delivery: Delivery
    rows: list[dict[str, Any]]
    ids: list[str]
    answers: dict[int, bytes] = field(default_factory=dict)  # row -> score
    refused: list[dict[str, Any]] = field(default_factory=list)  # 422-style details
    failed: str | None = None
    body_error: dict[str, Any] | None = None  # not a row nor {"rows": [...]}


async def score_batch(
    server: KeelServer, model: str, stream: str, identity: str, batch: list[Delivery]
) -> Scored:
    """Score a batch (see the module); raises `OverloadedError` when the serving core sheds
    it (the caller waits and tries the same batch again: nothing was logged)."""
    out = Scored()
    messages: list[_Message] = []
    for d in batch:
        parsed = parse_body(d.body)
        ids = [prediction_id_of(identity, d.id, j) for j in range(len(parsed.rows))]
        messages.append(_Message(d, parsed.rows, ids, body_error=parsed.error))
    fresh = await _answer_from_log(server, model, [m for m in messages if m.rows], out)
    for group in _canary_groups(server, model, fresh):
        await _predict_group(server, model, group)
    for m in messages:
        _collect(m, stream, out)
    return out


def _canary_groups(
    server: KeelServer, model: str, messages: list[_Message]
) -> list[list[_Message]]:
    """Messages grouped by the version the traffic policy gives their id (at most one group a
    role: production, canary), each group in message order."""
    groups: dict[int, list[_Message]] = {}
    for m in messages:
        groups.setdefault(id(server.runtime(model, m.delivery.id)), []).append(m)
    return list(groups.values())


async def _predict_group(server: KeelServer, model: str, group: list[_Message]) -> None:
    rows: list[dict[str, Any]] = []
    ids: list[str] = []
    owners: list[tuple[_Message, int]] = []
    for m in group:
        for j, (row, pid) in enumerate(zip(m.rows, m.ids, strict=True)):
            if j not in m.answers:  # rows a redelivery found in the log are answered
                rows.append(row)
                ids.append(pid)
                owners.append((m, j))
    limit = server.settings.max_rows
    for start in range(0, len(rows), limit):
        part = slice(start, start + limit)
        try:
            answered = await server.predict(
                model, rows[part], key=group[0].delivery.id, ids=ids[part], on_error="skip"
            )
        except OverloadedError:
            raise
        except KeelError as exc:  # the model failed on these rows: they go to the dead letters
            for m, _ in owners[part]:
                m.failed = str(exc)
            continue
        runtime = answered.runtime
        classes = list(runtime.classes) if runtime.task == "classification" else None
        by_id = dict(zip(answered.ids, answered.predictions, strict=True))
        for (m, j), pid in zip(owners[part], ids[part], strict=True):
            p = by_id.get(pid)
            if p is not None:
                m.answers[j] = score_json(
                    message_id=m.delivery.id,
                    prediction_id=pid,
                    model=runtime.resolved.name,
                    version=p.version or runtime.resolved.version,
                    prediction=p.prediction,
                    probabilities=p.probabilities,
                    classes=classes,
                )
        for err in answered.refused:
            m, j = owners[start + err.row]
            m.refused.append({**err.to_dict(), "row": j})


def _collect(m: _Message, stream: str, out: Scored) -> None:
    """A message's scores (row order) and, when some rows were refused, its dead letter."""
    if m.body_error is not None:
        expected = m.body_error["expected"]
        reason = f"message {m.delivery.id}: the body is not a row or {{'rows': [...]}}: expected {expected}"
        out.dead.append(
            dead_letter(
                stream=stream,
                message_id=m.delivery.id,
                reason=reason,
                errors=[m.body_error],
                body=m.delivery.body,
            )
        )
        out.dead_ids.append(m.delivery.id)
        return
    for j in sorted(m.answers):
        out.scores.append(m.answers[j])
        out.score_ids.append(m.ids[j])
    out.rows += len(m.answers)
    if m.failed is not None and len(m.answers) < len(m.rows):
        errors = [
            {
                "row": None,
                "field": "model",
                "value": None,
                "rule": "model_failed",
                "expected": m.failed,
            }
        ]
        left = [r for j, r in enumerate(m.rows) if j not in m.answers]
        reason = f"message {m.delivery.id}: the model failed on its rows: {m.failed}"
        out.dead.append(
            dead_letter(
                stream=stream, message_id=m.delivery.id, reason=reason, errors=errors, rows=left
            )
        )
        out.dead_ids.append(m.delivery.id)
    elif m.refused:
        bad = sorted({e["row"] for e in m.refused})
        first = m.refused[0]
        reason = (
            f"message {m.delivery.id}: {len(bad)} of {len(m.rows)} rows do not fit the model's "
            f"contract: row {first['row']}: field {first['field']!r}; expected {first['expected']}"
        )
        out.dead.append(
            dead_letter(
                stream=stream,
                message_id=m.delivery.id,
                reason=reason,
                errors=m.refused,
                rows=[m.rows[j] for j in bad],
            )
        )
        out.dead_ids.append(m.delivery.id)


async def _answer_from_log(
    server: KeelServer, model: str, messages: list[_Message], out: Scored
) -> list[_Message]:
    """Fill the answers of redelivered messages whose predictions the log already holds; the
    messages left to predict."""
    again = [m for m in messages if m.delivery.redelivered]
    if not again:
        return messages
    wanted = [pid for m in again for pid in m.ids]
    # a message is logged after the broker took it: the log's days from then on are enough
    times = [m.delivery.sent_at for m in again]
    since = min(t for t in times if t is not None).date() if all(times) else None
    found = await asyncio.to_thread(
        _logged, server.settings.resolved_artifacts, model, wanted, since
    )
    fresh = []
    for m in messages:
        records = [found.get(pid) for pid in m.ids] if m.delivery.redelivered else []
        if not any(records):
            fresh.append(m)
            continue
        runtime = server.runtime(model, m.delivery.id)
        classes = list(runtime.classes) if runtime.task == "classification" else None
        for j, (pid, r) in enumerate(zip(m.ids, records, strict=True)):
            if r is None:  # a row refused the first time (never logged): checked again
                continue
            m.answers[j] = score_json(
                message_id=m.delivery.id,
                prediction_id=pid,
                model=model,
                version=r["version"],
                prediction=_typed(r["prediction"], classes),
                probabilities=r["probabilities"],
                classes=classes,
            )
        out.from_log += 1
        if len(m.answers) < len(m.rows):
            fresh.append(m)
    return fresh


def _logged(
    root: str, model: str, ids: list[str], since: dt.date | None
) -> dict[str, dict[str, Any]]:
    """The log's answering records (not the shadow's) of these prediction ids, from a day on
    (None: every day; the files' days are UTC, as `sent_at` is, less one day for safety)."""
    frame = read_log(
        root,
        "predictions",
        model,
        since - dt.timedelta(days=1) if since is not None else None,
        columns=["prediction_id", "role", "version", "prediction", "probabilities"],
    )
    hits = frame.filter(pl.col("prediction_id").is_in(ids) & (pl.col("role") != "shadow"))
    return {r["prediction_id"]: r for r in hits.iter_rows(named=True)}


def _typed(text: str, classes: list[Any] | None) -> Any:
    """A logged prediction (text) as the model answers it: its class, or a number."""
    if classes is not None:
        return next((c for c in classes if str(c) == text), text)
    try:
        return float(text)
    except ValueError:
        return text
