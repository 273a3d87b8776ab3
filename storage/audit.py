"""The audit log: who did what to which subject."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage._convert import to_record
from storage.models import AuditEntry
from storage.records import AuditRecord


def record_audit(
    *,
    session: Session,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> AuditRecord:
    """Append an audit entry (e.g. actor ``U123``, action ``promote``, subject ``spam/v3``)."""
    row = AuditEntry(actor=actor, action=action, subject=subject, details=dict(details or {}))
    session.add(row)
    session.flush()
    return to_record(AuditRecord, row)


def list_audit(
    *, session: Session, subject_prefix: str | None = None, limit: int = 100
) -> list[AuditRecord]:
    """The newest audit entries first, optionally for subjects starting with a prefix."""
    query = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    if subject_prefix is not None:
        query = query.where(AuditEntry.subject.startswith(subject_prefix, autoescape=True))
    return [to_record(AuditRecord, row) for row in session.scalars(query.limit(limit))]
