"""The `keel data` command line: JSON outputs scripts rely on, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from keel.cli import main
from keel.data import load_contract
from keel.data.faults import inject_faults
from keel.demo.simulate import TransactionSimulator

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


@pytest.fixture
def sources(workdir: Path) -> tuple[Path, Path, object]:
    sim = TransactionSimulator(seed=3, n_customers=500)
    train = sim.generate(days=10, per_day=200)
    train.write_csv(workdir / "train.csv")
    from keel.data import infer_contract

    contract = infer_contract(train, id="transaction_id", timestamp="ts", target="is_fraud")
    faulty, truth = inject_faults(
        sim.generate(days=5, per_day=200, start_day=10), contract, rate=0.03, seed=1
    )
    faulty.write_csv(workdir / "new.csv")
    return workdir / "train.csv", workdir / "new.csv", truth


def test_infer_check_ingest_show_diff_quarantine(
    capsys: pytest.CaptureFixture[str], sources: tuple[Path, Path, object], workdir: Path
) -> None:
    """The whole data workflow from the command line, with its stable JSON keys."""
    train, new, truth = sources
    code, out, _ = run(
        capsys,
        "data",
        "infer",
        str(train),
        "-o",
        "c.yaml",
        "--id",
        "transaction_id",
        "--timestamp",
        "ts",
        "--target",
        "is_fraud",
        "--pii",
        "email",
        "--pii",
        "card_number",
        "--pii",
        "customer_name",
        "--ignore",
        "label_available_at",
    )
    assert code == 0, out
    assert load_contract(workdir / "c.yaml").column("email").anonymize is not None

    code, out, _ = run(capsys, "data", "check", str(new), "--contract", "c.yaml", "--json")
    report = json.loads(out)
    assert code == (0 if report["passed"] else 1)
    assert report["bad_rows"] >= len(truth.bad_rows)  # type: ignore[attr-defined]

    code, out, _ = run(capsys, "data", "ingest", str(train), "-c", "c.yaml", "-n", "tx", "--json")
    first = json.loads(out)
    assert code == 0
    assert {
        "version",
        "rows_in",
        "rows_versioned",
        "rows_quarantined",
        "quarantine_by_rule",
    } <= set(first)

    code, out, err = run(
        capsys,
        "data",
        "ingest",
        str(new),
        "-c",
        "c.yaml",
        "-n",
        "tx",
        "--parent",
        f"tx@{first['version']}",
        "--json",
    )
    assert code == 0, err
    second = json.loads(out)
    assert second["rows_in"] == second["rows_versioned"] + second["rows_quarantined"]
    assert second["rows_quarantined"] >= len(truth.bad_rows)  # type: ignore[attr-defined]

    code, out, _ = run(capsys, "data", "versions", "tx", "--json")
    assert [v["version"] for v in json.loads(out)] == [second["version"], first["version"]]

    code, out, _ = run(capsys, "data", "show", f"tx@{second['version']}", "--json")
    shown = json.loads(out)
    assert shown["parents"] == [f"tx@{first['version']}"]
    assert shown["source_sha256"] == second["source_sha256"]

    code, out, _ = run(
        capsys, "data", "diff", f"tx@{first['version']}", f"tx@{second['version']}", "--json"
    )
    assert json.loads(out)["rows_added"] == second["rows_versioned"]

    code, out, _ = run(capsys, "data", "quarantine", f"tx@{second['version']}", "-o", "bad.csv")
    assert code == 0
    bad = pl.read_csv(workdir / "bad.csv", infer_schema=False)
    assert {"source_row", "rule"} <= set(bad.columns)
    injected = set(truth.bad_rows)  # type: ignore[attr-defined]
    assert injected <= {int(r) for r in bad["source_row"]}
    raw = pl.read_csv(new, infer_schema=False)
    row = int(bad["source_row"][0])
    assert bad.row(0)[: raw.width] == raw.row(row)  # as it arrived

    code, out, _ = run(capsys, "data", "show", "tx")
    assert code == 0
    assert "transform clean" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["data", "check", "missing.csv", "--contract", "c.yaml"],
            "error: Data file 'missing.csv' does not exist; expected a CSV or Parquet file.",
        ),
        (["data", "show", "nope"], "error: No dataset named 'nope'; datasets now: none."),
        (["data", "check", "empty.csv", "--contract", "c.yaml"], "error: Data file"),
        (["data", "ingest", "other.csv", "-c", "c.yaml", "-n", "x"], "does not fit contract"),
        (["data", "check", "train.csv", "--contract", "broken.yaml"], "is not valid YAML"),
        (
            ["data", "ingest", "train.csv", "-c", "c.yaml", "-n", "bad@name"],
            "Dataset name 'bad@name' is not allowed",
        ),
    ],
    ids=[
        "missing-file",
        "unknown-dataset",
        "empty-file",
        "contract-does-not-fit",
        "broken-contract",
        "bad-name",
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], workdir: Path, args: list[str], message: str
) -> None:
    """Every user error is one readable line on stderr, exit code 1, and nothing stored."""
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}).write_csv(workdir / "train.csv")
    run(capsys, "data", "infer", "train.csv", "-o", "c.yaml")
    (workdir / "empty.csv").write_text("")
    pl.DataFrame({"z": [1]}).write_csv(workdir / "other.csv")
    (workdir / "broken.yaml").write_text("columns: [\n")

    code, _out, err = run(capsys, *args)

    assert code == 1
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3  # one logical line, soft-wrapped at most


def test_check_exits_1_when_over_threshold(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    """check fails (exit 1) when the share of bad rows is over the contract's limit."""
    pl.DataFrame({"a": list(range(10))}).write_csv(workdir / "train.csv")
    run(capsys, "data", "infer", "train.csv", "-o", "c.yaml")
    # a never-negative column stays >= 0 (with no top: 999 is not refused)
    pl.DataFrame({"a": [1, 999, -3, -1000]}).write_csv(workdir / "new.csv")

    code, out, _ = run(capsys, "data", "check", "new.csv", "--contract", "c.yaml")

    assert code == 1
    assert "failed: 2 of 4 rows refused" in out


def test_entry_point_and_debug_traceback(workdir: Path) -> None:
    """`python -m keel` works; --debug shows the traceback that is otherwise hidden."""
    env = {**os.environ}
    plain = subprocess.run(
        [sys.executable, "-m", "keel", "data", "show", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    debug = subprocess.run(
        [sys.executable, "-m", "keel", "--debug", "data", "show", "nope"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert plain.returncode == 1
    assert "Traceback" not in plain.stderr
    assert debug.returncode == 1
    assert "Traceback" in debug.stderr
