"""The loop: the controller that retrains, shadows, promotes and rolls back by itself.

Names load on first use (PEP 562), as in every face.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "decide": "keel.loop.decision",
    "Decision": "keel.loop.decision",
    "Lease": "keel.loop.lease",
    "Loop": "keel.loop.controller",
    "LoopPolicy": "keel.store",
    "Move": "keel.loop.decision",
    "RetrainResult": "keel.loop.retrain",
    "ShadowFigures": "keel.loop.decision",
    "Situation": "keel.loop.decision",
}

if TYPE_CHECKING:
    from keel.loop.controller import Loop as Loop
    from keel.loop.decision import (
        Decision as Decision,
        Move as Move,
        ShadowFigures as ShadowFigures,
        Situation as Situation,
        decide as decide,
    )
    from keel.loop.lease import Lease as Lease
    from keel.loop.retrain import RetrainResult as RetrainResult
    from keel.store import LoopPolicy as LoopPolicy

__getattr__ = lazy_getattr("keel.loop", _NAMES)

__all__ = sorted(_NAMES)
