"""Monitoring judges each complete window once and keeps the verdict; what it keeps is what it
would compute, is judged again when the window's profiles change, and days merge their windows."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
import sqlalchemy as sa
from starlette.applications import Starlette

from keel.data import DatasetStore, infer_contract
from keel.monitor import Monitor
from keel.monitor.drift import DriftConfig, compare_profiles
from keel.monitor.profiles import ProfileSpec, merge, update_columns
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database, DriftSection, Settings, tables
from keel.train import report_of, spec_from_dict, train

pytestmark = pytest.mark.integration
START = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
HOURS = 48
FEATURES = [f"x{i}" for i in range(4)]


def _profile(spec: ProfileSpec, rng: np.random.Generator, shift: float) -> dict[str, Any]:
    xs = rng.normal(size=(200, len(FEATURES))) + shift
    score = 1 / (1 + np.exp(-xs.sum(axis=1)))
    p = spec.empty()
    update_columns(
        p,
        {f: xs[:, i] for i, f in enumerate(FEATURES)},
        score,
        pl.Series((score > 0.5).astype(int).astype(str)),
        np.full(200, 2.0),
    )
    return p


def _row(start: dt.datetime, profile: dict[str, Any], writer: str = "a") -> dict[str, Any]:
    return {
        "model": "m", "version": 1, "role": "production", "segment": "", "window_start": start,
        "writer": writer, "window_s": 3600, "rows": profile["rows"], "profile": profile,
        "updated_at": start + dt.timedelta(hours=1),
    }  # fmt: skip


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[tuple[Settings, ModelStore, ProfileSpec]]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1500, len(FEATURES)))
    frame = pl.DataFrame({f: x[:, i] for i, f in enumerate(FEATURES)}).with_columns(
        pl.Series("y", (x.sum(axis=1) + rng.normal(size=1500) > 0).astype(int))
    )
    db = Database(database_url)
    art = ArtifactStore(str(tmp_path / "artifacts"))
    datasets, models = DatasetStore(db, art, b"k"), ModelStore(db, art)
    ref = datasets.ingest(frame, infer_contract(frame, name="m", target="y"), "m").version.ref
    spec = spec_from_dict(
        {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression", "params": {}}
    )
    train([spec], ref, datasets=datasets, models=models, register="m")
    models.set_alias("m", "production", 1)
    pspec = ProfileSpec.from_evaluation(report_of(models.get("m@1")))
    rows = [
        _row(START + dt.timedelta(hours=h), _profile(pspec, rng, 0.4 if h >= 24 else 0.0))
        for h in range(HOURS)
    ]
    with db.begin() as conn:
        conn.execute(sa.insert(tables.window_profiles), rows)
    settings = Settings(home=tmp_path, database_url=database_url, secret_key="k", window_s=3600)
    yield settings, models, pspec
    db.dispose()


def _kept(models: ModelStore, resolution_s: int = 3600) -> dict[dt.datetime, Any]:
    t = tables.window_summaries
    with models.db.engine.connect() as conn:
        rows = conn.execute(
            sa.select(t.c.window_start, t.c.computed_at).where(t.c.resolution_s == resolution_s)
        ).all()
    return {r[0].replace(tzinfo=dt.UTC): r[1] for r in rows}


def _plain(windows: list[Any]) -> list[dict[str, Any]]:
    return [w.to_json() for w in windows]


def test_kept_verdicts_are_the_computed_ones(world: Any) -> None:
    settings, models, _ = world
    now = START + dt.timedelta(hours=HOURS - 1, minutes=30)  # the last window is still open
    fresh = Monitor(settings.model_copy(update={"summaries": False}), models)
    cached = Monitor(settings, models)
    expected = _plain(fresh.windows("m", now=now))
    assert len(expected) == HOURS
    assert _kept(models) == {}
    assert _plain(cached.windows("m", now=now)) == expected  # judged and kept
    kept = _kept(models)
    assert len(kept) == HOURS - 1  # the open window is not kept
    assert START + dt.timedelta(hours=HOURS - 1) not in kept
    assert _plain(cached.windows("m", now=now)) == expected  # read back: the same
    assert _kept(models) == kept  # and nothing judged again
    drifted = [w for w in cached.windows("m", now=now) if w.drifted]
    assert {w.start for w in drifted} <= {START + dt.timedelta(hours=h) for h in range(24, HOURS)}
    assert len(drifted) >= 20  # the shift of 0.4 sd from hour 24 on is seen


def test_a_late_writer_has_its_window_judged_again(world: Any) -> None:
    settings, models, pspec = world
    now = START + dt.timedelta(days=3)
    monitor = Monitor(settings, models)
    before = {w.start: w for w in monitor.windows("m", now=now)}
    kept = _kept(models)
    late = START + dt.timedelta(hours=5)
    extra = _profile(pspec, np.random.default_rng(9), 3.0)
    row = {**_row(late, extra, writer="b"), "updated_at": START + dt.timedelta(days=2)}
    with models.db.begin() as conn:
        conn.execute(sa.insert(tables.window_profiles), [row])
    after = {w.start: w for w in monitor.windows("m", now=now)}
    assert after[late].rows == before[late].rows + 200
    assert after[late].drifted
    assert not before[late].drifted
    changed = {k for k, v in _kept(models).items() if kept[k] != v}
    assert changed == {late}
    for start in before:
        if start != late:
            assert after[start].to_json() == before[start].to_json()


def test_a_day_is_its_windows_merged(world: Any) -> None:
    settings, models, _ = world
    now = START + dt.timedelta(days=3)
    monitor = Monitor(settings, models)
    days = monitor.history("m", now=now, days=30)
    assert [d.start for d in days] == [START, START + dt.timedelta(days=1)]
    assert [d.rows for d in days] == [24 * 200, 24 * 200]
    assert not days[0].drifted
    assert days[1].drifted
    t = tables.window_profiles
    with models.db.engine.connect() as conn:
        profiles = conn.execute(
            sa.select(t.c.profile).where(t.c.window_start >= START + dt.timedelta(days=1))
        ).scalars()
        merged = None
        for p in profiles:
            merged = p if merged is None else merge(merged, p)
    reference = models.get("m@1").evaluation["reference"]
    report = compare_profiles(reference, merged, DriftConfig())
    truth = {c.name: c for c in report.columns if c.name != "__output__"}
    for c in days[1].drift:
        assert c.statistic == pytest.approx(truth[c.name].statistic, rel=1e-5)
        assert c.drifted == truth[c.name].drifted
    assert len(_kept(models, 86400)) == 2
    assert monitor.history("m", now=now, days=30)[1].to_json() == days[1].to_json()


def test_other_drift_settings_judge_again(world: Any) -> None:
    settings, models, _ = world
    now = START + dt.timedelta(days=3)
    strict = Monitor(settings, models)
    lenient = Monitor(settings.model_copy(update={"drift": DriftSection(wasserstein=10.0)}), models)
    assert any(w.drifted for w in strict.windows("m", now=now))
    assert not any(w.drifted for w in lenient.windows("m", now=now))
    assert any(w.drifted for w in strict.windows("m", now=now))


def test_windows_under_a_models_min_rows_say_too_few_rows(world: Any) -> None:
    """A per-model min_rows above the windows' 200 rows: every window says it was not judged,
    in JSON, on the report and on the dashboard page, and no drift alert fires."""
    from keel.dashboard.app import Dashboard
    from keel.data import DatasetStore
    from keel.render import monitor_report_html

    settings, models, _ = world
    now = START + dt.timedelta(days=3)
    strict = settings.model_copy(update={"drift_min_rows": {"m": 500}})
    monitor = Monitor(strict, models)

    status = monitor.overview("m", now=now)
    fired = monitor.check("m", now=now)
    data = status.to_json()
    report = monitor_report_html(status, [], window_s=3600)
    dashboard = Dashboard(strict, models, DatasetStore(models.db, models.artifacts, b"k"))
    page = asyncio.run(_get(Starlette(routes=dashboard.routes()), "/ui/models/m"))

    assert {w["judged"] for w in data["windows"]} == {False}
    assert {w["note"] for w in data["windows"]} == {"too few rows to judge (200 < 500)"}
    assert all(w["drifted"] == [] for w in data["windows"])
    assert [a.rule for a in fired if a.rule == "drift"] == []
    assert "48 with too few rows to judge" in report
    assert "too few rows to judge (200 &lt; 500)" in report
    assert "too few rows to judge (200 &lt; 500)" in page
    default = Monitor(settings, models).status("m", now=now)
    assert all(w.judged and w.note is None for w in default.windows)
    assert any(w.drifted for w in default.windows)


async def _get(app: Starlette, path: str) -> str:
    """A dashboard page's HTML, from the app in process (no tokens: the dashboard is open)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        r = await client.get(path)
        r.raise_for_status()
        return r.text
