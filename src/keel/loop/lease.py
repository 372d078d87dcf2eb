"""A lease in the metadata database: at most one holder per name until it expires."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from keel.store import ConflictError, Database, as_utc, tables


class Lease:
    """Who holds `name`, until when. Taking it is one conditional UPDATE, or one INSERT that
    the primary key refuses to a second taker: atomic on SQLite and PostgreSQL alike."""

    def __init__(self, db: Database, name: str, *, ttl_s: float, holder: str | None = None) -> None:
        self.db = db
        self.name = name
        self.ttl_s = ttl_s
        self.holder = holder or uuid.uuid4().hex

    def acquire(self) -> bool:
        """Take the lease (or renew it). Expiry is judged on the wall clock, never simulated
        time: a lease protects real processes."""
        t = tables.leases
        real_now = dt.datetime.now(dt.UTC)
        expires = real_now + dt.timedelta(seconds=self.ttl_s)
        try:
            with self.db.begin() as conn:
                taken = conn.execute(
                    t.update()
                    .where(
                        t.c.name == self.name,
                        sa.or_(t.c.holder == self.holder, t.c.expires_at < real_now),
                    )
                    .values(holder=self.holder, expires_at=expires)
                ).rowcount
                if taken:
                    return True
                exists = conn.execute(sa.select(t.c.holder).where(t.c.name == self.name)).first()
                if exists:
                    return False
                conn.execute(
                    t.insert().values(name=self.name, holder=self.holder, expires_at=expires)
                )
        except sa.exc.IntegrityError:  # another process inserted first
            return False
        return True

    def release(self) -> None:
        t = tables.leases
        with self.db.begin() as conn:
            conn.execute(t.delete().where(t.c.name == self.name, t.c.holder == self.holder))

    def holder_of(self) -> tuple[str, dt.datetime] | None:
        t = tables.leases
        with self.db.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.name == self.name)).mappings().first()
        return (row["holder"], as_utc(row["expires_at"])) if row else None

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lease for the block, or raise ConflictError naming the holder."""
        if not self.acquire():
            current = self.holder_of()
            msg = (
                f"Another loop holds the lease {self.name!r}"
                + (
                    f" (holder {current[0][:8]}, until {current[1]:%H:%M:%S} UTC)"
                    if current
                    else ""
                )
                + "; two loops never act on one model at once. Try again when it expires."
            )
            raise ConflictError(msg)
        try:
            yield
        finally:
            self.release()
