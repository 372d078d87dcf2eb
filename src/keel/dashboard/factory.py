"""App factories: `keel serve` (models + dashboard at /ui) and `keel ui` (the dashboard alone)."""

from __future__ import annotations

import logging
import os

from starlette.applications import Starlette
from starlette.responses import RedirectResponse
from starlette.routing import Route

from keel.dashboard.app import Dashboard
from keel.data import DatasetStore
from keel.registry import ModelStore
from keel.serve import KeelServer, create_app, exposure_warnings
from keel.store import Settings, load_settings


def with_dashboard(app: Starlette, settings: Settings) -> Starlette:
    """Add the dashboard's routes to a server made by `keel.serve.create_app`."""
    server: KeelServer = app.state.server
    dashboard = Dashboard(
        settings,
        server.models,
        DatasetStore(server.models.db, server.models.artifacts, settings.resolved_secret_key()),
        on_alias_moved=server.moved,
        verify=server.verify_move,
    )
    app.router.routes.extend(dashboard.routes())
    return app


def app_from_env() -> Starlette:
    """What uvicorn calls in each `keel serve` worker: the models named, and the dashboard."""
    names = [n for n in os.environ.get("KEEL_SERVE_MODELS", "").split(",") if n]
    settings = load_settings()
    for warning in exposure_warnings(os.environ.get("KEEL_SERVE_HOST", "127.0.0.1"), settings):
        logging.getLogger("keel.serve").warning("%s", warning)  # the printed warning, logged
    return with_dashboard(create_app(settings, names=names or None), settings)


def ui_app() -> Starlette:
    """The dashboard alone (`keel ui`): no model is loaded."""
    settings = load_settings()
    models = ModelStore.open(settings)
    datasets = DatasetStore(models.db, models.artifacts, settings.resolved_secret_key())
    dashboard = Dashboard(settings, models, datasets)
    routes = [Route("/", lambda _r: RedirectResponse("/ui")), *dashboard.routes()]
    return Starlette(routes=routes)
