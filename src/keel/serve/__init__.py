"""Serve: HTTP inference with micro-batching, traffic policy, hot swap, prediction log, feedback."""

from keel.serve.app import KeelServer, create_app
from keel.serve.batching import MicroBatcher
from keel.serve.client import Client
from keel.serve.predlog import PredictionLog

__all__ = ["Client", "KeelServer", "MicroBatcher", "PredictionLog", "create_app"]
