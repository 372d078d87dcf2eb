"""The log's reader counts a prediction once: a record written again under the same id and
role (a stream message redelivered after a crash) is read at its first occurrence only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from keel.monitor import PredictionLog, read_log


def _columns(ids: list[str], role: str, prediction: str) -> dict[str, list[object]]:
    now = dt.datetime(2026, 12, 2, 10, tzinfo=dt.UTC)
    n = len(ids)
    return {
        "prediction_id": ids, "time": [now] * n, "model": ["m"] * n, "version": [1] * n,
        "role": [role] * n, "segment": [None] * n, "features": ["{}"] * n,
        "prediction": [prediction] * n, "probabilities": [None] * n, "latency_ms": [1.0] * n,
    }  # fmt: skip


def test_a_prediction_logged_twice_is_read_once(tmp_path: Path) -> None:
    log = PredictionLog(str(tmp_path))
    log.log(_columns(["a", "b"], "production", "first"))
    log.flush()
    log.log(_columns(["b", "c"], "production", "again"))  # b again: a redelivery
    log.log(_columns(["b"], "shadow", "shadow's"))  # the shadow's answer keeps its own row
    log.flush()
    frame = read_log(str(tmp_path), "predictions", "m")
    assert sorted(zip(frame["prediction_id"], frame["role"], strict=True)) == [
        ("a", "production"), ("b", "production"), ("b", "shadow"), ("c", "production"),
    ]  # fmt: skip
    b = frame.filter((frame["prediction_id"] == "b") & (frame["role"] == "production"))
    assert b["prediction"].to_list() == ["first"]
    # read without the role column: one row per prediction id
    assert read_log(str(tmp_path), "predictions", "m", columns=["prediction_id"]).height == 3
