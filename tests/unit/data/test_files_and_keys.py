"""Headerless files, repeated header names, PII hints for names and birth dates, new contract keys."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from keel.data import (
    anonymize_frame,
    contract_from_dict,
    contract_from_yaml,
    detect_pii,
    infer_contract,
    read_source,
)
from keel.store import ContractError, SourceError


class TestHeaders:
    def test_repeated_header_names_are_refused_with_their_positions(self, tmp_path: Path) -> None:
        """A header naming a column twice is an error naming the name and its positions."""
        path = tmp_path / "export.csv"
        path.write_text("id,amount,date,amount,note\n1,2.5,2024-01-01,3.0,x\n")

        with pytest.raises(SourceError) as exc:
            read_source(path)

        assert str(exc.value) == (
            f"Data file {str(path)!r} has a header that repeats 'amount' at columns 2, 4; "
            "expected each column name once. Rename them in the file's header line."
        )

    def test_headerless_file_is_read_with_the_given_names(self, tmp_path: Path) -> None:
        """--no-header --names reads the first line as data, under the names given."""
        path = tmp_path / "raw.csv"
        path.write_text("1,north,2.5\n2,south,3.5\n")

        frame = read_source(path, header=False, names=["id", "region", "amount"]).frame

        assert frame.columns == ["id", "region", "amount"]
        assert frame["id"].to_list() == ["1", "2"]

    def test_headerless_file_without_names_gets_numbered_columns(self, tmp_path: Path) -> None:
        """Without names, columns are column_1, column_2, ... in file order."""
        path = tmp_path / "raw.csv"
        path.write_text("1,north\n")

        assert read_source(path, header=False).frame.columns == ["column_1", "column_2"]

    def test_wrong_number_of_names_says_both_counts(self, tmp_path: Path) -> None:
        """Two names for three columns is refused with both counts."""
        path = tmp_path / "raw.csv"
        path.write_text("1,north,2.5\n")

        with pytest.raises(SourceError, match=r"has 3 columns but 2 names were given"):
            read_source(path, header=False, names=["id", "region"])

    def test_names_with_a_header_are_refused(self, tmp_path: Path) -> None:
        """Names are for headerless files only; with a header they would silently rename."""
        path = tmp_path / "raw.csv"
        path.write_text("a\n1\n")

        with pytest.raises(SourceError, match=r"pass --no-header too"):
            read_source(path, names=["x"])

    def test_header_key_round_trips_and_is_absent_by_default(self) -> None:
        """`header: false` is written and read back; contracts with a header do not show the key."""
        c = contract_from_dict({"name": "t", "header": False, "columns": {"a": {"type": "int"}}})
        plain = contract_from_dict({"name": "t", "columns": {"a": {"type": "int"}}})

        assert not contract_from_yaml(c.to_yaml()).header
        assert "header" not in plain.to_yaml()


class TestPiiHints:
    @pytest.mark.parametrize(
        "header", ["first", "Last", "first_name", "Surname", "FORENAME", "last name"]
    )
    def test_name_headers_are_suggested_for_dropping(self, header: str) -> None:
        """Columns headed like a person's name are flagged from the header alone."""
        finding = detect_pii(header, ["Ana", "Ben"])

        assert finding is not None
        assert (finding.kind, finding.method) == ("name", "drop")

    def test_birth_dates_are_suggested_for_generalizing_to_the_year(self) -> None:
        """A date-of-birth column is inferred as datetime with a hint to keep only the year."""
        frame = pl.DataFrame({"dob": ["1990-05-17", "1984-11-02"], "birth_date": ["x", "y"]})

        c = infer_contract(frame)
        applied = infer_contract(frame, pii=["dob"])

        assert "anonymize: {method: generalize, to: year}" in (c.column("dob").suggestion or "")
        assert "PII (birth_date, from its header)" in (c.column("birth_date").suggestion or "")
        anon = applied.column("dob").anonymize
        assert anon is not None
        assert (anon.method, anon.to) == ("generalize", "year")

    def test_numbers_headed_first_are_not_names(self) -> None:
        """A numeric column called `first` is not flagged: names are text."""
        assert infer_contract(pl.DataFrame({"first": [1, 2, 3]})).column("first").suggestion is None


def test_dates_are_generalized_to_their_year() -> None:
    """`anonymize: {to: year}` keeps January 1 of the year of each date-time."""
    c = contract_from_dict(
        {
            "name": "t",
            "columns": {
                "dob": {
                    "type": "datetime",
                    "role": "pii",
                    "anonymize": {"method": "generalize", "to": "year"},
                }
            },
        }
    )
    frame = pl.DataFrame({"dob": [dt.datetime(1990, 5, 17, 8), None]})

    out = anonymize_frame(frame, c, b"k")

    assert out["dob"].to_list() == [dt.datetime(1990, 1, 1), None]


class TestKeys:
    def test_empty_category_list_says_what_to_do(self) -> None:
        """`categories: []` is refused with the two ways out."""
        with pytest.raises(ContractError) as exc:
            contract_from_dict(
                {"name": "t", "columns": {"a": {"type": "string", "categories": []}}}
            )

        assert str(exc.value) == (
            "contract: column 'a': categories is []; expected a non-empty list. "
            "Remove the key to allow any text, or list the allowed values."
        )

    def test_unique_across_versions_needs_an_id(self) -> None:
        """The flag on a column that is not unique is refused with the fix."""
        with pytest.raises(ContractError, match=r"unique_across_versions needs an id column"):
            contract_from_dict(
                {"name": "t", "columns": {"a": {"type": "int", "unique_across_versions": True}}}
            )

    def test_timezone_only_on_date_times(self) -> None:
        """A zone on a number column is refused."""
        with pytest.raises(ContractError, match=r"expected it only on a datetime column"):
            contract_from_dict({"name": "t", "columns": {"a": {"type": "int", "timezone": "UTC"}}})


def test_contracts_without_the_new_keys_keep_their_yaml_and_hash() -> None:
    """header, timezone and unique_across_versions are written only when set: old hashes hold."""
    c = contract_from_dict(
        {
            "name": "t",
            "columns": {
                "id": {"type": "int", "role": "id", "unique": True},
                "k": {"type": "category", "categories": ["a"]},
                "ts": {"type": "datetime"},
            },
        }
    )

    text = c.to_yaml(comments=False)

    assert "header" not in text
    assert "timezone" not in text
    assert "unique_across_versions" not in text
    assert "unseen: reject" in text  # the default spelling, as contracts were written before
