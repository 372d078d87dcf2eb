"""Training end to end: gates stop bad candidates, passing ones are registered with lineage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from keel.data import DatasetStore, contract_from_dict, infer_contract
from keel.demo.simulate import TransactionSimulator
from keel.registry import ModelStore
from keel.store import ArtifactStore, ConfigError, Database, GateFailedError
from keel.train import promote, spec_from_dict, train
from keel.train.onnx_export import export_onnx
from keel.train.scoring import score_file

pytestmark = pytest.mark.integration

HGB = "sklearn.ensemble.HistGradientBoostingClassifier"
LR = "sklearn.linear_model.LogisticRegression"
TREE = "sklearn.tree.DecisionTreeClassifier"


@pytest.fixture
def stores(tmp_path: Path) -> tuple[DatasetStore, ModelStore]:
    db = Database(f"sqlite:///{tmp_path / 'k.db'}")
    art = ArtifactStore(str(tmp_path / "art"))
    return DatasetStore(db, art, b"k"), ModelStore(db, art)


@pytest.fixture
def tx(stores: tuple[DatasetStore, ModelStore]) -> str:
    ds, _ = stores
    frame = TransactionSimulator(seed=4, n_customers=1500).generate(days=40, per_day=250)
    contract = infer_contract(
        frame, name="tx", id="transaction_id", timestamp="ts", target="is_fraud", segment="region",
        sensitive=["customer_sex"], pii=["customer_name", "email", "card_number"], ignore=["label_available_at"],
    )  # fmt: skip
    return ds.ingest(frame, contract, "tx").version.ref


def spec(estimator: str, gates: list[str], **params: object) -> object:
    return spec_from_dict(
        {
            "name": estimator.rsplit(".", 1)[-1],
            "estimator": estimator,
            "params": params,
            "gates": gates,
        }
    )


def test_candidates_registered_with_lineage_and_recommendation(
    stores: tuple[DatasetStore, ModelStore], tx: str
) -> None:
    """Passing candidates are registered with lineage to the source; the cheapest close one is recommended."""
    ds, ms = stores
    specs = [
        spec(HGB, ["holdout.roc_auc >= 0.7"], max_iter=60),
        spec(LR, ["holdout.roc_auc >= 0.7"], max_iter=1000),
    ]

    result = train(specs, tx, datasets=ds, models=ms, register="fraud")  # type: ignore[arg-type]

    assert all(c.passed for c in result.candidates)
    assert [c.version for c in result.candidates] == [1, 2]
    assert result.recommended in ("HistGradientBoostingClassifier", "LogisticRegression")
    assert result.pareto
    v = ms.get("fraud@1")
    assert v.dataset_version == tx
    assert v.lineage["source_sha256"] == ds.get(tx).source_sha256
    ev = v.evaluation
    assert {
        "metrics",
        "overfit",
        "segments",
        "fairness",
        "explanations",
        "runtime",
        "reference",
        "calibration",
    } <= set(ev)
    assert ev["split"]["method"] == "time"
    assert ev["segments"]["worst"] in ev["segments"]["groups"]
    assert set(ev["fairness"]["customer_sex"]["by_group"]) == {"F", "M"}
    assert ev["runtime"]["cost_per_million_usd"] > 0
    assert set(ev["explanations"]["importance"]) == set(ev["features"])
    assert "## Gates" in ms.card("fraud@1")
    d = result.to_dict()
    assert {
        "estimator",
        "metrics",
        "overfit",
        "segments",
        "fairness",
        "runtime",
        "gates",
        "passed",
        "version",
    } <= set(d["candidates"][0])


def test_overfit_gate_stops_an_unpruned_tree(
    stores: tuple[DatasetStore, ModelStore], tx: str
) -> None:
    """An unpruned tree memorises training rows; the overfit gate stops it and names the gap."""
    ds, ms = stores

    result = train(
        [spec(TREE, ["overfit.roc_auc <= 0.05"])], tx, datasets=ds, models=ms, register="fraud"
    )  # type: ignore[list-item]

    (c,) = result.candidates
    assert not c.passed
    assert c.version is None
    (g,) = c.failed_gates
    assert g.value is not None
    assert g.value > 0.2
    assert g.describe().startswith("gate 'overfit.roc_auc <= 0.05': got 0.")
    assert ms.names() == []


def test_segment_gate_stops_a_model_weak_on_one_segment(
    stores: tuple[DatasetStore, ModelStore],
) -> None:
    """Where one segment's labels are noise, the overall metric passes and the segment gate fails."""
    ds, ms = stores
    rng = np.random.default_rng(0)
    n = 4000
    x = rng.normal(size=n)
    seg = rng.choice(["a", "b", "c"], n, p=[0.45, 0.45, 0.1])
    y = np.where(seg == "c", rng.random(n) < 0.5, x + rng.normal(scale=0.5, size=n) > 0).astype(int)
    frame = pl.DataFrame({"x": x, "seg": seg, "y": y})
    contract = infer_contract(frame, target="y", segment="seg")
    ref = ds.ingest(frame, contract, "segs").version.ref

    result = train(
        [spec(LR, ["holdout.roc_auc >= 0.8", "segments.min.roc_auc >= 0.7"])],
        ref,
        datasets=ds,
        models=ms,
    )  # type: ignore[list-item]

    (c,) = result.candidates
    assert [g.passed for g in c.gates] == [True, False]
    assert c.report.segments["worst"] == "c"


def test_fairness_gate_stops_a_biased_model(stores: tuple[DatasetStore, ModelStore]) -> None:
    """A model that learns a proxy of sex selects the groups at different rates; the gate stops it."""
    ds, ms = stores
    rng = np.random.default_rng(1)
    n = 4000
    sex = rng.choice(["F", "M"], n)
    proxy = (sex == "M") + rng.normal(scale=0.3, size=n)
    y = ((sex == "M") & (rng.random(n) < 0.7) | (rng.random(n) < 0.1)).astype(int)
    frame = pl.DataFrame({"proxy": proxy, "noise": rng.normal(size=n), "sex": sex, "y": y})
    contract = infer_contract(frame, target="y", sensitive=["sex"])
    ref = ds.ingest(frame, contract, "biased").version.ref

    result = train(
        [spec(LR, ["fairness.sex.demographic_parity_difference <= 0.10"])],
        ref,
        datasets=ds,
        models=ms,
    )  # type: ignore[list-item]

    (g,) = result.candidates[0].gates
    assert not g.passed
    assert g.value is not None
    assert g.value > 0.3


def test_promotion_rechecks_gates_against_production(
    stores: tuple[DatasetStore, ModelStore], tx: str
) -> None:
    """A worse candidate cannot take production unless forced with a reason; rollback restores."""
    ds, ms = stores
    good = spec(HGB, [], max_iter=60)
    weak = spec(TREE, ["vs_production.roc_auc >= 0"])  # registered while there is no production
    train([good, weak], tx, datasets=ds, models=ms, register="fraud")  # type: ignore[list-item]
    promote("fraud", 1, "production", models=ms, datasets=ds, reason="first")

    with pytest.raises(
        GateFailedError,
        match=r"version 2 failed gate 'vs_production.roc_auc >= 0' against production version 1: got -0\.",
    ):
        promote("fraud", 2, "production", models=ms, datasets=ds)
    assert ms.get("fraud@production").version == 1
    with pytest.raises(ConfigError, match=r"needs a reason"):
        promote("fraud", 2, "production", models=ms, datasets=ds, force=True)
    promote("fraud", 2, "production", models=ms, datasets=ds, force=True, reason="experiment")
    assert ms.get("fraud@production").version == 2
    ms.rollback("fraud", reason="experiment over")
    assert ms.get("fraud@production").version == 1
    actions = [(e.action, e.version, e.reason) for e in ms.history("fraud")]
    assert actions == [
        ("alias.set", 1, "first"),
        ("alias.set", 2, "experiment"),
        ("alias.rollback", 1, "experiment over"),
    ]


def test_weak_candidate_is_not_registered_while_production_is_better(
    stores: tuple[DatasetStore, ModelStore], tx: str
) -> None:
    """At training time vs_production is measured too; a candidate that loses is not registered."""
    ds, ms = stores
    train([spec(HGB, [], max_iter=60)], tx, datasets=ds, models=ms, register="fraud")  # type: ignore[list-item]
    ms.set_alias("fraud", "production", 1)

    result = train(
        [spec(TREE, ["vs_production.roc_auc >= 0"])], tx, datasets=ds, models=ms, register="fraud"
    )  # type: ignore[list-item]

    (g,) = result.candidates[0].gates
    assert not g.passed
    assert g.value is not None
    assert g.value < 0
    assert [v.version for v in ms.versions("fraud")] == [1]


def test_batch_scoring_refuses_bad_rows_to_a_side_file(
    stores: tuple[DatasetStore, ModelStore], tx: str, tmp_path: Path
) -> None:
    """Rows the contract refuses are written beside the predictions with the rule."""
    ds, ms = stores
    train([spec(LR, [], max_iter=1000)], tx, datasets=ds, models=ms, register="fraud")  # type: ignore[list-item]
    rows = (
        TransactionSimulator(seed=9, n_customers=300).generate(days=1, per_day=200).drop("is_fraud")
    )
    # an inferred contract keeps unseen categories (scored, one-hot ignores them) but refuses
    # a negative amount: the column was never negative
    rows = rows.with_columns(
        pl.when(pl.int_range(pl.len()) == 3)
        .then(pl.lit(-5.0))
        .otherwise(pl.col("amount"))
        .alias("amount")
    )
    src = tmp_path / "in.parquet"
    rows.write_parquet(src)

    result = score_file("fraud@1", src, tmp_path / "out.csv", models=ms, chunk_rows=64)

    assert (result.rows_in, result.rows_scored, result.rows_refused) == (200, 199, 1)
    out = pl.read_csv(tmp_path / "out.csv")
    assert {"transaction_id", "prediction", "p_0", "p_1"} <= set(out.columns)
    refused = pl.read_csv(tmp_path / "out.refused.csv")
    assert refused.select("source_row", "rule", "column").row(0) == (3, "range", "amount")


@pytest.mark.parametrize("estimator", [LR, "sklearn.ensemble.RandomForestClassifier"])
def test_onnx_parity(
    stores: tuple[DatasetStore, ModelStore], tx: str, tmp_path: Path, estimator: str
) -> None:
    """The ONNX export gives the same probabilities within 1e-5 on the holdout."""
    ds, ms = stores
    params = {"max_iter": 1000} if estimator == LR else {"n_estimators": 20}
    train([spec(estimator, [], **params)], tx, datasets=ds, models=ms, register="fraud")  # type: ignore[list-item]

    report = export_onnx("fraud@1", tmp_path / "m.onnx", models=ms, datasets=ds)

    assert report.parity_max_abs_diff <= 1e-5
    assert report.rows > 100
    assert (tmp_path / "m.onnx").stat().st_size == report.bytes


def test_onnx_exports_histgradientboosting_with_parity(
    stores: tuple[DatasetStore, ModelStore], tx: str, tmp_path: Path
) -> None:
    """keel's default booster exports (skl2onnx 1.20's own converter cannot) within 1e-5."""
    ds, ms = stores
    train([spec(HGB, [], max_iter=30)], tx, datasets=ds, models=ms, register="fraud")  # type: ignore[list-item]

    report = export_onnx("fraud@1", tmp_path / "m.onnx", models=ms, datasets=ds)

    assert report.parity_max_abs_diff <= 1e-5
    assert report.rows > 100


def test_regression_task(stores: tuple[DatasetStore, ModelStore]) -> None:
    """Regressors get RMSE, MAE and R² with intervals, and a random split without a timestamp."""
    ds, ms = stores
    rng = np.random.default_rng(3)
    x = rng.normal(size=800)
    frame = pl.DataFrame(
        {"x": x, "k": rng.choice(["u", "v"], 800), "y": 2 * x + rng.normal(scale=0.1, size=800)}
    )
    ref = ds.ingest(
        frame,
        contract_from_dict(
            {
                "name": "r",
                "columns": {
                    "x": {"type": "float"},
                    "k": {"type": "category", "categories": ["u", "v"]},
                    "y": {"type": "float", "role": "target"},
                },
            }
        ),
        "reg",
    ).version.ref

    result = train(
        [spec("sklearn.linear_model.Ridge", ["holdout.r2 >= 0.95"])],
        ref,
        datasets=ds,
        models=ms,
        register="reg",
    )  # type: ignore[list-item]

    (c,) = result.candidates
    assert c.passed
    assert c.report.task == "regression"
    assert c.report.split["method"] == "random"
    assert (
        c.report.metrics["rmse"]["low"]
        < c.report.metrics["rmse"]["value"]
        < c.report.metrics["rmse"]["high"]
    )


def test_multiclass_and_group_split(stores: tuple[DatasetStore, ModelStore]) -> None:
    """Three classes get macro metrics; a group split keeps each group on one side."""
    ds, ms = stores
    rng = np.random.default_rng(5)
    n = 1500
    x = rng.normal(size=(n, 2))
    label = np.array(["low", "mid", "high"])[
        np.digitize(x[:, 0] + 0.3 * rng.normal(size=n), [-0.5, 0.5])
    ]
    frame = pl.DataFrame(
        {
            "a": x[:, 0],
            "b": x[:, 1],
            "shop": rng.choice([f"s{i}" for i in range(30)], n),
            "y": label,
        }
    )
    contract = infer_contract(frame, target="y")
    ref = ds.ingest(frame, contract, "multi").version.ref
    s = spec_from_dict(
        {
            "estimator": LR,
            "params": {"max_iter": 1000},
            "features": ["a", "b"],
            "split": {"method": "group", "group": "shop"},
            "gates": ["holdout.accuracy >= 0.7"],
        }
    )

    result = train([s], ref, datasets=ds, models=ms, register="multi")

    (c,) = result.candidates
    assert c.passed
    assert c.report.classes == ("high", "low", "mid")
    assert set(c.report.metrics) == {"roc_auc", "log_loss", "accuracy", "f1"}
    shops = frame["shop"].to_numpy()
    from keel.train.prepare import prepare

    prep = prepare(ds.load(ref), contract, s)
    assert not set(shops[prep.train_idx]) & set(shops[prep.test_idx])


def test_refit_registers_a_model_fitted_on_every_row(
    stores: tuple[DatasetStore, ModelStore], tx: str
) -> None:
    """`split.refit`: the holdout judges the first fit; the registered model is fitted again on
    every row (the time split's newest fifth included): the same coefficients as a fit on all
    rows, a reference profile of all rows, the holdout's figures kept."""
    ds, ms = stores
    raw = {"name": "lr", "estimator": LR, "params": {"max_iter": 2000}}
    plain = train([spec_from_dict(raw)], tx, datasets=ds, models=ms, register="plain")
    refit = train(
        [spec_from_dict({**raw, "split": {"refit": True}})],
        tx,
        datasets=ds,
        models=ms,
        register="refit",
    )
    a, b = plain.candidates[0], refit.candidates[0]
    rows = ds.load(tx).height
    assert a.report.split == {"method": "time", "train_rows": 8000, "holdout_rows": 2000}
    assert b.report.split == {**a.report.split, "refit_rows": rows}
    assert b.report.metrics == a.report.metrics  # judged on the holdout before the refit
    assert b.report.reference.rows == rows
    assert a.report.reference.rows == 8000
    coef_a = a.pipeline[-1].coef_
    coef_b = b.pipeline[-1].coef_
    assert not np.allclose(coef_a, coef_b)
    _, loaded = ms.load(f"refit@{b.version}")
    assert np.allclose(loaded[-1].coef_, coef_b)


def test_refit_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match=r"split is \{'refit': 'yes'\}; expected"):
        spec_from_dict({"estimator": LR, "split": {"refit": "yes"}})
    with pytest.raises(ConfigError, match=r"split is \{'shuffle': True\}"):
        spec_from_dict({"estimator": LR, "split": {"shuffle": True}})


def test_recency_weights_lean_the_fit_towards_the_newest_rows(
    stores: tuple[DatasetStore, ModelStore], tx: str
) -> None:
    """`recency_half_life_days`: rows weigh 0.5 ** (age / half-life) at fit. A very short
    half-life makes the fit that of the newest days alone; an estimator without
    `sample_weight` is refused at the check stage, naming the spec key."""
    ds, ms = stores
    raw = {"name": "lr", "estimator": LR, "params": {"max_iter": 2000}}
    plain = train([spec_from_dict(raw)], tx, datasets=ds)
    weighted = train(
        [spec_from_dict({**raw, "recency_half_life_days": 2})], tx, datasets=ds, models=ms
    )
    a, b = plain.candidates[0].pipeline, weighted.candidates[0].pipeline
    assert not np.allclose(a[-1].coef_, b[-1].coef_)
    assert weighted.candidates[0].spec.to_dict()["recency_half_life_days"] == 2.0

    knn = train(
        [spec_from_dict({"estimator": "sklearn.neighbors.KNeighborsClassifier",
                         "recency_half_life_days": 7})],
        tx,
        datasets=ds,
    )  # fmt: skip
    assert not knn.candidates
    assert knn.failed[0].stage == "check"
    assert "takes no sample_weight" in knn.failed[0].error
    assert "recency_half_life_days" in knn.failed[0].error


@pytest.mark.parametrize("bad", [0, -3, True, "7", float("inf")])
def test_recency_half_life_must_be_positive_days(bad: object) -> None:
    with pytest.raises(
        ConfigError, match=r"recency_half_life_days is .*; expected a number of days > 0"
    ):
        spec_from_dict({"estimator": LR, "recency_half_life_days": bad})
