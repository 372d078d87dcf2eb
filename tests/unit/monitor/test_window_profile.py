"""The typed window profile: read from its stored JSON (validated), written back unchanged,
and merged exactly as the stored JSON merges."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import numpy as np
import pytest

from keel.monitor.profiles import ProfileSpec, Window, merge, stored, update
from keel.monitor.windowprofile import CategoryCounts, NumericCounts, WindowProfile

REFERENCE = {
    "rows": 100,
    "columns": {
        "amount": {"kind": "numeric", "edges": [0.0, 10.0, 20.0], "counts": [50, 50]},
        "region": {"kind": "categorical", "counts": {"north": 60, "south": 40}},
    },
    "output": {"kind": "numeric", "edges": [0.0, 0.5, 1.0], "counts": [80, 20]},
}
SPEC = ProfileSpec(
    ("amount", "region"), frozenset({"region"}), REFERENCE, "classification", ("0", "1")
)


def stored_profile(seed: int, n: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    rows = [
        {"amount": None if i % 7 == 0 else float(a), "region": str(r)}
        for i, (a, r) in enumerate(
            zip(rng.uniform(-5, 25, n), rng.choice(["north", "south", "east"], n), strict=True)
        )
    ]
    scores = rng.uniform(0, 1, n)
    profile = SPEC.empty()
    update(profile, SPEC, rows, scores, ["1" if s > 0.5 else "0" for s in scores], scores * 9)
    profile["errors"] = seed
    return stored(profile)


def test_a_stored_profile_reads_and_writes_back_unchanged() -> None:
    """`to_json(from_json(x)) == x` for what the profiler stores."""
    data = stored_profile(1, 50)

    profile = WindowProfile.from_json(data)

    assert profile.to_json() == data
    assert isinstance(profile.columns["amount"], NumericCounts)
    assert isinstance(profile.columns["region"], CategoryCounts)
    assert profile.errors == 1
    assert profile.output.scores is not None
    assert sum(profile.output.scores) == 50


def test_typed_merge_equals_the_stored_json_merge() -> None:
    """Adding typed profiles gives what adding their JSON gives (the reader's fast path)."""
    a, b = stored_profile(2, 40), stored_profile(3, 70)

    typed = WindowProfile.from_json(a).merge(WindowProfile.from_json(b))

    assert typed == WindowProfile.from_json(merge(copy.deepcopy(a), b))
    assert typed.rows == 110
    assert typed.errors == 5


def test_a_wrong_field_is_named_with_its_path_and_value() -> None:
    """A corrupt stored profile fails when read, naming where."""
    data = stored_profile(4, 10)
    data["columns"]["amount"]["nulls"] = -2  # type: ignore[index]

    with pytest.raises(ValueError, match="nulls") as bad:
        WindowProfile.from_json(data)

    assert str(bad.value) == (
        "window profile field columns.amount.nulls is -2; expected a count of at least 0."
    )


def test_a_window_is_frozen_and_merges_into_a_new_one() -> None:
    """Windows are values: merging makes a new window; naive start times are refused."""
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    profile = WindowProfile.from_json(stored_profile(5, 20))
    w = Window(start, 3600, 1, "production", "", 20, profile)

    both = w.merge(w)

    assert (both.rows, both.profile.rows, w.rows) == (40, 40, 20)
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.rows = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="naive"):
        Window(start.replace(tzinfo=None), 3600, 1, "production", "", 20, profile)
