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
    as_json: bool = JSON_OPTION,
) -> None:
    """Drift of every column between two files; no server needed."""
    from keel.data.contract import load_contract
    from keel.data.sources import read_source
    from keel.monitor.offline import drift_between

    if exact:  # scipy.stats takes a second to import: let it load while the files are read
        import importlib
        import threading

        threading.Thread(target=importlib.import_module, args=("scipy.stats",), daemon=True).start()
    with steps("drift", ["read", "compare", "report"], enabled=not as_json) as step:
        step("read")
        ref = read_source(reference).frame
        cur = read_source(current).frame
        c = load_contract(contract) if contract else None
        step("compare")
        report = drift_between(ref, cur, contract=c, exact=exact, multivariate=multivariate)
        step("report")
        if output:
            from keel.monitor.report import drift_report_html

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
