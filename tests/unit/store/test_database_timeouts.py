"""Every database call is bounded: SQLite's busy_timeout, PostgreSQL's statement_timeout
(which also bounds waiting for a lock), both taken from the settings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel.store import Database, Settings


def record(db: Database, action: str) -> None:
    with db.begin() as conn:
        db.record_event(conn, actor="test", action=action, subject="test")


def test_settings_carry_the_timeouts_to_the_database(tmp_path: Path) -> None:
    """Database.open uses db_connect_timeout_s and db_statement_timeout_s."""
    settings = Settings(home=tmp_path, db_statement_timeout_s=1.5, db_connect_timeout_s=3)
    db = Database.open(settings)
    try:
        assert (db.statement_timeout_s, db.connect_timeout_s) == (1.5, 3)
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1500
    finally:
        db.dispose()


def test_the_defaults_are_five_and_ten_seconds(tmp_path: Path) -> None:
    """Sensible defaults: connect 5 s, statement 10 s."""
    settings = Settings(home=tmp_path)
    assert (settings.db_connect_timeout_s, settings.db_statement_timeout_s) == (5.0, 10.0)


def test_a_write_to_a_locked_sqlite_file_fails_instead_of_waiting(tmp_path: Path) -> None:
    """Another connection holds an exclusive lock: a write gives up after busy_timeout with
    'database is locked', and works once the lock is gone."""
    db = Database(f"sqlite:///{tmp_path / 'keel.db'}", statement_timeout_s=0.2)
    holder = sqlite3.connect(tmp_path / "keel.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            record(db, "locked")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    record(db, "free")
    assert [e["action"] for e in db.events("test")] == ["free"]
    db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgres_sessions_carry_the_statement_timeout_and_keep_their_options(
    database_url: str,
) -> None:
    """statement_timeout is set on every session, next to options the URL already had (the
    tests' search_path)."""
    db = Database(database_url, statement_timeout_s=0.25)
    try:
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "250ms"
            assert conn.exec_driver_sql("SHOW search_path").scalar().startswith("keel_test_")
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                conn.exec_driver_sql("SELECT pg_sleep(5)")
    finally:
        db.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgres_table_lock_makes_a_write_fail_at_the_statement_timeout(
    database_url: str,
) -> None:
    """LOCK TABLE ... ACCESS EXCLUSIVE in another session: a write is cancelled at the
    statement timeout rather than waiting for the lock's holder."""
    db = Database(database_url, statement_timeout_s=0.3)
    holder = sa.create_engine(database_url)
    try:
        with holder.connect() as conn:
            conn.exec_driver_sql("BEGIN")
            conn.exec_driver_sql("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
                record(db, "locked")
            conn.exec_driver_sql("ROLLBACK")
        record(db, "free")
        assert [e["action"] for e in db.events("test")] == ["free"]
    finally:
        holder.dispose()
        db.dispose()
