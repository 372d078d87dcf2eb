"""What the registry hands out about versions and aliases is validated when built."""

from __future__ import annotations

import datetime as dt

import pytest

from keel.registry import AliasState, ModelVersion
from keel.store import ConfigError

T = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)


def version(**overrides: object) -> ModelVersion:
    fields: dict[str, object] = {
        "name": "fraud",
        "version": 3,
        "created_at": T,
        "artifact_sha256": "ab" * 32,
        "artifact_uri": "file:///a",
        "artifact_size": 10,
        "trusted_types": [],
        "contract_sha256": "cd" * 32,
        "dataset_version": None,
        "spec": {},
        "evaluation": {},
        "lineage": {},
        "card_sha256": None,
    }
    return ModelVersion(**{**fields, **overrides})  # type: ignore[arg-type]


def test_a_model_version_keeps_a_real_datetime() -> None:
    """created_at is a timezone-aware datetime; to_dict shows it as ISO text at the edge."""
    v = version()

    assert v.created_at == T
    assert v.to_dict()["created_at"] == "2026-05-01T00:00:00+00:00"


def test_a_naive_creation_time_is_refused() -> None:
    """A creation time without a zone names the field and what was expected."""
    naive = dt.datetime(2026, 5, 1)

    with pytest.raises(ConfigError) as exc:
        version(created_at=naive)

    assert str(exc.value) == (
        f"ModelVersion field 'created_at' is {naive!r}; expected a timezone-aware datetime."
    )


def test_a_version_number_of_zero_is_refused() -> None:
    """Version numbers start at 1."""
    with pytest.raises(ConfigError, match=r"ModelVersion field 'version' is 0; expected a version"):
        version(version=0)


def test_an_alias_weight_outside_the_unit_interval_is_refused() -> None:
    """A canary weight is a share of traffic in (0, 1]."""
    assert AliasState("canary", 2, 0.1, 1).weight == 0.1
    with pytest.raises(ConfigError, match=r"AliasState field 'weight' is 1.5; expected None or"):
        AliasState("canary", 2, 1.5, 1)
