"""The alert store with rules as classes: what fires is returned as stored (time and id), an
alert is never changed in place, and the rule's cool-down holds the next one back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from status_factories import T0, make_status, make_window

from keel.monitor import AlertStore, ErrorRateRule, Monitor
from keel.registry import ModelStore
from keel.store import AlertRuleSection, Database, Settings

NOW = T0 + dt.timedelta(days=10)


@pytest.fixture
def store(database_url: str) -> Iterator[AlertStore]:
    db = Database(database_url)
    yield AlertStore(db)
    db.dispose()


def test_fire_returns_the_stored_alert_and_leaves_the_given_one_alone(store: AlertStore) -> None:
    """The alert a rule raised has no time or id; the stored one returned has both."""
    rule = ErrorRateRule("error_rate", 0.01, cooldown_s=3600)
    [raised] = rule.check(make_status((make_window(0, error_rate=0.5),)))

    stored = store.fire(raised, rule, NOW)

    assert raised.time is None
    assert raised.id is None
    assert stored is not None
    assert stored.time == NOW
    assert stored.id is not None
    assert store.list("fraud") == [stored]


def test_the_same_window_and_the_cool_down_hold_alerts_back(store: AlertStore) -> None:
    """A second alert of the rule for the same window, or within its cool-down, is not fired;
    would_fire says the same without storing anything."""
    rule = ErrorRateRule("error_rate", 0.01, cooldown_s=3600)
    [first] = rule.check(make_status((make_window(0, error_rate=0.5),)))
    [second] = rule.check(make_status((make_window(1, error_rate=0.5),)))
    store.fire(first, rule, NOW)

    assert store.fire(first, rule, NOW + dt.timedelta(days=2)) is None
    assert not store.would_fire(second, rule, NOW + dt.timedelta(minutes=30))
    assert store.would_fire(second, rule, NOW + dt.timedelta(hours=2))
    assert len(store.list("fraud")) == 1


def test_monitor_fires_each_rule_once_and_previews_without_storing(
    models: ModelStore, tmp_path: Path
) -> None:
    """Monitor.fire stores what its rules raise on a status; preview only says so."""
    rule = AlertRuleSection(name="errors", kind="error_rate", threshold=0.01)
    settings = Settings(home=tmp_path, secret_key="k", alert_rules=[rule])
    monitor = Monitor(settings, models)
    status = make_status((make_window(0, error_rate=0.5),))

    previewed = monitor.preview("fraud", status, now=NOW)
    fired = monitor.fire("fraud", status, now=NOW)
    again = monitor.fire("fraud", status, now=NOW)

    assert [a.rule for a in previewed] == ["errors"]
    assert previewed[0].id is None
    assert [a.rule for a in fired] == ["errors"]
    assert fired[0].id is not None
    assert again == []
