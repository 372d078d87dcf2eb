"""Two `keel serve` replicas on loopback against one PostgreSQL and one S3 bucket (moto's
server): what one replica does, the other sees.

- an alias move made through replica A is followed by replica B within its poll interval
  (plus the new version's load), while clients hammer both and no request fails;
- a canary split by request key sends each key to the same version on both replicas;
- feedback sent to B joins a prediction logged by A;
- the window profiles of A and B merge, by addition, to the exact counts sent;
- the loop's lease lets one loop act per model, whichever host starts it;
- the dashboard of either replica reads the merged picture.

Each replica has its own home folder (spill, cache), as it would on its own host. Waits are
bounded by events (flush calls, answers seen), never by sleeping a guessed time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from s3_fixtures import make_bucket, moto_server, s3_env
from serving_fixtures import ADMIN, ROW, Server, build_registry, start_server, stop_server

from keel.loop import Lease
from keel.monitor import read_log, read_windows
from keel.store import Database, Settings, configure_object_storage

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL")
POLL_S = 0.2
VIEWER = "viewer-token"
BUCKET = "keel-replicas"


@dataclass
class Cluster:
    a: Server
    b: Server
    env: dict[str, str]
    database_url: str
    root: str

    def settings(self, home: Path) -> Settings:
        return Settings(
            home=home,
            database_url=self.database_url,
            artifacts=self.root,
            s3_endpoint_url=self.env["KEEL_S3_ENDPOINT_URL"],
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not POSTGRES_URL:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    schema = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    tmp = tmp_path_factory.mktemp("replicas")
    try:
        with moto_server() as endpoint:
            make_bucket(endpoint, BUCKET)
            root = f"s3://{BUCKET}/keel"
            env = {
                **s3_env(endpoint),
                "KEEL_DATABASE_URL": url,
                "KEEL_ARTIFACTS": root,
                "KEEL_SECRET_KEY": "replica-test-key",
                "KEEL_POLL_INTERVAL_S": str(POLL_S),
                "KEEL_DB_POOL_SIZE": "2",
                "KEEL_DB_MAX_OVERFLOW": "2",
                "KEEL_TOKENS": json.dumps(
                    {ADMIN: ["admin", "predict", "feedback", "view"], VIEWER: ["view"]}
                ),
            }
            configure_object_storage(root, endpoint)  # build_registry opens the root directly
            build_registry(tmp, database_url=url, artifacts=root, days=8, quick=True)
            a = start_server(tmp / "a", env=env)
            try:
                b = start_server(tmp / "b", env=env)
                try:
                    yield Cluster(a, b, env, url, root)
                finally:
                    stop_server(b)
            finally:
                stop_server(a)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _served(server: Server, role: str) -> int | None:
    with server.client() as c:
        fraud = next(m for m in c.get("/v1/models").json()["models"] if m["name"] == "fraud")
    version: int | None = fraud["versions"].get(role)
    return version


class Hammer:
    """Clients posting predictions to both replicas until stopped; records every answer."""

    def __init__(self, servers: list[Server], per_server: int = 4) -> None:
        self.servers = servers
        self.failures: list[str] = []
        self.seen: dict[str, list[tuple[float, int]]] = {s.url: [] for s in servers}
        self.sent: dict[str, list[tuple[float, int]]] = {s.url: [] for s in servers}
        self.answered = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(s,), daemon=True)
            for s in servers
            for _ in range(per_server)
        ]

    def _run(self, server: Server) -> None:
        with server.client() as c:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    r = c.post("/v1/models/fraud/predict", json={"rows": [ROW]})
                except httpx.TransportError as exc:
                    self.failures.append(f"{server.url}: {exc!r}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{server.url}: {r.status_code} {r.text[:200]}")
                    continue
                with self.answered:
                    version = int(r.json()["version"])
                    self.seen[server.url].append((time.monotonic(), version))
                    self.sent[server.url].append((sent, version))
                    self.answered.notify_all()

    def __enter__(self) -> Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def switched(self, server: Server, version: int, after: float, settle: int = 20) -> float:
        """Seconds from `after` to the answer of `version` from `server` after which it
        answers only `version` (at least `settle` answers so far); bounded wait. (A request
        sent before a move may still be answered by the old version a moment after it.)"""

        def done() -> bool:
            later = [v for t, v in self.seen[server.url] if t >= after]
            return len(later) >= settle and set(later[-settle:]) == {version}

        with self.answered:
            assert self.answered.wait_for(done, timeout=60), (
                f"{server.url} never settled on version {version}: answers since the move "
                f"{[v for t, v in self.seen[server.url] if t >= after][-50:]}; "
                f"failures {self.failures[:5]}"
            )
            later = [(t, v) for t, v in self.seen[server.url] if t >= after]
            stale = [i for i, (_, v) in enumerate(later) if v != version]
            first = later[stale[-1] + 1 if stale else 0][0]
        return first - after


def test_an_alias_move_is_followed_by_every_replica_without_a_failed_request(
    cluster: Cluster,
) -> None:
    with Hammer([cluster.a, cluster.b]) as hammer:
        hammer.switched(cluster.a, 1, 0.0)
        hammer.switched(cluster.b, 1, 0.0)
        with cluster.a.client(ADMIN) as admin:
            t0 = time.monotonic()
            r = admin.post(
                "/v1/models/fraud/aliases/production", json={"version": 2, "reason": "replicas"}
            )
            assert r.status_code == 200, r.text
            a_done = time.monotonic()
        b_s = hammer.switched(cluster.b, 2, t0)
        hammer.switched(cluster.a, 2, t0)
        with cluster.b.client(ADMIN) as admin:  # and back, through the other replica
            t1 = time.monotonic()
            r = admin.post("/v1/models/fraud/rollback", json={"reason": "back"})
            assert r.status_code == 200, r.text
            b_done = time.monotonic()
        back_a = hammer.switched(cluster.a, 1, t1)
        hammer.switched(cluster.b, 1, t1)
    assert hammer.failures == []
    # the replica that took the call serves the move before it answers the call: every
    # request sent after that answer gets the new version
    assert {v for t, v in hammer.sent[cluster.a.url] if a_done < t < t1} == {2}
    assert {v for t, v in hammer.sent[cluster.b.url] if t > b_done} == {1}
    # the other follows by polling: within the poll interval plus loading the version (its
    # first load from S3); bench/scale.py measures it on a quiet machine
    print(f"\nfollowed by the other replica in {b_s:.3f} s and {back_a:.3f} s")
    assert b_s < POLL_S + 30
    assert back_a < POLL_S + 30


def test_canary_stickiness_by_request_key_is_the_same_on_both_replicas(cluster: Cluster) -> None:
    with cluster.a.client(ADMIN) as admin:
        r = admin.post("/v1/models/fraud/aliases/canary", json={"version": 2, "weight": 0.5})
        assert r.status_code == 200, r.text
    _wait_for(lambda: _served(cluster.b, "canary") == 2, "B loads the canary")
    picked: dict[str, list[int]] = {}
    try:
        for server in (cluster.a, cluster.b):
            with server.client() as c:
                for i in range(30):
                    r = c.post(
                        "/v1/models/fraud/predict",
                        json={"rows": [ROW]},
                        headers={"X-Request-Key": f"customer-{i}"},
                    )
                    picked.setdefault(f"customer-{i}", []).append(int(r.json()["version"]))
    finally:
        with cluster.b.client(ADMIN) as admin:
            assert admin.delete("/v1/models/fraud/aliases/canary").status_code == 200
        _wait_for(lambda: _served(cluster.a, "canary") is None, "A drops the canary")
    assert all(a == b for a, b in picked.values()), picked
    assert {a for a, _ in picked.values()} == {1, 2}


def test_feedback_to_one_replica_joins_a_prediction_logged_by_the_other(
    cluster: Cluster,
) -> None:
    with cluster.a.client() as c:
        ids = c.post("/v1/models/fraud/predict", json={"rows": [ROW] * 12}).json()["prediction_ids"]
    with cluster.a.client(ADMIN) as admin:
        assert admin.post("/v1/admin/flush").json()["backlog"] == 0  # all in files now
    labels = [{"prediction_id": pid, "label": i % 2} for i, pid in enumerate(ids)]
    with cluster.b.client(ADMIN) as b:
        fed = b.post("/v1/models/fraud/feedback", json={"labels": labels})
        assert fed.status_code == 200, fed.text
        assert fed.json()["accepted"] == 12, fed.text
        assert b.post("/v1/admin/flush").json()["backlog"] == 0
    settings = cluster.settings(cluster.a.home)
    preds = read_log(settings.resolved_artifacts, "predictions", "fraud")
    feedback = read_log(settings.resolved_artifacts, "feedback", "fraud")
    joined = preds.join(feedback, on="prediction_id").filter(pl.col("prediction_id").is_in(ids))
    assert joined.height == 12
    assert sorted(joined["label"].cast(int).to_list()) == [0] * 6 + [1] * 6


def test_window_profiles_of_both_replicas_merge_to_the_exact_counts(cluster: Cluster) -> None:
    at = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(minute=30, second=0)
    start = at.replace(minute=0, microsecond=0)
    sent = {cluster.a.url: 0, cluster.b.url: 0}
    for k, server in enumerate((cluster.a, cluster.b, cluster.a, cluster.b, cluster.b)):
        with server.client() as c:
            n = 7 + 3 * k
            r = c.post(
                "/v1/models/fraud/predict",
                json={"rows": [ROW] * n},
                headers={"X-Keel-Time": at.isoformat()},
            )
            assert r.status_code == 200, r.text
            sent[server.url] += n
    for server in (cluster.a, cluster.b):
        with server.client(ADMIN) as admin:
            assert admin.post("/v1/admin/flush").json()["profiles_saved"] is True
    db = Database(cluster.database_url)
    try:
        windows = read_windows(
            db, "fraud", version=1, since=start, until=start + dt.timedelta(hours=1)
        )
        with db.engine.connect() as conn:
            writers = conn.execute(
                sa.text(
                    "SELECT writer, rows FROM window_profiles WHERE model = 'fraud' "
                    "AND window_start = :s AND role = 'production'"
                ),
                {"s": start},
            ).all()
    finally:
        db.dispose()
    assert [w.rows for w in windows] == [sum(sent.values())]
    assert len({w for w, _ in writers}) == 2  # one row per replica, merged by addition
    assert sorted(r for _, r in writers) == sorted(sent.values())


def test_the_loop_acts_once_whatever_the_number_of_hosts(cluster: Cluster) -> None:
    """A loop holding the model's lease (on one host) stops a second one (on another host)
    with a clear error; once it lets go, a loop runs. The servers never take it."""
    db = Database(cluster.database_url)
    lease = Lease(db, "loop:fraud", ttl_s=60)
    env = {**os.environ, **cluster.env, "KEEL_HOME": str(cluster.b.home)}
    cmd = [sys.executable, "-m", "keel", "loop", "fraud", "--once", "--dry-run", "--json"]
    try:
        assert lease.holder_of() is None  # two replicas ran a while: neither took it
        assert lease.acquire()
        blocked = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert blocked.returncode == 1
        assert "Another loop holds the lease 'loop:fraud'" in blocked.stderr
        assert not Lease(db, "loop:fraud", ttl_s=60).acquire()
        lease.release()
        # free again: a loop on PostgreSQL + the bucket looks once (dry run) and lets go
        from keel.data import DatasetStore
        from keel.loop import Loop
        from keel.registry import ModelStore

        settings = cluster.settings(cluster.b.home)
        models, datasets = ModelStore.open(settings), DatasetStore.open(settings)
        try:
            decisions = Loop(settings, models, datasets).step("fraud", dry_run=True)
        finally:
            models.db.dispose()
            datasets.db.dispose()
        assert decisions, "a dry run says what it would do, even 'nothing'"
        assert lease.holder_of() is None
    finally:
        lease.release()
        db.dispose()


def test_the_dashboard_of_either_replica_reads_the_merged_picture(cluster: Cluster) -> None:
    ids = {}
    for server in (cluster.a, cluster.b):
        with server.client() as c:
            ids[server.url] = c.post("/v1/models/fraud/predict", json={"rows": [ROW]}).json()[
                "prediction_ids"
            ][0]
        with server.client(ADMIN) as admin:
            admin.post("/v1/admin/flush")
    for server, other in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
        with server.client(VIEWER) as viewer:
            r = viewer.get(f"/ui/api/models/fraud/predictions/{ids[other.url]}")
            assert r.status_code == 200, r.text
            assert r.json()["prediction_id"] == ids[other.url]
            page = viewer.get("/ui/models/fraud")
            assert page.status_code == 200


def _wait_for(check: object, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(POLL_S / 4)
    pytest.fail(f"timed out waiting until {what}")
