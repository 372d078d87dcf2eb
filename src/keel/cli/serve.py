"""`keel serve`: the HTTP server over the registry's models."""

from __future__ import annotations

import os

import typer

from keel.cli._common import err_console
from keel.render import console


def serve_cmd(
    names: list[str] = typer.Argument(
        None, help="Models to serve (default: every registered model)."
    ),
    host: str = typer.Option(
        "127.0.0.1",
        help="Address to listen on. Anything but loopback without KEEL_TOKENS warns at start.",
    ),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes on the same port."),
    log_level: str = typer.Option("warning", help="uvicorn's log level."),
) -> None:
    r"""Serve the versions behind the aliases of the named models; follows alias moves live.

    Tokens: KEEL_TOKENS maps each token to its scopes (or a \[tokens] table
    in keel.toml), e.g. KEEL_TOKENS='{"t0k3n": ["predict"], "adm": ["admin"]}'.
    Callers send 'Authorization: Bearer TOKEN'. The scopes:

      predict   predict, explain, OIP /v2/models/..., MLflow /invocations
      feedback  POST /v1/models/NAME/feedback (labels)
      view      the dashboard's pages and /ui/api (logged inputs, SHAP)
      admin     alias moves, rollback, flush, the dashboard's actions
      jobs      batch jobs: POST/GET /v1/models/NAME/jobs (admin may too)

    open_predict (KEEL_OPEN_PREDICT): left unset, predict is open while no
    tokens are configured and needs a 'predict' token as soon as KEEL_TOKENS
    is set; true keeps it open without a token; false always closes it.
    Admin and feedback always need a token. /healthz, /readyz, /metrics,
    /ping and /v2/health stay open.

    Moving production (HTTP, CLI, dashboard, loop) re-runs its gates unless
    forced with a reason. Listening on an address that is not loopback
    without tokens warns at start. Hardening: docs/security.md.
    """
    import uvicorn

    from keel.serve import exposure_warnings
    from keel.store import load_settings

    os.environ["KEEL_SERVE_MODELS"] = ",".join(names or [])
    os.environ["KEEL_SERVE_HOST"] = (
        host  # each worker logs the same warnings (keel.dashboard.factory)
    )
    for warning in exposure_warnings(host, load_settings()):
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    console.print(
        f"keel serving {', '.join(names) if names else 'every registered model'} on http://{host}:{port} (docs: /docs, dashboard: /ui)"
    )
    from keel.cli.hooks import start_dispatcher

    stop = start_dispatcher()  # webhooks go out from the server's process (KEEL_HOOKS=0: not)
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
    if stop is not None:
        stop.set()


def ui_cmd(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
) -> None:
    """The dashboard alone, over the registry, the monitor and the data (no model loaded)."""
    import uvicorn

    from keel.serve import exposure_warnings
    from keel.store import load_settings

    for warning in exposure_warnings(host, load_settings()):
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    console.print(f"keel dashboard on http://{host}:{port}/ui")
    uvicorn.run(
        "keel.dashboard.factory:ui_app", factory=True, host=host, port=port, log_level="warning"
    )
