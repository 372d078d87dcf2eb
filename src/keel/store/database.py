"""The metadata database: SQLAlchemy 2 engine, migrated to the newest schema on open."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from keel.store import tables
from keel.store.clock import Clock, SystemClock
from keel.store.errors import ConfigError

_MIGRATIONS = Path(__file__).parent / "migrations"


def _head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None  # the package always ships its migrations
    return head


class Database:
    """One metadata database (SQLite file by default, PostgreSQL by URL).

    Opening it brings the schema to the newest migration, so every process sees the same tables.

    Args:
        url: a SQLAlchemy URL.
        clock: where event times come from.
    """

    def __init__(self, url: str, *, clock: Clock | None = None) -> None:
        self.url = url
        self.clock: Clock = clock or SystemClock()
        self.engine = _make_engine(url)
        self.migrate()

    @property
    def dialect(self) -> str:
        return str(self.engine.dialect.name)

    def migrate(self) -> None:
        """Upgrade to the newest schema; a no-op when it is already there."""
        from alembic import command
        from alembic.config import Config

        with self.engine.begin() as conn:
            current = _current_revision(conn)
        if current == _head_revision():
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # two processes opening a fresh database at once must not both create tables
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(7414)"))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    def record_event(
        self,
        conn: Connection,
        *,
        actor: str,
        action: str,
        subject: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one event to the audit log, inside the caller's transaction."""
        conn.execute(
            tables.audit_events.insert().values(
                time=self.clock.now(),
                actor=actor,
                action=action,
                subject=subject,
                reason=reason,
                details=details or {},
            )
        )

    def events(
        self, subject: str | None = None, *, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """Audit events, oldest first: about exactly one subject, or whose subject starts with
        `prefix` (`"dataset:"`), or all.

        A subject is matched whole: `model:m` never sees the events of `model:m2` or `model:m_x`.
        A prefix is matched literally (`%` and `_` are not wildcards).
        """
        t = tables.audit_events
        query = sa.select(t).order_by(t.c.id)
        if subject:
            query = query.where(t.c.subject == subject)
        if prefix:
            query = query.where(t.c.subject.startswith(prefix, autoescape=True))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "time": as_utc(row["time"])} for row in rows]

    def dispose(self) -> None:
        self.engine.dispose()


def _current_revision(conn: Connection) -> str | None:
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _make_engine(url: str) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        msg = f"Database URL {url!r} is not a SQLAlchemy URL; expected e.g. 'sqlite:///keel.db' or 'postgresql+psycopg://user@host/db'."
        raise ConfigError(msg) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30}, json_deserializer=_json_loads)

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers go on while one writer commits; foreign keys are off by default.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True, json_deserializer=_json_loads)
    except ModuleNotFoundError as exc:
        msg = f"Database URL {url!r} needs a driver that is not installed ({exc.name}); install it with: pip install 'psycopg[binary]'"
        raise ConfigError(msg) from exc


def _json_loads(text: str | bytes) -> Any:
    # orjson reads the JSON columns (profiles, summaries) about 5x faster than the standard
    # library; documents written with NaN or Infinity (which only the standard library reads)
    # fall back to it
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def as_utc(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; keel stores UTC, so make that explicit."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
