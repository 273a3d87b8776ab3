"""channel policies, moderation actions on alerts, authors' appeals

A policy per channel and task (watch, threshold, action, exempt users and groups); the
workspace default stays in the settings. An alert records the action its channel's policy
chose (``alert`` for every alert stored before) and when the bot removed the message. An
appeal is an author contesting an alert; its decision is an annotation of source ``appeal``
(a new value of the annotation source check).

Revision ID: 0006
Revises: 0004 (re-point to 0005 when the drift migration is merged)
Create Date: 2026-12-04 07:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIONS = ("log", "alert", "react", "notify", "remove")
APPEAL_STATUSES = ("open", "upheld", "denied")
OLD_SOURCES = ("seed", "correction", "admin", "import")
NEW_SOURCES = (*OLD_SOURCES, "appeal")
SOURCE_CHECK = "ck_annotations_annotation_source"


def _sources(sources: Sequence[str]) -> None:
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(SOURCE_CHECK), type_="check")
        batch_op.create_check_constraint(op.f(SOURCE_CHECK), sa.column("source").in_(sources))


def _action_type() -> sa.Enum:
    return sa.Enum(
        *ACTIONS, name="policy_action", native_enum=False, create_constraint=True, length=16
    )


def upgrade() -> None:
    _sources(NEW_SOURCES)
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("action", _action_type(), server_default="alert", nullable=False)
        )
        batch_op.add_column(
            sa.Column("removed_at", storage.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "channel_policies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("channel_id", sa.String(length=32), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("watch", sa.Boolean(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("action", _action_type(), nullable=True),
        sa.Column("exempt", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_policies")),
        sa.UniqueConstraint("channel_id", "task", name=op.f("uq_channel_policies_channel_id_task")),
    )
    op.create_table(
        "appeals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("alert_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("author_id", sa.String(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *APPEAL_STATUSES,
                name="appeal_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("label", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_appeals_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_appeals")),
        sa.UniqueConstraint("alert_id", name=op.f("uq_appeals_alert_id")),
    )
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_appeals_author_id_created_at"), ["author_id", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_appeals_status_created_at"), ["status", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_appeals_status_created_at"))
        batch_op.drop_index(batch_op.f("ix_appeals_author_id_created_at"))
    op.drop_table("appeals")
    op.drop_table("channel_policies")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_alerts_policy_action"), type_="check")
        batch_op.drop_column("removed_at")
        batch_op.drop_column("action")
    # An appeal's decision is a moderator's label: kept, as a correction.
    op.execute("UPDATE annotations SET source = 'correction' WHERE source = 'appeal'")
    _sources(OLD_SOURCES)
