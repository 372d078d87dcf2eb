"""Audit events and alias moves: typed, frozen, validated when built, JSON only at the edges."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from keel.registry import AliasMove, AuditEvent
from keel.store import ConfigError

T = dt.datetime(2026, 5, 1, 12, 30, tzinfo=dt.UTC)


def record(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": 7,
        "time": T,
        "actor": "loop",
        "action": "alias.set",
        "subject": "model:fraud",
        "reason": "beats production",
        "details": {"alias": "production", "version": 3, "from_version": 2, "roc_auc": 0.91},
    }
    return {**row, **overrides}


class TestAuditEvent:
    def test_a_stored_row_becomes_an_event_with_a_real_datetime(self) -> None:
        """The time stays a timezone-aware datetime; alias and versions come from the details."""
        event = AuditEvent.from_record(record())

        assert (event.time, event.alias, event.version, event.from_version) == (
            T,
            "production",
            3,
            2,
        )
        assert event.details["roc_auc"] == 0.91

    def test_json_has_the_shape_the_cli_printed(self) -> None:
        """to_json gives the keys and ISO time `keel audit --json` always printed."""
        assert AuditEvent.from_record(record()).to_json() == {
            "time": "2026-05-01T12:30:00+00:00",
            "action": "alias.set",
            "subject": "model:fraud",
            "alias": "production",
            "version": 3,
            "from_version": 2,
            "actor": "loop",
            "reason": "beats production",
            "details": {"alias": "production", "version": 3, "from_version": 2, "roc_auc": 0.91},
        }

    def test_round_trips_through_json(self) -> None:
        """from_json(to_json()) gives the same event back."""
        event = AuditEvent.from_record(record(reason=None))

        assert AuditEvent.from_json(event.to_json()) == event

    def test_is_frozen(self) -> None:
        """An event cannot be changed after it is built, nor its details."""
        event = AuditEvent.from_record(record())

        with pytest.raises(dataclasses.FrozenInstanceError):
            event.action = "alias.delete"  # type: ignore[misc]
        with pytest.raises(TypeError):
            event.details["roc_auc"] = 1.0  # type: ignore[index]

    def test_a_naive_time_is_refused_by_field_value_and_expectation(self) -> None:
        """A time without a timezone is an error naming the field and what was expected."""
        naive = dt.datetime(2026, 5, 1, 12, 30)

        with pytest.raises(ConfigError) as exc:
            AuditEvent(time=naive, action="alias.set", subject="model:m", actor="user")

        assert str(exc.value) == (
            f"AuditEvent field 'time' is {naive!r}; expected a timezone-aware datetime."
        )

    def test_a_bad_version_is_refused(self) -> None:
        """A version that is not a whole number from 1 names the field and the value."""
        with pytest.raises(ConfigError, match=r"field 'version' is True; expected a version"):
            AuditEvent(T, "alias.set", "model:m", "user", version=True)

    def test_json_with_text_for_a_time_is_refused(self) -> None:
        """from_json refuses a time that is not ISO 8601, naming the value."""
        data = {**AuditEvent.from_record(record()).to_json(), "time": "yesterday"}

        with pytest.raises(ConfigError, match=r"field 'time' is 'yesterday'"):
            AuditEvent.from_json(data)

    def test_a_dataset_event_names_no_alias_or_version(self) -> None:
        """Events about other subjects carry their details, with alias and versions None."""
        event = AuditEvent.from_record(
            record(action="dataset.ingest", subject="dataset:tx@ab12", details={"rows_in": 5})
        )

        assert (event.alias, event.version, event.from_version) == (None, None, None)


class TestAliasMove:
    def test_a_move_is_an_audit_event_with_its_alias(self) -> None:
        """An alias move is an AuditEvent whose alias is set; its weight reads the details."""
        move = AliasMove.from_record(
            record(details={"alias": "canary", "version": 3, "weight": 0.1})
        )

        assert isinstance(move, AuditEvent)
        assert (move.alias, move.weight) == ("canary", 0.1)

    def test_an_event_that_moved_no_alias_is_not_a_move(self) -> None:
        """A registration is not an alias move: the error names the action."""
        with pytest.raises(ConfigError, match=r"AliasMove field 'action' is 'model.register'"):
            AliasMove.from_record(record(action="model.register", details={"version": 1}))

    def test_a_move_without_an_alias_is_refused(self) -> None:
        """An alias action with no alias in its details names the missing field."""
        with pytest.raises(ConfigError, match=r"AliasMove field 'alias' is None"):
            AliasMove.from_record(record(details={"version": 1}))
