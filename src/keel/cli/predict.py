"""`keel predict`: batch scoring of a file with a registered model."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from keel.cli._common import JSON_OPTION, err_console, open_models, print_json
from keel.render import console


def predict_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME@VERSION."),
    source: str = typer.Argument(
        ..., help="A CSV or Parquet file of rows to score, or a Parquet URL (s3://...)."
    ),
    output: str = typer.Option(
        ..., "-o", "--output", help="Predictions (.csv or .parquet), a path or a URL."
    ),
    chunk_rows: int = typer.Option(50_000, help="Rows scored at a time."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Score a file in chunks; rows the contract refuses go to OUTPUT.refused.csv with the reason."""
    from keel.train import score_file

    with Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("score", total=None)
        result = score_file(
            ref,
            source,
            output,
            models=open_models(),
            chunk_rows=chunk_rows,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total),
        )
    if as_json:
        print_json(result.to_json())
        return
    console.print(
        f"{result.model}: {result.rows_scored} of {result.rows_in} rows scored -> {output}"
    )
    if result.rows_refused:
        console.print(
            f"{result.rows_refused} rows refused by the contract -> {result.refused_output}"
        )
