"""`keel data` on files as they arrive: no header, repeated names, new months, ids seen before."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from keel.cli import main
from keel.data import DatasetStore, contract_from_dict, load_contract

pytestmark = pytest.mark.integration


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_SECRET_KEY", "cli-test-key")
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


CALLS = "\n".join(
    f"{i},{['may', 'jun'][i % 2]},{i % 5},{100 + 7 * i}.5,2024-0{5 + i % 2}-0{1 + i % 9}T10:00:00+02:00"
    for i in range(60)
)


def test_headerless_file_infer_check_ingest(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-header --names infers a contract that says so; check and ingest then read it alone."""
    (workdir / "calls.csv").write_text(CALLS + "\n")
    later = "\n".join(
        ["100,sep,1,99.5,2024-09-01T09:00:00Z", "101,may,2,10.0,2024-09-02T09:00:00Z"]
    )
    (workdir / "later.csv").write_text(later + "\n")

    code, out, err = run(
        capsys, "data", "infer", "calls.csv", "--no-header", "--names",
        "call_id,month,calls,balance,called_at", "--id", "call_id", "-o", "c.yaml", "--json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    contract = load_contract(workdir / "c.yaml")
    assert not contract.header
    assert contract.names == ["call_id", "month", "calls", "balance", "called_at"]
    assert contract.column("called_at").type == "datetime"

    code, out, _ = run(capsys, "data", "check", "later.csv", "-c", "c.yaml", "--json")
    report = json.loads(out)
    assert (code, report["bad_rows"]) == (0, 0)
    assert report["unseen_categories"] == {"month": {"sep": 1}}
    assert {"rule": "range", "column": "balance", "expected": "between 0 and +inf", "rows": 0} in (
        report["refusals"]
    )

    code, out, _ = run(
        capsys, "data", "ingest", "later.csv", "-c", "c.yaml", "-n", "calls", "--json"
    )
    result = json.loads(out)
    assert (code, result["rows_versioned"]) == (0, 2)
    assert result["unseen_categories"] == {"month": {"sep": 1}}


def test_check_prints_how_many_rows_each_bound_refuses(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The text report has a row per bound, with its refused rows, zero included."""
    (workdir / "a.csv").write_text("hour,share\n1,0.5\n22,0.25\n")
    (workdir / "b.csv").write_text("hour,share\n25,0.5\n3,1.5\n")
    assert run(capsys, "data", "infer", "a.csv", "-o", "c.yaml")[0] == 0

    code, out, _ = run(capsys, "data", "check", "b.csv", "-c", "c.yaml")

    assert code == 1
    assert "rows each rule refuses" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert any("hour │ range │ between 0 and 23 │ 1" in line for line in lines), out
    assert any("share │ range │ between 0 and 1 │ 1" in line for line in lines), out


def test_names_without_no_header_is_a_one_line_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--names alone exits 1 with a line saying to add --no-header."""
    (workdir / "a.csv").write_text("x\n1\n")

    code, _, err = run(capsys, "data", "infer", "a.csv", "--names", "y")

    assert code == 1
    assert "add --no-header" in err
    assert "Traceback" not in err


def test_repeated_header_names_are_a_one_line_error(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A header with `amount` twice is refused by infer, naming both positions."""
    (workdir / "a.csv").write_text("id,amount,amount\n1,2,3\n")

    code, _, err = run(capsys, "data", "infer", "a.csv")

    assert code == 1
    assert "repeats 'amount' at columns 2, 3" in err


def test_ids_seen_in_an_earlier_version_are_quarantined(
    store: DatasetStore, tmp_path: Path
) -> None:
    """With unique_across_versions, a re-sent id is quarantined and the reason names the version."""
    contract = contract_from_dict(
        {
            "name": "orders",
            "max_bad_share": 0.5,
            "columns": {
                "order_id": {"type": "string", "role": "id", "unique": True, "unique_across_versions": True},
                "amount": {"type": "float", "min": 0},
            },
        }
    )  # fmt: skip
    first = store.ingest(
        pl.DataFrame({"order_id": ["a1", "a2", "a3"], "amount": [1.0, 2.0, 3.0]}), contract, "orders"
    ).version  # fmt: skip

    second = store.ingest(
        pl.DataFrame({"order_id": ["a3", "b1", "a1", "b2"], "amount": [3.0, 4.0, 1.5, 5.0]}),
        contract,
        "orders",
    ).version
    q = store.quarantine(second.ref)

    assert (second.rows_versioned, second.rows_quarantined) == (2, 2)
    assert second.quarantine_by_rule == {"duplicate_id_across_versions": 2}
    assert q["source_row"].to_list() == [0, 2]
    assert q["reason"][0] == f"order_id: expected an id not already in {first.ref}"
    assert sorted(store.load(second.ref)["order_id"].to_list()) == ["b1", "b2"]


def test_each_repeated_id_names_the_version_that_holds_it(
    store: DatasetStore, tmp_path: Path
) -> None:
    """Ids from two earlier versions are refused with reasons naming each version."""
    contract = contract_from_dict(
        {
            "name": "orders",
            "max_bad_share": 0.9,
            "columns": {"order_id": {"type": "int", "role": "id", "unique": True, "unique_across_versions": True}},
        }
    )  # fmt: skip
    v1 = store.ingest(pl.DataFrame({"order_id": [1, 2]}), contract, "orders").version
    v2 = store.ingest(pl.DataFrame({"order_id": [3, 4]}), contract, "orders").version

    v3 = store.ingest(pl.DataFrame({"order_id": [4, 1, 5]}), contract, "orders").version
    q = store.quarantine(v3.ref)

    assert q.select("source_row", "reason").rows() == [
        (0, f"order_id: expected an id not already in {v2.ref}"),
        (1, f"order_id: expected an id not already in {v1.ref}"),
    ]
    report = store.check(pl.DataFrame({"order_id": [4, 1, 5]}), contract, name="orders")
    assert [r for r in report.refusals if r["rule"] == "duplicate_id_across_versions"] == [
        {"rule": "duplicate_id_across_versions", "column": "order_id", "expected": f"an id not already in {ref}", "rows": 1}
        for ref in (v3.ref, v2.ref, v1.ref)
    ]  # fmt: skip
