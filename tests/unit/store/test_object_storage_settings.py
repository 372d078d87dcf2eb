"""Settings for object storage and connection budgets: checked at load, handed to fsspec and
SQLAlchemy."""

from __future__ import annotations

from pathlib import Path

import fsspec.config
import pytest

from keel.store import ConfigError, Database, Settings, configure_object_storage, load_settings


def test_s3_settings_reach_fsspec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fsspec.config, "conf", {})
    settings = Settings(
        home=tmp_path,
        artifacts="s3://bucket/keel/",
        s3_endpoint_url="http://127.0.0.1:9000",
        s3_region="eu-west-1",
    )
    assert settings.resolved_artifacts == "s3://bucket/keel"
    assert fsspec.config.conf["s3"] == {
        "use_listings_cache": False,
        "endpoint_url": "http://127.0.0.1:9000",
        "client_kwargs": {"region_name": "eu-west-1"},
    }
    assert settings.cache_dir == tmp_path / "cache"


def test_local_and_other_roots_leave_fsspec_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fsspec.config, "conf", {})
    assert Settings(home=tmp_path).resolved_artifacts == str(tmp_path / "artifacts")
    configure_object_storage("memory://keel", "http://127.0.0.1:9000")
    assert fsspec.config.conf == {}


def test_a_bad_endpoint_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEEL_S3_ENDPOINT_URL", "minio:9000")
    with pytest.raises(ConfigError, match=r"s3_endpoint_url.*KEEL_S3_ENDPOINT_URL"):
        load_settings()


def test_pool_sizes_are_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KEEL_DB_POOL_SIZE", "0")
    with pytest.raises(ConfigError, match="db_pool_size"):
        load_settings()
    monkeypatch.setenv("KEEL_DB_POOL_SIZE", "3")
    monkeypatch.setenv("KEEL_DB_MAX_OVERFLOW", "1")
    settings = load_settings(home=tmp_path)
    assert (settings.db_pool_size, settings.db_max_overflow) == (3, 1)
    db = Database.open(settings)  # SQLite: the pool is SQLAlchemy's own for files
    db.dispose()


@pytest.mark.postgres
def test_postgres_engine_gets_the_pool_sizes() -> None:
    import os

    url = os.environ.get("KEEL_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("KEEL_TEST_POSTGRES_URL is not set (.ci/run sets it)")
    db = Database(url, pool_size=2, max_overflow=1)
    try:
        assert db.engine.pool.size() == 2  # type: ignore[attr-defined]
        assert db.engine.pool._max_overflow == 1  # type: ignore[attr-defined]
    finally:
        db.dispose()
