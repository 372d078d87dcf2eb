"""Alerts: de-duplication, storage and sinks (the rules that fire them: `keel.monitor.rules`).

A rule fires on a model's windows; the same rule does not fire again for the same window, nor
within its cool-down. Every alert is stored with its evidence (the numbers that made it fire)
and sent to the sinks: the log, a JSON-lines file, a webhook (a JSON body with a `text` field,
so a Slack incoming webhook takes it as it is).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa

from keel.store import Database, as_utc, tables

log = logging.getLogger("keel.alerts")


class HoldsBack(Protocol):
    """What the store needs of a rule: how long after one alert the same rule stays quiet."""

    @property
    def cooldown_s(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Alert:
    """A rule that fired, with its evidence (the numbers that made it fire). `time` and `id`
    are set once stored (`AlertStore.fire` returns the stored alert)."""

    model: str
    rule: str
    severity: str
    message: str
    window_start: dt.datetime | None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    trigger: bool = False
    """Whether the loop retrains when this fires."""
    time: dt.datetime | None = None
    id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "evidence": dict(self.evidence),
            "trigger": self.trigger,
            "time": self.time.isoformat() if self.time else None,
            "id": self.id,
        }


class AlertStore:
    """Stored alerts, de-duplication and cool-down, and the sinks."""

    def __init__(
        self,
        db: Database,
        *,
        jsonl: str | None = None,
        webhook: str | None = None,
    ) -> None:
        self.db = db
        self.jsonl = jsonl
        self.webhook = webhook

    def fire(self, alert: Alert, rule: HoldsBack | None, now: dt.datetime) -> Alert | None:
        """Store and send an alert unless it duplicates one (same rule and window) or falls in
        the rule's cool-down. Returns the stored alert (with its time and id), or None."""
        t = tables.alerts
        with self.db.begin() as conn:
            if self._held_back(conn, alert, rule, now):
                return None
            inserted = conn.execute(
                t.insert().values(
                    time=now,
                    model=alert.model,
                    rule=alert.rule,
                    severity=alert.severity,
                    message=alert.message,
                    window_start=alert.window_start,
                    evidence=dict(alert.evidence),
                    trigger=alert.trigger,
                )
            )
            key = inserted.inserted_primary_key
        stored = replace(alert, time=now, id=int(key[0]) if key else None)
        self._send(stored)
        return stored

    def would_fire(self, alert: Alert, rule: HoldsBack | None, now: dt.datetime) -> bool:
        """Whether `fire` would fire the alert now; stores and sends nothing (a dry run)."""
        with self.db.engine.connect() as conn:
            return not self._held_back(conn, alert, rule, now)

    def _held_back(
        self, conn: sa.Connection, alert: Alert, rule: HoldsBack | None, now: dt.datetime
    ) -> bool:
        """Whether an alert duplicates a stored one or falls in its rule's cool-down."""
        t = tables.alerts
        cooldown = rule.cooldown_s if rule else 0.0
        same = sa.and_(t.c.model == alert.model, t.c.rule == alert.rule)
        if alert.window_start is not None:
            dup = conn.execute(
                sa.select(t.c.id).where(same, t.c.window_start == alert.window_start)
            ).first()
            if dup:
                return True
        if cooldown > 0:
            recent = conn.execute(
                sa.select(t.c.id).where(same, t.c.time > now - dt.timedelta(seconds=cooldown))
            ).first()
            if recent:
                return True
        return False

    def _send(self, alert: Alert) -> None:
        log.warning("alert %s on %s: %s", alert.rule, alert.model, alert.message)
        body = alert.to_json()
        if self.jsonl:
            path = Path(self.jsonl)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as fh:
                fh.write(json.dumps(body, default=str) + "\n")
        if self.webhook:
            body["text"] = f"[keel] {alert.severity}: {alert.model} — {alert.message}"
            request = urllib.request.Request(
                self.webhook,
                data=json.dumps(body, default=str).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=5):
                    pass
            except OSError as exc:  # a sink that is down must not stop monitoring; it is stored
                log.error("alert webhook %s failed: %s", self.webhook, exc)

    def list(
        self,
        model: str | None = None,
        *,
        since: dt.datetime | None = None,
        open_only: bool = False,
        triggers_only: bool = False,
    ) -> list[Alert]:
        t = tables.alerts
        query = sa.select(t).order_by(t.c.id)
        if model:
            query = query.where(t.c.model == model)
        if since:
            query = query.where(t.c.time >= since)
        if open_only:
            query = query.where(t.c.handled_at.is_(None))
        if triggers_only:
            query = query.where(t.c.trigger.is_(True))
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Alert(
                model=r["model"],
                rule=r["rule"],
                severity=r["severity"],
                message=r["message"],
                window_start=as_utc(r["window_start"]) if r["window_start"] else None,
                evidence=dict(r["evidence"]),
                trigger=bool(r["trigger"]),
                time=as_utc(r["time"]),
                id=r["id"],
            )
            for r in rows
        ]

    def handle(self, ids: Sequence[int], now: dt.datetime) -> None:
        """Mark alerts as handled (the loop acted on them)."""
        if not ids:
            return
        t = tables.alerts
        with self.db.begin() as conn:
            conn.execute(t.update().where(t.c.id.in_(list(ids))).values(handled_at=now))
