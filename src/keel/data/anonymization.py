"""Anonymization of personal data, driven by the contract's `anonymize` entries.

- pseudonymize: keyed HMAC-SHA256. The same value always maps to the same token (joins still
  work) and nobody without the key can reverse it or test a guess.
- generalize: numbers to bands, text to a prefix, date-times to an hour, day, month or year
  (a date of birth to its year: January 1 of it).
- mask: keep the last few characters, star the rest.
- drop: the column does not reach the dataset version at all.

k-anonymity is the size of the smallest group of rows that share their quasi-identifiers.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import polars as pl

from keel.data.contract import Anonymize, Column, Contract

_TOKEN_HEX = 20  # 80 bits: collisions stay negligible far beyond a billion distinct values


def pseudonymize_values(values: list[Any], key: bytes) -> list[str | None]:
    """HMAC-SHA256 tokens for values (None stays None).

    >>> pseudonymize_values(["ana@example.com", None], b"k")[0][:10]
    'p_375b7390'
    """
    out: list[str | None] = []
    for v in values:
        if v is None:
            out.append(None)
        else:
            digest = hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()
            out.append("p_" + digest[:_TOKEN_HEX])
    return out


def anonymize_frame(frame: pl.DataFrame, contract: Contract, key: bytes) -> pl.DataFrame:
    """Apply every column's `anonymize` policy; the raw values do not survive."""
    exprs: list[pl.Expr] = []
    drop: list[str] = []
    for col in contract.columns:
        if col.anonymize is None or col.name not in frame.columns:
            continue
        if col.anonymize.method == "drop":
            drop.append(col.name)
            continue
        series = frame.get_column(col.name)
        exprs.append(_anonymized(series, col, col.anonymize, key).alias(col.name))
    out = frame.with_columns(exprs) if exprs else frame
    return out.drop(drop) if drop else out


def _anonymized(series: pl.Series, col: Column, policy: Anonymize, key: bytes) -> pl.Expr:
    if policy.method == "pseudonymize":
        # HMAC has no Polars expression; hash each distinct value once in Python.
        uniques = series.drop_nulls().unique()
        tokens = pseudonymize_values(uniques.to_list(), key)
        mapping = pl.DataFrame({"k": uniques, "v": pl.Series(tokens, dtype=pl.String)})
        return pl.lit(
            series.to_frame("k").join(mapping, on="k", how="left", maintain_order="left")["v"]
        )
    if policy.method == "mask":
        text = pl.lit(series).cast(pl.String)
        keep = policy.keep_last
        n = text.str.len_chars()
        head = text.str.slice(0, (n - keep).clip(lower_bound=0)).str.replace_all(
            r"[0-9A-Za-z]", "*"
        )
        return head + text.str.slice((n - keep).clip(lower_bound=0))
    # generalize
    value = pl.lit(series)
    if col.type in ("int", "float"):
        band = policy.band or 10.0
        lo = (value / band).floor() * band
        hi = lo + band - (1 if col.type == "int" else 0)
        if col.type == "int":
            lo_text, hi_text = (e.cast(pl.Int64).cast(pl.String) for e in (lo, hi))
        else:
            lo_text, hi_text = (e.round(6).cast(pl.String) for e in (lo, hi))
        return pl.when(value.is_null()).then(None).otherwise(lo_text + "-" + hi_text)
    if col.type == "datetime":
        unit = {"hour": "1h", "day": "1d", "month": "1mo", "year": "1y"}[policy.to or "day"]
        return value.dt.truncate(unit)
    prefix = policy.prefix or 3
    text = value.cast(pl.String)
    return pl.when(text.is_null()).then(None).otherwise(text.str.slice(0, prefix) + "*")


def k_anonymity(frame: pl.DataFrame, quasi_identifiers: tuple[str, ...] | list[str]) -> int | None:
    """The smallest number of rows that share one combination of quasi-identifiers.

    >>> k_anonymity(pl.DataFrame({"age": ["30-39", "30-39", "40-49"]}), ["age"])
    1
    """
    qis = [q for q in quasi_identifiers if q in frame.columns]
    if not qis or frame.height == 0:
        return None
    return int(frame.group_by(qis).len().get_column("len").min())  # type: ignore[arg-type]
