"""Outgoing webhooks (hooks and their deliveries, an outbox) and asynchronous batch jobs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("events", sa.JSON, nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_cursor", sa.Integer, nullable=False),
        sa.Column("alert_cursor", sa.Integer, nullable=False),
        sqlite_autoincrement=True,  # an id is never reused: deliveries keep naming their hook
    )
    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("hook_id", sa.Integer, nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("event", sa.String(50), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("hook_id", "message_id", name="uq_hook_deliveries_message"),
    )
    op.create_index("ix_hook_deliveries_due", "hook_deliveries", ["status", "next_attempt_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
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
    op.create_index("ix_jobs_model_created", "jobs", ["model", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_model_created", "jobs")
    op.drop_table("jobs")
    op.drop_index("ix_hook_deliveries_due", "hook_deliveries")
    op.drop_table("hook_deliveries")
    op.drop_table("hooks")
