"""Stream: score messages from Redis Streams, NATS JetStream or RabbitMQ through the serving
core, at least once, with the same log, profiles, traffic policy and metrics as HTTP.

Names load on first use (PEP 562): the broker clients load only when a stream connects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keel._lazy import lazy_getattr

_NAMES = {
    "Broker": "keel.stream.brokers",
    "BrokerError": "keel.stream.brokers",
    "Delivery": "keel.stream.brokers",
    "Endpoint": "keel.stream.endpoints",
    "Parsed": "keel.stream.messages",
    "StreamMetrics": "keel.stream.gauges",
    "StreamOptions": "keel.stream.runner",
    "StreamRunner": "keel.stream.runner",
    "StreamTotals": "keel.stream.runner",
    "StreamUrlError": "keel.stream.endpoints",
    "dead_letter": "keel.stream.messages",
    "label_of": "keel.stream.messages",
    "open_broker": "keel.stream.brokers",
    "parse_body": "keel.stream.messages",
    "parse_endpoint": "keel.stream.endpoints",
    "prediction_id_of": "keel.stream.messages",
    "run_stream": "keel.stream.service",
    "score_batch": "keel.stream.scoring",
    "score_json": "keel.stream.messages",
}

if TYPE_CHECKING:
    from keel.stream.brokers import (
        Broker as Broker,
        BrokerError as BrokerError,
        Delivery as Delivery,
        open_broker as open_broker,
    )
    from keel.stream.endpoints import (
        Endpoint as Endpoint,
        StreamUrlError as StreamUrlError,
        parse_endpoint as parse_endpoint,
    )
    from keel.stream.gauges import StreamMetrics as StreamMetrics
    from keel.stream.messages import (
        Parsed as Parsed,
        dead_letter as dead_letter,
        label_of as label_of,
        parse_body as parse_body,
        prediction_id_of as prediction_id_of,
        score_json as score_json,
    )
    from keel.stream.runner import (
        StreamOptions as StreamOptions,
        StreamRunner as StreamRunner,
        StreamTotals as StreamTotals,
    )
    from keel.stream.scoring import score_batch as score_batch
    from keel.stream.service import run_stream as run_stream

__getattr__ = lazy_getattr("keel.stream", _NAMES)

__all__ = sorted(_NAMES)
