"""Hooks: signed outgoing webhooks for registry and monitoring events, sent from an outbox.

Names load on first use (PEP 562), as in every face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "Delivery": "keel.hooks.hookstore",
    "DispatchPass": "keel.hooks.dispatcher",
    "Dispatcher": "keel.hooks.dispatcher",
    "EVENTS": "keel.hooks.events",
    "FORMATS": "keel.hooks.events",
    "Hook": "keel.hooks.hookstore",
    "HookEvent": "keel.hooks.events",
    "HookStore": "keel.hooks.hookstore",
    "is_loopback": "keel.hooks.hookstore",
    "retry_after_s": "keel.hooks.dispatcher",
}

if TYPE_CHECKING:
    from keel.hooks.dispatcher import (
        Dispatcher as Dispatcher,
        DispatchPass as DispatchPass,
        retry_after_s as retry_after_s,
    )
    from keel.hooks.events import EVENTS as EVENTS, FORMATS as FORMATS, HookEvent as HookEvent
    from keel.hooks.hookstore import (
        Delivery as Delivery,
        Hook as Hook,
        HookStore as HookStore,
        is_loopback as is_loopback,
    )

__getattr__ = lazy_getattr("keel.hooks", _NAMES)

__all__ = sorted(_NAMES)
