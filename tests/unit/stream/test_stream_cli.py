"""`keel stream` refuses a URL it cannot use in one line, before loading anything."""

from __future__ import annotations

import pytest

from keel.cli import main


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("kafka://127.0.0.1:9092?topic=tx", "Kafka is not provided"),
        ("redis://127.0.0.1:6379/0?stream=tx", "has no group="),
        ("amqp://guest:hunter2@127.0.0.1/%2F", "has no queue="),
    ],
)
def test_a_bad_source_is_one_line_and_exit_1(
    source: str,
    says: str,
    capfd: pytest.CaptureFixture[str],
    tmp_path: object,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main(["stream", "fraud", "--source", source, "--sink", "redis://127.0.0.1/0?stream=o"])
    assert info.value.code == 1
    err = capfd.readouterr().err
    assert says in err
    assert "hunter2" not in err
    assert "Traceback" not in err


def test_options_out_of_range_are_one_line(
    capfd: pytest.CaptureFixture[str], tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEEL_HOME", str(tmp_path))
    with pytest.raises(SystemExit) as info:
        main(
            [
                "stream",
                "fraud",
                "--source",
                "redis://h/0?stream=s&group=g",
                "--sink",
                "redis://h/0?stream=o",
                "--batch-size",
                "0",
            ]
        )
    assert info.value.code == 1
    assert "batch_size is 0; expected 1 to 10000" in capfd.readouterr().err
