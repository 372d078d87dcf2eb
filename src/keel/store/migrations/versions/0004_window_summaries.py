"""Window summaries: monitoring's verdicts per complete window and per day, cached.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "window_summaries",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("role", sa.String(20), primary_key=True),
        sa.Column("resolution_s", sa.Integer, primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
    )
    # covering index: which windows exist and whether they changed, without reading a profile
    op.create_index(
        "ix_window_profiles_sources",
        "window_profiles",
        ["model", "role", "window_start", "version", "rows", "updated_at", "window_s"],
    )


def downgrade() -> None:
    op.drop_index("ix_window_profiles_sources", "window_profiles")
    op.drop_table("window_summaries")
