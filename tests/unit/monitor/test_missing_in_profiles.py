"""One representation of "missing": the reference profile and window profiles count alike."""

from __future__ import annotations

import numpy as np
import polars as pl

from keel.data import MISSING, Column, Contract
from keel.monitor.drift import DriftConfig, compare_profiles
from keel.monitor.profiles import ProfileSpec, update
from keel.train.features import to_pandas
from keel.train.reference import NumericReference, ReferenceProfile, reference_profile

CONTRACT = Contract(
    name="t",
    columns=(
        Column("region", "category", nullable=True),
        Column("amount", "float", nullable=True),
    ),
)
ROWS = [
    {"region": "north", "amount": 1.0},
    {"region": None, "amount": None},
    {"region": "south", "amount": float("nan")},
    {"region": None, "amount": 4.0},
] * 50


def _reference() -> ReferenceProfile:
    frame = pl.DataFrame(ROWS, schema={"region": pl.String, "amount": pl.Float64})
    x = to_pandas(frame, ["region", "amount"], CONTRACT)
    return reference_profile(x, ["region", "amount"], ["region"], np.full(len(ROWS), 0.3))


def _window(reference: ReferenceProfile) -> dict[str, object]:
    spec = ProfileSpec(("region", "amount"), frozenset({"region"}), reference, "regression", ())
    profile = spec.empty()
    update(profile, spec, ROWS, np.full(len(ROWS), 0.3), ["0.3"] * len(ROWS), np.ones(len(ROWS)))
    return profile


def test_reference_counts_missing_categories_under_the_missing_key() -> None:
    """A category missing in training is counted as MISSING, not as the model input's ""."""
    ref = _reference()

    counts = ref.categories("region")

    assert counts == {"north": 50, "south": 50, MISSING: 100}


def test_reference_and_window_count_missing_the_same_way() -> None:
    """The same rows give the same category counts and numeric nulls (None and NaN alike)."""
    ref = _reference()

    window = _window(ref)

    amount = ref.column("amount")
    assert isinstance(amount, NumericReference)
    assert window["columns"]["region"]["counts"] == ref.categories("region")  # type: ignore[index]
    assert window["columns"]["amount"]["nulls"] == amount.nulls == 100  # type: ignore[index]
    assert window["columns"]["amount"]["counts"] == list(amount.counts)  # type: ignore[index]


def test_a_reference_from_before_counts_empty_string_as_missing() -> None:
    """A stored reference with missing under "" is read as MISSING: no drift on the same mix."""
    ref = _reference()
    old = ref.to_json()  # as stored
    counts = dict(old["columns"]["region"]["counts"])
    counts[""] = counts.pop(MISSING)
    old["columns"]["region"]["counts"] = counts

    report = compare_profiles(old, _window(ref), DriftConfig(min_rows=10))

    region = next(c for c in report.columns if c.name == "region")
    assert region.jensen_shannon == 0.0
    assert not region.drifted
