"""Records for a window the profiler already saved and dropped from memory (a replay, a
spilled batch moved late) are added to its saved row, never written over it; a failed add is
kept and added at the next save."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from test_profile_saving import HOUR, SPEC, batch, locked

from keel.monitor.profiler import Profiler
from keel.monitor.profiles import read_windows
from keel.store import Database


def test_late_records_add_to_a_saved_window_and_a_failed_add_is_kept(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}", statement_timeout_s=0.3)
    profiler = Profiler(db, window_s=3600)
    profiler.register("m", 1, SPEC)
    old = HOUR - dt.timedelta(days=2)
    try:
        profiler.observe(batch(7, old))
        profiler.observe(batch(5, HOUR))  # live traffic: the old window is now final
        assert profiler.flush() == 2  # saved, and the old window dropped from memory
        profiler.observe(batch(13, old))  # more for the old window, later
        assert profiler.flush() == 1
        profiler.observe(batch(4, old))
        with locked(db):
            assert profiler.flush() == 0  # failed: the delta is kept
        assert profiler.unsaved_windows == 1
        profiler.observe(batch(1, old))
        assert profiler.flush() == 1
        assert profiler.unsaved_windows == 0
        windows = read_windows(db, "m", version=1, since=old, until=old + dt.timedelta(hours=1))
    finally:
        db.dispose()
    assert [w.rows for w in windows] == [7 + 13 + 4 + 1]
    assert sum(windows[0].profile.columns["amount"].counts) == 25  # type: ignore[union-attr]
