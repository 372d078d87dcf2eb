"""Settings from `keel.toml` and `KEEL_*` environment variables.

Precedence, highest first: arguments given to `Settings(...)`, environment variables, the
`keel.toml` file in the working directory (or the file named by `KEEL_CONFIG`), the defaults.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from keel.store.errors import ConfigError
from keel.store.loop_section import LoopPolicy
from keel.store.sections import AlertRuleSection, DriftSection, PerformanceSection

_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")
_NEVER_TRUSTED = frozenset(
    {
        "builtins",
        "os",
        "posix",
        "nt",
        "sys",
        "subprocess",
        "shutil",
        "importlib",
        "pickle",
        "marshal",
        "runpy",
        "socket",
        "ctypes",
        "code",
        "codeop",
        "pty",
        "io",
        "operator",
    }
)


def _config_file() -> Path:
    return Path(os.environ.get("KEEL_CONFIG", "keel.toml"))


class Settings(BaseSettings):
    """Where keel keeps its state, and the secrets it needs."""

    model_config = SettingsConfigDict(env_prefix="KEEL_", extra="forbid", validate_default=True)

    home: Path = Field(default=Path(".keel"))
    """Folder for everything keel keeps on a laptop. `KEEL_HOME`; default `.keel/` here."""

    database_url: str | None = None
    """SQLAlchemy URL of the metadata database. `KEEL_DATABASE_URL`; default a SQLite file
    `keel.db` in the home folder. PostgreSQL: `postgresql+psycopg://user@host:5432/db`."""

    artifacts: str | None = None
    """Root of the artifact store: a folder or any fsspec URL (`s3://bucket/keel`).
    `KEEL_ARTIFACTS`; default the folder `artifacts/` in the home folder."""

    s3_endpoint_url: str | None = None
    """Endpoint of an S3-compatible object store (MinIO, Ceph, moto, a cloud other than AWS),
    e.g. `http://127.0.0.1:9000`. `KEEL_S3_ENDPOINT_URL`; unset: AWS itself. Credentials come
    from the usual AWS variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    `AWS_SESSION_TOKEN`, `AWS_PROFILE`) or the machine's role, read by s3fs, never by keel."""

    s3_region: str | None = None
    """Region of the bucket (`KEEL_S3_REGION`); unset: `AWS_REGION` / `AWS_DEFAULT_REGION`."""

    secret_key: str | None = None
    """Key for pseudonymization (HMAC-SHA256). `KEEL_SECRET_KEY`; when unset, a random key is
    made once and kept in `secret.key` in the home folder (readable by its owner only)."""

    tokens: dict[str, list[str]] = Field(default_factory=dict)
    """API tokens and their scopes (`predict`, `feedback`, `view`, `admin`, `jobs`), e.g.
    `KEEL_TOKENS='{"s3cret": ["admin", "predict", "feedback", "view"]}'`. Admin calls always
    need one."""

    open_predict: bool | None = None
    """Whether predict and explain calls may come without a token. Unset: open when no tokens
    are configured, closed as soon as `tokens` is set (set it to true to keep predict open)."""

    max_body_bytes: int = 10 * 1024 * 1024
    """Largest request body the server reads; larger ones get 413."""

    max_rows: int = Field(default=10_000, ge=1)
    """Most rows one predict, explain, Open Inference Protocol or MLflow request may carry;
    more get 413 naming the limit and the count. Requests over a few dozen rows are checked and
    predicted off the event loop, in chunks, so probes and small requests keep their latency."""

    max_explain_rows: int = Field(default=100, ge=1)
    """Most rows one explain request may carry (more get 413). SHAP holds the interpreter while
    it works (measured: 10,000 rows took 20 s and stalled `/healthz` 10 s; 2,000 rows 4.7 s), so
    explanations are short and one at a time per server."""

    max_inflight_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Bytes of request bodies the server holds at once, across concurrent requests. A body
    that would go over it gets 503 with `Retry-After`, instead of the process growing until the
    machine runs out of memory. At least `max_body_bytes`, or the largest body is never read."""

    parse_workers: int = Field(default=1, ge=0)
    """Processes that parse large request bodies (over 64 KiB), so a 10 MB body never holds
    the server's interpreter lock; each one counts the rows and refuses too many (413) before
    the server sees them. 0: parse large bodies in a thread of the server instead."""

    load_timeout_s: float = Field(default=120.0, gt=0)
    """Longest a new model version may take to load and warm up. Past it the version is refused
    (an alert fires, the version serving keeps serving), so no artifact can hang the server."""

    max_batch_size: int = 256
    """Most rows the server sends to a model at once."""

    flush_interval_s: float = 0.5
    """How often buffered predictions are written to the log (what `kill -9` can lose)."""

    log_buffer_rows: int = Field(default=250_000, ge=1)
    """Most prediction records held in memory waiting for the log's writer. When the writer
    falls behind (a slow or failing artifact store), the buffer is spilled to local files under
    `spill/` in the home folder; see `log_spill_rows`."""

    log_spill_rows: int = Field(default=2_000_000, ge=0)
    """Most prediction records kept in local spill files waiting for the artifact store. When
    both the buffer and the spill are full, predict answers 503 with `Retry-After` (a prediction
    is answered only once its record is buffered) and `/readyz` answers 503."""

    max_queue_rows: int = Field(default=50_000, ge=1)
    """Most rows waiting for one model version; a request beyond gets 503 with `Retry-After`
    (a request alone in the queue always goes, whatever its size)."""

    max_wait_ms: float = Field(default=5_000.0, gt=0)
    """Longest a request waits in the queue of a busy model before it gets 503 with
    `Retry-After`; a request the model has started on is always answered."""

    db_connect_timeout_s: float = Field(default=5.0, gt=0)
    """Longest a connection to the metadata database may take to open (PostgreSQL)."""

    db_pool_size: int = Field(default=5, ge=1)
    """Connections each process keeps open to the metadata database (SQLAlchemy's
    `pool_size`; PostgreSQL only). A server process needs one per concurrent database call:
    the registry follower, the window profiles' writer, and admin or dashboard reads.
    Budget: replicas x workers x (db_pool_size + db_max_overflow) + the loop + `keel ui`
    must stay under PostgreSQL's `max_connections` (see docs/scaling.md)."""

    db_max_overflow: int = Field(default=10, ge=0)
    """Connections a process may open beyond `db_pool_size` at a peak, closed when returned
    (SQLAlchemy's `max_overflow`; PostgreSQL only). A caller past pool + overflow waits for a
    free connection at most `db_statement_timeout_s` + 2 s, then fails naming the limit."""

    db_statement_timeout_s: float = Field(default=10.0, gt=0)
    """Longest one statement may run or wait for a lock: PostgreSQL's `statement_timeout` (and,
    two seconds later, the client stops waiting for an answer, so a stalled network cannot hold
    a caller), SQLite's `busy_timeout`. A call past it fails with an error naming the limit."""

    profile_retry_max_s: float = Field(default=30.0, gt=0)
    """Longest pause between two attempts to save window profiles while the database fails
    (the pause doubles from `flush_interval_s` after each failure); unsaved windows are kept."""

    poll_interval_s: float = 1.0
    """How often the server checks the registry for alias moves."""

    window_s: int = 3600
    """Length of a monitoring window in seconds (window profiles, drift, live metrics)."""

    alert_rules: list[AlertRuleSection] = Field(default_factory=list)
    """Alert rules (see `keel.monitor.rules`), e.g. in keel.toml
    `[[alert_rules]] name = "drift" kind = "drift" threshold = 3 windows = 2 trigger = true`.
    Empty: the default rules. A kind or key monitoring does not know fails here, naming the
    valid ones."""

    alert_file: str | None = None
    """A JSON-lines file every alert is appended to."""

    alert_webhook: str | None = None
    """A URL every alert is POSTed to as JSON (with a `text` field, as Slack takes it)."""

    job_roots: tuple[str, ...] = ()
    """Folders batch jobs (`POST /v1/models/{m}/jobs`) may read their input from and write their
    output to; any other path (`..`, a symlink out, another folder) is refused with 400. An
    entry may be an object-store prefix (`s3://bucket/batch`): jobs then read Parquet from and
    write under it (through the store's endpoint and credentials).
    `KEEL_JOB_ROOTS='["/srv/batch", "s3://bucket/batch"]'`; default the folder `data/` in the
    home folder."""

    job_chunk_rows: int = Field(default=50_000, ge=1)
    """Rows a batch job scores at a time (as `keel predict --chunk-rows`)."""

    job_stale_s: float = Field(default=60.0, gt=0)
    """A running job whose server sent no heartbeat for this long is marked failed (its server
    stopped); servers beat every quarter of it."""

    drift: DriftSection = Field(default_factory=DriftSection)
    """Drift thresholds overriding `keel.monitor.DriftConfig`: alpha, wasserstein,
    jensen_shannon, min_rows; e.g. `KEEL_DRIFT='{"alpha": 0.05}'`."""

    drift_min_rows: dict[str, int] = Field(default_factory=dict)
    """Per model, the fewest rows a window needs before drift and window alerts judge it,
    overriding `drift.min_rows` (100) for that model: e.g. in keel.toml
    `[drift_min_rows]` `census = 30`, or `KEEL_DRIFT_MIN_ROWS='{"census": 30}'`. A window with
    fewer rows is shown as "too few rows to judge (n < min)", never as stable."""

    performance: PerformanceSection = Field(default_factory=PerformanceSection)
    """Label-coverage rules overriding `keel.monitor.performance.PerformanceConfig`:
    min_coverage, min_labels, pool_windows."""

    loop: LoopPolicy = LoopPolicy()
    """The loop's policy (`keel.loop.LoopPolicy`: judge, margins, waits, watch period),
    validated at load: a mistyped key is refused with the valid keys named."""

    profiles: bool = True
    """Whether the server keeps window profiles (monitoring). Off only to measure their cost."""

    summaries: bool = True
    """Keep each complete window's verdicts in the database (monitoring judges a window once,
    not at every page, report and loop step). Off only to measure what it saves."""

    lookback_windows: int = 24 * 14
    """How many recent windows monitoring reads (status, alerts, the loop's evidence)."""

    replay_time: bool = False
    """Honour an `X-Keel-Time` header on predict and feedback: the time to log, for replaying
    historical traffic (backfills, simulations, the demo). Off in production."""

    trusted_types: tuple[str, ...] = ()
    """Types keel may load from a skops artifact beyond its own reviewed list, e.g. your own
    estimator: `trusted_types = ["mypkg.models.MyEstimator"]` in keel.toml, or
    `KEEL_TRUSTED_TYPES='["mypkg.models.MyEstimator"]'`. Trusting a type means trusting its
    code on load: list only classes you have reviewed. Every model version records which of
    these it needed (`extra_trusted_types` in its lineage and its registration's audit event);
    a server loads such a version only if its own setting trusts the same types."""

    @field_validator("trusted_types", mode="after")
    @classmethod
    def _dotted_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not _DOTTED.fullmatch(name):
                msg = f"trusted type {name!r} is not a dotted class path like 'mypkg.models.MyEstimator'"
                raise ValueError(msg)
            if name.partition(".")[0] in _NEVER_TRUSTED:
                msg = (
                    f"trusted type {name!r} is in module {name.partition('.')[0]!r}, whose "
                    f"objects run code or touch the system; keel never trusts {sorted(_NEVER_TRUSTED)}"
                )
                raise ValueError(msg)
        return value

    @model_validator(mode="after")
    def _budget_holds_a_body(self) -> Settings:
        if self.max_inflight_bytes < self.max_body_bytes:
            msg = (
                f"max_inflight_bytes ({self.max_inflight_bytes}) is below max_body_bytes "
                f"({self.max_body_bytes}); expected at least one body's worth, or the largest "
                "bodies are never read"
            )
            raise ValueError(msg)
        return self

    @field_validator("s3_endpoint_url", mode="after")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            msg = f"expected an http(s) URL like 'http://127.0.0.1:9000', got {value!r}"
            raise ValueError(msg)
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("drift_min_rows", mode="after")
    @classmethod
    def _positive_min_rows(cls, value: dict[str, int]) -> dict[str, int]:
        for model, rows in value.items():
            if not model or rows < 1:
                msg = f"model {model!r} has min_rows {rows}; expected a model name and a whole number of at least 1"
                raise ValueError(msg)
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file()
        if path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the SQLite default filled in."""
        return self.database_url or f"sqlite:///{self.home / 'keel.db'}"

    @property
    def resolved_job_roots(self) -> tuple[Path, ...]:
        """The local folders batch jobs may use, absolute, symlinks resolved."""
        roots = self.job_roots or (str(self.home / "data"),)
        return tuple(Path(r).expanduser().resolve() for r in roots if "://" not in r)

    @property
    def job_url_roots(self) -> tuple[str, ...]:
        """The object-store prefixes batch jobs may use (`s3://bucket/batch`), each ending in
        "/"; the store's settings (endpoint, region) handed to fsspec first."""
        urls = tuple(r.rstrip("/") + "/" for r in self.job_roots if "://" in r)
        for url in urls:
            configure_object_storage(url, self.s3_endpoint_url, self.s3_region)
        return urls

    @property
    def resolved_artifacts(self) -> str:
        """The artifact root, with the local default filled in. For an object store URL, the
        store's settings (endpoint, region) are handed to fsspec first, so every reader and
        writer of the root (the log, monitoring, the loop, the dashboard) opens it alike."""
        if self.artifacts and "://" in self.artifacts:
            configure_object_storage(self.artifacts, self.s3_endpoint_url, self.s3_region)
            return self.artifacts.rstrip("/")
        return self.artifacts or str(self.home / "artifacts")

    @property
    def cache_dir(self) -> Path:
        """Local cache of objects downloaded from a remote artifact store, by sha256."""
        return self.home / "cache"

    @property
    def predict_is_open(self) -> bool:
        """Whether predict and explain answer without a token (see `open_predict`)."""
        if self.open_predict is None:
            return not self.tokens
        return self.open_predict

    def scopes_for(self, token: str) -> frozenset[str] | None:
        """The scopes of `token`, or None for a token this server does not know. Every known
        token is compared in constant time (`hmac.compare_digest`), so timing tells nothing."""
        found: frozenset[str] | None = None
        given = token.encode()
        for known, scopes in self.tokens.items():
            if hmac.compare_digest(known.encode(), given):
                found = frozenset(scopes)
        return found

    def resolved_secret_key(self) -> bytes:
        """The pseudonymization key; made and stored in the home folder on first use."""
        if self.secret_key:
            return self.secret_key.encode()
        path = self.home / "secret.key"
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
            os.replace(tmp, path)
        return path.read_text().strip().encode()


def configure_object_storage(
    root: str, endpoint_url: str | None = None, region: str | None = None
) -> None:
    """Tell fsspec how to open `root`'s object store: the endpoint and region, and no listings
    cache (a replica must see the log files another replica wrote a moment ago). fsspec's
    configuration is per process and per protocol, which is what every `url_to_fs(root)` of
    keel reads; credentials are left to s3fs (the usual AWS variables and files)."""
    import fsspec.config

    protocol = root.split("://", 1)[0].lower()
    if protocol not in ("s3", "s3a"):
        return
    options: dict[str, Any] = {"use_listings_cache": False}
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        options["client_kwargs"] = {"region_name": region}
    for name in (protocol, "s3"):
        conf = fsspec.config.conf.setdefault(name, {})
        if any(conf.get(k) != v for k, v in options.items()):
            conf.update(options)


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning pydantic's validation report into one readable ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "settings"
        top = str(first["loc"][0]) if first["loc"] else field
        reason = first["msg"].removeprefix("Value error, ")
        msg = (
            f"Setting '{field}' has the value {first.get('input')!r}: {reason}. "
            f"Fix it in {_config_file()} or in the KEEL_{top.upper()} environment variable."
        )
        raise ConfigError(msg) from exc
