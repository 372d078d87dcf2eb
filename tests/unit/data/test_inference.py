"""Inference: types, nullability, ranges that never cross zero, categories, formats, PII hints."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from keel.data import infer_contract, validate
from keel.store import ContractError


def test_types_from_text() -> None:
    """Text columns become int, float, bool, date-time or category as their values allow."""
    frame = pl.DataFrame(
        {
            "i": ["1", "2", "3", "4"],
            "f": ["1.5", "2", "NA", "3.25"],
            "b": ["yes", "no", "yes", "no"],
            "t": [
                "2024-01-01 10:00:00",
                "2024-01-02 11:00:00",
                "2024-01-03 12:00:00",
                "2024-01-04 13:00:00",
            ],
            "k": ["a", "b", "a", "b"],
        }
    )

    c = infer_contract(frame)

    assert [(col.name, col.type) for col in c.columns] == [
        ("i", "int"), ("f", "float"), ("b", "bool"), ("t", "datetime"), ("k", "category"),
    ]  # fmt: skip
    assert c.column("t").datetime_format is None  # ISO: every usual spelling is accepted
    assert c.column("f").nullable
    assert not c.column("i").nullable


def test_non_negative_column_stays_non_negative_without_upper_bound() -> None:
    """A column that was never negative stays >= 0, and a larger amount later is not refused."""
    c = infer_contract(pl.DataFrame({"amount": [0.5, 10.0, 100.0]}), tolerance=0.5)

    assert c.column("amount").min == 0.0
    assert c.column("amount").max is None


def test_negative_range_stays_non_positive() -> None:
    """A column that was never positive stays <= 0, with no bound on how negative."""
    c = infer_contract(pl.DataFrame({"loss": [-9.0, -1.0]}), tolerance=0.5)

    assert c.column("loss").max == 0.0
    assert c.column("loss").min is None


def test_inferred_contract_accepts_its_own_data() -> None:
    """Data a contract was inferred from passes it."""
    frame = pl.DataFrame(
        {
            "x": [1.0, 2.0, None],
            "k": ["a", "b", "a"],
            "ts": [dt.datetime(2024, 1, d) for d in (1, 2, 3)],
        }
    )

    assert validate(frame, infer_contract(frame)).bad_rows.tolist() == []


def test_unseen_categories_are_kept_and_reported_and_new_nulls_refused() -> None:
    """An inferred contract keeps unseen categories (reported) and refuses nulls where none were."""
    c = infer_contract(pl.DataFrame({"k": ["a", "b", "a", "b"], "x": [1, 2, 3, 4]}))

    report = validate(pl.DataFrame({"k": ["c", "a", " c "], "x": [1, None, 2]}), c)

    assert c.column("k").unseen == "keep"
    assert report.counts_by_rule == {"null": 1}
    assert report.unseen_categories == {"k": {"c": 2}}
    assert report.cleaned["k"].to_list() == ["c", "a", "c"]


def test_roles() -> None:
    """Named columns get their roles; the id is unique."""
    frame = pl.DataFrame(
        {
            "id": ["a", "b"],
            "ts": [dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 2)],
            "y": [0, 1],
            "seg": ["n", "s"],
            "sex": ["F", "M"],
        }
    )

    c = infer_contract(frame, id="id", timestamp="ts", target="y", segment="seg", sensitive=["sex"])

    assert [col.role for col in c.columns] == ["id", "timestamp", "target", "segment", "sensitive"]
    assert c.column("id").unique


def test_unknown_role_column_is_named() -> None:
    """A role given to a column that does not exist names it and lists the real ones."""
    with pytest.raises(ContractError) as exc:
        infer_contract(pl.DataFrame({"a": [1]}), target="y")

    assert (
        str(exc.value)
        == "Column(s) ['y'] named for a role are not in 'frame'; its columns are ['a']."
    )


def test_timestamp_must_be_datetime() -> None:
    """A timestamp column with numbers is refused with an example of what is expected."""
    with pytest.raises(ContractError, match=r"was named the timestamp but its values are int"):
        infer_contract(pl.DataFrame({"t": [1, 2]}), timestamp="t")


def test_pii_is_suggested_not_applied() -> None:
    """Detected PII becomes a comment; only --pii columns get an anonymize policy."""
    frame = pl.DataFrame(
        {
            "email": ["ana@example.com", "ben@example.org", "cy@example.net"],
            "card": ["4111 1111 1111 1111", "5500 0000 0000 0004", "4012 8888 8888 1881"],
            "name": ["Ana", "Ben", "Cy"],
        }
    )

    suggested = infer_contract(frame)
    applied = infer_contract(frame, pii=["email", "card", "name"])

    assert all(col.anonymize is None for col in suggested.columns)
    assert "PII (email" in (suggested.column("email").suggestion or "")
    assert "PII (card" in (suggested.column("card").suggestion or "")
    assert "PII (name, from its header)" in (suggested.column("name").suggestion or "")
    methods = {col.name: col.anonymize.method for col in applied.columns if col.anonymize}
    assert methods == {"email": "pseudonymize", "card": "mask", "name": "drop"}


def test_empty_frame_is_refused() -> None:
    """No rows, no contract."""
    with pytest.raises(ContractError, match=r"from a frame with no rows"):
        infer_contract(pl.DataFrame({"a": []}))


def test_repeated_rows_refused_only_where_rows_are_unique() -> None:
    """Without an id or timestamp, identical records are legitimate; with one they are a fault."""
    frame = pl.DataFrame({"id": ["a", "b"], "sex": ["F", "F"], "age": [30, 30]})

    assert infer_contract(frame.drop("id")).duplicate_rows == "allow"
    assert infer_contract(frame, id="id").duplicate_rows == "reject"
