"""What every command shares: the consoles, JSON output, progress, opening the stores."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

err_console = Console(stderr=True, highlight=False)

JSON_OPTION = typer.Option(False, "--json", help="Print one JSON object instead of tables.")


def print_json(data: Any) -> None:
    """Write one JSON document to standard output (machine-readable, stable keys)."""
    typer.echo(
        orjson.dumps(
            data,
            option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY,
            default=str,
        ).decode()
    )


@contextmanager
def steps(title: str, names: list[str], *, enabled: bool = True) -> Iterator[Any]:
    """A progress bar over named steps; yields a callback `step(name)` that advances it.

    Progress goes to standard error, so `--json` output on standard output stays clean.
    """
    if not enabled:
        yield lambda _name: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[step]}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(title, total=len(names), step="")
        seen: list[str] = []

        def step(name: str) -> None:
            if seen:
                progress.advance(task)
            seen.append(name)
            progress.update(task, step=name)

        yield step
        progress.update(task, completed=len(names))


def open_datasets() -> Any:
    from keel.data import DatasetStore

    return DatasetStore.open()


def open_models() -> Any:
    from keel.registry import ModelStore

    return ModelStore.open()


def open_monitor() -> Any:
    from keel.monitor import Monitor
    from keel.registry import ModelStore
    from keel.store import load_settings

    settings = load_settings()
    return Monitor(settings, ModelStore.open(settings))
