"""The `keel` command line: one module per command group, wiring only."""

from __future__ import annotations

import sys

import typer

from keel import __version__
from keel.cli import data, db, deploy, hooks, loop, models, monitor, predict, serve, stream, train
from keel.cli._common import err_console
from keel.store import KeelError

app = typer.Typer(
    name="keel",
    help="keel: take a trained model from prototype to production and keep it healthy there.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(data.app, name="data")
app.add_typer(db.app, name="db")
app.add_typer(deploy.app, name="deploy")
app.add_typer(models.app, name="models")
app.add_typer(hooks.app, name="hooks")
app.add_typer(monitor.app, name="monitor")
app.add_typer(monitor.alerts_app, name="alerts")
app.command("loop")(loop.loop_cmd)
app.command("train")(train.train_cmd)
app.command("audit")(models.audit_cmd)
app.command("predict")(predict.predict_cmd)
app.command("serve")(serve.serve_cmd)
app.command("ui")(serve.ui_cmd)
app.command("stream")(stream.stream_cmd)

_state = {"debug": False}


def _print_version(value: bool) -> None:
    # eager: runs while the options are parsed, before click asks for a command
    if value:
        typer.echo(f"keel {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error."),
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
) -> None:
    _state["debug"] = debug


@app.command("demo")
def demo_cmd(
    home: str = typer.Option(".keel/demo", help="Where the demo keeps its stores (made afresh)."),
    rows_per_day: int = typer.Option(800, help="Simulated transactions per day (training data)."),
    traffic_per_day: int = typer.Option(300, help="Simulated requests' rows per day of traffic."),
    keep_serving: bool = typer.Option(
        False, "--keep-serving", help="Leave the server up at the end, until Ctrl-C."
    ),
    port: int | None = typer.Option(None, help="Port of the demo's server (default: a free one)."),
) -> None:
    """Run the end-to-end demo on the built-in transaction simulator."""
    from keel.demo import run_demo

    run_demo(
        home=home,
        rows_per_day=rows_per_day,
        traffic_per_day=traffic_per_day,
        keep_serving=keep_serving,
        port=port,
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on standard error and exit code 1.

    Usage errors (a mistyped command, a missing option) print the usage and exit 2, as click
    does in standalone mode; `keel` alone prints the help. Standalone mode is what handles
    them: typer runs its own vendored copy of click, whose exception classes are not the
    `click` package's, so catching `click.UsageError` here would never match.
    """
    args = sys.argv[1:] if argv is None else argv
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="keel", standalone_mode=True)
    except KeelError as exc:
        if "--debug" in args:
            raise
        err_console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        sys.exit(1)
