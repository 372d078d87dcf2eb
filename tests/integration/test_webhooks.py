"""Outgoing webhooks against a real receiver on loopback: signatures verify (and a wrong
secret does not), failures are retried with backoff, every delivery is recorded."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from promotion_fixtures import fit_small, ingest_small, register
from receiver import receiver

from keel.data import DatasetStore
from keel.hooks import Dispatcher, HookStore
from keel.monitor import Alert, AlertStore
from keel.registry import ModelStore
from keel.store import ConfigError, Settings, SignatureError, new_secret, verify_signature
from keel.train import promote, rollback

pytestmark = pytest.mark.integration

T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("hooks")
    datasets = DatasetStore.open(Settings(home=home))
    models = ModelStore(datasets.db, datasets.artifacts)
    dataset = ingest_small(datasets)
    return {
        "home": home,
        "datasets": datasets,
        "models": models,
        "trained": fit_small(datasets, dataset),
    }


def test_deliveries_are_signed_retried_after_failures_and_recorded(world: dict[str, Any]) -> None:
    """A receiver that answers 500 twice then 200 gets three attempts of the same message
    (same webhook-id), each signed so it verifies with the hook's secret and not another."""
    models, datasets = world["models"], world["datasets"]
    hooks = HookStore(models.db)
    secret = new_secret()
    with receiver([(500, {}), (500, {})]) as rx:
        hook = hooks.add(rx.url, ["version_registered"], secret=secret)
        version = register(models, datasets, "wh_retry", world["trained"])
        dispatcher = Dispatcher(models.db, base_backoff_s=10, max_attempts=5)

        first = dispatcher.run_once(now=T0)
        second = dispatcher.run_once(now=T0 + dt.timedelta(seconds=5))  # not due yet
        third = dispatcher.run_once(now=T0 + dt.timedelta(seconds=10))
        fourth = dispatcher.run_once(now=T0 + dt.timedelta(seconds=30))

    assert (first.made, first.attempted, first.retrying) == (1, 1, 1)
    assert second.attempted == 0
    assert (third.attempted, third.retrying) == (1, 1)
    assert (fourth.attempted, fourth.delivered) == (1, 1)
    assert len(rx.received) == 3
    ids = {r.headers["webhook-id"] for r in rx.received}
    assert ids == {f"msg_audit_{_last_audit_id(models)}_version_registered"}
    for r in rx.received:
        verify_signature(secret, r.headers, r.body, now=time.time())
        with pytest.raises(SignatureError, match="No webhook-signature matches"):
            verify_signature(new_secret(), r.headers, r.body, now=time.time())
    body = json.loads(rx.received[-1].body)
    assert body["type"] == "version_registered"
    assert body["data"]["model"] == "wh_retry"
    assert body["data"]["version"] == version
    (d,) = hooks.deliveries(hook_id=hook.id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("delivered", 3, 200, None)
    assert d.delivered_at == T0 + dt.timedelta(seconds=30)
    hooks.remove(hook.id)


def _last_audit_id(models: ModelStore) -> int:
    return max(int(e["id"]) for e in models.db.events())


def test_every_registry_and_alert_event_reaches_its_subscribers(world: dict[str, Any]) -> None:
    """Registration, promotion, a canary move, a rollback and a fired alert each become the
    events a hook asked for, and only those; CloudEvents hooks get structured envelopes."""
    models, datasets, trained = world["models"], world["datasets"], world["trained"]
    hooks = HookStore(models.db)
    secret = new_secret()
    with receiver() as rx:
        every = hooks.add(
            rx.url,
            ["version_registered", "alias_moved", "promoted", "rolled_back", "alert_fired", "loop_decision"],
            secret=secret,
        )  # fmt: skip
        ce = hooks.add(
            rx.url + "/ce", ["promoted", "alert_fired"], secret=secret, fmt="cloudevents"
        )
        v1 = register(models, datasets, "wh_all", trained)
        v2 = register(models, datasets, "wh_all", trained)
        promote("wh_all", v1, "production", models=models, datasets=datasets, reason="first")
        promote("wh_all", v2, "production", models=models, datasets=datasets, reason="better")
        rollback("wh_all", models=models, reason="worse live")
        AlertStore(models.db).fire(
            Alert("wh_all", "drift", "warning", "amount drifted", T0, {"psi": 0.4}), None, T0
        )
        with models.db.begin() as conn:  # what Loop.step records after each act
            models.db.record_event(
                conn, actor="loop", action="loop.decision", subject="model:wh_all",
                reason="rolled back", details={"decision": "rollback", "version": v2, "numbers": {}},
            )  # fmt: skip
        done = Dispatcher(models.db).run_once()

    assert done.failed == 0
    assert done.delivered == done.attempted == done.made
    plain = [json.loads(r.body) for r in rx.received if r.path == "/hook"]
    kinds = [b["type"] for b in plain]
    assert sorted(kinds) == sorted(
        ["version_registered"] * 2 + ["alias_moved", "promoted"] * 2
        + ["alias_moved", "rolled_back", "alert_fired", "loop_decision"]
    )  # fmt: skip
    rolled = next(b for b in plain if b["type"] == "rolled_back")
    assert (rolled["data"]["version"], rolled["data"]["from_version"]) == (v1, v2)
    assert rolled["data"]["reason"] == "worse live"
    envelopes = [r for r in rx.received if r.path == "/hook/ce"]
    assert [json.loads(r.body)["type"] for r in envelopes] == [
        "io.keel.promoted", "io.keel.promoted", "io.keel.alert_fired",
    ]  # fmt: skip
    for r in envelopes:
        assert r.headers["content-type"] == "application/cloudevents+json"
        env = json.loads(r.body)
        assert env["specversion"] == "1.0"
        assert env["id"] == r.headers["webhook-id"]
        assert env["source"] == "/keel/model/wh_all"
        verify_signature(secret, r.headers, r.body, now=time.time())
    assert len(hooks.deliveries(hook_id=every.id)) == len(plain), (  # what came and what was made
        [d.event for d in hooks.deliveries(hook_id=every.id)],
        kinds,
    )
    assert {d.status for d in hooks.deliveries(hook_id=ce.id)} == {"delivered"}
    hooks.remove(every.id)
    hooks.remove(ce.id)


def test_retry_after_is_honoured_and_attempts_are_bounded(world: dict[str, Any]) -> None:
    """A 429 with Retry-After: 120 waits 120 s, not the backoff; a receiver that always fails
    gets max_attempts attempts and the delivery is marked failed with the last answer."""
    models, datasets = world["models"], world["datasets"]
    hooks = HookStore(models.db)
    with receiver([(429, {"Retry-After": "120"}), (503, {}), (503, {})]) as rx:
        hook = hooks.add(rx.url, ["version_registered"])
        register(models, datasets, "wh_bounded", world["trained"])
        dispatcher = Dispatcher(models.db, base_backoff_s=1, max_attempts=3)
        dispatcher.run_once(now=T0)
        (d,) = hooks.deliveries(hook_id=hook.id)
        assert d.next_attempt_at == T0 + dt.timedelta(seconds=120)
        assert dispatcher.run_once(now=T0 + dt.timedelta(seconds=119)).attempted == 0
        dispatcher.run_once(now=T0 + dt.timedelta(seconds=120))
        dispatcher.run_once(now=T0 + dt.timedelta(seconds=200))
        after = dispatcher.run_once(now=T0 + dt.timedelta(days=1))

    (d,) = hooks.deliveries(hook_id=hook.id)
    assert (d.status, d.attempts, d.last_status_code) == ("failed", 3, 503)
    assert d.last_error == "HTTP 503 (gave up after 3 attempts)"
    assert after.attempted == 0
    assert len(rx.received) == 3
    hooks.remove(hook.id)


def test_a_receiver_that_is_down_is_retried_and_named_in_the_table(world: dict[str, Any]) -> None:
    """Connection refused is an attempt like a 500: recorded with the error, retried later."""
    models, datasets = world["models"], world["datasets"]
    hooks = HookStore(models.db)
    with receiver() as rx:
        url = rx.url
    hook = hooks.add(url, ["version_registered"])  # the port is closed now
    register(models, datasets, "wh_down", world["trained"])
    Dispatcher(models.db, base_backoff_s=7, timeout_s=2).run_once(now=T0)

    (d,) = hooks.deliveries(hook_id=hook.id)
    assert (d.status, d.attempts, d.last_status_code) == ("pending", 1, None)
    assert d.last_error is not None
    assert d.last_error.startswith("ConnectError")
    assert d.next_attempt_at == T0 + dt.timedelta(seconds=7)
    hooks.remove(hook.id)
    (d,) = hooks.deliveries(hook_id=hook.id)
    assert (d.status, d.last_error) == ("failed", "the hook was removed")


def test_two_dispatchers_deliver_each_message_once(world: dict[str, Any]) -> None:
    """Two dispatchers (two replicas) on one database: while one holds the lease the other
    does nothing; the message is sent once whichever passes run after."""
    models, datasets = world["models"], world["datasets"]
    hooks = HookStore(models.db)
    with receiver() as rx:
        hook = hooks.add(rx.url, ["version_registered"])
        register(models, datasets, "wh_once", world["trained"])
        a, b = Dispatcher(models.db), Dispatcher(models.db)
        assert a.lease.acquire()
        blocked = b.run_once()
        a.lease.release()
        passes = [b.run_once(), a.run_once(), b.run_once()]

    assert not blocked.held
    assert blocked.attempted == 0
    assert [p.delivered for p in passes] == [1, 0, 0]
    assert len(rx.received) == 1
    hooks.remove(hook.id)


def test_the_command_line_adds_lists_masked_and_refuses_bad_urls(world: dict[str, Any]) -> None:
    """`keel hooks add/list/deliveries/remove`: the secret never shows after creation."""
    env = {"KEEL_HOME": str(world["home"]), "PATH": str(Path(sys.executable).parent)}
    secret = new_secret()
    keel = [sys.executable, "-m", "keel"]

    def run(
        *args: str, input_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*keel, *args], capture_output=True, text=True, env={**env, **(input_env or {})},
            timeout=60, check=False,
        )  # fmt: skip

    added = run("hooks", "add", "--events", "promoted,alert_fired", "--url", "https://crm.example.com/keel", "--json",
                input_env={"KEEL_HOOK_SECRET": secret})  # fmt: skip
    assert added.returncode == 0, added.stderr
    hook = json.loads(added.stdout)
    listed = run("hooks", "list")
    bad = run("hooks", "add", "--events", "promoted", "--url", "ftp://crm.example.com/x")
    unknown = run("hooks", "add", "--events", "deployed", "--url", "https://crm.example.com/x")
    deliveries = run("hooks", "deliveries", "--json")
    one_pass = run("hooks", "run", "--once", "--json")  # no new event: nothing made or sent
    removed = run("hooks", "remove", str(hook["id"]))

    assert secret not in added.stdout + listed.stdout + listed.stderr
    assert hook["secret"] == f"whsec_****{secret[-4:]}"
    assert f"secret whsec_****{secret[-4:]}" in listed.stdout
    assert bad.returncode == 1
    assert "has the scheme 'ftp'; expected http or https" in bad.stderr
    assert unknown.returncode == 1
    assert "Unknown event(s) ['deployed']" in unknown.stderr
    assert deliveries.returncode == 0
    assert isinstance(json.loads(deliveries.stdout), list)
    assert removed.returncode == 0
    assert one_pass.returncode == 0, one_pass.stderr
    assert json.loads(one_pass.stdout)["made"] == 0


def test_a_bad_secret_is_refused_without_being_shown(world: dict[str, Any]) -> None:
    """A secret not in whsec_<base64> form is refused, and the message does not echo it."""
    hooks = HookStore(world["models"].db)
    with pytest.raises(ConfigError) as exc:
        hooks.add("https://crm.example.com/keel", ["promoted"], secret="hunter2-plaintext")
    assert "hunter2" not in str(exc.value)
    assert str(exc.value).startswith("The webhook secret does not start with 'whsec_'")
