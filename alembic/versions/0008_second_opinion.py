"""second opinions: corrections sent to a second moderator, disputes and admins' decisions

One row per routed correction (sampled, or contradicting a confident prediction): its
status (open, agreed, disputed, decided), the second moderator's answer and the admin's
decision, both stored as annotations and linked here. ``active_hash`` keeps one open or
disputed request per task and text.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 11:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("open", "agreed", "disputed", "decided")


def upgrade() -> None:
    op.create_table(
        "second_opinions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column(
            "annotation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column(
            "prediction_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("active_hash", sa.String(length=64), nullable=True),
        sa.Column("first_annotator", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *STATUSES,
                name="second_opinion_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "second_annotation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("second_annotator", sa.String(length=64), nullable=True),
        sa.Column("answered_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "decision_annotation_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", storage.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_second_opinions_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_second_opinions_prediction_id_predictions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_second_opinions_message_id_messages"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["second_annotation_id"],
            ["annotations.id"],
            name=op.f("fk_second_opinions_second_annotation_id_annotations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["decision_annotation_id"],
            ["annotations.id"],
            name=op.f("fk_second_opinions_decision_annotation_id_annotations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_second_opinions")),
        sa.UniqueConstraint("annotation_id", name=op.f("uq_second_opinions_annotation_id")),
        sa.UniqueConstraint(
            "task", "active_hash", name=op.f("uq_second_opinions_task_active_hash")
        ),
    )
    with op.batch_alter_table("second_opinions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_second_opinions_task_status_created_at"),
            ["task", "status", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("second_opinions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_second_opinions_task_status_created_at"))
    op.drop_table("second_opinions")
