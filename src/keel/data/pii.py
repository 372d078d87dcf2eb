"""Detectors of personal data in column names and values. They suggest; they never apply.

Card numbers are confirmed with the Luhn checksum and IBANs with ISO 13616's mod-97 check,
so a column of order numbers that merely looks like card numbers is not flagged.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

FORMAT_PATTERNS: dict[str, str] = {
    "email": r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$",
    "phone": r"^\+?[0-9(][0-9 ().-]{6,18}[0-9]$",
    "ip": r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
    "iban": r"^[A-Z]{2}[0-9]{2}[A-Z0-9 ]{11,40}$",
    "card": r"^[0-9][0-9 -]{11,21}[0-9]$",
    "date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
}
"""Regular expressions (Rust regex syntax, used by Polars) for the contract's `format` key."""

NAME_HEADERS = {
    "name", "first_name", "firstname", "last_name", "lastname", "surname", "full_name",
    "fullname", "customer_name", "given_name", "family_name", "middle_name", "cardholder",
    "card_holder", "holder_name", "contact_name", "first", "last", "forename", "forenames",
    "given_names", "maiden_name", "nickname", "surnames", "first_names", "last_names",
}  # fmt: skip
"""Headers (lower case, runs of other characters as `_`) of columns that hold people's names."""

BIRTH_DATE_HEADERS = {
    "dob", "d_o_b", "date_of_birth", "birth_date", "birthdate", "birthday", "birth_day",
    "born", "born_on", "birth_dt", "date_birth", "dateofbirth",
}  # fmt: skip
"""Headers of columns that hold dates of birth: a quasi-identifier that alone narrows a person
down to a few hundred; generalized to the year of birth, it keeps the age's use."""

_RE = {k: re.compile(v) for k, v in FORMAT_PATTERNS.items()}
_SHARE = 0.9  # share of sampled values that must look alike before a suggestion is made


@dataclass(frozen=True)
class PiiFinding:
    """A suggestion that a column holds personal data, with the evidence."""

    kind: str  # email, phone, card, iban, ip, name, birth_date
    share: float
    method: str  # the anonymization it suggests
    to: str | None = None  # for `generalize` of a date-time: the unit it is cut to
    from_header: bool = False

    @property
    def policy(self) -> str:
        """The suggested `anonymize` value, as YAML."""
        return f"{{method: {self.method}" + (f", to: {self.to}}}" if self.to else "}")

    def describe(self, column: str) -> str:
        evidence = "its header" if self.from_header else f"{self.share:.0%} of sampled values"
        return (
            f"suggested: PII ({self.kind}, from {evidence}); to anonymize set "
            f"`role: pii` and `anonymize: {self.policy}` on {column!r}"
        )


def luhn_valid(number: str) -> bool:
    """The Luhn checksum of a card number (spaces and dashes ignored).

    >>> luhn_valid("4111 1111 1111 1111"), luhn_valid("4111 1111 1111 1112")
    (True, False)
    """
    digits = [int(ch) for ch in number if ch.isdigit()]
    if not 12 <= len(digits) <= 19 or len(digits) != sum(ch.isalnum() for ch in number):
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(value: str) -> bool:
    """ISO 13616 mod-97 check of an IBAN (spaces ignored).

    >>> iban_valid("GB82 WEST 1234 5698 7654 32"), iban_valid("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    s = value.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def _ip_valid(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "email": (lambda v: bool(_RE["email"].match(v)), "pseudonymize"),
    "card": (luhn_valid, "mask"),
    "iban": (iban_valid, "mask"),
    "ip": (_ip_valid, "pseudonymize"),
    "phone": (
        lambda v: bool(_RE["phone"].match(v)) and sum(ch.isdigit() for ch in v) >= 8,
        "mask",
    ),
}


def detect_pii(
    column: str, sample: Sequence[str], *, column_type: str = "string"
) -> PiiFinding | None:
    """Look at a column's header and a sample of its text values for personal data.

    Names are found by header in text columns; dates of birth by header in date-time columns
    (generalized to the year) and text ones (dropped: their spelling is not known). Values are
    sampled only in text columns.

    >>> detect_pii("Date of Birth", [], column_type="datetime").policy
    '{method: generalize, to: year}'
    """
    header = re.sub(r"[^a-z]+", "_", column.lower()).strip("_")
    text = column_type in ("string", "category")
    if header in NAME_HEADERS and text:
        return PiiFinding("name", 1.0, "drop", from_header=True)
    if header in BIRTH_DATE_HEADERS and column_type == "datetime":
        return PiiFinding("birth_date", 1.0, "generalize", to="year", from_header=True)
    if header in BIRTH_DATE_HEADERS and text:
        return PiiFinding("birth_date", 1.0, "drop", from_header=True)
    if not text:
        return None
    values = [v.strip() for v in sample if v is not None and v.strip()]
    if not values:
        return None
    for kind, (check, method) in _CHECKS.items():
        hits = sum(1 for v in values if check(v))
        if hits / len(values) >= _SHARE:
            return PiiFinding(kind, hits / len(values), method)
    return None
