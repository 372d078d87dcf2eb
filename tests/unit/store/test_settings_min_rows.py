"""The per-model drift `min_rows` is validated when settings load."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.store import ConfigError, load_settings


def test_per_model_min_rows_loads_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """KEEL_DRIFT_MIN_ROWS gives each named model its own minimum."""
    monkeypatch.setenv("KEEL_DRIFT_MIN_ROWS", '{"census": 30}')

    settings = load_settings(home=tmp_path)

    assert settings.drift_min_rows == {"census": 30}


@pytest.mark.parametrize("value", ['{"census": 0}', '{"census": "many"}', '{"": 10}'])
def test_a_bad_per_model_min_rows_is_refused_with_the_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str
) -> None:
    """Zero, words or a blank model name fail at load, naming the setting."""
    monkeypatch.setenv("KEEL_DRIFT_MIN_ROWS", value)

    with pytest.raises(ConfigError, match=r"Setting 'drift_min_rows"):
        load_settings(home=tmp_path)
