"""Clocks: the real one, and one that tests and the demo move by hand."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The real clock, in UTC."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FakeClock:
    """A clock that only moves when told, so months can be replayed in seconds.

    >>> clock = FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    >>> clock.advance(seconds=90).isoformat()
    '2026-01-01T00:01:30+00:00'
    """

    def __init__(self, start: dt.datetime) -> None:
        if start.tzinfo is None:
            msg = f"FakeClock start {start.isoformat()!r} has no time zone; expected an aware datetime"
            raise ValueError(msg)
        self.start = start
        self._now = start

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, *, seconds: float = 0.0, days: float = 0.0) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds, days=days)
        return self._now
