"""`keel stream`: score a Redis Stream, a NATS JetStream subject or a RabbitMQ queue."""

from __future__ import annotations

import asyncio

import typer

from keel.render import console


def stream_cmd(
    name: str = typer.Argument(..., help="The model to serve (its production, canary, shadow)."),
    source: str = typer.Option(
        ...,
        help="Where messages come from: redis://H:P/DB?stream=S&group=G, "
        "nats://H:P?subject=S&stream=N&durable=D or amqp://U:P@H:P/VHOST?queue=Q.",
    ),
    sink: str = typer.Option(..., help="Where scores go (a URL of the same forms)."),
    dead_letter: str | None = typer.Option(
        None, help="Where refused messages go, with their reasons (default: the sink)."
    ),
    labels: str | None = typer.Option(
        None, help='A stream of labels {"prediction_id"|"message_id", "label"} for feedback.'
    ),
    stream_name: str | None = typer.Option(
        None, help="The stream's name in metrics and dead letters (default: the model's)."
    ),
    batch_size: int = typer.Option(64, help="Most messages scored together."),
    max_wait_ms: float = typer.Option(
        20.0, help="Longest a batch waits to fill once its first message is there."
    ),
    max_inflight: int = typer.Option(
        2048, help="Most messages read and not acknowledged (back-pressure)."
    ),
    ack_interval_ms: float = typer.Option(
        200.0, help="How often the log is flushed and the scored messages acknowledged."
    ),
    max_messages: int | None = typer.Option(None, help="Stop after reading this many messages."),
    idle_exit: float | None = typer.Option(
        None, help="Stop after this many seconds without a message."
    ),
    metrics_port: int | None = typer.Option(
        None, help="Serve Prometheus metrics on 127.0.0.1:PORT/metrics."
    ),
) -> None:
    """Score messages at least once through the same serving core as `keel serve`.

    A message is one JSON row or {"rows": [...]}; each answered row is written to the sink as
    {"message_id", "prediction_id", "model", "version", "prediction", "probabilities",
    "classes"}; refused rows go to the dead letters with their reasons. A message is
    acknowledged after its scores are in the sink and the prediction log. SIGTERM drains.
    Kafka is not provided. See docs/streams.md.
    """
    from keel.store import load_settings
    from keel.stream import StreamOptions, run_stream

    options = StreamOptions(
        name=stream_name or name,
        model=name,
        batch_size=batch_size,
        max_wait_ms=max_wait_ms,
        max_inflight=max_inflight,
        ack_interval_ms=ack_interval_ms,
        max_messages=max_messages,
        idle_exit_s=idle_exit,
    )
    totals = asyncio.run(
        run_stream(
            load_settings(),
            options,
            source=source,
            sink=sink,
            dead_letter=dead_letter,
            labels=labels,
            metrics_port=metrics_port,
        )
    )
    console.print(
        f"stream {options.name}: {totals.read} messages read, {totals.acked} acknowledged, "
        f"{totals.scores} scores, {totals.dead_letters} dead letters, "
        f"{totals.from_log} answered from the log, {totals.labels} labels"
    )
