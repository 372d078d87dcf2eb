"""The dashboard: pages over the registry, the monitor and the data, served at /ui.

Names load on first use (PEP 562), as in every face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "app_from_env": "keel.dashboard.factory",
    "Dashboard": "keel.dashboard.app",
    "ui_app": "keel.dashboard.factory",
    "with_dashboard": "keel.dashboard.factory",
}

if TYPE_CHECKING:
    from keel.dashboard.app import Dashboard as Dashboard
    from keel.dashboard.factory import (
        app_from_env as app_from_env,
        ui_app as ui_app,
        with_dashboard as with_dashboard,
    )

__getattr__ = lazy_getattr("keel.dashboard", _NAMES)

__all__ = sorted(_NAMES)
