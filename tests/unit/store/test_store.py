"""Stores: settings precedence, atomic content-addressed artifacts, migrated metadata."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from keel.store import (
    ArtifactStore,
    ConfigError,
    Database,
    FakeClock,
    IntegrityError,
    NotFoundError,
    Settings,
    load_settings,
)


class TestSettings:
    def test_defaults_live_in_the_home_folder(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With nothing set, the database and artifacts live in ./.keel."""
        monkeypatch.chdir(tmp_path)

        s = Settings()

        assert s.home == tmp_path / ".keel"
        assert s.resolved_database_url == f"sqlite:///{tmp_path / '.keel' / 'keel.db'}"
        assert s.resolved_artifacts == str(tmp_path / ".keel" / "artifacts")

    def test_environment_beats_toml(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """KEEL_* variables override keel.toml, which overrides the defaults."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "keel.toml").write_text('home = "from-toml"\nartifacts = "memory://toml"\n')
        monkeypatch.setenv("KEEL_ARTIFACTS", "memory://env")

        s = Settings()

        assert s.home == tmp_path / "from-toml"
        assert s.artifacts == "memory://env"

    def test_unknown_setting_is_one_readable_error(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A typo in keel.toml names the setting and the file."""
        monkeypatch.chdir(tmp_path)
        (tmp_path / "keel.toml").write_text('hom = "x"\n')

        with pytest.raises(
            ConfigError, match=r"Setting 'hom' has the value 'x'.*Fix it in keel.toml"
        ):
            load_settings()

    def test_secret_key_is_made_once_and_private(self, tmp_path: Path) -> None:
        """Without KEEL_SECRET_KEY a key is generated once, readable by its owner only."""
        s = Settings(home=tmp_path)

        first, second = s.resolved_secret_key(), s.resolved_secret_key()

        assert first == second
        assert len(first) == 64
        assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


class TestArtifacts:
    def test_same_bytes_same_object(self, tmp_path: Path) -> None:
        """Content addressing: storing the same bytes twice gives one object."""
        store = ArtifactStore(str(tmp_path))

        a, b = store.put_bytes(b"hello"), store.put_bytes(b"hello")

        assert a == b
        assert store.get_bytes(a.sha256) == b"hello"
        assert list(tmp_path.rglob("*.tmp-*")) == []

    def test_changed_byte_is_refused(self, tmp_path: Path) -> None:
        """A stored object whose bytes changed is refused with both hashes named."""
        store = ArtifactStore(str(tmp_path))
        obj = store.put_bytes(b"model weights")
        Path(obj.uri).write_bytes(b"model weightz")

        with pytest.raises(IntegrityError, match=r"was changed: its sha256 is .*expected"):
            store.get_bytes(obj.sha256)

    def test_missing_object(self, tmp_path: Path) -> None:
        """An unknown hash is a NotFoundError naming the store."""
        with pytest.raises(NotFoundError, match=r"No stored object 000000000000"):
            ArtifactStore(str(tmp_path)).get_bytes("0" * 64)

    def test_any_fsspec_url(self) -> None:
        """Object storage works through fsspec URLs (here the in-memory file system)."""
        store = ArtifactStore("memory://keel-test")
        obj = store.put_bytes(b"x" * 10)

        assert obj.uri.startswith("memory://")
        assert store.get_bytes(obj.sha256) == b"x" * 10

    def test_put_file(self, tmp_path: Path) -> None:
        """A local file is stored by its content hash."""
        path = tmp_path / "f.bin"
        path.write_bytes(b"abc" * 1000)
        store = ArtifactStore(str(tmp_path / "store"))

        obj = store.put_file(path)

        assert obj.size == 3000
        assert store.get_bytes(obj.sha256) == b"abc" * 1000


class TestDatabase:
    def test_migrates_to_head_and_reopens(self, database_url: str) -> None:
        """Opening a fresh database creates every table; opening it again is a no-op."""
        db = Database(database_url)
        Database(database_url).dispose()

        names = set(sa.inspect(db.engine).get_table_names())

        assert {"contracts", "dataset_versions", "audit_events", "alembic_version"} <= names
        db.dispose()

    def test_audit_events_round_trip(self, database_url: str) -> None:
        """Events are appended with the clock's time and read back oldest first, in UTC."""
        clock = FakeClock(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        db = Database(database_url, clock=clock)
        with db.begin() as conn:
            db.record_event(conn, actor="test", action="a.one", subject="x:1", details={"n": 1})
        clock.advance(seconds=5)
        with db.begin() as conn:
            db.record_event(conn, actor="test", action="a.two", subject="y:1", reason="why")

        events = db.events()

        assert [e["action"] for e in events] == ["a.one", "a.two"]
        assert events[1]["time"] == dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
        assert [e["action"] for e in db.events(prefix="y:")] == ["a.two"]
        assert [e["action"] for e in db.events("y:1")] == ["a.two"]
        assert db.events("y:") == []  # a subject is matched whole
        db.dispose()

    def test_bad_url_is_a_config_error(self) -> None:
        """A URL SQLAlchemy cannot parse names itself and an example."""
        with pytest.raises(ConfigError, match=r"Database URL 'nonsense' is not a SQLAlchemy URL"):
            Database("nonsense")


def test_fake_clock_needs_a_time_zone() -> None:
    """Naive datetimes are refused: keel keeps time in UTC."""
    with pytest.raises(ValueError, match=r"has no time zone"):
        FakeClock(dt.datetime(2026, 1, 1))
