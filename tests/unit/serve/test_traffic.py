"""The traffic policy: which loaded version answers, and which rows a segment's version gets."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from keel.serve.traffic import Served, by_segment, choose, routes_by_segment
from keel.store import ModelNotFoundError


def _runtime(version: int, segment: str | None = None) -> Any:
    return SimpleNamespace(resolved=SimpleNamespace(version=version), segment=segment)


def _served(canary_weight: float = 0.0, **roles: int) -> Served:
    served = Served("fraud", canary_weight=canary_weight)
    for role, version in roles.items():
        role = role.replace("__", ":")
        served.runtimes[role] = _runtime(version, segment="region")
        served.batchers[role] = f"batcher {role}"  # type: ignore[assignment]
    return served


def test_production_answers_without_a_canary() -> None:
    """No canary loaded: every request goes to production."""
    served = _served(production=1)

    role, runtime, batcher = choose(served, "fraud", "any key")

    assert (role, runtime.resolved.version) == ("production", 1)
    assert batcher is served.batchers["production"]


def test_a_canary_takes_its_share_and_a_key_sticks_to_one_side() -> None:
    """With weight 0.5 some keys go to the canary, and the same key always goes the same way."""
    served = _served(0.5, production=1, canary=2)

    sides = {choose(served, "fraud", f"user{i}")[0] for i in range(40)}
    sticky = {choose(served, "fraud", "user7")[0] for _ in range(10)}

    assert sides == {"production", "canary"}
    assert len(sticky) == 1


def test_a_reference_names_a_role_or_a_version() -> None:
    """`name@canary` and `name@2` pick that version whatever the weight."""
    served = _served(0.0, production=1, canary=2)

    assert choose(served, "fraud@canary", None)[0] == "canary"
    assert choose(served, "fraud@1", None)[0] == "production"


def test_a_version_not_loaded_is_refused_naming_what_is() -> None:
    """The error lists the loaded roles and versions."""
    with pytest.raises(ModelNotFoundError) as info:
        choose(_served(production=1, shadow=3), "fraud@7", None)

    assert str(info.value) == "'fraud@7' is not loaded; loaded: production=1, shadow=3."


def test_rows_of_a_segment_with_a_version_go_to_it() -> None:
    """Indices per role; rows without a segment value, or of a segment with no version of its
    own, stay with the role the policy chose."""
    served = _served(production=1, production__west=2)
    rows = [{"region": "west"}, {"region": "north"}, {}, {"region": "west"}]

    groups = by_segment(served, served.runtimes["production"], "production", rows)

    assert groups == {"production:west": [0, 3], "production": [1, 2]}
    assert by_segment(served, served.runtimes["production"], "production", rows[1:3]) is None
    assert routes_by_segment(served, served.runtimes["production"], "fraud")
    assert not routes_by_segment(served, served.runtimes["production"], "fraud@1")
