"""The events a hook can subscribe to, read from where keel already records them.

| event | recorded as |
|---|---|
| `version_registered` | audit event `model.register` |
| `alias_moved` | audit events `alias.set`, `alias.rollback`, `alias.delete` (every move) |
| `promoted` | audit event `alias.set` of the `production` alias |
| `rolled_back` | audit event `alias.rollback` |
| `loop_decision` | audit event `loop.decision` (each act the loop takes) |
| `alert_fired` | a row of the `alerts` table |

One audit row can be two events (a move of production is `alias_moved` and `promoted`); each
has its own message id, `msg_<source>_<row id>_<event>`, the `webhook-id` of every attempt.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from keel.store import ConfigError, as_utc

EVENTS = (
    "version_registered",
    "alias_moved",
    "promoted",
    "rolled_back",
    "alert_fired",
    "loop_decision",
)
FORMATS = ("keel", "cloudevents")
CLOUDEVENTS_TYPE_PREFIX = "io.keel."


@dataclass(frozen=True, slots=True)
class HookEvent:
    """One event as hooks deliver it: its kind, its message id, when it happened and its data."""

    event: str
    message_id: str
    time: dt.datetime
    subject: str
    data: Mapping[str, Any] = field(default_factory=dict)

    def body(self, fmt: str) -> bytes:
        """The JSON body of a delivery: keel's `{"type", "timestamp", "data"}` (the payload
        shape Standard Webhooks recommends), or a CloudEvents 1.0 structured-mode envelope."""
        if fmt == "cloudevents":
            envelope = {
                "specversion": "1.0",
                "id": self.message_id,
                "source": f"/keel/{self.subject.replace(':', '/', 1)}",
                "type": CLOUDEVENTS_TYPE_PREFIX + self.event,
                "subject": self.subject,
                "time": self.time.isoformat(),
                "datacontenttype": "application/json",
                "data": dict(self.data),
            }
            return orjson.dumps(envelope, default=str)
        return orjson.dumps(
            {"type": self.event, "timestamp": self.time.isoformat(), "data": dict(self.data)},
            default=str,
        )


def content_type(fmt: str) -> str:
    """The Content-Type of a delivery in `fmt` (CloudEvents structured mode has its own)."""
    return "application/cloudevents+json" if fmt == "cloudevents" else "application/json"


def check_events(events: list[str]) -> list[str]:
    """The event names, checked: known, at least one, no repeats (order kept).

    Raises:
        ConfigError: an unknown name (the known ones are listed) or none at all.
    """
    if not events:
        msg = f"No events were given; expected one or more of {list(EVENTS)} (comma-separated)."
        raise ConfigError(msg)
    unknown = [e for e in events if e not in EVENTS]
    if unknown:
        msg = f"Unknown event(s) {unknown}; expected one or more of {list(EVENTS)}."
        raise ConfigError(msg)
    return list(dict.fromkeys(events))


def audit_events(row: Any) -> list[HookEvent]:
    """The hook events one audit row (a mapping) is (none for the actions hooks do not deliver)."""
    action = row["action"]
    details = dict(row.get("details") or {})
    subject = row["subject"]
    model = subject.partition(":")[2] if subject.startswith("model:") else None
    common = {
        "model": model,
        "actor": row["actor"],
        "reason": row.get("reason"),
        "audit_id": row["id"],
    }
    kinds: list[str] = []
    if action == "model.register":
        kinds.append("version_registered")
    elif action.startswith("alias."):
        kinds.append("alias_moved")
        if action == "alias.set" and details.get("alias") == "production":
            kinds.append("promoted")
        if action == "alias.rollback":
            kinds.append("rolled_back")
    elif action == "loop.decision":
        kinds.append("loop_decision")
    time = as_utc(row["time"])
    data = {**common, "action": action, **details}
    return [HookEvent(kind, f"msg_audit_{row['id']}_{kind}", time, subject, data) for kind in kinds]


def alert_event(row: Any) -> HookEvent:
    """The `alert_fired` event of one stored alert."""
    time = as_utc(row["time"])
    start = row.get("window_start")
    data = {
        "alert_id": row["id"],
        "model": row["model"],
        "rule": row["rule"],
        "severity": row["severity"],
        "message": row["message"],
        "window_start": as_utc(start).isoformat() if start else None,
        "trigger": bool(row["trigger"]),
        "evidence": dict(row.get("evidence") or {}),
    }
    return HookEvent("alert_fired", f"msg_alert_{row['id']}", time, f"model:{row['model']}", data)


def check_format(fmt: str) -> str:
    """A delivery format, checked.

    Raises:
        ConfigError: not one of `FORMATS`.
    """
    if fmt not in FORMATS:
        msg = f"Format {fmt!r} is not known; expected one of {list(FORMATS)}."
        raise ConfigError(msg)
    return fmt
