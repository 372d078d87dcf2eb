"""Serve: HTTP inference with micro-batching, traffic policy, hot swap, prediction log, feedback.

Names load on first use (PEP 562): the body-parsing worker process (`keel.serve.bodies`)
imports this package, and must not pull in Starlette's app, the registry and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "AuthError": "keel.serve.errors",
    "Client": "keel.serve.client",
    "KeelServer": "keel.serve.server",
    "MicroBatcher": "keel.serve.batching",
    "PredictionLog": "keel.serve.predlog",
    "RequestError": "keel.serve.errors",
    "ScopeError": "keel.serve.errors",
    "TokenRequiredError": "keel.serve.errors",
    "create_app": "keel.serve.app",
    "error_response": "keel.serve.app",
    "status_of": "keel.serve.app",
    "exposure_warnings": "keel.serve.exposure",
}

if TYPE_CHECKING:
    from keel.serve.app import create_app, error_response, status_of
    from keel.serve.batching import MicroBatcher
    from keel.serve.client import Client
    from keel.serve.errors import AuthError, RequestError, ScopeError, TokenRequiredError
    from keel.serve.exposure import exposure_warnings
    from keel.serve.predlog import PredictionLog
    from keel.serve.server import KeelServer

__getattr__ = lazy_getattr("keel.serve", _NAMES)

__all__ = [
    "AuthError",
    "Client",
    "KeelServer",
    "MicroBatcher",
    "PredictionLog",
    "RequestError",
    "ScopeError",
    "TokenRequiredError",
    "create_app",
    "error_response",
    "exposure_warnings",
    "status_of",
]
