"""Served labels keep the type of the training target (ints stay ints, bools stay bools)."""

from __future__ import annotations

import pytest

from keel.data import Column, Contract
from keel.serve.runtime import typed_classes


def contract_with_target(kind: str) -> Contract:
    return Contract(
        "c",
        (Column("x", "float"), Column("y", kind, role="target")),  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("kind", "stored", "served"),
    [
        ("int", ["0", "1"], [0, 1]),
        ("int", [0, 1], [0, 1]),
        ("bool", ["False", "True"], [False, True]),
        ("bool", [False, True], [False, True]),
        ("float", ["1.0", "2.5"], [1.0, 2.5]),
        ("category", ["0", "1"], ["0", "1"]),
        ("string", ["high", "low"], ["high", "low"]),
    ],
)
def test_classes_take_the_type_of_the_target_column(
    kind: str, stored: list[object], served: list[object]
) -> None:
    """Reports store classes as text; the contract's target type gives them back their type."""
    got = typed_classes(stored, contract_with_target(kind), "y")

    assert got == served
    assert [type(c) for c in got] == [type(c) for c in served]


def test_classes_that_do_not_parse_stay_as_stored() -> None:
    """A target declared int whose stored classes are not whole numbers is left alone."""
    assert typed_classes(["a", "b"], contract_with_target("int"), "y") == ["a", "b"]
    assert typed_classes(["0", "1"], contract_with_target("int"), None) == ["0", "1"]
