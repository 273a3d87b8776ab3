"""review queue: moderators' skips and the review digest's last send

``review_skips`` holds each moderator's "Skip" or "Not sure" on a queued message (one row
per task, message and moderator); ``review_digests`` when each moderator was last sent the
digest, so a restarted scheduler does not send it again within its period.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 11:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SKIP_KINDS = ("skip", "not_sure")


def upgrade() -> None:
    op.create_table(
        "review_skips",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column(
            "message_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                *SKIP_KINDS, name="skip_kind", native_enum=False, create_constraint=True, length=16
            ),
            nullable=False,
        ),
        sa.Column("created_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_review_skips_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_skips")),
        sa.UniqueConstraint(
            "task", "message_id", "user_id", name=op.f("uq_review_skips_task_message_id_user_id")
        ),
    )
    with op.batch_alter_table("review_skips", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_review_skips_message_id"), ["message_id"], unique=False
        )
    op.create_table(
        "review_digests",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("sent_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_review_digests")),
    )


def downgrade() -> None:
    op.drop_table("review_digests")
    with op.batch_alter_table("review_skips", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_skips_message_id"))
    op.drop_table("review_skips")
