"""The loop: the controller that retrains, shadows, promotes and rolls back by itself."""

from keel.loop.controller import Loop
from keel.loop.decide import Decision, Move, ShadowFigures, Situation, decide
from keel.loop.lease import Lease
from keel.loop.retrain import RetrainResult
from keel.store import LoopPolicy

__all__ = [
    "Decision",
    "Lease",
    "Loop",
    "LoopPolicy",
    "Move",
    "RetrainResult",
    "ShadowFigures",
    "Situation",
    "decide",
]
