from __future__ import annotations

from sqlalchemy.orm import Session

from storage import audit


def test_audit_entries_newest_first_and_filtered_by_subject(session: Session) -> None:
    audit.record_audit(session=session, actor="U1", action="promote", subject="spam/1")
    audit.record_audit(
        session=session, actor="U2", action="rollback", subject="spam/2", details={"why": "bad"}
    )
    audit.record_audit(session=session, actor="U1", action="promote", subject="sentiment/1")
    entries = audit.list_audit(session=session, subject_prefix="spam/")
    assert [(e.actor, e.action) for e in entries] == [("U2", "rollback"), ("U1", "promote")]
    assert entries[0].details == {"why": "bad"}
    # A prefix with LIKE wildcards matches literally.
    assert audit.list_audit(session=session, subject_prefix="sp_m/") == []
