"""The main job: keel end to end on the built-in transaction simulator."""

from keel.demo._run import run_demo

__all__ = ["run_demo"]
