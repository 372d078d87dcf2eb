"""Serve: HTTP inference with micro-batching, traffic policy, hot swap, prediction log, feedback.

Names load on first use (PEP 562): the body-parsing worker process (`keel.serve.bodies`)
imports this package, and must not pull in Starlette's app, the registry and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "Client": "keel.serve.client",
    "KeelServer": "keel.serve.app",
    "MicroBatcher": "keel.serve.batching",
    "PredictionLog": "keel.monitor",
    "create_app": "keel.serve.app",
}

if TYPE_CHECKING:
    from keel.monitor import PredictionLog
    from keel.serve.app import KeelServer, create_app
    from keel.serve.batching import MicroBatcher
    from keel.serve.client import Client

__getattr__ = lazy_getattr("keel.serve", _NAMES)

__all__ = ["Client", "KeelServer", "MicroBatcher", "PredictionLog", "create_app"]
