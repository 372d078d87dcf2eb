"""How fast the loop reacts to a shift, and whether it ever acts wrongly: the new design
(`judge = "backtest"`) against the earlier one (`judge = "shadow"`) in the same run.

For each seed, the demo's world: the transaction simulator with its scheduled events (region
shift on day 120, an unseen merchant category on day 150, a new fraud pattern on day 180),
labels arriving late (chargebacks within 0.9-12 days, confirmations after 13.5: the demo's
0.3 x the simulator's delays), a first model trained on January, then traffic replayed day by
day through a real `keel serve` and the loop stepping once per daily window.

Figures, per design (worst over shifts and seeds where it says so):

- `windows_to_promotion`: for each shift with onset day d, the first daily window at which
  production is a version the loop registered after d (a retrained model) and promoted,
  counted from d + 14 (the label delay: the windows before the shift's labels all exist).
  Worst over shifts and seeds. A shift never followed by such a promotion within the run
  counts as the run's last window minus (d + 14), and is listed under `never`.
- `false_promotions`: promotions (by the loop) of a version that is worse than the version it
  replaced on the rows of the following 14 daily windows (or to the run's end, at least 5):
  both versions scored offline on the same logged rows with their ground-truth labels (all
  labels sent at the run's end), the promoted version's ROC AUC below the replaced one's by
  more than `TOLERANCE` (0.01; a smaller gap is noise on this volume).
- `false_rollbacks`: rollbacks (by the loop) of a version that was not worse: on the rows it
  answered as production before the rollback, with ground-truth labels, its ROC AUC is not
  below the version rolled back to by more than `TOLERANCE`.

    .venv/bin/python bench/loop.py --json            # 3 seeds x 2 designs (minutes)
    .venv/bin/python bench/loop.py --seeds 7 --designs backtest
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sklearn.metrics import roc_auc_score

from keel.data import DatasetStore
from keel.demo._run import transactions_contract
from keel.demo._story import (
    EARLIER_POLICY,
    LABEL_DELAY_SCALE,
    LOOP_POLICY,
    TOKEN,
    free_port,
    start_server,
    stop_server,
)
from keel.demo.replay import Replay
from keel.demo.simulate import TransactionSimulator, default_events
from keel.loop import Loop, LoopPolicy
from keel.monitor.compare import paired_difference, score_logged
from keel.monitor.logfiles import read_log
from keel.monitor.performance import labelled
from keel.registry import ModelStore
from keel.serve import Client
from keel.store import ArtifactStore, Database, FakeClock, Settings
from keel.train import spec_from_dict, train

TOLERANCE = 0.01
LABEL_DELAY_WINDOWS = math.ceil(45 * LABEL_DELAY_SCALE)  # 13.5 days: the last labels of a day
AFTER_WINDOWS = 14
MIN_AFTER_WINDOWS = 5
SPEC = {
    "name": "logistic",
    "estimator": "sklearn.linear_model.LogisticRegression",
    "params": {"max_iter": 2000},
    "gates": ["holdout.roc_auc >= 0.7"],
}
DESIGNS: dict[str, dict[str, Any]] = {"shadow": EARLIER_POLICY, "backtest": LOOP_POLICY}
RULES = [
    {"name": "feature_drift", "kind": "drift", "threshold": 1, "windows": 2, "trigger": True,
     "cooldown_s": 7 * 86400},
    {"name": "auc_drop", "kind": "performance", "threshold": 0.03, "trigger": True,
     "cooldown_s": 7 * 86400},
]  # fmt: skip


def _settings(home: Path, policy: dict[str, Any]) -> Settings:
    return Settings(
        home=home, secret_key="bench", window_s=86400, lookback_windows=60,
        alert_rules=RULES, loop=LoopPolicy(**policy), replay_time=True,
        tokens={TOKEN: ["admin", "predict", "feedback", "view"]},
    )  # fmt: skip


def run_one(
    seed: int, design: str, *, first_day: int, last_day: int, per_day: int, progress: Any, task: Any
) -> dict[str, Any]:
    """One world, one design: the loop's acts by day, then judged on ground truth."""
    home = Path(tempfile.mkdtemp(prefix=f"keel-bench-loop-{design}-{seed}-"))
    policy = DESIGNS[design]
    settings = _settings(home, policy)
    sim = TransactionSimulator(seed=seed)
    clock = FakeClock(sim.start.replace(tzinfo=dt.UTC) + dt.timedelta(days=31))
    db = Database(settings.resolved_database_url, clock=clock)
    art = ArtifactStore(settings.resolved_artifacts)
    models, datasets = ModelStore(db, art), DatasetStore(db, art, settings.resolved_secret_key())
    january = sim.generate(days=30, per_day=800)
    ref = datasets.ingest(january, transactions_contract(january), "transactions").version.ref
    train([spec_from_dict(SPEC)], ref, datasets=datasets, models=models, register="fraud")
    models.set_alias("fraud", "production", 1, reason="first model")
    sim.generate(days=first_day - 30, per_day=1, start_day=30)  # the simulator's clock moves on
    loop = Loop(settings, models, datasets, policy=LoopPolicy(**policy))
    port = free_port()
    server = start_server(home, port)
    acts: list[dict[str, Any]] = []
    try:
        with Client(f"http://127.0.0.1:{port}", token=TOKEN) as client:
            replay = Replay(
                client, "fraud", sim, per_day=per_day, label_delay_scale=LABEL_DELAY_SCALE
            )
            for day in range(first_day, last_day):
                replay.day(day)
                now = replay.time_of(day + 1)
                replay.labels_until(now)
                client.flush()
                clock._now = now
                for d in loop.step("fraud", now=now):
                    if d.action in ("promote", "rollback", "shadow", "reject", "canary"):
                        acts.append(
                            {
                                "day": day + 1,
                                "action": d.action,
                                "version": d.version,
                                "reason": d.reason,
                            }
                        )
                progress.update(task, advance=1)
            replay.labels_until(now + dt.timedelta(days=365))  # the ground truth, at the end
            client.flush()
    finally:
        stop_server(server)
    result = _judge(settings, models, acts, first_day, last_day)
    db.dispose()
    return {"seed": seed, "design": design, "acts": acts, **result}


def _production_moves(models: ModelStore) -> list[dict[str, Any]]:
    out = []
    for e in models.db.events("model:fraud"):
        d = e["details"] or {}
        if d.get("alias") == "production" and e["action"] in ("alias.set", "alias.rollback"):
            out.append({"time": e["time"], "action": e["action"], "actor": e["actor"],
                        "version": d.get("version"), "from": d.get("from_version")})  # fmt: skip
    return out


def _versus(
    settings: Settings, models: ModelStore, rows: pl.DataFrame, first: int, second: int
) -> dict[str, Any] | None:
    """ROC AUC of two versions on the same logged rows with their true labels."""
    ok_a, out_a = score_logged(models, f"fraud@{first}", rows)
    ok_b, out_b = score_logged(models, f"fraud@{second}", rows)
    both = ok_a & ok_b
    y = rows.get_column("label").cast(pl.Int64, strict=False).fill_null(-1).to_numpy()[both]
    keep = y >= 0
    d = paired_difference(
        "classification", y[keep], out_a[both[ok_a]][keep], out_b[both[ok_b]][keep], "roc_auc"
    )
    return None if d is None else {"rows": d.labels, "first": d.first, "second": d.second}


def _judge(
    settings: Settings,
    models: ModelStore,
    acts: list[dict[str, Any]],
    first_day: int,
    last_day: int,
) -> dict[str, Any]:
    root = settings.resolved_artifacts
    log = read_log(root, "predictions", "fraud")
    log = labelled(log.filter(pl.col("role") == "production"), read_log(root, "feedback", "fraud"))
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=last_day)
    moves = [m for m in _production_moves(models) if m["actor"] == "loop"]
    promotions, rollbacks = [], []
    for m in moves:
        if m["action"] == "alias.set":
            until = min(m["time"] + dt.timedelta(days=AFTER_WINDOWS), end)
            if (until - m["time"]).days < MIN_AFTER_WINDOWS:
                continue
            rows = log.filter((pl.col("time") >= m["time"]) & (pl.col("time") < until))
            vs = _versus(settings, models, rows, m["from"], m["version"])
            worse = vs is not None and vs["second"] < vs["first"] - TOLERANCE
            promotions.append({**m, "time": m["time"].isoformat(), "truth": vs, "false": worse})
        else:
            rows = log.filter((pl.col("version") == m["from"]) & (pl.col("time") < m["time"]))
            vs = _versus(settings, models, rows, m["version"], m["from"])
            fine = vs is not None and vs["second"] >= vs["first"] - TOLERANCE
            rollbacks.append({**m, "time": m["time"].isoformat(), "truth": vs, "false": fine})
    created = {v.version: v.created_at for v in models.versions("fraud")}
    shifts = {}
    for e in default_events():
        onset = start + dt.timedelta(days=e.day)
        hit = next(
            (m for m in moves if m["action"] == "alias.set" and created[m["version"]] > onset), None
        )
        day = (hit["time"] - start).days if hit else last_day
        before = _served_auc(log, onset - dt.timedelta(days=AFTER_WINDOWS), onset)
        after = _served_auc(log, onset, onset + dt.timedelta(days=AFTER_WINDOWS))
        shifts[e.kind] = {
            "onset": e.day, "promoted_day": day if hit else None,
            "windows": day - (e.day + LABEL_DELAY_WINDOWS),
            "served_auc_before": before, "served_auc_after": after,
            "hurt": before is not None and after is not None and after < before - TOLERANCE,
        }  # fmt: skip
    return {
        "shifts": shifts,
        "promotions": promotions,
        "rollbacks": rollbacks,
        "false_promotions": sum(p["false"] for p in promotions),
        "false_rollbacks": sum(r["false"] for r in rollbacks),
    }


def _served_auc(log: pl.DataFrame, since: dt.datetime, until: dt.datetime) -> float | None:
    """ROC AUC of what production served between two times, on the true labels."""
    rows = log.filter((pl.col("time") >= since) & (pl.col("time") < until))
    y = rows.get_column("label").cast(pl.Int64, strict=False).to_numpy()
    if rows.height < 2 or len(np.unique(y)) < 2:
        return None
    scores = np.array(rows.get_column("probabilities").to_list(), dtype=float)[:, 1]
    return float(roc_auc_score(y, scores))


def rejudge(home: Path, first_day: int, last_day: int) -> dict[str, Any]:
    """Judge a finished run again from its home (`keel-bench-loop-<design>-<seed>-*`)."""
    design, _, seed = home.name.removeprefix("keel-bench-loop-").rsplit("-", 1)[0].rpartition("-")
    settings = _settings(home, DESIGNS[design])
    models = ModelStore.open(settings)
    retrains = sum(1 for e in models.db.events("model:fraud") if e["action"] == "loop.retrain")
    result = _judge(settings, models, [], first_day, last_day)
    models.db.dispose()
    acts = [{"action": "shadow"}] * retrains
    return {"seed": int(seed), "design": design, "acts": acts, **result}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per design: the worst windows_to_promotion, false promotions and rollbacks."""
    summary = {}
    for design in sorted({r["design"] for r in runs}):
        mine = [r for r in runs if r["design"] == design]
        shifts = list(mine[0]["shifts"])
        summary[design] = {
            "seeds": sorted(r["seed"] for r in mine),
            "windows_to_promotion": max(s["windows"] for r in mine for s in r["shifts"].values()),
            "windows_to_promotion_after_harm": max(
                (s["windows"] for r in mine for s in r["shifts"].values() if s["hurt"]),
                default=None,
            ),
            "shifts_that_hurt": sorted(
                f"{k}@seed{r['seed']}" for r in mine for k, s in r["shifts"].items() if s["hurt"]
            ),
            "per_shift": {k: max(r["shifts"][k]["windows"] for r in mine) for k in shifts},
            "never": sorted(
                f"{k}@seed{r['seed']}"
                for r in mine
                for k, s in r["shifts"].items()
                if s["promoted_day"] is None
            ),
            "false_promotions": sum(r["false_promotions"] for r in mine),
            "false_rollbacks": sum(r["false_rollbacks"] for r in mine),
            "promotions": sum(len(r["promotions"]) for r in mine),
            "rollbacks": sum(len(r["rollbacks"]) for r in mine),
            "retrains": sum(1 for r in mine for a in r["acts"] if a["action"] == "shadow"),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument(
        "--designs", nargs="+", default=["backtest", "shadow"], choices=list(DESIGNS)
    )
    parser.add_argument("--first-day", type=int, default=110)
    parser.add_argument("--last-day", type=int, default=200)
    parser.add_argument("--per-day", type=int, default=300)
    parser.add_argument(
        "--combine", nargs="+", type=Path, help="summarize the runs of earlier --json outputs"
    )
    parser.add_argument(
        "--rejudge", nargs="+", type=Path, help="judge finished runs again from their homes"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    t0 = time.perf_counter()
    if args.rejudge:
        runs = [rejudge(h, args.first_day, args.last_day) for h in args.rejudge]
    elif args.combine:
        runs = [r for f in args.combine for r in json.loads(f.read_text())["runs"]]
    else:
        runs = _run_all(args)
    out = {
        "per_day": args.per_day,
        "days": [args.first_day, args.last_day],
        "label_delay_windows": LABEL_DELAY_WINDOWS,
        "tolerance": TOLERANCE,
        "seconds": round(time.perf_counter() - t0, 1),
        "designs": summarize(runs),
        "runs": runs,
    }
    if args.json:
        print(json.dumps(out, indent=2, default=str))
        return
    table = Table(title="loop: windows from a shift's labels to a promoted retrained model")
    for head in (
        "design",
        "seeds",
        "windows (worst)",
        "per shift",
        "false prom.",
        "false rollb.",
        "retrains",
    ):
        table.add_column(head)
    for design, s in out["designs"].items():
        table.add_row(design, str(s["seeds"]), str(s["windows_to_promotion"]), json.dumps(s["per_shift"]),
                      str(s["false_promotions"]), str(s["false_rollbacks"]), str(s["retrains"]))  # fmt: skip
    Console().print(table)


def _run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    console = Console(stderr=True)
    runs = []
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        for seed in args.seeds:
            for design in args.designs:
                task = progress.add_task(
                    f"seed {seed} {design}", total=args.last_day - args.first_day
                )
                runs.append(
                    run_one(
                        seed, design, first_day=args.first_day, last_day=args.last_day,
                        per_day=args.per_day, progress=progress, task=task,
                    )
                )  # fmt: skip
    return runs


if __name__ == "__main__":
    main()
