"""Feedback labels are cleaned by the target column's rules and checked against the model."""

from __future__ import annotations

from keel.data import Column, Contract
from keel.monitor import LabelChecker, RefusedLabel


def _contract(target: Column) -> Contract:
    return Contract("t", (Column("x", "float"), target))


def test_category_labels_are_trimmed_cased_and_checked_against_the_classes() -> None:
    """' <=50K' is '<=50K'; a case rule applies; anything else is refused by name."""
    target = Column("income", "category", role="target", case="upper", categories=("<=50K", ">50K"))
    checker = LabelChecker(_contract(target), "income", "classification", ["<=50K", ">50K"])

    accepted, refused = checker.check([("a", " <=50K"), ("b", ">50k "), ("c", "banana")])

    assert accepted == [("a", "<=50K"), ("b", ">50K")]
    assert refused == [
        RefusedLabel("c", "banana", "not one of the model's classes: '<=50K', '>50K'")
    ]


def test_missing_labels_are_refused() -> None:
    """null, a missing marker and a blank string are missing, never stored."""
    checker = LabelChecker(
        _contract(Column("y", "int", role="target")), "y", "classification", ["0", "1"]
    )

    accepted, refused = checker.check([("a", None), ("b", "NA"), ("c", "  "), ("d", "1")])

    assert accepted == [("d", "1")]
    assert [r.prediction_id for r in refused] == ["a", "b", "c"]
    assert {r.reason for r in refused} == {"missing label (null or a missing marker)"}


def test_labels_take_the_target_type() -> None:
    """A 0/1 column takes 1, '1' and 1.0 as '1'; a bool column takes 'yes' and 1 as 'True'."""
    ints = LabelChecker(
        _contract(Column("y", "int", role="target")), "y", "classification", ["0", "1"]
    )
    bools = LabelChecker(
        _contract(Column("y", "bool", role="target")), "y", "classification", ["False", "True"]
    )

    got_ints, refused_ints = ints.check([("a", 1), ("b", "1"), ("c", 1.0), ("d", 0.5)])
    got_bools, _ = bools.check([("a", "yes"), ("b", 1), ("c", False)])

    assert got_ints == [("a", "1"), ("b", "1"), ("c", "1")]
    assert refused_ints == [
        RefusedLabel("d", 0.5, "expected a whole number (the rules of target 'y')")
    ]
    assert got_bools == [("a", "True"), ("b", "True"), ("c", "False")]


def test_regression_labels_must_be_numbers() -> None:
    """Numbers and numeric text are accepted; words, booleans and lists are refused."""
    checker = LabelChecker(_contract(Column("y", "float", role="target")), "y", "regression", [])

    accepted, refused = checker.check(
        [("a", 2), ("b", " 3.5 "), ("c", "banana"), ("d", True), ("e", [1])]
    )

    assert accepted == [("a", "2.0"), ("b", "3.5")]
    assert [(r.prediction_id, r.reason) for r in refused] == [
        ("c", "a regression label must be a number"),
        ("d", "a regression label must be a number"),
        ("e", "a label is one value, not a list or an object"),
    ]
