"""Contracts, dataset versions and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "contract_sha256", sa.String(64), sa.ForeignKey("contracts.sha256"), nullable=False
        ),
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
    op.create_index("ix_dataset_versions_name_created", "dataset_versions", ["name", "created_at"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", "audit_events")
    op.drop_table("audit_events")
    op.drop_index("ix_dataset_versions_name_created", "dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_table("contracts")
