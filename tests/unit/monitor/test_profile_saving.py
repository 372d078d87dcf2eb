"""Saving window profiles while the database is locked: the save fails fast (the database's
timeouts), no changed window is dropped, and the next save after the lock writes them all."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
from collections.abc import Iterator

import polars as pl
import pytest
import sqlalchemy as sa

from keel.monitor.logfiles import PREDICTION_SCHEMA, LogBatch, Refused
from keel.monitor.profiler import Profiler
from keel.monitor.profiles import ProfileSpec, read_windows
from keel.store import Database

REFERENCE = {
    "rows": 100,
    "columns": {"amount": {"kind": "numeric", "edges": [0.0, 10.0, 20.0], "counts": [50, 50]}},
    "output": {"kind": "numeric", "edges": [0.0, 0.5, 1.0], "counts": [80, 20]},
}
SPEC = ProfileSpec(("amount",), frozenset(), REFERENCE, "classification", ("0", "1"))
HOUR = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def batch(n: int, at: dt.datetime = HOUR, amount: float = 5.0) -> LogBatch:
    return LogBatch(pl.DataFrame(
        {
            "prediction_id": [f"id{i}" for i in range(n)], "time": [at] * n, "model": ["m"] * n,
            "version": [1] * n, "role": ["production"] * n, "segment": [None] * n,
            "features": [f'{{"amount": {amount}}}'] * n, "prediction": ["1"] * n,
            "probabilities": [[0.3, 0.7]] * n, "latency_ms": [1.0] * n,
        },
        schema=PREDICTION_SCHEMA,
    ))  # fmt: skip


@contextlib.contextmanager
def locked(db: Database) -> Iterator[None]:
    """Another connection holds the profiles' table (PostgreSQL) or the whole file (SQLite)."""
    if db.dialect == "sqlite":
        conn = sqlite3.connect(db.engine.url.database or "", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    holder = sa.create_engine(db.url)
    with holder.connect() as conn:
        conn.execute(sa.text("BEGIN"))
        conn.execute(sa.text("LOCK TABLE window_profiles IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            conn.execute(sa.text("ROLLBACK"))
    holder.dispose()


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url, statement_timeout_s=0.3)
    yield database
    database.dispose()


def profiler_for(db: Database) -> Profiler:
    profiler = Profiler(db, window_s=3600)
    profiler.register("m", 1, SPEC)
    return profiler


def test_a_save_against_a_locked_database_keeps_every_window(db: Database) -> None:
    """The save fails within the statement timeout; the windows stay unsaved and counted;
    after the lock, one save writes the totals of everything observed."""
    profiler = profiler_for(db)
    profiler.observe(batch(10))
    profiler.observe(batch(5, HOUR + dt.timedelta(hours=1)))
    assert profiler.unsaved_windows == 2

    with locked(db):
        assert profiler.flush() == 0
        assert profiler.failures == 1
        assert profiler.unsaved_windows == 2
        assert profiler.last_error is not None
        profiler.observe(batch(7))  # traffic goes on meanwhile
        assert profiler.flush() == 0
        assert profiler.failures == 2

    assert profiler.flush() == 2
    assert profiler.unsaved_windows == 0
    assert profiler.last_error is None
    windows = read_windows(db, "m")
    assert [w.rows for w in windows] == [17, 5]


def test_unsaved_windows_are_never_evicted(db: Database) -> None:
    """Old windows are forgotten after a save only when the database has them."""
    profiler = profiler_for(db)
    profiler.observe(batch(3))
    with locked(db):
        profiler.flush()
    later = HOUR + dt.timedelta(hours=5)  # makes the first window old enough to evict
    profiler.observe(batch(2, later))
    with locked(db):
        profiler.flush()
    assert profiler.flush() == 2
    assert [w.rows for w in read_windows(db, "m")] == [3, 2]


def test_the_saver_thread_retries_until_the_database_is_back(db: Database) -> None:
    """save_now reports a failed save while locked (bounded, never hangs) and a good one
    after; the windows observed during the lock are all saved."""
    profiler = profiler_for(db)
    profiler.start(0.05, retry_max_s=0.2)
    try:
        profiler.observe(batch(4))
        with locked(db):
            assert profiler.save_now(timeout_s=30) is False
            assert profiler.unsaved_windows == 1
            profiler.observe(batch(6))
        assert profiler.save_now(timeout_s=30) is True
        assert profiler.unsaved_windows == 0
    finally:
        profiler.stop(timeout_s=30)
    assert [w.rows for w in read_windows(db, "m")] == [10]
    assert profiler.failures >= 1


def test_refused_inputs_reach_their_window_through_the_log_batch(db: Database) -> None:
    """The inputs refused during a batch are counted in the window of their time, beside the
    batch's answered rows; an unregistered version's are ignored."""
    profiler = profiler_for(db)
    answered = batch(4)
    refused = (
        Refused("m", 1, "production", HOUR + dt.timedelta(minutes=5), 3),
        Refused("m", 1, "production", HOUR + dt.timedelta(hours=1), 2),
        Refused("other", 1, "production", HOUR, 9),
    )

    profiler.observe(LogBatch(answered.records, refused))
    profiler.flush()

    windows = read_windows(db, "m")
    assert [(w.start, w.rows, w.profile.errors) for w in windows] == [
        (HOUR, 4, 3),
        (HOUR + dt.timedelta(hours=1), 0, 2),
    ]
