"""`keel predict`: batch scoring of a file with a registered model."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from keel.cli._common import JSON_OPTION, err_console, open_models, print_json
from keel.render import console

if TYPE_CHECKING:
    from keel.train import ScoreResult, TableResult


def predict_cmd(
    ref: str = typer.Argument(..., help="NAME, NAME@ALIAS or NAME@VERSION."),
    source: str = typer.Argument(
        ..., help="A CSV or Parquet file of rows to score, or a Parquet URL (s3://...)."
    ),
    output: str = typer.Option(
        ..., "-o", "--output", help="Predictions (.csv or .parquet), a path or a URL."
    ),
    chunk_rows: int = typer.Option(50_000, help="Rows scored at a time."),
    engine: str = typer.Option(
        "local",
        help="local: here, chunk by chunk. ray: on Ray Data, an actor pool (the 'ray' extra; "
        "joins RAY_ADDRESS or starts a local Ray; docs/ray.md).",
    ),
    ray_actors: int = typer.Option(2, help="Ray: scoring actors, each loads the model once."),
    ray_num_cpus: float = typer.Option(0.5, help="Ray: CPUs each actor reserves (fractions)."),
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
    if engine not in ("local", "ray"):
        msg = f"--engine is {engine!r}; expected 'local' or 'ray'."
        raise typer.BadParameter(msg)
    if engine == "ray":
        if to_sql is not None:
            err_console.print(
                "[red]error:[/] --to-sql is not available with --engine ray: score with Ray "
                "to a file, or use the local engine to upsert into a table."
            )
            raise typer.Exit(2)
        from keel.store import load_settings
        from keel.train import score_file_ray

        result = score_file_ray(
            ref,
            source,
            output,
            models=open_models(),
            settings=load_settings(),
            actors=ray_actors,
            num_cpus=ray_num_cpus,
            chunk_rows=chunk_rows,
        )
        _print_result(result, None, output, as_json)
        return
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
    _print_result(result, stored, output, as_json)


def _print_result(
    result: ScoreResult, stored: TableResult | None, output: str, as_json: bool
) -> None:
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
