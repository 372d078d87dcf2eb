"""`keel loop NAME`: the controller that retrains, shadows, promotes and rolls back."""

from __future__ import annotations

import time

import typer

from keel.cli._common import JSON_OPTION, print_json
from keel.render import console


def loop_cmd(
    name: str = typer.Argument(..., help="The model."),
    once: bool = typer.Option(False, "--once", help="Look once, act at most once, and exit."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Say what would be done; change nothing."
    ),
    retrain: bool = typer.Option(False, "--retrain", help="Retrain now (a trigger by hand)."),
    interval: float = typer.Option(60.0, help="Seconds between looks when not --once."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Run the loop: every decision, with its numbers, lands in the audit log (actor 'loop')."""
    from keel.data import DatasetStore
    from keel.loop import Loop
    from keel.registry import ModelStore
    from keel.store import load_settings

    settings = load_settings()
    loop = Loop(settings, ModelStore.open(settings), DatasetStore.open(settings))
    if not (once or dry_run):  # a long-running loop also delivers webhooks (KEEL_HOOKS=0: not)
        from keel.cli.hooks import start_dispatcher

        start_dispatcher()
    while True:
        decisions = loop.step(name, dry_run=dry_run, retrain=retrain)
        retrain = False
        if as_json:
            print_json([d.to_dict() for d in decisions])
        else:
            for d in decisions:
                mark = "" if d.acted else " [dim](no change)[/]"
                console.print(f"[bold]{d.action}[/]: {d.reason}{mark}")
        if once or dry_run:
            return
        time.sleep(interval)
