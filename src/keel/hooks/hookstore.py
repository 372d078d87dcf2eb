"""Hooks and their deliveries as stored in the metadata database (the outbox's tables).

A hook is a URL, the events it wants, a secret that signs each delivery and a format. A
delivery is one event for one hook: its body, fixed when it is made, and the state of sending
it (pending, delivered, failed), its attempts, the last answer and when it is tried next.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from keel.hooks.events import check_events, check_format
from keel.store import (
    ConfigError,
    Database,
    NotFoundError,
    as_utc,
    check_url,
    mask_secret,
    new_secret,
    secret_key,
    tables,
)

STATUSES = ("pending", "delivered", "failed")


def is_loopback(url: str) -> bool:
    """Whether a URL names this machine (said by `keel hooks add`, which still accepts it)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Hook:
    """One subscription. `secret` signs; `masked` is all that is ever shown of it."""

    id: int
    url: str
    events: tuple[str, ...]
    format: str
    created_at: dt.datetime
    secret: str

    @property
    def masked(self) -> str:
        return mask_secret(self.secret)

    def to_json(self) -> dict[str, Any]:
        """The hook as listings show it: the secret masked."""
        return {
            "id": self.id,
            "url": self.url,
            "events": list(self.events),
            "format": self.format,
            "secret": self.masked,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one hook, and how sending it went."""

    id: int
    hook_id: int
    message_id: str
    event: str
    url: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hook_id": self.hook_id,
            "message_id": self.message_id,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": self.created_at.isoformat(),
            "next_attempt_at": _iso(self.next_attempt_at),
            "delivered_at": _iso(self.delivered_at),
        }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    return as_utc(value) if value is not None else None


class HookStore:
    """The hooks and deliveries of one metadata database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(
        self, url: str, events: Sequence[str], *, secret: str | None = None, fmt: str = "keel"
    ) -> Hook:
        """Subscribe `url` to `events` from now on (earlier events are not delivered).

        Without `secret` a new one is made; the caller shows it once (`Hook.secret`).

        Raises:
            ConfigError: a bad URL, event name, secret or format.
        """
        check_url(url)
        names = check_events(list(events))
        check_format(fmt)
        secret = secret if secret is not None else new_secret()
        secret_key(secret)
        now = dt.datetime.now(dt.UTC)
        with self.db.begin() as conn:
            audit = conn.execute(sa.select(sa.func.max(tables.audit_events.c.id))).scalar()
            alerts = conn.execute(sa.select(sa.func.max(tables.alerts.c.id))).scalar()
            inserted = conn.execute(
                tables.hooks.insert().values(
                    url=url,
                    events=names,
                    secret=secret,
                    format=fmt,
                    created_at=now,
                    audit_cursor=int(audit or 0),
                    alert_cursor=int(alerts or 0),
                )
            )
            key = inserted.inserted_primary_key
        assert key is not None
        return Hook(int(key[0]), url, tuple(names), fmt, now, secret)

    def hooks(self) -> list[Hook]:
        """Every hook, oldest first."""
        t = tables.hooks
        with self.db.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.id)).mappings().all()
        return [_hook(r) for r in rows]

    def get(self, hook_id: int) -> Hook:
        """Raises NotFoundError naming the hooks there are."""
        hooks = self.hooks()
        for hook in hooks:
            if hook.id == hook_id:
                return hook
        known = [h.id for h in hooks]
        msg = f"No hook has the id {hook_id}; hooks now: {known or 'none'}. List them with: keel hooks list"
        raise NotFoundError(msg)

    def remove(self, hook_id: int) -> Hook:
        """Remove a hook; its pending deliveries are not sent (they stay as history, failed)."""
        hook = self.get(hook_id)
        with self.db.begin() as conn:
            conn.execute(tables.hooks.delete().where(tables.hooks.c.id == hook_id))
            d = tables.hook_deliveries
            conn.execute(
                d.update()
                .where(d.c.hook_id == hook_id, d.c.status == "pending")
                .values(status="failed", last_error="the hook was removed", next_attempt_at=None)
            )
        return hook

    def deliveries(
        self, *, hook_id: int | None = None, status: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        """Deliveries, newest first."""
        if status is not None and status not in STATUSES:
            msg = f"Status {status!r} is not known; expected one of {list(STATUSES)}."
            raise ConfigError(msg)
        d = tables.hook_deliveries
        query = sa.select(d).order_by(d.c.id.desc()).limit(limit)
        if hook_id is not None:
            query = query.where(d.c.hook_id == hook_id)
        if status is not None:
            query = query.where(d.c.status == status)
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [delivery_of(r) for r in rows]


def _hook(row: Any) -> Hook:
    return Hook(
        id=int(row["id"]),
        url=row["url"],
        events=tuple(row["events"]),
        format=row["format"],
        created_at=as_utc(row["created_at"]),
        secret=row["secret"],
    )


def delivery_of(row: Any) -> Delivery:
    """A delivery row as a `Delivery`."""
    return Delivery(
        id=int(row["id"]),
        hook_id=int(row["hook_id"]),
        message_id=row["message_id"],
        event=row["event"],
        url=row["url"],
        status=row["status"],
        attempts=int(row["attempts"]),
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=as_utc(row["created_at"]),
        next_attempt_at=_aware(row["next_attempt_at"]),
        delivered_at=_aware(row["delivered_at"]),
    )
