"""`keel stream` over the real Redis on 127.0.0.1:6379 (consumer groups), in a subprocess:
a kill -9 mid-stream loses nothing and duplicates nothing in the log; scores keep the
stream's order; refused rows reach the dead letters with their reasons; the lag metric moves;
SIGTERM drains (everything read is acknowledged before the process exits).
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest
from serving_fixtures import free_port
from stream_helpers import (
    ROW,
    build_small_registry,
    entry_key,
    lag_of,
    raw_log,
    start_stream,
    unique,
)

from keel.monitor import read_log
from keel.stream import parse_endpoint, prediction_id_of

redis = pytest.importorskip("redis")

pytestmark = [pytest.mark.integration, pytest.mark.brokers]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stream_redis")
    build_small_registry(path)
    return path


@pytest.fixture
def names() -> Iterator[dict[str, str]]:
    r = redis.Redis()
    made = {k: unique(k) for k in ("src", "out", "dead")}
    yield made
    r.delete(*made.values())
    r.close()


def _scores(r: redis.Redis, stream: str) -> list[dict[str, object]]:
    return [orjson.loads(f[b"data"]) for _, f in r.xrange(stream)]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started: killed (by pid) if it failed before they ended."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
        for f in (p.stdout, p.stderr):
            if f is not None:
                f.close()


def test_kill_9_mid_stream_loses_nothing_and_logs_each_prediction_once(
    home: Path, names: dict[str, str], procs: list[subprocess.Popen[bytes]]
) -> None:
    r = redis.Redis()
    n = 600
    bad = set(range(7, n, 50))  # region 'mars': the contract refuses it
    ids = []
    for i in range(n):
        row = {**ROW, "amount": float(i), "region": "mars" if i in bad else "north"}
        ids.append(r.xadd(names["src"], {"data": orjson.dumps(row)}).decode())
    src = f"redis://127.0.0.1:6379/0?stream={names['src']}&group=g"
    args = ["fraud", "--source", src,
            "--sink", f"redis://127.0.0.1:6379/0?stream={names['out']}",
            "--dead-letter", f"redis://127.0.0.1:6379/0?stream={names['dead']}",
            "--batch-size", "8", "--ack-interval-ms", "100", "--max-inflight", "64"]  # fmt: skip
    port = free_port()
    first = start_stream(home, [*args, "--metrics-port", str(port)])
    procs.append(first)
    lags = []
    deadline = time.monotonic() + 90
    while r.xlen(names["out"]) < 150:
        assert first.poll() is None, first.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "no scores in 90 s"
        try:
            lag = lag_of(port, "fraud")
        except httpx.TransportError:  # the metrics port is not up yet
            lag = None
        if lag is not None:
            lags.append(lag)
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    cut = r.xlen(names["out"])
    assert cut < n - len(bad), "the stream finished before the kill: nothing was tested"
    assert max(lags, default=0) > 0, lags  # the lag was there while it consumed

    # the restart scores the rest; its acks wait for SIGTERM's drain (interval not reached)
    second = start_stream(home, [*args, "--ack-interval-ms", "60000", "--max-inflight", "5000"])
    procs.append(second)
    deadline = time.monotonic() + 90
    while len({s["message_id"] for s in _scores(r, names["out"])}) < n - len(bad):
        assert second.poll() is None, second.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the restart did not score the rest in 90 s"
        time.sleep(0.05)
    assert next(g for g in r.xinfo_groups(names["src"]) if g["name"] == b"g")["pending"] > 0
    second.send_signal(signal.SIGTERM)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err.decode()
    assert b"answered from the log" in out

    # the log: each good message's prediction exactly once, with the id derived from its id
    identity = parse_endpoint(src, source=True).identity
    expected = {prediction_id_of(identity, ids[i], 0) for i in range(n) if i not in bad}
    logged = raw_log(home).filter(pl.col("role") != "shadow")
    got = logged.get_column("prediction_id").to_list()
    assert len(got) == len(set(got)) == len(expected)
    assert set(got) == expected
    assert read_log(str(home / "artifacts"), "predictions", "fraud").height == len(expected)

    # the sink: every good message scored; each run wrote in the stream's order
    scores = _scores(r, names["out"])
    assert {s["prediction_id"] for s in scores} == expected
    for part in (scores[:cut], scores[cut:]):
        keys = [entry_key(str(s["message_id"])) for s in part]
        assert keys == sorted(keys)
    assert {"message_id", "prediction_id", "model", "version", "prediction", "probabilities",
            "classes"} == set(scores[0])  # fmt: skip

    # the dead letters: each refused message, with the contract's reason
    letters = {d["message_id"]: d for d in _scores(r, names["dead"])}
    assert set(letters) == {ids[i] for i in bad}
    for d in letters.values():
        assert d["errors"][0]["field"] == "region"  # type: ignore[index]
        assert d["errors"][0]["rule"] == "category"  # type: ignore[index]
        assert d["rows"][0]["region"] == "mars"  # type: ignore[index]
    group = next(g for g in r.xinfo_groups(names["src"]) if g["name"] == b"g")
    assert group["pending"] == 0
    assert group["lag"] == 0
    r.xgroup_destroy(names["src"], "g")
    r.close()
