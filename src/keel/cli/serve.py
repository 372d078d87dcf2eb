"""`keel serve`: the HTTP server over the registry's models."""

from __future__ import annotations

import os

import typer

from keel.render import console


def serve_cmd(
    names: list[str] = typer.Argument(
        None, help="Models to serve (default: every registered model)."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes on the same port."),
    log_level: str = typer.Option("warning", help="uvicorn's log level."),
) -> None:
    """Serve the versions behind the aliases of the named models; follows alias moves live."""
    import uvicorn

    os.environ["KEEL_SERVE_MODELS"] = ",".join(names or [])
    console.print(
        f"keel serving {', '.join(names) if names else 'every registered model'} on http://{host}:{port} (docs: /docs, dashboard: /ui)"
    )
    uvicorn.run(
        "keel.dashboard.factory:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
    )


def ui_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """The dashboard alone, over the registry, the monitor and the data (no model loaded)."""
    import uvicorn

    console.print(f"keel dashboard on http://{host}:{port}/ui")
    uvicorn.run(
        "keel.dashboard.factory:ui_app", factory=True, host=host, port=port, log_level="warning"
    )
