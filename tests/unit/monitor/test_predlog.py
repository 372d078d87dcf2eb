"""Prediction ids carry their day; late feedback reads only the log files of that day."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

from keel.monitor.logfiles import day_of
from keel.monitor.predlog import PredictionLog, prediction_ids

DAY1 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
DAY2 = dt.datetime(2025, 3, 20, 8, tzinfo=dt.UTC)


def _log(log: PredictionLog, ids: list[str], at: dt.datetime, role: str = "production") -> None:
    n = len(ids)
    log.log(
        {
            "prediction_id": ids, "time": [at] * n, "model": ["m"] * n, "version": [1] * n,
            "role": [role] * n, "segment": [None] * n, "features": ["{}"] * n,
            "prediction": ["1"] * n, "probabilities": [[0.2, 0.8]] * n, "latency_ms": [1.0] * n,
        }
    )  # fmt: skip


def test_ids_are_unique_ordered_by_time_and_name_their_day() -> None:
    early, late = prediction_ids(500, DAY1), prediction_ids(500, DAY2)
    assert len(set(early + late)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in early)
    assert max(early) < min(late)
    assert {day_of(i) for i in early} == {DAY1.date()}
    assert all(str(uuid.UUID(i)).count("-") == 4 and uuid.UUID(i).version == 7 for i in early)
    assert all(day_of(uuid.uuid4().hex) is None for _ in range(1000))  # older logs' ids
    assert day_of("nope") is None


def test_late_feedback_reads_only_the_days_its_ids_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = PredictionLog(str(tmp_path))
    first, second = prediction_ids(3, DAY1), prediction_ids(3, DAY2)
    shadowed = prediction_ids(1, DAY2)
    _log(writer, first, DAY1)
    _log(writer, second, DAY2)
    _log(writer, shadowed, DAY2, role="shadow")
    writer.flush()

    reader = PredictionLog(str(tmp_path))  # a restarted server: nothing in memory
    opened: list[str] = []
    fs_open = reader.predictions._fs.open

    def spy(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(path)
        return fs_open(path, *args, **kwargs)

    monkeypatch.setattr(reader.predictions._fs, "open", spy)
    labels = [(first[0], 1), (first[1], 0), (shadowed[0], 1), (prediction_ids(1, DAY1)[0], 1)]
    accepted, unknown = reader.add_feedback("m", labels, DAY2)
    assert accepted == 2
    assert unknown == [shadowed[0], labels[3][0]]  # a shadow's id takes no label
    assert {p.split("date=")[1][:10] for p in opened} == {"2025-03-01", "2025-03-20"}

    opened.clear()
    accepted, _ = reader.add_feedback("m", [(second[2], 1)], DAY2)
    assert accepted == 1
    assert {p.split("date=")[1][:10] for p in opened} == {"2025-03-20"}


def test_ids_of_older_logs_are_still_found(tmp_path: Path) -> None:
    writer = PredictionLog(str(tmp_path))
    old = [uuid.uuid4().hex for _ in range(2)]
    _log(writer, old, DAY1)
    writer.flush()
    reader = PredictionLog(str(tmp_path))
    assert reader.add_feedback("m", [(old[1], 1)], DAY2) == (1, [])
