"""The metadata tables. Alembic migrations in `migrations/` create and change them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

contracts = sa.Table(
    "contracts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("yaml", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

dataset_versions = sa.Table(
    "dataset_versions",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("contract_sha256", sa.String(64), sa.ForeignKey("contracts.sha256"), nullable=False),
    sa.Column("data_sha256", sa.String(64), nullable=False),
    sa.Column("quarantine_sha256", sa.String(64), nullable=True),
    sa.Column("source_uri", sa.Text, nullable=False),
    sa.Column("source_sha256", sa.String(64), nullable=False),
    sa.Column("parents", sa.JSON, nullable=False),
    sa.Column("transforms", sa.JSON, nullable=False),
    sa.Column("rows_in", sa.Integer, nullable=False),
    sa.Column("rows_versioned", sa.Integer, nullable=False),
    sa.Column("rows_quarantined", sa.Integer, nullable=False),
    sa.Column("quarantine_by_rule", sa.JSON, nullable=False),
    sa.Column("columns", sa.JSON, nullable=False),
    sa.Column("stats", sa.JSON, nullable=False),
)
sa.Index("ix_dataset_versions_name_created", dataset_versions.c.name, dataset_versions.c.created_at)

audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("subject", sa.String(400), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
)
sa.Index("ix_audit_events_subject", audit_events.c.subject)

models = sa.Table(
    "models",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", sa.String(200), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("artifact_sha256", sa.String(64), nullable=False),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("artifact_size", sa.Integer, nullable=False),
    sa.Column("trusted_types", sa.JSON, nullable=False),
    sa.Column("contract_sha256", sa.String(64), nullable=False),
    sa.Column("dataset_version", sa.String(300), nullable=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("evaluation", sa.JSON, nullable=False),
    sa.Column("lineage", sa.JSON, nullable=False),
    sa.Column("card_sha256", sa.String(64), nullable=True),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", sa.String(200), sa.ForeignKey("models.name"), primary_key=True),
    sa.Column("alias", sa.String(50), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("weight", sa.Float, nullable=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

window_profiles = sa.Table(
    "window_profiles",
    metadata,
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(20), primary_key=True),
    sa.Column("segment", sa.String(200), primary_key=True),  # "" for all rows without one
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("writer", sa.String(64), primary_key=True),  # one server process: merge by adding
    sa.Column("window_s", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index("ix_window_profiles_model_time", window_profiles.c.model, window_profiles.c.window_start)
sa.Index(
    "ix_window_profiles_sources",
    *(
        window_profiles.c[c]
        for c in ("model", "role", "window_start", "version", "rows", "updated_at", "window_s")
    ),
)

window_summaries = sa.Table(
    "window_summaries",
    metadata,
    # what monitoring concluded about one complete window (or day) of a version: a cache, kept
    # while `fingerprint` (rows, writers and last update of its profiles, the drift settings)
    # still matches, so pages and the loop do not judge a year of windows again at each read
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(20), primary_key=True),
    sa.Column("resolution_s", sa.Integer, primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(20), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("trigger", sa.Boolean, nullable=False),
    sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index("ix_alerts_model_time", alerts.c.model, alerts.c.time)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)

hooks = sa.Table(
    "hooks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.JSON, nullable=False),
    sa.Column(
        "secret", sa.String(200), nullable=False
    ),  # signs; never printed (keel.store.signing)
    sa.Column("format", sa.String(20), nullable=False),  # "keel" or "cloudevents"
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # the outbox cursors: the last audit event and alert this hook has deliveries made for
    sa.Column("audit_cursor", sa.Integer, nullable=False),
    sa.Column("alert_cursor", sa.Integer, nullable=False),
    sqlite_autoincrement=True,  # an id is never reused: deliveries keep naming their hook
)

hook_deliveries = sa.Table(
    "hook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("hook_id", sa.Integer, nullable=False),  # kept after the hook is removed: history
    sa.Column("message_id", sa.String(100), nullable=False),  # webhook-id, the same on retries
    sa.Column("event", sa.String(50), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("hook_id", "message_id", name="uq_hook_deliveries_message"),
)
sa.Index("ix_hook_deliveries_due", hook_deliveries.c.status, hook_deliveries.c.next_attempt_at)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),  # queued, running, succeeded, failed
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("input", sa.Text, nullable=False),
    sa.Column("output", sa.Text, nullable=False),
    sa.Column("refused_output", sa.Text, nullable=True),
    sa.Column("callback", sa.Text, nullable=True),
    sa.Column("callback_secret", sa.String(200), nullable=True),
    sa.Column("callback_status", sa.String(200), nullable=True),
    sa.Column("rows_in", sa.Integer, nullable=False),
    sa.Column("rows_scored", sa.Integer, nullable=False),
    sa.Column("rows_refused", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
)
sa.Index("ix_jobs_model_created", jobs.c.model, jobs.c.created_at)
