"""label checks, suspect corrections, flagged annotators

Before each retrain a label check (out-of-fold predictions on the snapshot) may doubt some
moderators' corrections: each doubt is a ``label_suspects`` row, held out of training and of
the gate's eval until an admin clears it (the label stands) or replaces the label. An
annotator whose corrections are suspect far more often than their peers' is flagged
(``annotator_flags``) and their corrections are held out until an admin clears the flag.
``label_checks`` records each check (ran or skipped, and why) with its numbers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-10 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SUSPECT_STATUSES = ("held", "cleared", "confirmed")


def _when(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, storage.models.UTCDateTime(timezone=True), nullable=nullable)


def _run_id(table: str) -> tuple[sa.Column, sa.ForeignKeyConstraint]:
    return (
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["training_runs.id"],
            name=op.f(f"fk_{table}_run_id_training_runs"),
            ondelete="SET NULL",
        ),
    )


def upgrade() -> None:
    op.create_table(
        "label_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        *_run_id("label_checks"),
        _when("checked_at"),
        sa.Column("ran", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_checks")),
    )
    with op.batch_alter_table("label_checks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_checks_task_checked_at"), ["task", "checked_at"], unique=False
        )
    op.create_table(
        "label_suspects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column(
            "annotation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("annotator", sa.String(length=64), nullable=False),
        *_run_id("label_suspects"),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("given_label", sa.String(length=32), nullable=False),
        sa.Column("suggested_label", sa.String(length=32), nullable=True),
        sa.Column("given_probability", sa.Float(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                *SUSPECT_STATUSES,
                name="suspect_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        _when("created_at"),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        _when("decided_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["annotation_id"],
            ["annotations.id"],
            name=op.f("fk_label_suspects_annotation_id_annotations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_suspects")),
        sa.UniqueConstraint("annotation_id", name=op.f("uq_label_suspects_annotation_id")),
    )
    with op.batch_alter_table("label_suspects", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_label_suspects_task_status"), ["task", "status"], unique=False
        )
    op.create_table(
        "annotator_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=32), nullable=False),
        sa.Column("annotator", sa.String(length=64), nullable=False),
        *_run_id("annotator_flags"),
        _when("flagged_at"),
        sa.Column("corrections", sa.Integer(), nullable=False),
        sa.Column("suspects", sa.Integer(), nullable=False),
        sa.Column("peer_rate", sa.Float(), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("cleared_by", sa.String(length=64), nullable=True),
        _when("cleared_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_annotator_flags")),
    )
    with op.batch_alter_table("annotator_flags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_annotator_flags_task_annotator"), ["task", "annotator"], unique=False
        )


def downgrade() -> None:
    for table, index in (
        ("annotator_flags", "ix_annotator_flags_task_annotator"),
        ("label_suspects", "ix_label_suspects_task_status"),
        ("label_checks", "ix_label_checks_task_checked_at"),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(batch_op.f(index))
        op.drop_table(table)
