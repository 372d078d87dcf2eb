"""The loop: the controller that retrains, shadows, promotes and rolls back by itself."""

from keel.loop.controller import Decision, Loop, LoopPolicy
from keel.loop.lease import Lease

__all__ = ["Decision", "Lease", "Loop", "LoopPolicy"]
