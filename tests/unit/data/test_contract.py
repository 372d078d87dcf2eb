"""Contracts: YAML for people, strict parsing with messages that name the key and value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from keel.data import (
    Column,
    Contract,
    contract_from_dict,
    contract_from_yaml,
    infer_contract,
    load_contract,
)
from keel.store import ContractError, SourceError


class TestYaml:
    def test_round_trip_keeps_every_rule(self) -> None:
        """A contract written as YAML and read back is the same contract with the same hash."""
        frame = pl.DataFrame(
            {
                "id": ["a", "b", "c"],
                "ts": [dt.datetime(2024, 1, d) for d in (1, 2, 3)],
                "x": [1.5, None, 3.0],
                "k": ["u", "v", "u"],
                "email": ["a@x.org", "b@y.org", "c@z.org"],
            }
        )
        contract = infer_contract(frame, id="id", timestamp="ts", pii=["email"])

        again = contract_from_yaml(contract.to_yaml())

        assert again == contract
        assert again.sha256 == contract.sha256

    def test_hash_ignores_comments(self) -> None:
        """Suggestions are comments: they do not change what the contract means."""
        frame = pl.DataFrame({"email": ["a@x.org", "b@y.org"]})
        contract = infer_contract(frame)

        assert "# suggested: PII (email" in contract.to_yaml()
        assert contract_from_yaml(contract.to_yaml()).sha256 == contract.sha256

    def test_load_contract_names_missing_file(self, tmp_path: Path) -> None:
        """A missing contract file says how to make one."""
        with pytest.raises(SourceError) as exc:
            load_contract(tmp_path / "nope.yaml")

        assert str(exc.value) == (
            f"Contract file {str(tmp_path / 'nope.yaml')!r} does not exist; write one with: "
            f"keel data infer SOURCE -o {tmp_path / 'nope.yaml'}"
        )

    def test_invalid_yaml_is_one_line(self, tmp_path: Path) -> None:
        """Broken YAML is reported with the file name and the parser's first line."""
        path = tmp_path / "c.yaml"
        path.write_text("columns: [unclosed\n")

        with pytest.raises(ContractError, match=r"is not valid YAML"):
            load_contract(path)


class TestRules:
    def test_unknown_type_names_column_value_and_choices(self) -> None:
        """An unknown type names the column, the value and the allowed types."""
        with pytest.raises(ContractError) as exc:
            contract_from_dict({"name": "t", "columns": {"age": {"type": "integer"}}})

        assert str(exc.value) == (
            "contract: column 'age': type is 'integer'; expected one of "
            "['int', 'float', 'bool', 'string', 'category', 'datetime']."
        )

    def test_unknown_key_is_refused(self) -> None:
        """A typo in a key is an error, not a silently ignored rule."""
        with pytest.raises(ContractError, match=r"unknown key\(s\) \['maximum'\]"):
            contract_from_dict({"columns": {"age": {"type": "int", "maximum": 3}}})

    def test_pii_role_needs_a_policy(self) -> None:
        """A PII column without an anonymize policy is refused with the fix."""
        with pytest.raises(ContractError, match=r"has role 'pii' but no 'anonymize' policy"):
            contract_from_dict({"columns": {"email": {"type": "string", "role": "pii"}}})

    def test_generalize_needs_its_parameter(self) -> None:
        """Generalizing a number needs a band width."""
        with pytest.raises(ContractError, match=r"needs 'band'"):
            contract_from_dict(
                {"columns": {"age": {"type": "int", "anonymize": {"method": "generalize"}}}}
            )

    def test_quasi_identifier_must_be_a_column(self) -> None:
        """A quasi-identifier that is not a column is refused, listing the columns."""
        with pytest.raises(ContractError, match=r"quasi-identifier 'zip', which is not a column"):
            Contract("t", (Column("age", "int"),), quasi_identifiers=("zip",))

    def test_datetime_bounds_parse_from_iso_text(self) -> None:
        """Date-time bounds are written as ISO text."""
        contract = contract_from_dict(
            {"columns": {"ts": {"type": "datetime", "min": "2024-01-01 00:00:00"}}}
        )

        assert contract.column("ts").min == dt.datetime(2024, 1, 1)

    def test_bad_share_must_be_a_share(self) -> None:
        """max_bad_share outside 0..1 is refused."""
        with pytest.raises(
            ContractError, match=r"max_bad_share is 5; expected a number from 0 to 1"
        ):
            contract_from_dict({"max_bad_share": 5, "columns": {"a": {"type": "int"}}})
