"""Validation: every rule refuses exactly the rows that break it, and says why."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest

from keel.data import OTHER, Column, Contract, contract_from_dict, validate


def make_contract(**columns: dict[str, object]) -> Contract:
    return contract_from_dict({"name": "t", "columns": columns})


class TestRowRules:
    def test_null_in_required_column(self) -> None:
        """A null where the contract allows none is refused for 'null'."""
        c = make_contract(a={"type": "int"})

        report = validate(pl.DataFrame({"a": [1, None, 3]}), c)

        assert report.bad_rows.tolist() == [1]
        assert report.counts_by_rule == {"null": 1}

    def test_text_that_does_not_parse_is_a_type_failure_not_a_null(self) -> None:
        """'abc' in a number column is 'type'; an empty cell is 'null'."""
        c = make_contract(a={"type": "float"})

        report = validate(pl.DataFrame({"a": ["1.5", "abc", "", " 2 "]}), c)

        assert report.counts_by_check == {"a:type": 1, "a:null": 1}
        assert report.cleaned["a"].to_list() == [1.5, None, None, 2.0]

    def test_missing_markers_are_nulls(self) -> None:
        """NA, null and friends are missing values, allowed in a nullable column."""
        c = make_contract(a={"type": "int", "nullable": True})

        report = validate(pl.DataFrame({"a": ["1", "NA", "null", "N/A"]}), c)

        assert report.bad_rows.tolist() == []
        assert report.cleaned["a"].to_list() == [1, None, None, None]

    def test_fractional_value_in_int_column_is_a_type_failure(self) -> None:
        """2.5 is not a whole number."""
        c = make_contract(a={"type": "int"})

        report = validate(pl.DataFrame({"a": ["2", "2.5", "3.0"]}), c)

        assert report.counts_by_check == {"a:type": 1}

    def test_range(self) -> None:
        """Values outside min..max are refused; the bounds are inclusive."""
        c = make_contract(a={"type": "float", "min": 0, "max": 10})

        report = validate(pl.DataFrame({"a": [0.0, 10.0, -0.1, 10.1]}), c)

        assert report.bad_rows.tolist() == [2, 3]
        assert report.failures[0].expected == "between 0 and 10"

    def test_nan_counts_as_null(self) -> None:
        """NaN in a typed float column is a missing value, not a number that passes the range."""
        c = make_contract(a={"type": "float", "min": 0, "max": 1})

        report = validate(pl.DataFrame({"a": [0.5, float("nan")]}), c)

        assert report.counts_by_check == {"a:null": 1}

    def test_unseen_category_rejected(self) -> None:
        """An unseen category is refused under 'unseen: reject'."""
        c = make_contract(k={"type": "category", "categories": ["a", "b"]})

        report = validate(pl.DataFrame({"k": ["a", "c", " b "]}), c)

        assert report.bad_rows.tolist() == [1]
        assert report.failures[0].examples == [{"row": 1, "value": "c"}]

    def test_unseen_category_mapped_to_other(self) -> None:
        """Under 'unseen: other' an unseen value becomes __other__ and the row is kept."""
        c = make_contract(k={"type": "category", "categories": ["a"], "unseen": "other"})

        report = validate(pl.DataFrame({"k": ["a", "zzz"]}), c)

        assert report.bad_rows.tolist() == []
        assert report.cleaned["k"].to_list() == ["a", OTHER]

    def test_missing_marker_in_typed_category_is_a_null_shown_as_it_arrived(self) -> None:
        """'NA' in a typed category column is a missing value; the example shows 'NA'."""
        c = make_contract(k={"type": "category", "categories": ["a"]})

        report = validate(pl.DataFrame({"k": ["a", "NA", " a "]}), c)

        assert report.counts_by_check == {"k:null": 1}
        assert report.failures[0].examples == [{"row": 1, "value": "NA"}]
        assert report.cleaned["k"].to_list() == ["a", None, "a"]

    def test_case_is_unified_before_checking(self) -> None:
        """'case: lower' turns 'North' into 'north' before the category check."""
        c = make_contract(k={"type": "category", "categories": ["north"], "case": "lower"})

        report = validate(pl.DataFrame({"k": ["North", "NORTH "]}), c)

        assert report.bad_rows.tolist() == []

    def test_format_email(self) -> None:
        """A value that is not an email address is refused for 'format'."""
        c = make_contract(e={"type": "string", "format": "email"})

        report = validate(pl.DataFrame({"e": ["a@b.org", "not-an-email"]}), c)

        assert report.counts_by_check == {"e:format": 1}

    def test_duplicate_ids_refuse_every_occurrence(self) -> None:
        """Two rows with one id: neither can be trusted, both are refused."""
        c = make_contract(id={"type": "string", "unique": True}, x={"type": "int"})

        report = validate(pl.DataFrame({"id": ["a", "b", "a"], "x": [1, 2, 3]}), c)

        assert report.bad_rows.tolist() == [0, 2]
        assert report.counts_by_rule == {"duplicate_id": 2}

    @pytest.mark.parametrize("spread", [1, 10**12], ids=["counted", "hashed"])
    def test_integer_ids_with_nulls(self, spread: int) -> None:
        """Integer ids find the same repeats whether counted (dense) or hashed (sparse)."""
        c = contract_from_dict(
            {
                "duplicate_rows": "allow",
                "columns": {"id": {"type": "int", "unique": True, "nullable": True}},
            }
        )
        ids = [5 * spread, None, 7 * spread, 5 * spread, None, 9 * spread, 7 * spread]

        report = validate(pl.DataFrame({"id": ids}, schema={"id": pl.Int64}), c)

        assert report.bad_rows.tolist() == [0, 2, 3, 6]
        assert report.failures[0].examples[0] == {"row": 0, "value": 5 * spread}

    def test_counted_integer_ids_ignore_exact_repeats(self) -> None:
        """A repeated row is a duplicate_row; its integer id is not also a duplicate_id."""
        c = make_contract(id={"type": "int", "unique": True}, x={"type": "int"})

        report = validate(pl.DataFrame({"id": [1, 2, 1, 2], "x": [1, 2, 1, 3]}), c)

        assert report.counts_by_check == {"id:duplicate_id": 2, "*:duplicate_row": 1}
        assert report.bad_rows.tolist() == [1, 2, 3]

    def test_exact_repeat_is_a_duplicate_row_and_the_first_is_kept(self) -> None:
        """A row repeated exactly: the repeats are refused, the first stays."""
        c = make_contract(id={"type": "string", "unique": True}, x={"type": "int"})

        report = validate(pl.DataFrame({"id": ["a", "b", "a"], "x": [1, 2, 1]}), c)

        assert report.bad_rows.tolist() == [2]
        assert report.counts_by_rule == {"duplicate_row": 1}

    def test_bad_timestamp(self) -> None:
        """A date-time that does not parse is refused for 'timestamp'."""
        c = make_contract(
            ts={"type": "datetime", "role": "timestamp", "datetime_format": "%Y-%m-%d %H:%M:%S"}
        )

        report = validate(pl.DataFrame({"ts": ["2024-01-01 10:00:00", "2024-13-45 99:00:00"]}), c)

        assert report.counts_by_rule == {"timestamp": 1}
        assert report.cleaned["ts"][0] == dt.datetime(2024, 1, 1, 10)

    def test_datetime_range(self) -> None:
        """Date-time bounds apply to typed date-times."""
        c = make_contract(ts={"type": "datetime", "min": "2024-01-01", "max": "2024-12-31"})

        report = validate(
            pl.DataFrame({"ts": [dt.datetime(2024, 6, 1), dt.datetime(2025, 1, 2)]}), c
        )

        assert report.bad_rows.tolist() == [1]

    def test_bool_from_text(self) -> None:
        """yes/no, true/false and 1/0 are booleans; anything else is a type failure."""
        c = make_contract(b={"type": "bool"})

        report = validate(pl.DataFrame({"b": ["yes", "False", "1", "maybe"]}), c)

        assert report.cleaned["b"].to_list() == [True, False, True, None]
        assert report.counts_by_check == {"b:type": 1}

    def test_first_rule_per_row_follows_rule_order(self) -> None:
        """A row that breaks several rules is attributed to the first in RULES order."""
        c = make_contract(
            a={"type": "int", "min": 0, "max": 5}, k={"type": "category", "categories": ["x"]}
        )

        report = validate(pl.DataFrame({"a": ["9", "1"], "k": ["y", "x"]}), c)
        rows, rules, columns = report.first_rules()

        assert rows.tolist() == [0]
        assert rules == ["range"]
        assert columns == ["a"]


class TestFrameRules:
    def test_missing_and_extra_columns_are_schema_issues(self) -> None:
        """Missing and unexpected columns fail the check as a whole, naming them."""
        c = make_contract(a={"type": "int"}, b={"type": "int"})

        report = validate(pl.DataFrame({"a": [1], "z": [2]}), c)

        assert [(i.rule, i.column) for i in report.schema_issues] == [
            ("missing_column", "b"),
            ("extra_column", "z"),
        ]
        assert not report.passed

    def test_extra_columns_may_be_dropped(self) -> None:
        """Under 'extra_columns: drop' an unexpected column is no issue."""
        c = contract_from_dict({"extra_columns": "drop", "columns": {"a": {"type": "int"}}})

        report = validate(pl.DataFrame({"a": [1], "z": [2]}), c)

        assert report.passed
        assert report.cleaned.columns == ["a"]

    def test_incompatible_dtype_is_a_schema_issue(self) -> None:
        """A date-time column where a number is expected cannot be coerced."""
        c = make_contract(a={"type": "float"})

        report = validate(pl.DataFrame({"a": [dt.datetime(2024, 1, 1)]}), c)

        assert report.schema_issues[0].rule == "dtype"
        assert "has dtype Datetime" in report.schema_issues[0].message

    def test_bad_share_over_threshold_fails(self) -> None:
        """The report fails when refused rows exceed max_bad_share."""
        c = contract_from_dict({"max_bad_share": 0.25, "columns": {"a": {"type": "int"}}})

        ok = validate(pl.DataFrame({"a": [1, 2, 3, None]}), c)
        bad = validate(pl.DataFrame({"a": [1, 2, None, None]}), c)

        assert ok.passed
        assert not bad.passed

    def test_pandas_frames_are_accepted(self) -> None:
        """A pandas frame is validated like a Polars one."""
        c = make_contract(a={"type": "int", "min": 0, "max": 3})

        report = validate(pd.DataFrame({"a": [1, 7]}), c)

        assert report.bad_rows.tolist() == [1]

    def test_to_dict_is_json_ready(self) -> None:
        """The report's dict has the stable keys scripts use."""
        c = make_contract(a={"type": "int"})

        out = validate(pl.DataFrame({"a": [1, None]}), c).to_dict()

        assert out["bad_rows"] == 1
        assert out["counts_by_rule"] == {"null": 1}
        assert out["failures"][0]["examples"] == [{"row": 1, "value": None}]

    def test_validate_does_not_mutate_input(self) -> None:
        """The caller's frame is untouched."""
        frame = pl.DataFrame({"a": [" 1 ", "x"]})
        c = make_contract(a={"type": "int"})

        validate(frame, c)

        assert frame["a"].to_list() == [" 1 ", "x"]


@pytest.mark.slow
def test_large_frame_every_failing_row_found() -> None:
    """On 200k rows with scattered faults, the refused rows are exactly the faulty ones."""
    rng = np.random.default_rng(3)
    n = 200_000
    x = rng.uniform(0, 1, n)
    bad = np.sort(rng.choice(n, 500, replace=False))
    x[bad] = 5.0
    c = Contract("t", (Column("x", "float", min=0.0, max=1.0),))

    report = validate(pl.DataFrame({"x": x}), c)

    assert np.array_equal(report.bad_rows, bad)
