"""Monitoring's verdicts per complete window (and per day), kept in the database.

Judging one window means comparing every feature's profile with the reference (about 75 us a
column); a year of hourly windows and fifty features is 438,000 comparisons, half a minute.
Pages, reports and the loop read the same windows again and again, so each complete window's
verdict is stored once (`window_summaries`) with a fingerprint of what it was computed from:
the rows, writers and last update of its profiles, and the drift settings. A window whose
profiles changed after (a late writer) no longer matches and is judged again; windows still
open are never stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import sqlalchemy as sa

from keel.monitor.drift import ColumnDrift
from keel.store import Database, as_utc, tables

FORMAT = 2  # bump when what a summary holds changes: every stored one is judged again
_FIELDS = tuple(f.name for f in dataclasses.fields(ColumnDrift))

Key = tuple[int, dt.datetime]  # version, bucket start


@dataclasses.dataclass
class Source:
    """What the profiles of one bucket (a window, or a day of windows) add up to."""

    rows: int
    writers: int
    updated: dt.datetime
    window_s: int

    def fingerprint(self, config: Mapping[str, Any]) -> str:
        text = orjson.dumps(
            [FORMAT, dict(config), self.rows, self.writers, self.updated.isoformat()],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha1(text, usedforsecurity=False).hexdigest()


def bucket_of(start: dt.datetime, resolution_s: int) -> dt.datetime:
    ts = int(start.timestamp())
    return dt.datetime.fromtimestamp(ts - ts % resolution_s, dt.UTC)


def sources(
    db: Database,
    model: str,
    *,
    role: str,
    resolution_s: int,
    version: int | None = None,
    since: dt.datetime | None = None,
) -> dict[Key, Source]:
    """Per version and bucket, the rows, writers and last update of its profiles (no profile
    is read: one grouped query)."""
    t = tables.window_profiles
    query = (
        sa.select(
            t.c.version,
            t.c.window_start,
            sa.func.sum(t.c.rows),
            sa.func.count(),
            sa.func.max(t.c.updated_at),
            sa.func.max(t.c.window_s),
        )
        .where(t.c.model == model, t.c.role == role)
        .group_by(t.c.version, t.c.window_start)
    )
    query = _narrow(query, t, version, since)
    out: dict[Key, Source] = {}
    with db.engine.connect() as conn:
        for v, start, rows, writers, updated, window_s in conn.execute(query):
            start, updated = as_utc(start), as_utc(updated)
            key = (int(v), bucket_of(start, resolution_s) if resolution_s > window_s else start)
            s = out.get(key)
            if s is None:
                out[key] = Source(int(rows), int(writers), updated, max(resolution_s, window_s))
            else:
                s.rows += int(rows)
                s.writers += int(writers)
                s.updated = max(s.updated, updated)
    return out


def _narrow(query: Any, t: sa.Table, version: int | None, since: dt.datetime | None) -> Any:
    """One version's rows (when given), from a start on (when given)."""
    if version is not None:
        query = query.where(t.c.version == version)
    if since is not None:
        query = query.where(t.c.window_start >= since)
    return query


def pack(status: Mapping[str, Any]) -> dict[str, Any]:
    """A window status as stored: drift columns as rows of values (a third of the JSON)."""
    out = {k: v for k, v in status.items() if k not in ("start", "complete")}
    out["drift"] = [[c[f] for f in _FIELDS] for c in status["drift"]]
    out["output_drift"] = (
        None if status["output_drift"] is None else [status["output_drift"][f] for f in _FIELDS]
    )
    return out


def unpack(summary: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(summary)
    out["drift"] = [dict(zip(_FIELDS, row, strict=True)) for row in summary["drift"]]
    if summary["output_drift"] is not None:
        out["output_drift"] = dict(zip(_FIELDS, summary["output_drift"], strict=True))
    return out


def cached(
    db: Database,
    model: str,
    *,
    role: str,
    resolution_s: int,
    version: int | None = None,
    since: dt.datetime | None = None,
) -> dict[Key, tuple[str, dict[str, Any]]]:
    """Stored summaries: per version and bucket, the fingerprint and the packed summary."""
    t = tables.window_summaries
    query = sa.select(t.c.version, t.c.window_start, t.c.fingerprint, t.c.summary).where(
        t.c.model == model, t.c.role == role, t.c.resolution_s == resolution_s
    )
    query = _narrow(query, t, version, since)
    with db.engine.connect() as conn:
        return {
            (int(v), as_utc(start)): (fp, summary) for v, start, fp, summary in conn.execute(query)
        }


def store(
    db: Database,
    model: str,
    *,
    role: str,
    resolution_s: int,
    items: Iterable[tuple[Key, str, dict[str, Any]]],
) -> bool:
    """Replace the summaries of these buckets. A cache: a writer that loses a race to another
    (the loop and a page at once) leaves the other's, which is computed from the same data."""
    t = tables.window_summaries
    now = dt.datetime.now(dt.UTC)
    rows = [
        {
            "model": model,
            "version": version,
            "role": role,
            "resolution_s": resolution_s,
            "window_start": start,
            "fingerprint": fp,
            "summary": summary,
            "computed_at": now,
        }
        for (version, start), fp, summary in items
    ]
    if not rows:
        return True
    try:
        with db.begin() as conn:
            for r in rows:
                conn.execute(
                    t.delete().where(
                        t.c.model == model,
                        t.c.version == r["version"],
                        t.c.role == role,
                        t.c.resolution_s == resolution_s,
                        t.c.window_start == r["window_start"],
                    )
                )
            conn.execute(sa.insert(t), rows)
    except sa.exc.SQLAlchemyError:
        return False
    return True
