"""The outbox's dispatcher: events past each hook's cursor become deliveries; due deliveries
are signed and sent, retried with exponential backoff, and every attempt is recorded.

Where it runs: `keel hooks run` (a process of its own), and as a background thread of
`keel serve` and `keel loop` (the two long-running processes an installation already has), so
hooks deliver with no extra process to operate. Any number of them may run: each pass holds
the lease `hooks:dispatch` in the metadata database, so one process at a time makes and sends
deliveries, and N replicas deliver each message once. A process that dies mid-send leaves the
delivery pending; the next holder sends it again with the same `webhook-id` (at least once:
receivers drop repeats by that id, as Standard Webhooks asks).

Nothing here runs on a request path: the server's thread only reads the database and talks to
receivers with bounded timeouts.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from keel.hooks.events import HookEvent, alert_event, audit_events, content_type
from keel.hooks.hookstore import Delivery, delivery_of
from keel.loop import Lease
from keel.store import Database, signed_headers, tables

log = logging.getLogger("keel.hooks")

LEASE_NAME = "hooks:dispatch"
RETRY_STATUSES = frozenset({408, 409, 425, 429})
"""4xx answers that say "try again" (with every 5xx); any other 4xx fails the delivery."""


@dataclass(frozen=True, slots=True)
class DispatchPass:
    """What one pass did: deliveries made from new events, attempts, and how they ended."""

    held: bool
    made: int = 0
    attempted: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "held": self.held,
            "made": self.made,
            "attempted": self.attempted,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "failed": self.failed,
        }


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended: delivered, to be retried at `next_at`, or failed for good."""

    status: str
    status_code: int | None
    error: str | None
    next_at: dt.datetime | None


class Dispatcher:
    """Makes and sends the deliveries of one metadata database.

    Args:
        db: the metadata database.
        max_attempts: attempts per delivery before it is marked failed.
        base_backoff_s: wait after the first failed attempt; doubled after each next one.
        max_backoff_s: the longest wait between attempts (a `Retry-After` is capped by it too).
        timeout_s: longest one attempt may take (connect, send, answer).
        batch: most events read per hook and deliveries sent per pass.
        lease_ttl_s: how long the dispatch lease lasts without renewal.
    """

    def __init__(
        self,
        db: Database,
        *,
        max_attempts: int = 8,
        base_backoff_s: float = 5.0,
        max_backoff_s: float = 3600.0,
        timeout_s: float = 10.0,
        batch: int = 100,
        lease_ttl_s: float = 60.0,
    ) -> None:
        self.db = db
        self.max_attempts = max_attempts
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self.batch = batch
        self.lease = Lease(db, LEASE_NAME, ttl_s=lease_ttl_s)

    # ---- one pass -------------------------------------------------------------------------

    def run_once(self, now: dt.datetime | None = None) -> DispatchPass:
        """Make deliveries from new events, then send the due ones; a no-op (held=False)
        while another process holds the lease."""
        if not self._anything_to_do():  # read-only: an idle installation writes nothing
            return DispatchPass(held=False)
        if not self.lease.acquire():
            return DispatchPass(held=False)
        try:
            return self._pass(now or dt.datetime.now(dt.UTC))
        finally:  # the next pass may be another replica's: passes are serialized, not pinned
            self.lease.release()

    def _pass(self, now: dt.datetime) -> DispatchPass:
        made = self.collect(now)
        counts = {"delivered": 0, "pending": 0, "failed": 0}
        attempted = 0
        for delivery, body, secret, fmt in self._due(now):
            if not self.lease.acquire():  # renewed before each send; lost: stop here
                break
            outcome = self.send(delivery, body, secret, fmt, now)
            self._record(delivery, outcome, now)
            attempted += 1
            counts[outcome.status] += 1
        return DispatchPass(
            True, made, attempted, counts["delivered"], counts["pending"], counts["failed"]
        )

    def _anything_to_do(self) -> bool:
        h, d = tables.hooks, tables.hook_deliveries
        with self.db.engine.connect() as conn:
            hook = conn.execute(sa.select(h.c.id).limit(1)).first()
            pending = conn.execute(
                sa.select(d.c.id).where(d.c.status == "pending").limit(1)
            ).first()
        return hook is not None or pending is not None

    def collect(self, now: dt.datetime) -> int:
        """For each hook, the events past its cursors become deliveries; the cursors move in
        the same transaction, so an event is turned into a delivery once."""
        made = 0
        h, d = tables.hooks, tables.hook_deliveries
        with self.db.engine.connect() as conn:
            hooks = conn.execute(sa.select(h).order_by(h.c.id)).mappings().all()
        for hook in hooks:
            with self.db.begin() as conn:
                events, audit_to, alert_to = self._new_events(conn, hook)
                wanted = set(hook["events"])
                for event in events:
                    if event.event not in wanted:
                        continue
                    conn.execute(d.insert().values(**self._row(hook, event, now)))
                    made += 1
                conn.execute(
                    h.update()
                    .where(h.c.id == hook["id"])
                    .values(audit_cursor=audit_to, alert_cursor=alert_to)
                )
        return made

    def _new_events(self, conn: sa.Connection, hook: Any) -> tuple[list[HookEvent], int, int]:
        a, al = tables.audit_events, tables.alerts
        audit_rows = (
            conn.execute(
                sa.select(a).where(a.c.id > hook["audit_cursor"]).order_by(a.c.id).limit(self.batch)
            )
            .mappings()
            .all()
        )
        alert_rows = (
            conn.execute(
                sa.select(al)
                .where(al.c.id > hook["alert_cursor"])
                .order_by(al.c.id)
                .limit(self.batch)
            )
            .mappings()
            .all()
        )
        events = [e for r in audit_rows for e in audit_events(r)]
        events += [alert_event(r) for r in alert_rows]
        events.sort(key=lambda e: e.time)
        audit_to = int(audit_rows[-1]["id"]) if audit_rows else int(hook["audit_cursor"])
        alert_to = int(alert_rows[-1]["id"]) if alert_rows else int(hook["alert_cursor"])
        return events, audit_to, alert_to

    @staticmethod
    def _row(hook: Any, event: HookEvent, now: dt.datetime) -> dict[str, Any]:
        return {
            "hook_id": hook["id"],
            "message_id": event.message_id,
            "event": event.event,
            "url": hook["url"],
            "body": event.body(hook["format"]).decode(),
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }

    def _due(self, now: dt.datetime) -> list[tuple[Delivery, bytes, str, str]]:
        d, h = tables.hook_deliveries, tables.hooks
        query = (
            sa.select(d, h.c.secret, h.c.format)
            .join(h, h.c.id == d.c.hook_id)
            .where(d.c.status == "pending", d.c.next_attempt_at <= now)
            .order_by(d.c.next_attempt_at, d.c.id)
            .limit(self.batch)
        )
        with self.db.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [(delivery_of(r), str(r["body"]).encode(), r["secret"], r["format"]) for r in rows]

    # ---- one attempt ----------------------------------------------------------------------

    def send(
        self, delivery: Delivery, body: bytes, secret: str, fmt: str, now: dt.datetime
    ) -> Outcome:
        """One signed attempt; what came of it (never raises for the receiver's faults)."""
        import httpx

        headers = signed_headers(secret, delivery.message_id, int(time.time()), body)
        headers["content-type"] = content_type(fmt)
        headers["user-agent"] = "keel-hooks"
        attempt = delivery.attempts + 1
        try:
            with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
                answer = client.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._retry(attempt, None, f"{type(exc).__name__}: {exc}"[:500], None, now)
        if 200 <= answer.status_code < 300:
            return Outcome("delivered", answer.status_code, None, None)
        error = f"HTTP {answer.status_code}"
        if answer.status_code >= 500 or answer.status_code in RETRY_STATUSES:
            after = retry_after_s(answer.headers.get("retry-after"), time.time())
            return self._retry(attempt, answer.status_code, error, after, now)
        return Outcome("failed", answer.status_code, f"{error}: the receiver refused it", None)

    def _retry(
        self,
        attempt: int,
        code: int | None,
        error: str,
        retry_after: float | None,
        now: dt.datetime,
    ) -> Outcome:
        if attempt >= self.max_attempts:
            return Outcome("failed", code, f"{error} (gave up after {attempt} attempts)", None)
        return Outcome(
            "pending", code, error, now + dt.timedelta(seconds=self.backoff_s(attempt, retry_after))
        )

    def backoff_s(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt number `attempt` (from 1): `base * 2**(attempt-1)`,
        or the receiver's `Retry-After` when it gave one; both capped at `max_backoff_s`."""
        wait = retry_after if retry_after is not None else self.base_backoff_s * 2 ** (attempt - 1)
        return min(max(wait, 0.0), self.max_backoff_s)

    def _record(self, delivery: Delivery, outcome: Outcome, now: dt.datetime) -> None:
        d = tables.hook_deliveries
        with self.db.begin() as conn:
            conn.execute(
                d.update()
                .where(d.c.id == delivery.id)
                .values(
                    status=outcome.status,
                    attempts=delivery.attempts + 1,
                    last_status_code=outcome.status_code,
                    last_error=outcome.error,
                    next_attempt_at=outcome.next_at,
                    delivered_at=now if outcome.status == "delivered" else None,
                )
            )
        if outcome.status == "failed":
            log.warning(
                "hook %d: delivery %s failed: %s",
                delivery.hook_id,
                delivery.message_id,
                outcome.error,
            )

    # ---- running ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, interval_s: float = 2.0) -> None:
        """Pass after pass until `stop` is set; a pass that fails (the database away) is
        logged and the next one tries again."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep delivering after a database hiccup; the log says why
                log.exception("hooks: a dispatch pass failed; trying again in %.1f s", interval_s)
            stop.wait(interval_s)

    def start(self, *, interval_s: float = 2.0) -> tuple[threading.Thread, threading.Event]:
        """Run in a daemon thread; set the returned event to stop it."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self.run, args=(stop,), kwargs={"interval_s": interval_s},
            name="keel-hooks", daemon=True,
        )  # fmt: skip
        thread.start()
        return thread, stop


def retry_after_s(value: str | None, now_s: float) -> float | None:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - now_s)
