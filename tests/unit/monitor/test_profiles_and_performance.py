"""Window profiles merge by addition; performance estimates and pooled metrics are right."""

from __future__ import annotations

import copy

import numpy as np
import orjson
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from keel.monitor.drift import compare_profiles
from keel.monitor.performance import estimate_binary, pooled_performance, shadow_comparison
from keel.monitor.profiles import ProfileSpec, merge, stored, update

REFERENCE = {
    "rows": 1000,
    "columns": {
        "amount": {
            "kind": "numeric",
            "edges": [0.0, 10.0, 20.0, 30.0],
            "counts": [300, 400, 300],
            "std": 7.0,
        },
        "region": {"kind": "categorical", "counts": {"north": 600, "south": 400}},
    },
    "output": {"kind": "numeric", "edges": [0.0, 0.5, 1.0], "counts": [800, 200], "std": 0.2},
}
SPEC = ProfileSpec(
    ("amount", "region"), frozenset({"region"}), REFERENCE, "classification", ("0", "1")
)


def _profile(rows: list[dict[str, object]], scores: np.ndarray) -> dict[str, object]:
    p = SPEC.empty()
    update(
        p, SPEC, rows, scores, ["1" if s > 0.5 else "0" for s in scores], np.full(len(rows), 2.0)
    )
    return p


def test_profiles_of_two_writers_add_up_to_one() -> None:
    rng = np.random.default_rng(0)
    rows = [
        {"amount": float(a), "region": r}
        for a, r in zip(
            rng.uniform(-5, 35, 400), rng.choice(["north", "south", "east"], 400), strict=True
        )
    ]
    rows[3]["amount"] = None
    scores = rng.uniform(0, 1, 400)
    whole = _profile(rows, scores)
    parts = merge(_profile(rows[:150], scores[:150]), _profile(rows[150:], scores[150:]))

    assert parts["rows"] == whole["rows"] == 400
    assert parts["columns"]["amount"]["counts"] == whole["columns"]["amount"]["counts"]
    assert sum(whole["columns"]["amount"]["counts"]) == 399  # out-of-range values clipped in
    assert parts["columns"]["amount"]["nulls"] == 1
    assert parts["columns"]["amount"]["min"] == whole["columns"]["amount"]["min"]
    assert parts["columns"]["region"]["counts"] == whole["columns"]["region"]["counts"]
    assert parts["output"]["scores"] == whole["output"]["scores"]
    assert parts["columns"]["amount"]["sum"] == pytest.approx(whole["columns"]["amount"]["sum"])
    report = compare_profiles(REFERENCE, parts)
    assert {c.name for c in report.columns} == {"amount", "region", "__output__"}


def test_stored_profiles_drop_the_edges_and_judge_the_same() -> None:
    rng = np.random.default_rng(3)
    rows = [{"amount": float(a), "region": "north"} for a in rng.uniform(0, 40, 300)]
    scores = rng.uniform(0, 1, 300)
    live = _profile(rows, scores)
    kept = stored(copy.deepcopy(live))
    assert "edges" not in kept["columns"]["amount"]
    assert "edges" not in kept["output"]
    assert "edges" in live["columns"]["amount"]  # the profiler's own copy still bins on them
    assert len(orjson.dumps(kept)) < len(orjson.dumps(live))
    judged = [c.to_dict() for c in compare_profiles(REFERENCE, kept).columns]
    assert judged == [c.to_dict() for c in compare_profiles(REFERENCE, live).columns]
    # an older stored profile (with edges) and a newer one (without) still add up
    both = merge(live, kept)
    assert both["columns"]["amount"]["counts"] == [
        2 * n for n in live["columns"]["amount"]["counts"]
    ]


def test_estimated_auc_of_calibrated_scores_matches_the_labels() -> None:
    rng = np.random.default_rng(1)
    scores = rng.beta(1, 6, 200_000)
    labels = rng.random(len(scores)) < scores  # calibrated: P(y=1 | s) = s
    hist = np.bincount(np.clip((scores * 50).astype(int), 0, 49), minlength=50)
    est = estimate_binary(hist.tolist())
    assert est["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=0.01)
    assert est["accuracy"] == pytest.approx(np.mean((scores > 0.5) == labels), abs=0.01)
    assert estimate_binary([0] * 50) == {"roc_auc": None, "accuracy": None}


def _log(
    n: int, seed: int, version: int, role: str, noise: float
) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    p = np.clip(0.3 + (y - 0.3) * 0.5 + rng.normal(0, noise, n), 0.001, 0.999)
    frame = pl.DataFrame(
        {
            "prediction_id": [f"id{i}" for i in range(n)],
            "version": [version] * n,
            "role": [role] * n,
            "prediction": ["1" if x > 0.5 else "0" for x in p],
            "probabilities": [[1 - x, x] for x in p],
        }
    )
    return frame, y


def test_pooled_performance_equals_scikit_learn_with_an_interval() -> None:
    preds, y = _log(3000, 2, 1, "production", 0.3)
    feedback = pl.DataFrame(
        {
            "prediction_id": preds["prediction_id"],
            "time": [0] * 3000,
            "label": [str(int(v)) for v in y],
        }
    )
    r = pooled_performance(
        preds, feedback, task="classification", classes=["0", "1"], metric="roc_auc"
    )
    p = np.array([x[1] for x in preds["probabilities"].to_list()])
    assert r.value == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert r.low < r.value < r.high
    assert r.labels == 3000


def test_shadow_comparison_finds_the_better_version() -> None:
    prod, y = _log(4000, 3, 1, "production", 0.35)
    shadow, _ = _log(4000, 3, 2, "shadow", 0.05)  # same ids and labels, sharper scores
    feedback = pl.DataFrame(
        {
            "prediction_id": prod["prediction_id"],
            "time": [0] * 4000,
            "label": [str(int(v)) for v in y],
        }
    )
    r = shadow_comparison(
        pl.concat([prod, shadow]),
        feedback,
        task="classification",
        classes=["0", "1"],
        metric="roc_auc",
    )
    assert r.requests == 4000
    assert r.labels == 4000
    assert r.improvement > 0
    assert r.low > 0
    assert 0 < r.agreement <= 1
