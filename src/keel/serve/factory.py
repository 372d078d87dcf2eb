"""The app factory uvicorn calls in each worker process (settings from the environment)."""

from __future__ import annotations

import os

from starlette.applications import Starlette

from keel.serve.app import create_app
from keel.store import load_settings


def app_from_env() -> Starlette:
    names = [n for n in os.environ.get("KEEL_SERVE_MODELS", "").split(",") if n]
    return create_app(load_settings(), names=names or None)
