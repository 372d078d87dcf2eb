"""keel in Ray Serve replicas, on a real local Ray cluster: the same answers as `keel serve`.

The cluster (`ray_cluster`, tests/conftest.py) is started once for every `ray` test. Each test
here starts Ray Serve's proxy on a free loopback port, sends real HTTP requests, and compares
them with a plain `keel serve` over the same registry; Serve is shut down after each.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_fixtures import ROW, Server, free_port, start_server, stop_server

from keel.monitor import read_log
from keel.store import ConfigError

pytestmark = [
    pytest.mark.ray,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

ROWS = [
    ROW,
    {**ROW, "amount": 950.0, "device": "web", "distance_km": 800.0, "recent_tx_24h": 9},
    {**ROW, "region": "south", "merchant_category": "travel", "amount": 80.25},
    {**ROW, "region": "west", "device": "mobile", "amount": 0.01, "distance_km": 0.0},
]
REFUSED = {**ROW, "region": "mars"}  # the contract refuses this region


@pytest.fixture(scope="module")
def plain(ray_cluster: dict[str, Any]) -> Iterator[Server]:
    """`keel serve fraud` (uvicorn) over the cluster's registry."""
    server = start_server(Path(ray_cluster["home"]))
    yield server
    stop_server(server)


def _wait_ready(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    msg = f"{url} did not become ready in {seconds} s"
    raise AssertionError(msg)


def _answers(url: str, ids: list[str] | None = None) -> list[tuple[int, dict[str, Any]]]:
    """What the server says to each of the rows alone, all of them at once, and a refused row,
    without the per-request prediction ids (put in `ids`)."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for rows in [*([r] for r in ROWS), ROWS, [REFUSED]]:
            r = client.post("/v1/models/fraud/predict", json={"rows": rows})
            body = r.json()
            (ids if ids is not None else []).extend(body.pop("prediction_ids", None) or [])
            body.pop("error_id", None)
            out.append((r.status_code, body))
    return out


def test_keel_deployment_in_ray_serve_answers_as_keel_serve(
    ray_cluster: dict[str, Any], plain: Server
) -> None:
    """`build` (the RayService application builder, settings from the replicas' environment)
    run by `serve.run`: the same predictions and probabilities as plain `keel serve`, keel's
    own prediction log written by the replica."""
    from ray import serve

    from keel.serve.ray import build

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(
            build({"models": ["fraud"], "num_cpus": 0.25}),
            name="keel",
            route_prefix="/",
            blocking=False,
        )
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url)
        ids: list[str] = []
        on_ray, locally = _answers(url, ids), _answers(plain.url)
        assert [s for s, _ in on_ray] == [200] * (len(ROWS) + 1) + [422]
        assert on_ray == locally
        models = httpx.get(f"{url}/v1/models", timeout=10).json()
        assert models == httpx.get(f"{plain.url}/v1/models", timeout=10).json()
    finally:
        serve.shutdown()  # the replica's lifespan ends: keel's log flushes
    logged = read_log(
        str(Path(ray_cluster["home"]) / "artifacts"), "predictions", "fraud",
        columns=["prediction_id"],
    )  # fmt: skip
    assert len(ids) == 2 * len(ROWS)
    assert set(ids) <= set(logged.get_column("prediction_id").to_list())


def test_keel_serve_engine_ray_cli(ray_cluster: dict[str, Any], plain: Server) -> None:
    """`keel serve fraud --engine ray` (joining the cluster by RAY_ADDRESS): the same answers,
    the dashboard at /ui too; Ctrl-C stops Serve."""
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(ray_cluster["root"]),  # Ray's token for the cluster is there
        "RAY_ADDRESS": str(ray_cluster["address"]),
        "KEEL_HOME": str(ray_cluster["home"]),
        "KEEL_OPEN_PREDICT": "true",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "keel", "serve", "fraud", "--engine", "ray", "--port", str(port),
         "--num-cpus", "0.25", "--max-replicas", "2"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url)
        assert _answers(url) == _answers(plain.url)
        assert httpx.get(f"{url}/ui", timeout=10).status_code in (200, 401)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode is not None


def test_builder_refuses_unknown_args_with_the_names_it_takes() -> None:
    from keel.serve.ray import build

    with pytest.raises(ConfigError, match="replicas"):
        build({"models": ["fraud"], "replicas": 3})
    with pytest.raises(ConfigError, match="num_cpus is 0"):
        build({"models": ["fraud"], "num_cpus": 0})
    with pytest.raises(ConfigError, match="list of model names"):
        build({"models": [1, 2]})
