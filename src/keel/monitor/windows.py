"""Judging windows: one window's (or one day's) profiles against its version's reference, and
the production windows of a model over a period, judged once and kept when complete.

Complete windows are judged once and kept (`keel.monitor.summaries`); only windows that are
new, still open or changed since are read and judged here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np

from keel.monitor import summaries
from keel.monitor.drift import DriftConfig, compare_profiles, with_one_missing
from keel.monitor.performance import estimate_binary
from keel.monitor.profiles import LATENCY_BUCKETS_MS, Window, read_windows
from keel.monitor.status import WindowStatus, rounded
from keel.monitor.windowprofile import CategoryCounts, WindowProfile
from keel.registry import ModelStore
from keel.train import EMPTY_REFERENCE, ReferenceProfile, report_of

ROLE = "production"
"""Windows are judged for the production role (the traffic users got answers from)."""


def latency_quantile(counts: list[int] | tuple[int, ...], q: float) -> float | None:
    """The upper bound (ms) of the latency bucket that holds quantile `q` of a histogram."""
    total = sum(counts)
    if not total:
        return None
    cum = np.cumsum(counts)
    i = int(np.searchsorted(cum, q * total))
    bound = LATENCY_BUCKETS_MS[min(i, len(LATENCY_BUCKETS_MS) - 1)]
    return float(bound) if np.isfinite(bound) else float(LATENCY_BUCKETS_MS[-2])


def _unseen_share(profile: WindowProfile, reference: ReferenceProfile) -> float:
    """The share of a window's categorical values that the reference never saw."""
    unseen = total = 0
    for name, col in profile.columns.items():
        if not isinstance(col, CategoryCounts):
            continue
        known = with_one_missing(reference.categories(name))
        total += sum(col.counts.values())
        unseen += sum(v for k, v in col.counts.items() if k not in known)
    return unseen / total if total else 0.0


def judge_window(
    w: Window, reference: ReferenceProfile, now: dt.datetime, config: DriftConfig
) -> WindowStatus:
    """What one window's profile says against its version's reference profile."""
    report = compare_profiles(reference, w.profile, config)
    features = [rounded(c) for c in report.columns if c.name != "__output__"]
    output = next((c for c in report.columns if c.name == "__output__"), None)
    scores = w.profile.output.scores
    errors = w.profile.errors
    judged = w.rows >= config.min_rows
    return WindowStatus(
        start=w.start,
        version=w.version,
        rows=w.rows,
        drift=tuple(features),
        drifted=tuple(c.name for c in features if c.drifted),
        output_drift=rounded(output) if output else None,
        estimated=estimate_binary(scores) if scores else {},
        error_rate=errors / (w.rows + errors) if (w.rows + errors) else 0.0,
        latency_p99_ms=latency_quantile(list(w.profile.latency.counts), 0.99),
        latency_counts=tuple(w.profile.latency.counts),
        unseen_share=_unseen_share(w.profile, reference),
        complete=w.start + dt.timedelta(seconds=w.window_s) <= now,
        judged=judged,
        note=None if judged else f"too few rows to judge ({w.rows} < {config.min_rows})",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class WindowQuery:
    """Which production windows to judge: of one model (and version), from `since` on, at a
    resolution (a window, or a day of them merged), against drift thresholds."""

    name: str
    version: int | None
    since: dt.datetime | None
    now: dt.datetime
    resolution_s: int
    config: DriftConfig
    keep: bool
    """Whether complete windows' verdicts are kept and read back (`summaries` setting)."""


def judged_windows(models: ModelStore, q: WindowQuery) -> list[WindowStatus]:
    """The windows `q` asks for, oldest first: each one kept and unchanged read back, the
    others (new, open or changed) read, judged and, when complete, kept."""
    db = models.db
    sources = summaries.sources(
        db, q.name, role=ROLE, resolution_s=q.resolution_s, version=q.version, since=q.since
    )
    config = dataclasses.asdict(q.config)
    prints = {k: s.fingerprint(config) for k, s in sources.items()}
    kept = (
        summaries.cached(
            db, q.name, role=ROLE, resolution_s=q.resolution_s, version=q.version, since=q.since
        )
        if q.keep
        else {}
    )
    stale = sorted(k for k, fp in prints.items() if kept.get(k, ("",))[0] != fp)
    fresh: dict[summaries.Key, WindowStatus] = {}
    if stale:
        fresh = _judge_stale(models, q, stale, sources, prints, kept)
    out = []
    for key in sorted(prints):
        if key in fresh:
            out.append(fresh[key])
        elif key in kept:
            out.append(
                WindowStatus.from_json(summaries.unpack(kept[key][1]), start=key[1], complete=True)
            )
    return out


def _judge_stale(
    models: ModelStore,
    q: WindowQuery,
    stale: list[summaries.Key],
    sources: dict[summaries.Key, summaries.Source],
    prints: dict[summaries.Key, str],
    kept: dict[summaries.Key, tuple[str, dict[str, Any]]],
) -> dict[summaries.Key, WindowStatus]:
    """Read the profiles of the stale buckets, merge each bucket's, judge it, keep it."""
    res = q.resolution_s
    first = min(k[1] for k in stale)
    last = max(k[1] + dt.timedelta(seconds=sources[k].window_s) for k in stale)
    merged: dict[summaries.Key, Window] = {}
    for w in read_windows(models.db, q.name, version=q.version, role=ROLE, since=first, until=last):
        key = (w.version, summaries.bucket_of(w.start, res) if res > w.window_s else w.start)
        if key not in prints or kept.get(key, ("",))[0] == prints[key]:
            continue
        if key in merged:
            merged[key] = merged[key].merge(w)
        else:
            merged[key] = Window(
                key[1], sources[key].window_s, w.version, ROLE, "", w.rows, w.profile
            )
    references: dict[int, ReferenceProfile] = {}
    fresh: dict[summaries.Key, WindowStatus] = {}
    for key, w in merged.items():
        if w.version not in references:
            ev = report_of(models.get(f"{q.name}@{w.version}"))
            references[w.version] = ev.reference or EMPTY_REFERENCE
        fresh[key] = judge_window(w, references[w.version], q.now, q.config)
    if q.keep:
        summaries.store(
            models.db,
            q.name,
            role=ROLE,
            resolution_s=res,
            items=[
                (k, prints[k], summaries.pack(s.to_json())) for k, s in fresh.items() if s.complete
            ],
        )
    return fresh
