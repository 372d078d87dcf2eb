"""`keel predict`: batch scoring of a file with a registered model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from keel.cli._common import JSON_OPTION, err_console, open_models, print_json
from keel.render import console


def predict_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME@VERSION."),
    source: Path = typer.Argument(..., help="A CSV or Parquet file of rows to score."),
    output: Path = typer.Option(..., "-o", "--output", help="Predictions (.csv or .parquet)."),
    chunk_rows: int = typer.Option(50_000, help="Rows scored at a time."),
    to_sql: str | None = typer.Option(
        None,
        "--to-sql",
        envvar="KEEL_TO_SQL",
        help="Also upsert the scores into a database table by id: a SQLAlchemy URL (or KEEL_TO_SQL, to keep a password off the command line).",
    ),
    table: str | None = typer.Option(
        None, "--table", help="The table --to-sql writes (made if missing)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a file in chunks; rows the contract refuses go to OUTPUT.refused.csv with the reason."""
    if (to_sql is None) != (table is None):
        err_console.print("[red]error:[/] --to-sql and --table go together: give both, or neither.")
        raise typer.Exit(2)
    from keel.train import score_file, score_to_sql

    with Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("score", total=None)
        tracked = lambda done, total: progress.update(task, completed=done, total=total)  # noqa: E731
        stored = None
        if to_sql is not None and table is not None:
            result, stored = score_to_sql(
                ref, source, output, url=to_sql, table=table, models=open_models(),
                chunk_rows=chunk_rows, on_progress=tracked,
            )  # fmt: skip
        else:
            result = score_file(
                ref, source, output, models=open_models(), chunk_rows=chunk_rows,
                on_progress=tracked,
            )  # fmt: skip
    if as_json:
        print_json({**result.to_json(), **({"table": stored.to_json()} if stored else {})})
        return
    if stored is not None:
        console.print(
            f"{stored.rows} rows upserted into {stored.table} by {stored.key} ({stored.url})",
            soft_wrap=True,
        )
    console.print(
        f"{result.model}: {result.rows_scored} of {result.rows_in} rows scored -> {output}"
    )
    if result.rows_refused:
        console.print(
            f"{result.rows_refused} rows refused by the contract -> {result.refused_output}"
        )
