"""superseded runs; one audit format for alias moves

A retrain whose production moved while it trained ends ``superseded`` (a new run status).
Promotions recorded by the retrain loop before this revision named the previous production
by its row id (``previous_version_id``); every move now names it by version
(``previous``), so those entries are rewritten once here and readers know one format.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 22:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ("queued", "running", "succeeded", "failed", "rejected", "skipped")
NEW = (*OLD, "superseded")
CHECK = "ck_training_runs_run_status"


def _status_check(statuses: Sequence[str]) -> None:
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_constraint(op.f(CHECK), type_="check")
        batch_op.create_check_constraint(op.f(CHECK), sa.column("status").in_(statuses))


def upgrade() -> None:
    _status_check(NEW)
    audit = sa.table(
        "audit_log",
        sa.column("id", sa.Integer),
        sa.column("action", sa.String),
        sa.column("details", sa.JSON),
    )
    versions = sa.table("model_versions", sa.column("id", sa.Integer), sa.column("version"))
    connection = op.get_bind()
    names = dict(connection.execute(sa.select(versions.c.id, versions.c.version)).all())
    rows = connection.execute(
        sa.select(audit.c.id, audit.c.details).where(audit.c.action == "promote")
    ).all()
    for row_id, details in rows:
        if not isinstance(details, dict) or "previous_version_id" not in details:
            continue
        rewritten = {k: v for k, v in details.items() if k != "previous_version_id"}
        rewritten["previous"] = names.get(details["previous_version_id"])
        rewritten.setdefault("kind", "gate")
        connection.execute(sa.update(audit).where(audit.c.id == row_id).values(details=rewritten))


def downgrade() -> None:
    op.execute("UPDATE training_runs SET status = 'failed' WHERE status = 'superseded'")
    _status_check(OLD)
