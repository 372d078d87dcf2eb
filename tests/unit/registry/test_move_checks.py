"""The arguments of an alias move are checked before anything is read or written."""

from __future__ import annotations

import math

import pytest

from keel.registry import check_alias, check_model_name, check_move, check_reason
from keel.store import ConfigError


class TestCheckMove:
    def test_a_bool_is_not_a_version(self) -> None:
        """`True` is an int in Python; as a version it is refused, naming the field and value."""
        with pytest.raises(ConfigError) as exc:
            check_move("production", True)

        assert str(exc.value) == (
            "Field 'version' is True; expected a version number (a whole number from 1 to 2147483647)."
        )

    @pytest.mark.parametrize("version", [0, -1, 2**31, 1.0, "2", None])
    def test_versions_outside_one_to_int32_are_refused(self, version: object) -> None:
        """Zero, negatives, numbers past the column's range, floats and text are not versions."""
        with pytest.raises(ConfigError, match=r"^Field 'version' is .*; expected a version number"):
            check_move("staging", version)

    @pytest.mark.parametrize("weight", [None, 0, -0.5, 1.5, math.nan, "0.5", True])
    def test_canary_needs_a_number_in_zero_to_one(self, weight: object) -> None:
        """The canary's weight is a number in (0, 1]; a string, a bool and NaN are refused."""
        with pytest.raises(ConfigError) as exc:
            check_move("canary", 2, weight=weight)

        assert str(exc.value).startswith(f"Field 'weight' is {weight!r}; the canary alias needs")

    def test_canary_weight_comes_back_as_float(self) -> None:
        """An int weight of 1 is the whole traffic, returned as 1.0."""
        assert check_move("canary", 2, weight=1) == 1.0
        assert check_move("canary", 2, weight=0.25) == 0.25

    @pytest.mark.parametrize("alias", ["production", "shadow", "staging", "production:west"])
    def test_weight_applies_to_the_canary_only(self, alias: str) -> None:
        """A weight on another alias would be stored and never used: it is refused."""
        assert check_move(alias, 1) is None
        with pytest.raises(ConfigError, match=r"applies to the canary alias only"):
            check_move(alias, 1, weight=0.5)


class TestCheckReasonAndAlias:
    def test_an_object_is_not_a_reason(self) -> None:
        """A reason must be text (an object once reached the SQL INSERT and came back as a 500)."""
        with pytest.raises(ConfigError) as exc:
            check_reason({"a": 1})

        assert str(exc.value).startswith("Field 'reason' is {'a': 1} (dict); expected text")

    def test_reason_length_is_bounded(self) -> None:
        """A reason is kept in every audit event: at most 2000 characters."""
        assert check_reason("x" * 2000) == "x" * 2000
        assert check_reason(None) is None
        with pytest.raises(ConfigError, match=r"has 2001 characters; expected at most 2000"):
            check_reason("x" * 2001)

    @pytest.mark.parametrize("alias", ["prod", "production:", "production:a b", "", 3])
    def test_unknown_aliases_list_the_known_ones(self, alias: object) -> None:
        """An alias keel does not know is refused with the list of those it does."""
        with pytest.raises(ConfigError, match=r"expected one of \['production', 'staging'"):
            check_alias(alias)


class TestCheckModelName:
    @pytest.mark.parametrize("name", ["m", "m_x", "fraud-eu.v2", "M2"])
    def test_registered_names_pass(self, name: str) -> None:
        """Every name a model can be registered under passes."""
        assert check_model_name(name) == name

    @pytest.mark.parametrize("name", ["", "a b", "m@2", "m\x00", "_m", "x" * 201, None])
    def test_other_names_are_refused_before_the_database(self, name: object) -> None:
        """A NUL byte (PostgreSQL refuses it in text), '@', spaces: refused with the rule."""
        with pytest.raises(ConfigError, match=r"is not allowed; expected letters, digits"):
            check_model_name(name)

    def test_a_nul_in_a_reason_is_refused(self) -> None:
        """PostgreSQL cannot store a NUL in text: refused by name, not a 500 from the driver."""
        with pytest.raises(ConfigError, match=r"^Field 'reason' holds a NUL character"):
            check_reason("a\x00b")
