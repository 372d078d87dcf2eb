"""Shared fixtures: factories for stores on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    ~/.ray) in temporary folders, and a keel registry whose `fraud` model the tests serve and
    score. Its workers see KEEL_HOME (the registry) as a keel pod's replicas would. RAY_TMPDIR
    is a short folder of its own under /tmp: Ray's socket paths in it must fit AF_UNIX's 107
    bytes, which pytest's base temp of an xdist worker (.../pytest-N/popen-gwN/ray0) does not."""
    import ray

    root = tmp_path_factory.mktemp("ray")
    home = root / "keel"
    home.mkdir()
    _one_model_registry(home)
    ray_tmp = tempfile.mkdtemp(prefix="keel-ray-")
    keep = {k: os.environ.get(k) for k in ("HOME", "RAY_TMPDIR", "KEEL_HOME")}
    os.environ.update({"HOME": str(root), "RAY_TMPDIR": ray_tmp, "KEEL_HOME": str(home)})
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
    shutil.rmtree(ray_tmp, ignore_errors=True)


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


# `scripts/test` runs the suite on pytest-xdist workers with `--dist loadfile`: a file is one
# unit of work, so that its module fixtures (a trained registry, a running server) are built
# once, on one worker. Three refinements. The Ray files are one unit, so that one worker alone
# starts the cluster (`ray_cluster`). In a file of long, independent tests (no module fixture)
# each test is a unit. Units go out longest first: a long one handed out last would leave the
# other workers idle while it runs.
RAY_UNIT = frozenset({"tests/integration/test_ray_batch.py", "tests/integration/test_ray_serve.py"})
ONE_TEST_A_UNIT = frozenset({"tests/realdata/test_lifecycle.py"})
LONGEST_FIRST: dict[str, float] = {
    "tests/realdata/test_lifecycle.py": 365,
    "tests/integration/test_demo.py": 315,
    "tests/integration/test_openapi_fuzz.py": 280,
    "tests/integration/test_boosting.py": 170,
    "tests/integration/test_ray_batch.py": 140,
    "tests/integration/test_ray_serve.py": 140,
    "tests/integration/test_jobs.py": 100,
    "tests/integration/test_admin_api.py": 85,
    "tests/integration/test_replicas.py": 85,
    "tests/integration/test_stream_redis.py": 70,
    "tests/integration/test_registry_stateful.py": 65,
    "tests/integration/test_cli_models.py": 55,
    "tests/integration/test_loop.py": 45,
    "tests/integration/test_registry.py": 40,
    "tests/integration/test_isolation.py": 40,
    "tests/integration/test_to_sql.py": 35,
    "tests/integration/test_durability.py": 30,
}
"""Seconds a file's tests took (junit XML of a two-worker run on a loaded 2-core machine: setup,
call and teardown added up); only the order matters. Files not listed go after these, in
collection order."""


def _unit(nodeid: str) -> str:
    path = nodeid.split("::")[0]
    if path in RAY_UNIT:
        return "ray"
    return nodeid if path in ONE_TEST_A_UNIT else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """`--dist loadfile`, with the units above."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Units(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    config.option.loadscopereorder = False  # the workers' order (below), not xdist's by count
    return Units(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker: the longest units first (a stable sort: files stay in order). A
    file's seconds are shared among its units by their number of tests."""
    if not hasattr(config, "workerinput"):  # a plain, serial run keeps the collection order
        return
    for item in items:
        if item.get_closest_marker("ray") and _unit(item.nodeid) != "ray":
            msg = f"{item.nodeid} is marked `ray`; add its file to RAY_UNIT in tests/conftest.py"
            raise pytest.UsageError(msg)
    per_file = Counter(item.nodeid.split("::")[0] for item in items)
    seconds: dict[str, float] = {}
    for item in items:
        path, unit = item.nodeid.split("::")[0], _unit(item.nodeid)
        seconds[unit] = seconds.get(unit, 0.0) + LONGEST_FIRST.get(path, 0.0) / per_file[path]
    items.sort(key=lambda item: -seconds[_unit(item.nodeid)])


_TERMINAL_SIZE = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """The terminal size this run was started with, for the workers (below)."""
    node.workerinput["terminal_size"] = {k: os.environ.get(k) for k in _TERMINAL_SIZE}


def pytest_configure(config: pytest.Config) -> None:
    """On an xdist worker, COLUMNS and LINES as the run was started with. Readline, once imported
    in the main pytest process, puts them (80 and 24) in that process's C environment, which
    the workers inherit though the main process's os.environ does not show them; rich's console
    would then keep a width of 80 that the tests which set COLUMNS cannot change."""
    sizes = getattr(config, "workerinput", {}).get("terminal_size")
    for key, value in (sizes or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
