"""workspace roles, the team of each correction, digests per workspace

Roles per workspace move into the database (``workspace_roles``); the environment's
admins and moderators still apply to a workspace without any row there. Every annotation
records the workspace of its label (``annotations.team_id``, NULL for seed and imported
labels); existing ones are back-filled from their message. The review digest is claimed
per moderator *and* workspace (``review_digests.team_id`` joins the primary key; ``""``
for existing rows).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "workspace_roles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("team_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("granted_at", storage.models.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "role IN ('moderator', 'admin')", name=op.f("ck_workspace_roles_known_role")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workspace_roles")),
        sa.UniqueConstraint(
            "team_id", "user_id", "role", name=op.f("uq_workspace_roles_team_id_user_id_role")
        ),
    )
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_annotations_team_id"), ["team_id"], unique=False)
    op.execute(
        "UPDATE annotations SET team_id = "
        "(SELECT messages.team_id FROM messages WHERE messages.id = annotations.message_id) "
        "WHERE message_id IS NOT NULL"
    )
    with op.batch_alter_table("review_digests", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("team_id", sa.String(length=32), server_default="", nullable=False)
        )
        batch_op.drop_constraint("pk_review_digests", type_="primary")
        batch_op.create_primary_key("pk_review_digests", ["user_id", "team_id"])


def downgrade() -> None:
    # A moderator's digests of several workspaces collapse into their latest send.
    op.execute(
        "DELETE FROM review_digests WHERE EXISTS (SELECT 1 FROM review_digests AS later "
        "WHERE later.user_id = review_digests.user_id "
        "AND (later.sent_at > review_digests.sent_at OR (later.sent_at = review_digests.sent_at "
        "AND later.team_id > review_digests.team_id)))"
    )
    with op.batch_alter_table("review_digests", schema=None) as batch_op:
        batch_op.drop_constraint("pk_review_digests", type_="primary")
        batch_op.create_primary_key("pk_review_digests", ["user_id"])
        batch_op.drop_column("team_id")
    with op.batch_alter_table("annotations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_annotations_team_id"))
        batch_op.drop_column("team_id")
    op.drop_table("workspace_roles")
