"""`keel serve`: the HTTP server over the registry's models."""

from __future__ import annotations

import enum
import os
from typing import Any

import typer

from keel.cli._common import err_console
from keel.render import console


class Engine(enum.StrEnum):
    """What runs the HTTP server: uvicorn workers, or Ray Serve replicas."""

    uvicorn = "uvicorn"
    ray = "ray"


# the Ray options, here to keep serve_cmd short (typer reads them as the parameters' defaults)
ENGINE = typer.Option(
    Engine.uvicorn,
    help="uvicorn: worker processes here (--workers). ray: Ray Serve replicas of the same app, "
    "autoscaled by --min-replicas .. --max-ongoing-requests (the 'ray' extra; docs/ray.md).",
)
RAY_ADDRESS = typer.Option(
    None, help="Ray cluster to join (default: RAY_ADDRESS, else a local one is started)."
)
MIN_REPLICAS = typer.Option(1, help="Ray: fewest replicas (autoscaling).")
MAX_REPLICAS = typer.Option(1, help="Ray: most replicas (autoscaling).")
TARGET_ONGOING = typer.Option(
    32.0, help="Ray: requests in flight per replica the autoscaler aims at."
)
NUM_CPUS = typer.Option(0.5, help="Ray: CPUs each replica reserves (fractions allowed).")
MAX_ONGOING = typer.Option(
    256, help="Ray: most requests in flight per replica (keel batches them)."
)


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
    engine: Engine = ENGINE,
    ray_address: str | None = RAY_ADDRESS,
    min_replicas: int = MIN_REPLICAS,
    max_replicas: int = MAX_REPLICAS,
    target_ongoing_requests: float = TARGET_ONGOING,
    num_cpus: float = NUM_CPUS,
    max_ongoing_requests: int = MAX_ONGOING,
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

    --engine ray runs the same app in Ray Serve replicas (keel's batcher,
    follower and log in each); docs/ray.md.
    """
    if engine is Engine.ray:
        from keel.serve import RayScaling

        scaling = RayScaling(
            min_replicas, max_replicas, target_ongoing_requests, num_cpus, max_ongoing_requests
        )
        _serve_on_ray(names, host, port, ray_address, scaling)
        return
    _serve_on_uvicorn(names, host, port, workers, log_level)


def _serve_on_uvicorn(
    names: list[str] | None, host: str, port: int, workers: int, log_level: str
) -> None:
    """uvicorn workers on host:port, each building keel's app; webhooks from this process."""
    import uvicorn

    from keel.cli.hooks import start_dispatcher
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


def ray_app(settings: Any, names: list[str] | None) -> Any:
    """What each Ray Serve replica of `keel serve --engine ray` runs: the models named and the
    dashboard at /ui, as a uvicorn worker of `keel serve` has (`app_from_env`)."""
    from keel.dashboard import with_dashboard
    from keel.serve import create_app

    return with_dashboard(create_app(settings, names=names), settings)


def _serve_on_ray(
    names: list[str] | None, host: str, port: int, address: str | None, scaling: Any
) -> None:
    """Start Ray Serve's proxy on host:port and keel's replicas behind it; block until Ctrl-C."""
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        msg = "keel serve --engine ray needs Ray Serve: pip install 'keel[ray]'."
        raise typer.BadParameter(msg) from exc
    from keel.serve import exposure_warnings, ray_deployment
    from keel.store import load_settings

    settings = load_settings()
    for warning in exposure_warnings(host, settings):
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    ray.init(address=address, include_dashboard=False)
    serve.start(http_options={"host": host, "port": port})
    app = ray_deployment(
        names, settings=settings, scaling=scaling, factory="keel.cli.serve:ray_app"
    )
    console.print(
        f"keel serving {', '.join(names) if names else 'every registered model'} through Ray Serve "
        f"on http://{host}:{port} ({scaling.min_replicas}-{scaling.max_replicas} replicas; docs: /docs, dashboard: /ui)"
    )
    try:
        serve.run(app, name="keel", route_prefix="/", blocking=True)
    finally:
        serve.shutdown()  # type: ignore[no-untyped-call]
        ray.shutdown()


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
