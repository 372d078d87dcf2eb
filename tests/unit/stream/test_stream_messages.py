"""Messages to rows, scores and dead letters to JSON, stream URLs: pure functions."""

from __future__ import annotations

import orjson
import pytest

from keel.stream import (
    StreamOptions,
    StreamUrlError,
    dead_letter,
    label_of,
    parse_body,
    parse_endpoint,
    prediction_id_of,
    score_json,
)


def test_a_body_is_one_row_or_rows() -> None:
    assert parse_body(b'{"a": 1}').rows == [{"a": 1}]
    assert parse_body('{"rows": [{"a": 1}, {"a": null}]}').rows == [{"a": 1}, {"a": None}]


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (b"nope", "json"),
        (b"[1, 2]", "shape"),
        (b"{}", "shape"),
        (b'{"rows": []}', "shape"),
        (b'{"rows": [1]}', "shape"),
        (b'{"rows": [{"a": 1}], "extra": 2}', "shape"),
        (b"\xff\xfe", "json"),
    ],
)
def test_bodies_that_are_not_rows_say_why(body: bytes, rule: str) -> None:
    parsed = parse_body(body)
    assert parsed.rows == []
    assert parsed.error is not None
    assert parsed.error["rule"] == rule
    assert parsed.error["field"] == "body"
    assert parsed.error["expected"]


def test_too_many_rows_in_one_message_is_refused() -> None:
    body = orjson.dumps({"rows": [{"a": i} for i in range(10_001)]})
    assert parse_body(body).error["rule"] == "size"  # type: ignore[index]


def test_prediction_ids_are_a_function_of_source_message_and_row() -> None:
    a = prediction_id_of("redis://h:1/0/s/g", "1-0", 0)
    assert a == prediction_id_of("redis://h:1/0/s/g", "1-0", 0)
    assert len(a) == 32
    assert int(a, 16) >= 0
    others = {
        prediction_id_of("redis://h:1/0/s/g", "1-0", 1),
        prediction_id_of("redis://h:1/0/s/g", "1-1", 0),
        prediction_id_of("redis://h:1/0/s/other", "1-0", 0),
    }
    assert a not in others
    assert len(others) == 3


def test_a_score_has_the_fields_of_the_http_answer() -> None:
    out = orjson.loads(
        score_json(
            message_id="7",
            prediction_id="p",
            model="m",
            version=3,
            prediction=1,
            probabilities=[0.25, 0.75],
            classes=[0, 1],
        )
    )
    assert out == {
        "message_id": "7",
        "prediction_id": "p",
        "model": "m",
        "version": 3,
        "prediction": 1,
        "probabilities": [0.25, 0.75],
        "classes": [0, 1],
    }


def test_a_dead_letter_carries_reasons_and_the_input() -> None:
    err = {
        "row": 1,
        "field": "region",
        "value": "mars",
        "rule": "category",
        "expected": "one of a, b",
    }
    out = orjson.loads(
        dead_letter(stream="s", message_id="9", reason="r", errors=[err], rows=[{"region": "mars"}])
    )
    assert out["errors"] == [err]
    assert out["rows"] == [{"region": "mars"}]
    assert out["message_id"] == "9"


def test_labels_name_a_prediction_or_a_message() -> None:
    assert label_of(b'{"prediction_id": "abc", "label": 0}') == ("abc", 0, 0, None)
    assert label_of(b'{"message_id": "5-0", "row": 2, "label": "yes"}') == (None, 2, "yes", "5-0")
    for bad in (
        b"x",
        b'{"label": 1}',
        b'{"prediction_id": "a", "message_id": "b", "label": 1}',
        b'{"message_id": "a", "row": -1, "label": 1}',
        b'{"prediction_id": "a"}',
    ):
        with pytest.raises(ValueError, match="expected"):
            label_of(bad)


def test_stream_urls() -> None:
    r = parse_endpoint("redis://127.0.0.1:6379/2?stream=tx&group=g", source=True)
    assert (r.kind, r.port, r.db, r.name, r.group, r.consumer) == (
        "redis",
        6379,
        2,
        "tx",
        "g",
        "keel",
    )
    n = parse_endpoint("nats://127.0.0.1:4222?subject=tx.in&stream=TX&durable=d", source=True)
    assert (n.name, n.stream, n.group) == ("tx.in", "TX", "d")
    a = parse_endpoint("amqp://guest:s3cret@127.0.0.1:5672/%2F?queue=q", source=True)
    assert (a.vhost, a.user, a.password, a.name) == ("/", "guest", "s3cret", "q")
    assert "s3cret" not in a.shown
    assert "s3cret" not in repr(a)
    assert "s3cret" not in a.identity
    assert a.amqp_url() == "amqp://guest:s3cret@127.0.0.1:5672/%2F"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("kafka://h:9092?topic=t", "Kafka is not provided"),
        ("redis://h/0?stream=s", "group="),  # a source needs its group
        ("redis://h/x?stream=s&group=g", "database"),
        ("nats://h?subject=a&durable=d", "stream="),
        ("amqp://u:secret@h/%2F", "queue="),
        ("amqp://u:secret@h/%2F?queue=q&queue=r", "2 times"),
        ("redis://h:99999/0?stream=s&group=g", "port"),
        ("redis://h/0?stream=s&group=g&topic=t", "unknown"),
        ("nats://h?subject=a b&stream=s&durable=d", "subject is"),
    ],
)
def test_bad_urls_say_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(StreamUrlError, match=says) as info:
        parse_endpoint(url, source=True)
    assert "secret" not in str(info.value)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_inflight"):
        StreamOptions(name="s", model="m", batch_size=64, max_inflight=8)
    with pytest.raises(ValueError, match="idle_exit_s"):
        StreamOptions(name="s", model="m", idle_exit_s=0)
