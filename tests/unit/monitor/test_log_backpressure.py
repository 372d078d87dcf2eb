"""The prediction log when full or failing: memory, then a local spill, then 503; nothing that
was accepted is lost, and what a killed process spilled is moved by the next one."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import polars as pl
import pytest

from keel.monitor import LogBatch, LogFullError, PredictionLog, prediction_ids
from keel.serve import error_response
from keel.store import OverloadedError

AT = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


def records(n: int, model: str = "m") -> dict[str, list[object]]:
    ids = prediction_ids(n, AT)
    return {
        "prediction_id": ids, "time": [AT] * n, "model": [model] * n, "version": [1] * n,
        "role": ["production"] * n, "segment": [None] * n, "features": ["{}"] * n,
        "prediction": ["1"] * n, "probabilities": [[0.2, 0.8]] * n, "latency_ms": [1.0] * n,
    }  # fmt: skip


def logged_ids(root: Path, model: str = "m") -> set[str]:
    return set(PredictionLog(str(root)).predictions.read(model).get_column("prediction_id"))


def break_store(root: Path) -> None:
    """The artifact store refuses writes: its predictions folder is a file."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "predictions").write_text("not a folder")


def mend_store(root: Path) -> None:
    (root / "predictions").unlink()


def make_log(tmp_path: Path, **kwargs: int) -> PredictionLog:
    return PredictionLog(str(tmp_path / "store"), spill_dir=tmp_path / "spill", **kwargs)  # type: ignore[arg-type]


def test_a_batch_the_store_refuses_is_spilled_then_moved_when_it_is_back(tmp_path: Path) -> None:
    """The store fails: the batch goes to a local spill file; once the store takes writes
    again the next flush moves it there, and every id is in the log exactly once."""
    log = make_log(tmp_path)
    break_store(tmp_path / "store")
    batch = records(30)
    log.log(batch)

    assert log.flush() == 0
    assert log.predictions.spilled_rows == 30
    assert log.predictions.spill_files == 1
    assert log.backlogged
    assert not log.shedding
    assert log.predictions.last_store_error is not None
    assert log.predictions.dropped == 0

    mend_store(tmp_path / "store")
    assert log.flush() == 30
    assert log.predictions.spilled_rows == 0
    assert not log.backlogged
    assert not list((tmp_path / "spill" / "predictions").glob("part-*"))
    frame = PredictionLog(str(tmp_path / "store")).predictions.read("m")
    assert sorted(frame.get_column("prediction_id")) == sorted(batch["prediction_id"])  # type: ignore[arg-type]


def test_with_buffer_and_spill_full_new_records_are_refused_and_none_accepted_is_lost(
    tmp_path: Path,
) -> None:
    """Bounded memory and spill: beyond both, `log` raises LogFullError (503 + Retry-After);
    the refused records were never accepted, the accepted ones are all written later."""
    log = make_log(tmp_path, max_buffered_rows=10, max_spilled_rows=10)
    break_store(tmp_path / "store")
    first, second, third = records(10), records(10), records(5)
    log.log(first)
    log.flush()  # the store refuses: spilled (10 of 10)
    log.log(second)
    log.flush()  # no room in the spill: back to the buffer
    assert log.predictions.pending() == 10
    assert log.predictions.spilled_rows == 10
    assert log.shedding

    with pytest.raises(LogFullError) as refused:
        log.log(third)
    assert isinstance(refused.value, OverloadedError)
    assert str(refused.value).startswith(
        "The prediction log is backlogged: 10 records wait in memory (log_buffer_rows = 10) "
        "and 10 in spill files (log_spill_rows = 10)"
    )
    response = error_response(refused.value)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert log.predictions.shed == 5

    mend_store(tmp_path / "store")
    log.flush()
    assert logged_ids(tmp_path / "store") == set(first["prediction_id"]) | set(  # type: ignore[arg-type]
        second["prediction_id"]  # type: ignore[arg-type]
    )
    assert not log.shedding
    assert log.predictions.backlog == 0


def test_a_buffer_past_half_its_bound_is_relieved_to_the_spill(tmp_path: Path) -> None:
    """When the writer is slow, the spill thread's `relieve` moves the buffer to local files;
    below half the bound it leaves it alone."""
    log = make_log(tmp_path, max_buffered_rows=10)
    log.log(records(4))
    assert not log.predictions.over_half.is_set()
    assert log.predictions.relieve() == 0
    log.log(records(2))
    assert log.predictions.over_half.is_set()

    assert log.predictions.relieve() == 6
    assert log.predictions.pending() == 0
    assert log.predictions.spilled_rows == 6
    assert log.flush() == 6  # the writer moves them
    assert len(logged_ids(tmp_path / "store")) == 6


def test_a_restarted_log_moves_what_a_killed_one_spilled(tmp_path: Path) -> None:
    """Spill files outlive the process: a new log counts them and moves them; a file a dead
    process had claimed is given back first; torn temporary files are removed."""
    log = make_log(tmp_path)
    break_store(tmp_path / "store")
    a, b = records(3), records(4)
    log.log(a)
    log.flush()
    log.log(b)
    log.flush()
    spill = tmp_path / "spill" / "predictions"
    claimed = sorted(spill.glob("part-*.parquet"))[0]
    dead = 2**22 + 12345  # above pid_max on default Linux: no such process
    claimed.rename(claimed.with_name(f"{claimed.name}.{dead}.draining"))
    (spill / ".part-1-torn.parquet.tmp").write_bytes(b"PAR1 torn")
    mend_store(tmp_path / "store")

    again = make_log(tmp_path)
    assert again.predictions.spilled_rows == 7
    assert again.predictions.spill_files == 2
    assert not list(spill.glob(".*.tmp"))
    again.flush()
    assert logged_ids(tmp_path / "store") == set(a["prediction_id"]) | set(b["prediction_id"])  # type: ignore[arg-type]


def test_profiles_are_folded_after_the_batch_is_on_disk(tmp_path: Path) -> None:
    """The log's flush writes the files first and only then hands the batch to monitoring, and
    never saves profiles itself: what `kill -9` can lose is not lengthened by them."""
    on_disk_when_folded: list[bool] = []
    batch = records(12)

    def profiles(batch: LogBatch) -> None:
        ids = logged_ids(tmp_path / "store")
        on_disk_when_folded.append(set(batch.records.get_column("prediction_id")) <= ids)

    log = PredictionLog(str(tmp_path / "store"), sink=profiles)
    log.log(batch)
    assert log.flush() == 12
    assert on_disk_when_folded == [True]


def test_shutdown_with_a_stuck_writer_spills_the_buffer(tmp_path: Path) -> None:
    """If the writer is stuck in the store at shutdown, the buffer goes to the spill (a
    restart moves it) rather than waiting forever or being lost."""
    log = make_log(tmp_path)
    batch = records(8)
    log.log(batch)
    stuck = log.predictions._flush_lock
    stuck.acquire()  # the writer, inside a store call that does not return
    try:
        log.predictions.close(timeout_s=0.05)
    finally:
        stuck.release()
    assert log.predictions.pending() == 0
    assert log.predictions.spilled_rows == 8

    make_log(tmp_path).flush()
    assert logged_ids(tmp_path / "store") == set(batch["prediction_id"])  # type: ignore[arg-type]


def test_without_a_spill_folder_a_refused_batch_is_counted_as_dropped(tmp_path: Path) -> None:
    """An embedded log with no spill folder keeps the old rule: counted, never silent."""
    dropped: list[int] = []
    log = PredictionLog(str(tmp_path / "store"), on_dropped=dropped.append)
    break_store(tmp_path / "store")
    log.log(records(3))
    assert log.flush() == 0
    assert dropped == [3]
    assert log.predictions.dropped == 3


def test_a_spill_that_cannot_be_written_keeps_the_batch_in_memory(tmp_path: Path) -> None:
    """Store and spill both fail: the batch goes back to the buffer and is written later."""
    log = make_log(tmp_path)
    break_store(tmp_path / "store")
    (tmp_path / "spill").write_text("not a folder either")
    batch = records(5)
    log.log(batch)
    log.flush()
    assert log.predictions.pending() == 5
    assert log.predictions.spilled_rows == 0
    (tmp_path / "spill").unlink()
    mend_store(tmp_path / "store")
    log.flush()
    assert logged_ids(tmp_path / "store") == set(batch["prediction_id"])  # type: ignore[arg-type]


def test_a_batch_being_written_still_counts_against_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the writer works on a batch, those records still take room: memory never holds
    more than the bound, however slow the store."""
    log = make_log(tmp_path, max_buffered_rows=10)
    entered, gate = threading.Event(), threading.Event()
    write = log.predictions._write

    def slow(part: pl.DataFrame) -> None:
        entered.set()
        gate.wait(30)
        write(part)

    monkeypatch.setattr(log.predictions, "_write", slow)
    log.log(records(8))
    writer = threading.Thread(target=log.flush)
    writer.start()
    assert entered.wait(30)
    log.log(records(2))  # 8 being written + 2 = 10: fits
    with pytest.raises(LogFullError):
        log.log(records(1))
    gate.set()
    writer.join(30)
    assert log.predictions.pending() == 2
    assert len(logged_ids(tmp_path / "store")) == 8
