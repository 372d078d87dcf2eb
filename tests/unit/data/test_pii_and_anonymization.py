"""PII detectors and anonymization: pseudonyms join, bands generalize, masks keep the tail."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from keel.data import (
    anonymize_frame,
    contract_from_dict,
    detect_pii,
    iban_valid,
    k_anonymity,
    luhn_valid,
)


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["ana@example.com", "b@x.org"], "email"),
        (["4111 1111 1111 1111", "5500-0000-0000-0004"], "card"),
        (["GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"], "iban"),
        (["192.168.0.1", "10.0.0.255"], "ip"),
        (["+44 20 7946 0958", "(555) 123-4567"], "phone"),
    ],
)
def test_detectors(values: list[str], kind: str) -> None:
    """Each detector recognizes its kind of value."""
    finding = detect_pii("col", values)

    assert finding is not None
    assert finding.kind == kind


def test_numbers_failing_luhn_are_not_cards() -> None:
    """Order numbers of card length that fail Luhn are not flagged as cards."""
    finding = detect_pii("order", ["4111 1111 1111 1112", "4111 1111 1111 1113"])

    assert not luhn_valid("4111 1111 1111 1112")
    assert finding is None or finding.kind != "card"


def test_iban_checksum() -> None:
    """A changed digit breaks the IBAN check."""
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")


def test_name_headers() -> None:
    """A column called first_name is a name, whatever its values."""
    assert detect_pii("First Name", ["x"]).kind == "name"  # type: ignore[union-attr]


CONTRACT = contract_from_dict(
    {
        "name": "people",
        "quasi_identifiers": ["age", "zip"],
        "columns": {
            "email": {"type": "string", "role": "pii", "anonymize": "pseudonymize"},
            "card": {
                "type": "string",
                "role": "pii",
                "anonymize": {"method": "mask", "keep_last": 4},
            },
            "name": {"type": "string", "role": "pii", "anonymize": "drop"},
            "age": {"type": "int", "anonymize": {"method": "generalize", "band": 10}},
            "zip": {"type": "string", "anonymize": {"method": "generalize", "prefix": 2}},
            "ts": {"type": "datetime", "anonymize": {"method": "generalize", "to": "day"}},
        },
    }
)
PEOPLE = pl.DataFrame(
    {
        "email": ["ana@example.com", "ben@example.com", "ana@example.com"],
        "card": ["4111 1111 1111 1111", "5500 0000 0000 0004", None],
        "name": ["Ana", "Ben", "Ana"],
        "age": [37, 42, 30],
        "zip": ["02139", "02142", "10001"],
        "ts": [dt.datetime(2024, 3, 1, 13, 5)] * 3,
    }
)


def test_anonymize_frame() -> None:
    """Every policy applies; raw values are gone; equal inputs give equal pseudonyms."""
    out = anonymize_frame(PEOPLE, CONTRACT, b"key")

    assert "name" not in out.columns
    assert out["email"][0] == out["email"][2] != out["email"][1]
    assert out["email"][0].startswith("p_")
    assert "ana" not in out["email"][0]
    assert out["card"].to_list() == ["**** **** **** 1111", "**** **** **** 0004", None]
    assert out["age"].to_list() == ["30-39", "40-49", "30-39"]
    assert out["zip"].to_list() == ["02*", "02*", "10*"]
    assert out["ts"][0] == dt.datetime(2024, 3, 1)


def test_pseudonyms_depend_on_the_key() -> None:
    """Another key gives other pseudonyms: without the key nobody can test a guess."""
    a = anonymize_frame(PEOPLE, CONTRACT, b"key-a")["email"][0]
    b = anonymize_frame(PEOPLE, CONTRACT, b"key-b")["email"][0]

    assert a != b


def test_k_anonymity() -> None:
    """k is the size of the smallest group sharing all quasi-identifiers."""
    out = anonymize_frame(PEOPLE, CONTRACT, b"key")

    assert k_anonymity(out, ["age", "zip"]) == 1
    assert k_anonymity(out, ["zip"]) == 1
    assert k_anonymity(out.filter(pl.col("zip") == "02*"), ["zip"]) == 2
