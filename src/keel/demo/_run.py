"""The demo's story, step by step. It grows with every capability keel gains."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import polars as pl
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from keel.data import (
    Anonymize,
    Contract,
    DatasetStore,
    infer_contract,
    inject_faults,
    validate,
    with_column,
)
from keel.demo.simulate import TransactionSimulator
from keel.registry import AuditEvent
from keel.render import console, print_contract, print_report, print_version
from keel.store import ArtifactStore, Database, FakeClock, Settings

_MARKER = ".keel-demo"


def _fresh_home(home: Path) -> None:
    """Start from nothing, but only ever delete a folder an earlier demo made."""
    if home.exists():
        if not (home / _MARKER).exists():
            msg = f"Demo home {str(home)!r} exists and was not made by the demo; choose another with --home."
            raise SystemExit(msg)
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / _MARKER).write_text("made by keel demo; deleted by the next demo run\n")


SPECS = (
    {
        "name": "hgb",
        "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
        "params": {
            "max_iter": 120,
            "learning_rate": 0.05,
            "max_leaf_nodes": 8,
            "min_samples_leaf": 80,
            "l2_regularization": 1.0,
        },
        "gates": [
            "holdout.roc_auc >= 0.75",
            "overfit.roc_auc <= 0.10",
            "segments.min.roc_auc >= 0.6",
            "fairness.customer_sex.demographic_parity_difference <= 0.05",
        ],
        # a region's ROC AUC is judged on at least 10 frauds: the loop's retrains hold ~1,600
        # rows out, a few frauds per region, and an AUC on three frauds is noise
        "min_group_minority": 10,
    },
    {
        "name": "logistic",
        "estimator": "sklearn.linear_model.LogisticRegression",
        "params": {"max_iter": 2000},
        "gates": [
            "holdout.roc_auc >= 0.75",
            "overfit.roc_auc <= 0.10",
            "segments.min.roc_auc >= 0.6",
            "fairness.customer_sex.demographic_parity_difference <= 0.05",
        ],
        # a region's ROC AUC is judged on at least 10 frauds: the loop's retrains hold ~1,600
        # rows out, a few frauds per region, and an AUC on three frauds is noise
        "min_group_minority": 10,
    },
    {
        "name": "deep-tree",
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {},
        "gates": ["holdout.roc_auc >= 0.75", "overfit.roc_auc <= 0.10"],
    },
)


def _train_and_promote(store: DatasetStore, data_ref: str, home: Path) -> dict[str, object]:
    """Train the candidates, show the table and the gates, register, promote the recommended."""
    from keel.registry import ModelStore
    from keel.render import print_train_result
    from keel.train import promote, render_card_html, report_of, spec_from_dict, train

    models = ModelStore(store.db, store.artifacts)
    specs = [spec_from_dict(s) for s in SPECS]
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("training", total=len(specs) * 4 + 1)

        def step(name: str) -> None:
            progress.update(task, advance=1, description=name)

        result = train(
            specs, data_ref, datasets=store, models=models, register="fraud", on_step=step
        )
    print_train_result(result)
    for c in result.candidates:
        for g in c.failed_gates:
            console.print(
                f"[red]{c.spec.label}[/] stopped by {g.describe()}, threshold {g.op} {g.threshold:g}: not registered"
            )
    chosen = next((c for c in result.candidates if c.spec.label == result.recommended), None)
    if chosen is None or chosen.version is None:
        console.print("[red]no candidate passed its gates[/]: production stays as it is")
        return {
            "model": None,
            "recommended": None,
            "registered": [],
            "stopped": {c.spec.label: [g.name for g in c.failed_gates] for c in result.candidates},
        }
    promote(
        "fraud",
        chosen.version,
        "production",
        models=models,
        datasets=store,
        reason="demo: recommended candidate",
        actor="demo",
    )
    card = home / "fraud-card.html"
    version = models.get(f"fraud@{chosen.version}")
    card.write_text(
        render_card_html(
            "fraud",
            version.version,
            version.spec,
            report_of(version),
            store.get(data_ref).to_dict(),
        )
    )
    importance = list(chosen.report.explanations["importance"].items())[:3]
    console.print(
        f"registered {[c.version for c in result.candidates if c.version]}; promoted fraud@{chosen.version} "
        f"({chosen.spec.label}) to production. Top features: {', '.join(f'{k} {v:.3f}' for k, v in importance)}. "
        f"Card: {card}"
    )
    return {
        "model": f"fraud@{chosen.version}",
        "recommended": result.recommended,
        "registered": [c.spec.label for c in result.candidates if c.version],
        "stopped": {
            c.spec.label: [g.name for g in c.failed_gates]
            for c in result.candidates
            if not c.passed
        },
        "card_html": str(card),
    }


def transactions_contract(january: pl.DataFrame) -> Contract:
    """The demo's contract, inferred from January, with a person's edits."""
    contract = infer_contract(
        january,
        name="transactions",
        id="transaction_id",
        timestamp="ts",
        target="is_fraud",
        segment="region",
        sensitive=["customer_age", "customer_sex"],
        pii=["customer_name", "email", "card_number"],
        ignore=["label_available_at"],
    )
    # ages reach the data only in bands of twenty; k-anonymity over the quasi-identifiers
    # (age band, sex, region) must be at least 5
    age = contract.column("customer_age")
    contract = with_column(
        contract, replace(age, anonymize=Anonymize(method="generalize", band=20))
    )
    contract = replace(
        contract, quasi_identifiers=("customer_age", "customer_sex", "region"), k_anonymity=5
    )
    # merchants open new categories: serve them as "__other__" (and alert on their share)
    # rather than refuse the payment
    category = contract.column("merchant_category")
    return with_column(contract, replace(category, unseen="other"))


def run_demo(
    *,
    home: str | Path = ".keel/demo",
    rows_per_day: int = 800,
    seed: int = 7,
    traffic_per_day: int = 300,
    last_day: int = 240,
    keep_serving: bool = False,
    port: int | None = None,
) -> dict[str, object]:
    """Run the demo and return its key figures (for tests)."""
    t0 = time.perf_counter()
    home = Path(home).resolve()
    _fresh_home(home)
    settings = Settings(home=home, secret_key="demo-secret-key-not-for-production")
    store = DatasetStore(
        # the story's own time: the data steps happen on 1 March of the simulated year
        Database(
            settings.resolved_database_url,
            clock=FakeClock(dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)),
        ),
        ArtifactStore(settings.resolved_artifacts),
        settings.resolved_secret_key(),
    )
    console.print(
        Panel.fit(
            "[bold]keel demo[/]: card transactions from the built-in simulator", border_style="cyan"
        )
    )
    sim, january, february = _simulate(seed, rows_per_day)
    contract = _contract_step(home, january)
    data = _data_steps(home, store, contract, january, february, seed)
    console.rule("6. train three candidates on January, with gates")
    trained = _train_and_promote(store, str(data["first"]), home)
    story: dict[str, object] = {}
    if trained.get("model"):
        console.rule("7. serve, replay months of traffic, and let the loop run the model")
        console.print(
            "events in the simulated world: "
            + "; ".join(
                f"day {e.day} ({sim.start + dt.timedelta(days=e.day):%b %d}): {e.description}"
                for e in sim.events
            )
        )
        story = _story(home, store, sim, traffic_per_day, last_day, keep_serving, port)
    elapsed = time.perf_counter() - t0
    _goodbye(home, elapsed, story, str(data["version"]))
    data.pop("first")
    return {**data, **trained, **story, "seconds": elapsed}


def _simulate(
    seed: int, rows_per_day: int
) -> tuple[TransactionSimulator, pl.DataFrame, pl.DataFrame]:
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("simulating 60 days of transactions", total=2)
        sim = TransactionSimulator(seed=seed)
        january = sim.generate(days=30, per_day=rows_per_day)
        progress.advance(task)
        february = sim.generate(days=30, per_day=rows_per_day, start_day=30)
        progress.advance(task)
    return sim, january, february


def _contract_step(home: Path, january: pl.DataFrame) -> Contract:
    console.rule("1. infer a contract from January")
    contract = transactions_contract(january)
    contract_path = home / "contract.yaml"
    contract.save(contract_path)
    print_contract(contract)
    console.print(f"contract written to {contract_path}")
    return contract


def _data_steps(
    home: Path,
    store: DatasetStore,
    contract: Contract,
    january: pl.DataFrame,
    february: pl.DataFrame,
    seed: int,
) -> dict[str, object]:
    """Steps 2-5: check February with faults, ingest, show the version, diff the months."""
    console.rule("2. check February, with realistic faults injected")
    faulty, truth = inject_faults(february, contract, rate=0.02, seed=seed)
    source = home / "transactions_feb.csv"
    faulty.write_csv(source)
    console.print(
        f"{faulty.height} rows written to {source}; faults injected: "
        + ", ".join(f"{k} {len(v)}" for k, v in truth.rows_by_rule.items())
    )
    print_report(store.check(source, contract))

    console.rule("3. ingest: clean rows become a version, bad rows go to quarantine")
    clean_jan = home / "transactions_jan.parquet"
    january.write_parquet(clean_jan)
    first = store.ingest(clean_jan, contract, "transactions", actor="demo")
    second = store.ingest(
        source, contract, "transactions", parents=[first.version.ref], actor="demo"
    )
    again = store.ingest(
        source, contract, "transactions", parents=[first.version.ref], actor="demo"
    )
    v = second.version
    console.print(
        f"[bold]{v.ref}[/]: {v.rows_in} rows in = {v.rows_versioned} versioned + {v.rows_quarantined} quarantined"
    )
    console.print(
        f"ingesting the same file again gives the same id: {again.version.version} (new: {again.created})"
    )
    already = set(validate(february, contract).bad_rows.tolist())  # rows bad before any fault
    caught, q_path = _quarantine(home, store, v.ref, set(truth.bad_rows), already)

    console.rule("4. the version and its lineage")
    print_version(v)
    stored = store.load(v.ref)
    sample = stored.select("transaction_id", "email", "card_number", "customer_age").head(3)
    console.print("anonymized in the version (no raw email, card or name is stored):")
    console.print(sample)
    _diff_step(store, first.version.ref, v.ref)
    return {
        "first": first.version.ref,
        "version": v.ref,
        "rows_in": v.rows_in,
        "rows_versioned": v.rows_versioned,
        "rows_quarantined": v.rows_quarantined,
        "faults_caught_exactly": caught,
        "same_id_again": again.version.version == v.version,
        "k_anonymity": second.report.k_anonymity,
        "quarantine_csv": str(q_path),
    }


def _quarantine(
    home: Path, store: DatasetStore, ref: str, injected: set[int], already: set[int]
) -> tuple[bool, Path]:
    """Show the quarantine; whether it holds exactly the injected faults (and rows bad before)."""
    quarantine = store.quarantine(ref)
    refused = set(quarantine["source_row"].to_list())
    caught = injected <= refused and refused - injected <= already
    console.print(
        f"all {len(injected)} injected faults are in quarantine: [bold]{injected <= refused}[/]; "
        f"the other {len(refused - injected)} refused rows broke the contract before any fault "
        f"was injected (February values outside January's ranges): [bold]{refused - injected <= already}[/]"
    )
    table = Table(title="quarantine (first rows)", title_justify="left")
    for head in ("source_row", "rule", "column", "value as it arrived", "reason"):
        table.add_column(head)
    for row in quarantine.head(6).iter_rows(named=True):
        value = row.get(row["column"]) if row["column"] else "(whole row)"
        table.add_row(
            str(row["source_row"]), row["rule"], row["column"] or "-", repr(value), row["reason"]
        )
    console.print(table)
    q_path = home / "quarantine.csv"
    quarantine.write_csv(q_path)
    return caught, q_path


def _diff_step(store: DatasetStore, first: str, second: str) -> None:
    console.rule("5. what changed from January to February")
    diff = store.diff(first, second)
    console.print(
        f"{diff['a']} -> {diff['b']}: +{diff['rows_added']} rows, -{diff['rows_removed']} rows"
    )
    table = Table(title="per-column statistics, January -> February", title_justify="left")
    for head in ("column", "mean", "p50", "max", "top"):
        table.add_column(head)
    for col in ("amount", "distance_km", "region", "merchant_category"):
        a, b = diff["columns"][col]["a"], diff["columns"][col]["b"]
        cells = [f"{a[k]:.4g} -> {b[k]:.4g}" if k in a else "" for k in ("mean", "p50", "max")]
        top = f"{next(iter(a['top']))} -> {next(iter(b['top']))}" if "top" in a else ""
        table.add_row(col, *cells, top)
    console.print(table)


def _reaction(audit: Sequence[AuditEvent], sim: TransactionSimulator) -> None:
    """How soon after each scheduled event the loop put in production a model registered after
    the event (a promotion of a model trained before it is no reaction to it)."""
    registered = {e.version: e.time for e in audit if e.action == "model.register"}
    promoted = [
        (e.time, registered.get(e.version))
        for e in audit
        if e.actor == "loop" and e.action == "alias.set" and e.alias == "production"
    ]
    start = sim.start.replace(tzinfo=dt.UTC)
    said = []
    for event in sim.events:
        onset = start + dt.timedelta(days=event.day)
        first = next((t for t, born in promoted if born is not None and born >= onset), None)
        said.append(
            f"{event.kind} (day {event.day}): "
            + (
                f"a model retrained after it in production {(first - onset).days} days later"
                if first
                else "no model retrained after it reached production before the demo's end"
            )
        )
    console.print("the loop's reaction: " + "; ".join(said))


def _goodbye(home: Path, elapsed: float, story: dict[str, object], ref: str) -> None:
    from keel.demo._story import TOKEN

    console.print(
        Panel.fit(
            f"done in {elapsed:.1f} s. Stores in {home}\n"
            + (f"Report (one file, no server): {story['report_html']}\n" if story else "")
            + f"Dashboard: KEEL_CONFIG={home}/keel.toml keel ui, then http://127.0.0.1:8080/ui "
            f"and log in with the token {TOKEN} (or keel demo --keep-serving)\n"
            f"Try: KEEL_CONFIG={home}/keel.toml keel monitor status fraud   |   keel alerts list   |   "
            f"keel data quarantine {ref} -o bad.csv",
            border_style="green",
        )
    )


def _story(
    home: Path,
    store: DatasetStore,
    sim: TransactionSimulator,
    per_day: int,
    last_day: int,
    keep_serving: bool,
    port: int | None,
) -> dict[str, object]:
    from keel.demo._story import run_story
    from keel.monitor import Monitor, log_files, read_log
    from keel.render import monitor_report_html

    result = run_story(
        home, store, sim, first_day=60, last_day=last_day, per_day=per_day,
        keep_serving=keep_serving, port=port,
    )  # fmt: skip
    models, settings = result.pop("models"), result.pop("settings")
    console.print(
        f"replayed {result['rows']:,} transactions in {result['requests']:,} requests "
        f"({result['rows_per_s']:,.0f} rows/s with the loop running), {result['labels']:,} delayed labels sent as "
        f"feedback, {result['refused_rows']} rows refused by the contract"
    )

    console.rule("8. the prediction log")
    logged = read_log(settings.resolved_artifacts, "predictions", "fraud")
    files = log_files(settings.resolved_artifacts, "predictions", "fraud")
    by_role = logged.group_by("role").len().sort("role")
    console.print(
        f"{logged.height:,} prediction records in {len(files)} Parquet files under "
        f"{settings.resolved_artifacts}/predictions/model=fraud/ "
        f"({', '.join(f'{r}: {n:,}' for r, n in by_role.iter_rows())})"
    )
    console.print(
        logged.select(
            "prediction_id", "time", "version", "role", "segment", "prediction", "latency_ms"
        ).tail(3)
    )

    console.rule("9. what happened, as the audit log tells it")
    table = Table(title="audit log of fraud (loop and people)", title_justify="left")
    for head in ("time", "actor", "action", "version", "reason"):
        table.add_column(head)
    seen: set[tuple[str, str]] = set()
    for e in models.audit("fraud"):
        key = (e.time.isoformat()[:10], e.reason or "")
        if e.action in ("model.register", "alias.delete") or key in seen:
            continue  # the register and alias events of one decision, said once
        seen.add(key)
        table.add_row(key[0], e.actor, e.action, str(e.version or ""), e.reason or "")
    console.print(table)
    _reaction(models.audit("fraud"), sim)
    monitor = Monitor(settings, models)
    alerts = monitor.alerts.list("fraud")
    console.print(
        f"{len(alerts)} alerts fired: "
        + ", ".join(f"{r} x{n}" for r, n in sorted(Counter(a.rule for a in alerts).items()))
        + f" (also in {settings.alert_file})"
    )
    report = home / "report.html"
    status = monitor.overview("fraud", now=models.db.clock.now())
    report.write_text(
        monitor_report_html(status, models.audit("fraud"), window_s=settings.window_s)
    )
    console.print(f"monitoring report (one file, no server needed): {report}")
    result["report_html"] = str(report)
    result["alerts"] = sorted({a.rule for a in alerts})
    result["actions"] = [a for _, a, _ in result["story"]]
    return result
