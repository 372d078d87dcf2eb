"""What a security review of the merged trust work found, each pinned (issue 12)."""

from __future__ import annotations

from typing import Any

import pytest

from keel.registry import says_something
from keel.serve.admin import _shown


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [10, 300, 1000])
def test_a_deeply_nested_value_is_shown_short_in_an_error(depth: int) -> None:
    """orjson writes about 254 levels; deeper values are shown by the contract's bounded repr."""
    text = _shown({"version": _nested(depth)})
    assert isinstance(text, str)
    assert len(text) <= 80


@pytest.mark.parametrize(
    ("reason", "says"),
    [
        (None, False),
        ("", False),
        ("   ", False),
        ("\u00a0\u200b", False),  # no-break space and zero-width space
        ("\u200b\u2060\ufeff\t\n", False),
        ("rollback after the May incident", True),
        ("\u200bok", True),
        ("回滚", True),
    ],
)
def test_a_reason_must_have_a_visible_character(reason: str | None, says: bool) -> None:
    assert says_something(reason) is says
