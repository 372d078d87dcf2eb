"""The metadata database: SQLAlchemy 2 engine, migrated to the newest schema on open."""

from __future__ import annotations

import datetime as dt
import json
import time
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
from keel.store.settings import Settings

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

    Every call is bounded in time, so a slow, locked or unreachable database makes callers fail
    with an error that names the limit rather than wait forever: opening a PostgreSQL connection
    by `connect_timeout_s`; a statement by `statement_timeout_s` (PostgreSQL's
    `statement_timeout`, which also bounds waiting for a lock; SQLite's `busy_timeout`); and on
    PostgreSQL the client stops waiting for any answer two seconds after that, which is what
    stops a stalled network (where the server never hears the statement, so its own timeout
    cannot fire).

    Args:
        url: a SQLAlchemy URL.
        clock: where event times come from.
        connect_timeout_s: longest a PostgreSQL connection may take to open.
        statement_timeout_s: longest a statement may run or wait for a lock.
        pool_size: connections kept open (PostgreSQL; SQLite opens one per thread).
        max_overflow: connections opened beyond `pool_size` at a peak, closed when returned.
    """

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        connect_timeout_s: float = 5.0,
        statement_timeout_s: float = 10.0,
        pool_size: int = 5,
        max_overflow: int = 10,
    ) -> None:
        self.url = url
        self.clock: Clock = clock or SystemClock()
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_s = statement_timeout_s
        self.engine = _make_engine(
            url, connect_timeout_s, statement_timeout_s, pool=(pool_size, max_overflow)
        )
        self.migrate()

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock | None = None) -> Database:
        """The database the settings name, with their timeouts."""
        return cls(
            settings.resolved_database_url,
            clock=clock,
            connect_timeout_s=settings.db_connect_timeout_s,
            statement_timeout_s=settings.db_statement_timeout_s,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )

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


def _make_engine(
    url: str, connect_timeout_s: float, statement_timeout_s: float, *, pool: tuple[int, int]
) -> Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        msg = f"Database URL {url!r} is not a SQLAlchemy URL; expected e.g. 'sqlite:///keel.db' or 'postgresql+psycopg://user@host/db'."
        raise ConfigError(msg) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url, connect_args={"timeout": statement_timeout_s}, json_deserializer=_json_loads
        )
        busy_ms = max(1, round(statement_timeout_s * 1000))

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL lets readers go on while one writer commits; foreign keys are off by default;
            # busy_timeout: a writer waits this long for another's lock, then fails ("locked")
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if parsed.get_backend_name() != "postgresql" or parsed.get_driver_name() != "psycopg":
        try:
            return sa.create_engine(url, pool_pre_ping=True, json_deserializer=_json_loads)
        except ModuleNotFoundError as exc:
            msg = f"Database URL {url!r} needs a driver that is not installed ({exc.name}); install it with: pip install 'psycopg[binary]'"
            raise ConfigError(msg) from exc
    return _postgres_engine(url, connect_timeout_s, statement_timeout_s, pool)


def _postgres_engine(
    url: str, connect_timeout_s: float, statement_timeout_s: float, pool: tuple[int, int]
) -> Engine:
    try:
        import psycopg
    except ModuleNotFoundError as exc:
        msg = f"Database URL {url!r} needs a driver that is not installed ({exc.name}); install it with: pip install 'psycopg[binary]'"
        raise ConfigError(msg) from exc
    answer_s = statement_timeout_s + 2.0  # the server's own timeout fires first when it can

    class BoundedConnection(psycopg.Connection[Any]):
        """A psycopg connection that stops waiting for the server after `answer_s`: libpq
        waits on the socket forever, and a stalled network (or a proxy that accepts bytes and
        never forwards them) leaves the server's statement_timeout nothing to time."""

        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            t0 = time.monotonic()
            limit = answer_s if timeout is None else timeout
            try:
                return super().wait(gen, interval=interval, timeout=limit)
            except psycopg.OperationalError as exc:
                if time.monotonic() - t0 < limit:
                    raise
                # the connection is mid-protocol: close it, so the pool drops it
                self.pgconn.finish()
                msg = (
                    f"The metadata database did not answer within {limit:g} s "
                    f"(db_statement_timeout_s = {statement_timeout_s:g} s + 2 s); the connection "
                    "was closed. Check the database and the network to it."
                )
                raise psycopg.OperationalError(msg) from exc

    options = f"-c statement_timeout={max(1, round(statement_timeout_s * 1000))}"
    parsed = sa.engine.make_url(url)
    if "options" in parsed.query:  # e.g. a search_path: keep it, add the timeout
        options = f"{parsed.query['options']} {options}"
        parsed = parsed.difference_update_query(["options"])
    engine = sa.create_engine(
        parsed,
        pool_pre_ping=True,
        pool_timeout=answer_s,
        pool_size=pool[0],
        max_overflow=pool[1],
        json_deserializer=_json_loads,
        connect_args={"connect_timeout": max(1, round(connect_timeout_s)), "options": options},
    )

    @sa.event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        return BoundedConnection.connect(*cargs, **cparams)

    return engine


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
