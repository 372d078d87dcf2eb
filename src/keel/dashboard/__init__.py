"""The dashboard: pages over the registry, the monitor and the data, served at /ui."""

from keel.dashboard.app import Dashboard
from keel.dashboard.factory import app_from_env, ui_app

__all__ = ["Dashboard", "app_from_env", "ui_app"]
