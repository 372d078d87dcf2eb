"""The main job: keel end to end on the built-in transaction simulator.

`keel.demo.simulate` (the seeded transaction simulator) is demo and test material; importing it
does not load the demo's run, so names here load on first use (PEP 562).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "Event": "keel.demo.simulate",
    "TransactionSimulator": "keel.demo.simulate",
    "run_demo": "keel.demo._run",
}

if TYPE_CHECKING:
    from keel.demo._run import run_demo
    from keel.demo.simulate import Event, TransactionSimulator

__getattr__ = lazy_getattr("keel.demo", _NAMES)

__all__ = ["Event", "TransactionSimulator", "run_demo"]
