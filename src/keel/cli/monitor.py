"""`keel monitor ...` and `keel alerts ...`: drift, live performance, reports and alerts."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from keel.cli._common import JSON_OPTION, print_json, steps
from keel.render import console

app = typer.Typer(help="Drift, live performance, monitoring reports.", no_args_is_help=True)


@app.command("drift")
def drift_cmd(
    reference: Path = typer.Argument(..., help="Reference data (CSV or Parquet)."),
    current: Path = typer.Argument(..., help="Current data (CSV or Parquet)."),
    contract: Path | None = typer.Option(
        None, "--contract", help="Contract YAML: column types and roles (ids, PII left out)."
    ),
    exact: bool = typer.Option(
        False, "--exact", help="Exact statistics from every row (default: binned profiles)."
    ),
    multivariate: bool = typer.Option(
        False, "--multivariate", help="Also ask a domain classifier to tell the two apart."
    ),
    output: Path | None = typer.Option(None, "-o", "--output", help="Write an HTML report here."),
    engine: str = typer.Option(
        "local",
        help="local: here. ray: the current file profiled per block on Ray Data and merged "
        "(the same report; binned mode only; the 'ray' extra; docs/ray.md).",
    ),
    ray_blocks: int = typer.Option(4, help="Ray: blocks the current file is split into."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Drift of every column between two files; no server needed."""
    from keel.data import load_contract, read_source
    from keel.monitor import drift_between, drift_between_ray

    if engine not in ("local", "ray"):
        msg = f"--engine is {engine!r}; expected 'local' or 'ray'."
        raise typer.BadParameter(msg)
    if engine == "ray" and exact:
        msg = "--exact sorts every row of both files in one place; on Ray only the binned profiles run (leave out --exact, or use --engine local)."
        raise typer.BadParameter(msg)

    with steps("drift", ["read", "compare", "report"], enabled=not as_json) as step:
        step("read")
        ref = read_source(reference).frame
        cur = read_source(current).frame
        c = load_contract(contract) if contract else None
        step("compare")
        report = (
            drift_between_ray(ref, cur, contract=c, multivariate=multivariate, blocks=ray_blocks)
            if engine == "ray"
            else drift_between(ref, cur, contract=c, exact=exact, multivariate=multivariate)
        )
        step("report")
        if output:
            from keel.render import drift_report_html

            output.write_text(
                drift_report_html(report, title=f"Drift: {current.name} against {reference.name}")
            )
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"drift ({report.mode})", title_justify="left")
    for head in ("column", "method", "statistic", "threshold", "p-value", "PSI", "verdict"):
        table.add_column(head)
    for col in report.columns:
        table.add_row(
            col.name,
            col.method,
            f"{col.statistic:.4f}",
            f"{col.threshold:g}",
            "" if col.p_value is None else f"{col.p_value:.3g}",
            f"{col.psi:.4f}",
            "[red]drifted[/red]" if col.drifted else ("stable" if col.judged else "too few rows"),
        )
    console.print(table)
    console.print(
        f"{len(report.drifted_columns)} of {len(report.columns)} columns drifted"
        + (f"; report: {output}" if output else "")
    )


@app.command("status")
def status_cmd(
    name: str = typer.Argument(..., help="The model."),
    windows: int = typer.Option(10, help="How many recent windows to show."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Drift, estimated and live performance per window of the production version; open alerts."""
    from keel.cli._common import open_monitor

    status = open_monitor().status(name)
    if as_json:
        print_json(status.to_json())
        return
    if status.version is None:
        console.print(f"{name} has no production version.")
        return
    console.print(
        f"[bold]{name}@{status.version}[/] ({status.task}); training {status.metric}: {status.training.get(status.metric, float('nan')):.4f}"
    )
    live = {x.window_start: x for x in status.live if x.version == status.version}
    table = Table(title="recent windows", title_justify="left")
    for head in (
        "window",
        "rows",
        "drifted columns",
        f"est. {status.metric}",
        f"live {status.metric}",
        "labels",
        "errors",
        "p99 ms",
    ):
        table.add_column(head)
    for w in status.windows[-windows:]:
        x = live.get(w.start)
        value = x.metrics.get(status.metric) if x else None
        est = w.estimated.get(status.metric)
        table.add_row(
            f"{w.start:%Y-%m-%d %H:%M}" + ("" if w.complete else " (open)"),
            str(w.rows),
            w.note or ", ".join(w.drifted) or "-",
            "" if est is None else f"{est:.4f}",
            "" if value is None else f"{value:.4f}" + ("" if x and x.judged else " (few labels)"),
            f"{x.coverage:.0%}" if x else "0%",
            f"{w.error_rate:.2%}",
            "" if w.latency_p99_ms is None else f"{w.latency_p99_ms:g}",
        )
    console.print(table)
    s = status.shadow
    if s is not None and s.requests:
        difference = (
            f", {s.metric} difference {s.difference:+.4f} ({s.low:+.4f} to {s.high:+.4f})"
            if s.difference is not None and s.low is not None and s.high is not None
            else ""
        )
        console.print(
            f"shadow {name}@{s.shadow_version}: {s.requests} requests, "
            f"agreement {s.agreement or 0.0:.1%}, {s.labels} labels{difference}"
        )
    for a in status.alerts:
        console.print(f"[red]alert[/] {a.time:%Y-%m-%d %H:%M} {a.rule}: {a.message}")


@app.command("report")
def report_cmd(
    name: str = typer.Argument(..., help="The model."),
    output: Path = typer.Option(
        Path("report.html"), "-o", "--output", help="Where to write the page."
    ),
) -> None:
    """One HTML page (no server, no network): drift heat map, performance over time, shadow,
    alerts and the audit timeline."""
    from keel.cli._common import open_monitor
    from keel.render import monitor_report_html

    monitor = open_monitor()
    status = monitor.overview(name)
    output.write_text(
        monitor_report_html(status, monitor.models.audit(name), window_s=monitor.settings.window_s)
    )
    console.print(f"report written to {output}")


alerts_app = typer.Typer(help="Alerts that fired, with their evidence.", no_args_is_help=True)


@alerts_app.command("list")
def alerts_list_cmd(
    name: str | None = typer.Argument(None, help="Only this model's alerts."),
    open_only: bool = typer.Option(False, "--open", help="Only alerts nobody acted on yet."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every stored alert, oldest first."""
    from keel.cli._common import open_monitor

    alerts = open_monitor().alerts.list(name, open_only=open_only)
    if as_json:
        print_json([a.to_json() for a in alerts])
        return
    table = Table(title="alerts", title_justify="left")
    for head in ("time", "model", "rule", "severity", "message", "handled"):
        table.add_column(head)
    for a in alerts:
        table.add_row(
            f"{a.time:%Y-%m-%d %H:%M}" if a.time else "",
            a.model,
            a.rule,
            a.severity,
            a.message,
            "" if a.trigger else "-",
        )
    console.print(table)
