"""Serve: HTTP inference with micro-batching, traffic policy, hot swap, prediction log, feedback.

Names load on first use (PEP 562): the body-parsing worker process (`keel.serve.bodies`)
imports this package, and must not pull in Starlette's app, the registry and scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "ClientError": "keel.serve.client",
    "AuthError": "keel.serve.errors",
    "Client": "keel.serve.client",
    "KeelServer": "keel.serve.server",
    "MicroBatcher": "keel.serve.batching",
    "RequestError": "keel.serve.errors",
    "ScopeError": "keel.serve.errors",
    "TokenRequiredError": "keel.serve.errors",
    "create_app": "keel.serve.app",
    "error_response": "keel.serve.app",
    "status_of": "keel.serve.app",
    "exposure_warnings": "keel.serve.exposure",
    "RayScaling": "keel.serve.ray",
    "ray_deployment": "keel.serve.ray",
}

if TYPE_CHECKING:
    from keel.serve.app import (
        create_app as create_app,
        error_response as error_response,
        status_of as status_of,
    )
    from keel.serve.batching import MicroBatcher as MicroBatcher
    from keel.serve.client import Client as Client, ClientError as ClientError
    from keel.serve.errors import (
        AuthError as AuthError,
        RequestError as RequestError,
        ScopeError as ScopeError,
        TokenRequiredError as TokenRequiredError,
    )
    from keel.serve.exposure import exposure_warnings as exposure_warnings
    from keel.serve.ray import RayScaling as RayScaling, ray_deployment as ray_deployment
    from keel.serve.server import KeelServer as KeelServer

__getattr__ = lazy_getattr("keel.serve", _NAMES)

__all__ = sorted(_NAMES)
