"""RecordChecker: the per-request check of JSON records against contract columns."""

from __future__ import annotations

from keel.data import OTHER, Column, Contract, RecordChecker

CONTRACT = Contract(
    "people",
    (
        Column("amount", "float"),
        Column("note", "string", role="sensitive"),
        Column("sex", "category", role="sensitive", categories=("F", "M")),
        Column("group", "category", role="sensitive", categories=("a", "b"), unseen="other"),
    ),
)


def test_nested_json_in_a_text_cell_is_refused_naming_the_field() -> None:
    """An object or a list as a cell's value is refused, not logged as its repr."""
    checker = RecordChecker(CONTRACT, ["amount", "note"])

    clean, errors = checker.check(
        [{"amount": 1.0, "note": {"<b>": 1}}, {"amount": 2.0, "note": ["x"]}]
    )

    assert clean == []
    assert [(e.row, e.field, e.rule) for e in errors] == [(0, "note", "type"), (1, "note", "type")]
    assert errors[0].expected == "a single value (string), not a nested object or list"


def test_text_longer_than_the_limit_is_refused() -> None:
    """Free text is accepted up to 1,000 characters and refused past it."""
    checker = RecordChecker(CONTRACT, ["note"])

    clean, errors = checker.check([{"note": "x" * 1000}, {"note": "x" * 1001}])

    assert clean == [{"note": "x" * 1000}]
    # the value is shown cut short: an error message never echoes a megabyte back
    shown = "'" + "x" * 57 + "..." + "x" * 58 + "'"
    assert errors[0].message() == (
        f"row 1: field 'note' has value {shown}; expected text of at most 1,000 characters"
    )


def test_optional_columns_may_be_absent_but_are_checked_when_given() -> None:
    """An optional column left out is left out; given, it meets its categories and unseen policy."""
    checker = RecordChecker(CONTRACT, ["amount", "sex", "group"], optional=["sex", "group"])

    clean, errors = checker.check(
        [
            {"amount": 1.0},
            {"amount": 2.0, "sex": "F", "group": "<img src=x onerror=alert(1)>"},
            {"amount": 3.0, "sex": "<img src=x onerror=alert(1)>"},
        ]
    )

    assert clean == [{"amount": 1.0}, {"amount": 2.0, "sex": "F", "group": OTHER}]
    assert [(e.row, e.field, e.rule) for e in errors] == [(2, "sex", "category")]
