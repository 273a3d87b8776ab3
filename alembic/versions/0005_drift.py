"""drift: drift checks, drift episodes (one admin notice each) and review-queue flags

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 07:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "drift_episodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("open_task", sa.String(length=32), nullable=True),
        sa.Column("started_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("checks", sa.Integer(), nullable=False),
        sa.Column("notice_claimed_until", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notice_attempts", sa.Integer(), nullable=False),
        sa.Column("notified_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notice_channel", sa.String(length=80), nullable=True),
        sa.Column("notice_ts", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_episodes")),
        sa.UniqueConstraint("open_task", name=op.f("uq_drift_episodes_open_task")),
    )
    with op.batch_alter_table("drift_episodes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drift_episodes_task_started_at"), ["task", "started_at"], unique=False
        )

    op.create_table(
        "drift_checks",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("checked_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("days", sa.Float(), nullable=False),
        sa.Column("n_recent", sa.Integer(), nullable=False),
        sa.Column("n_reference", sa.Integer(), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("p_embeddings", sa.Float(), nullable=False),
        sa.Column("p_labels", sa.Float(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=False),
        sa.Column("expected_macro_f1", sa.Float(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("episode_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["episode_id"],
            ["drift_episodes.id"],
            name=op.f("fk_drift_checks_episode_id_drift_episodes"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_checks")),
    )
    with op.batch_alter_table("drift_checks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_drift_checks_episode_id"), ["episode_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_drift_checks_task_checked_at"), ["task", "checked_at"], unique=False
        )

    op.create_table(
        "review_flags",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("flagged_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "drift_check_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.ForeignKeyConstraint(
            ["drift_check_id"],
            ["drift_checks.id"],
            name=op.f("fk_review_flags_drift_check_id_drift_checks"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_review_flags_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_flags")),
        sa.UniqueConstraint(
            "task", "message_id", "reason", name=op.f("uq_review_flags_task_message_id_reason")
        ),
    )
    with op.batch_alter_table("review_flags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_flags_flagged_at"), ["flagged_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("review_flags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_flags_flagged_at"))

    op.drop_table("review_flags")
    with op.batch_alter_table("drift_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_checks_task_checked_at"))
        batch_op.drop_index(batch_op.f("ix_drift_checks_episode_id"))

    op.drop_table("drift_checks")
    with op.batch_alter_table("drift_episodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_drift_episodes_task_started_at"))

    op.drop_table("drift_episodes")
