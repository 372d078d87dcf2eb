"""A real `keel serve` whose metadata database stalls or locks while predictions go on.

PostgreSQL is reached through a TCP proxy on loopback that black-holes it (it accepts and
acknowledges bytes and forwards nothing, as a stalled network does). Through the stall: every
answered prediction is in Parquet within two flush intervals, the server keeps answering,
`/healthz` stays 200, `/readyz` says degraded and why, `/v1/admin/flush` writes Parquet without
the database; after it, window profiles are saved with every row counted. SQLite gets the same
with another connection holding an exclusive lock on its file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from serving_fixtures import ADMIN, ROW, Server, start_server, stop_server
from tcp_proxy import StallingProxy

from keel.data import DatasetStore, infer_contract
from keel.demo.simulate import TransactionSimulator
from keel.monitor import read_windows
from keel.monitor.logfiles import read_log
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database
from keel.train import spec_from_dict, train

pytestmark = [pytest.mark.integration, pytest.mark.slow]
POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL")
FLUSH_S = 0.5


def build_registry(home: Path, database_url: str | None = None) -> None:
    """One small logistic regression 'fraud' in production (the serving tests' registry
    trains two bigger models; these tests only need something to answer)."""
    db = Database(database_url or f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=300).generate(days=5, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )  # fmt: skip
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}
    train([spec_from_dict(spec)], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


def predict(client: httpx.Client, n: int) -> list[str]:
    """`n` one-row predictions, one after another; every one must be answered."""
    ids: list[str] = []
    for i in range(n):
        r = client.post("/v1/models/fraud/predict", json={"rows": [{**ROW, "amount": 1.0 + i}]})
        assert r.status_code == 200, r.text
        ids.extend(r.json()["prediction_ids"])
    return ids


def logged(home: Path) -> set[str]:
    frame = read_log(str(home / "artifacts"), "predictions", "fraud", columns=["prediction_id"])
    return set(frame.get_column("prediction_id"))


def eventually(check: Callable[[], bool], *, tries: int, pause_s: float) -> bool:
    """Whether `check` holds within `tries` looks, `pause_s` apart."""
    for _ in range(tries):
        if check():
            return True
        time.sleep(pause_s)
    return check()


def metric(client: httpx.Client, name: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    msg = f"no metric {name}"
    raise AssertionError(msg)


def flush(admin: httpx.Client) -> dict[str, object]:
    r = admin.post("/v1/admin/flush")
    assert r.status_code == 200, r.text
    body: dict[str, object] = r.json()
    return body


def degraded(client: httpx.Client) -> dict[str, object] | None:
    r = client.get("/readyz")
    body: dict[str, object] = r.json()
    return body if body.get("status") == "degraded" else None


def check_the_outage(
    server: Server,
    home: Path,
    outage: contextlib.AbstractContextManager[None],
    *,
    admin_fails: bool = False,
) -> int:
    """Predictions before, during and after the outage; returns how many were answered.
    `admin_fails`: an admin call that reads the database gets an error, not a hang."""
    with server.client() as c, server.client(ADMIN) as admin:
        before = predict(c, 20)
        assert flush(admin)["profiles_saved"] is True
        with outage:
            during = predict(c, 40)
            answered = set(before + during)
            # within two flush intervals of the last answer (a bounded number of looks)
            assert eventually(lambda: answered <= logged(home), tries=8, pause_s=FLUSH_S / 4)
            assert c.get("/healthz").status_code == 200
            state: dict[str, object] | None = None

            def is_degraded() -> bool:
                nonlocal state
                state = degraded(c)
                return state is not None

            assert eventually(is_degraded, tries=200, pause_s=0.1)
            assert state is not None
            r = c.get("/readyz")
            assert r.status_code == 200  # still serving and logging: stays in rotation
            reasons = state["reasons"]
            assert isinstance(reasons, list)
            assert any("window profiles" in reason for reason in reasons), reasons
            # the flush endpoint writes Parquet without the database, and says what it could not
            more = predict(c, 5)
            body = flush(admin)
            assert set(more) <= logged(home)
            assert body["profiles_saved"] is False
            assert isinstance(body["profile_windows_unsaved"], int)
            assert body["profile_windows_unsaved"] >= 1
            assert metric(c, "keel_profile_windows_unsaved") >= 1
            # a save fails within the database's timeouts (connect, statement + 2 s)
            assert eventually(
                lambda: metric(c, "keel_profile_save_failures_total") >= 1, tries=100, pause_s=0.1
            )
            assert metric(c, "keel_log_backlog_rows") == 0
            if admin_fails:  # bounded by the database's timeouts, well inside httpx's 30 s
                r = admin.post("/v1/models/fraud/rollback", json={"reason": "during the stall"})
                assert r.status_code >= 500, r.text
        after = predict(c, 10)
        assert eventually(lambda: flush(admin)["profiles_saved"] is True, tries=60, pause_s=0.5)
        assert c.get("/readyz").json() == {"status": "ready"}
        assert metric(c, "keel_profile_windows_unsaved") == 0
        return len(before) + len(during) + len(more) + len(after)


@pytest.fixture
def postgres_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema: (direct URL, schema name)."""
    if not POSTGRES_URL:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    schema = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield POSTGRES_URL, schema
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _with_schema(url: str, schema: str, port: int | None = None) -> str:
    parsed = sa.engine.make_url(url)
    if port is not None:
        parsed = parsed.set(port=port)
    base = parsed.render_as_string(hide_password=False)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}"


@pytest.mark.postgres
def test_a_black_holed_postgresql_never_holds_the_prediction_log(
    tmp_path: Path, postgres_schema: tuple[str, str]
) -> None:
    """The database stalls behind the proxy while predictions go on; then comes back."""
    url, schema = postgres_schema
    home = tmp_path / "home"
    home.mkdir()
    direct = _with_schema(url, schema)
    build_registry(home, direct)
    with StallingProxy(sa.engine.make_url(url).port or 5432) as proxy:
        server = start_server(
            home,
            flush_interval_s=FLUSH_S,
            env={
                "KEEL_DATABASE_URL": _with_schema(url, schema, proxy.port),
                "KEEL_DB_STATEMENT_TIMEOUT_S": "1",
                "KEEL_DB_CONNECT_TIMEOUT_S": "2",
                "KEEL_PROFILE_RETRY_MAX_S": "1",
            },
        )
        try:
            answered = check_the_outage(server, home, _stalled(proxy), admin_fails=True)
        finally:
            stop_server(server)
    db = Database(direct)
    try:
        assert sum(w.rows for w in read_windows(db, "fraud")) == answered
    finally:
        db.dispose()


@contextlib.contextmanager
def _stalled(proxy: StallingProxy) -> Iterator[None]:
    proxy.stall()
    try:
        yield
    finally:
        proxy.resume()


@contextlib.contextmanager
def _sqlite_locked(path: Path) -> Iterator[None]:
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_locked_sqlite_database_never_holds_the_prediction_log(tmp_path: Path) -> None:
    """Another connection holds an exclusive lock on keel.db while predictions go on."""
    home = tmp_path / "home"
    home.mkdir()
    build_registry(home)
    server = start_server(
        home,
        flush_interval_s=FLUSH_S,
        env={"KEEL_DB_STATEMENT_TIMEOUT_S": "0.5", "KEEL_PROFILE_RETRY_MAX_S": "1"},
    )
    try:
        answered = check_the_outage(server, home, _sqlite_locked(home / "keel.db"))
    finally:
        stop_server(server)
    db = Database(f"sqlite:///{home / 'keel.db'}")
    try:
        assert sum(w.rows for w in read_windows(db, "fraud")) == answered
    finally:
        db.dispose()


def test_a_failing_artifact_store_spills_then_sheds_and_loses_nothing_answered(
    tmp_path: Path,
) -> None:
    """The store refuses writes: answered records go to the spill, then wait in memory; with
    both full, predict answers 503 with Retry-After and /readyz 503; once the store is back,
    every answered prediction is in the log and the server is ready again."""
    home = tmp_path / "home"
    home.mkdir()
    build_registry(home)
    blocker = home / "artifacts" / "predictions"
    blocker.write_text("the artifact store refuses the log's writes")
    server = start_server(
        home,
        flush_interval_s=FLUSH_S,
        env={"KEEL_LOG_BUFFER_ROWS": "5", "KEEL_LOG_SPILL_ROWS": "5"},
    )
    try:
        with server.client() as c:
            answered: list[str] = []
            refused: list[httpx.Response] = []
            ready = c.get("/readyz")
            for i in range(5000):  # until spill (5) and memory (5) are both full
                r = c.post("/v1/models/fraud/predict", json={"rows": [{**ROW, "amount": 1.0 + i}]})
                if r.status_code == 200:
                    answered.extend(r.json()["prediction_ids"])
                    continue
                refused.append(r)
                ready = c.get("/readyz")
                if ready.status_code == 503 and len(ready.json()["reasons"]) == 2:
                    break  # shedding, and the spill holds what the store refused
            assert ready.status_code == 503
            assert ready.json()["status"] == "degraded"
            reasons = ready.json()["reasons"]
            assert any(reason.startswith("shedding") for reason in reasons), reasons
            assert any(reason.startswith("prediction log backlogged") for reason in reasons)
            assert 5 < len(answered) <= 10  # a batch goes to the spill only if it fits whole
            assert {r.status_code for r in refused} == {503}
            assert {r.headers["retry-after"] for r in refused} == {"1"}
            assert refused[0].json()["error"].startswith("The prediction log is backlogged")
            assert metric(c, "keel_log_backlog_rows") == len(answered)
            assert 0 < metric(c, "keel_log_spilled_rows") <= 5
            assert metric(c, "keel_log_spill_files") >= 1
            shed = 'keel_requests_shed_total{model="fraud",reason="log"}'
            assert shed.split("{")[0] in c.get("/metrics").text

            blocker.unlink()  # the store is back
            assert eventually(lambda: set(answered) <= logged(home), tries=40, pause_s=FLUSH_S / 2)
            assert eventually(
                lambda: c.get("/readyz").json() == {"status": "ready"}, tries=40, pause_s=0.25
            )
            assert metric(c, "keel_log_backlog_rows") == 0
            assert predict(c, 1)
    finally:
        stop_server(server)
    assert not list((home / "spill" / "predictions").glob("part-*"))
