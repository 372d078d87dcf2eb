"""The audit log as the registry hands it out: typed, frozen events with real datetimes.

The metadata database keeps each event as a row (time, actor, action, subject, reason and a
JSON `details` column); the registry turns those rows into `AuditEvent`s, and the alias moves
among them into `AliasMove`s. JSON appears only at the edges: `to_json()` gives the shape the
command line's `--json` and the HTTP API have always printed (the time as ISO 8601 text).
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from keel._frozen import freeze, thaw
from keel.store import ConfigError, as_utc


def _refuse(cls: str, name: str, value: Any, expected: str) -> NoReturn:
    msg = f"{cls} field {name!r} is {value!r}; expected {expected}."
    raise ConfigError(msg)


def _is_version(value: Any) -> bool:
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 1)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One entry of the audit log: who or what changed what, when and why, with the numbers.

    Attributes:
        time: when it happened (timezone-aware, UTC).
        action: what happened, e.g. "model.register", "alias.set", "loop.retrain".
        subject: what it happened to, e.g. "model:fraud", "dataset:loans@3f2a".
        actor: who or what did it ("user", "cli", "loop", a token's name).
        reason: why, as the actor said it (None when none was given).
        details: the figures of the event as stored (a read-only JSON mapping).
        alias: the alias an alias move moved (None for other events).
        version: the model version the event names (None when it names none).
        from_version: where an alias move moved from (None: the alias was not set).
    """

    time: dt.datetime
    action: str
    subject: str
    actor: str
    reason: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    alias: str | None = None
    version: int | None = None
    from_version: int | None = None

    def __post_init__(self) -> None:
        kind = type(self).__name__
        if not isinstance(self.time, dt.datetime) or self.time.tzinfo is None:
            _refuse(kind, "time", self.time, "a timezone-aware datetime")
        for name in ("action", "subject", "actor"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                _refuse(kind, name, value, "non-empty text")
        if self.reason is not None and not isinstance(self.reason, str):
            _refuse(kind, "reason", self.reason, "text or None")
        if not isinstance(self.details, Mapping):
            _refuse(kind, "details", self.details, "a mapping of figures")
        if self.alias is not None and not isinstance(self.alias, str):
            _refuse(kind, "alias", self.alias, "an alias name or None")
        for name in ("version", "from_version"):
            if not _is_version(getattr(self, name)):
                _refuse(kind, name, getattr(self, name), "a version number from 1, or None")
        object.__setattr__(self, "time", as_utc(self.time))
        object.__setattr__(self, "details", freeze(self.details))

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AuditEvent:
        """The event of one stored audit row (as `Database.events()` returns it)."""
        details = dict(record.get("details") or {})
        return cls(
            time=record["time"],
            action=record["action"],
            subject=record["subject"],
            actor=record["actor"],
            reason=record.get("reason"),
            details=details,
            alias=details.get("alias") if isinstance(details.get("alias"), str) else None,
            version=_version_or_none(details.get("version")),
            from_version=_version_or_none(details.get("from_version")),
        )

    @property
    def weight(self) -> float | None:
        """The canary weight a move set (None for every other move or event)."""
        weight = self.details.get("weight")
        return float(weight) if isinstance(weight, int | float) else None

    def to_json(self) -> dict[str, Any]:
        """The JSON shape of the command line's `--json` and of the HTTP API."""
        return {
            "time": self.time.isoformat(),
            "action": self.action,
            "subject": self.subject,
            "alias": self.alias,
            "version": self.version,
            "from_version": self.from_version,
            "actor": self.actor,
            "reason": self.reason,
            "details": thaw(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuditEvent:
        """The event `to_json()` wrote."""
        if not isinstance(data, Mapping):
            _refuse(cls.__name__, "(the event)", data, "a JSON object")
        time: Any = data.get("time")
        if isinstance(time, str):
            with contextlib.suppress(ValueError):  # refused, text shown, when the event is built
                time = dt.datetime.fromisoformat(time)
        fields: dict[str, Any] = {k: data.get(k) for k in _JSON_FIELDS}
        return cls(**{**fields, "time": time, "details": data.get("details") or {}})


_JSON_FIELDS = ("action", "subject", "actor", "reason", "alias", "version", "from_version")


@dataclass(frozen=True, slots=True)
class AliasMove(AuditEvent):
    """An audit event that moved an alias: set, rolled back or deleted.

    `alias` is always given; `version` is where the alias points after the move (None after a
    delete) and `from_version` where it pointed before (None: it was not set).
    """

    def __post_init__(self) -> None:
        AuditEvent.__post_init__(self)
        if not self.action.startswith("alias."):
            _refuse("AliasMove", "action", self.action, "an alias action ('alias.set', ...)")
        if not isinstance(self.alias, str) or not self.alias:
            _refuse("AliasMove", "alias", self.alias, "the alias that moved")

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> AliasMove:
        event = AuditEvent.from_record(record)
        return cls(**{name: getattr(event, name) for name in AuditEvent.__dataclass_fields__})


def _version_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None
