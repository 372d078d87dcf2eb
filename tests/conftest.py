"""Shared fixtures: factories for stores on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.store import ArtifactStore, Database

POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty metadata database: a SQLite file, or a new schema on the real server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keel.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    schema = f"keel_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def make_store(database_url: str, tmp_path: Path) -> Iterator[Callable[[], DatasetStore]]:
    """Factory for dataset stores that share one database and one artifact folder."""
    opened: list[Database] = []

    def factory() -> DatasetStore:
        db = Database(database_url)
        opened.append(db)
        return DatasetStore(db, ArtifactStore(str(tmp_path / "artifacts")), b"test-key")

    yield factory
    for db in opened:
        db.dispose()


@pytest.fixture
def store(make_store: Callable[[], DatasetStore]) -> DatasetStore:
    return make_store()


@pytest.fixture
def make_models(database_url: str, tmp_path: Path) -> Iterator[Callable[[], ModelStore]]:
    """Factory for model stores that share one database and one artifact folder."""
    opened: list[Database] = []

    def factory() -> ModelStore:
        db = Database(database_url)
        opened.append(db)
        return ModelStore(db, ArtifactStore(str(tmp_path / "artifacts")))

    yield factory
    for db in opened:
        db.dispose()


@pytest.fixture
def models(make_models: Callable[[], ModelStore]) -> ModelStore:
    return make_models()


def _one_model_registry(home: Path) -> None:
    """`fraud` version 1 in production: serving_fixtures' registry with its first model only
    (a logistic regression; the tests of serving train a second one, these need none)."""
    from dataclasses import replace

    from keel.data import infer_contract, with_column
    from keel.demo.simulate import TransactionSimulator
    from keel.train import spec_from_dict, train

    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = TransactionSimulator(seed=3, n_customers=800).generate(days=20, per_day=300)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex", "customer_age"], pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )  # fmt: skip
    contract = with_column(contract, replace(contract.column("region"), unseen="refuse"))
    ref = ds.ingest(frame, contract, "tx").version.ref
    spec = spec_from_dict(
        {"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression",
         "params": {"max_iter": 1000}}
    )  # fmt: skip
    train([spec], ref, datasets=ds, models=ms, register="fraud")
    ms.set_alias("fraud", "production", 1)
    db.dispose()


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path | str]]:
    """One real local Ray cluster for every `ray` test, on 127.0.0.1 (4 logical CPUs, 256 MB of
    object store, no dashboard), with Ray's state (RAY_TMPDIR, and the token Ray 2.6x writes to
    ~/.ray) in a temporary folder, and a keel registry whose `fraud` model the tests serve and
    score. Its workers see KEEL_HOME (the registry) as a keel pod's replicas would."""
    import ray

    root = tmp_path_factory.mktemp("ray")
    home = root / "keel"
    home.mkdir()
    _one_model_registry(home)
    keep = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "KEEL_HOME")}
    os.environ.update({"HOME": str(root), "RAY_TMPDIR": str(root / "rt"), "KEEL_HOME": str(home)})
    try:
        for attempt in (1, 2):  # under load the raylet may miss Ray's fixed 30 s start
            try:
                ray.init(
                    address="local",
                    num_cpus=4,
                    object_store_memory=256 * 1024**2,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    logging_level="warning",
                    log_to_driver=False,
                )
                break
            except Exception:
                ray.shutdown()
                if attempt == 2:
                    raise
    finally:  # the cluster's processes keep what they were started with; this process not
        for k, v in keep.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    address = ray.get_runtime_context().gcs_address
    yield {"root": root, "home": home, "address": address}
    ray.shutdown()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the Ray cluster after the last test that uses it, not at the session's end: the
    tests after it should not share two cores and a gigabyte with Ray's idle processes."""
    if "ray_cluster" not in getattr(item, "fixturenames", ()):
        return
    rest = item.session.items[item.session.items.index(item) + 1 :]
    if any("ray_cluster" in getattr(i, "fixturenames", ()) for i in rest):
        return
    import ray

    ray.shutdown()
