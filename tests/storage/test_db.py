"""Units of work: what runs after a commit, and never after a rollback."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from storage import messages
from storage.db import Database, after_commit
from storage.errors import DuplicateError, StorageError


def _add(session: Session, ts: str) -> None:
    messages.add_message(
        session=session, team_id="T1", channel_id="C1", ts=ts, text="hi", user_id="U1"
    )


def test_after_commit_runs_after_the_outer_commit_only(fresh_database: Database) -> None:
    ran: list[str] = []
    with fresh_database.begin() as session:
        _add(session, "1.000100")
        after_commit(session, lambda: ran.append("first"))
        with pytest.raises(DuplicateError):  # a savepoint rolled back inside the unit of work
            _add(session, "1.000100")
        after_commit(session, lambda: ran.append("second"))
        assert ran == []  # not before the commit
    assert ran == ["first", "second"]


def test_after_commit_never_runs_when_the_unit_of_work_rolls_back(
    fresh_database: Database,
) -> None:
    ran: list[str] = []
    with pytest.raises(RuntimeError), fresh_database.begin() as session:
        _add(session, "1.000100")
        after_commit(session, lambda: ran.append("rolled back"))
        raise RuntimeError("the caller failed")
    with pytest.raises(StorageError), fresh_database.begin() as session:
        after_commit(session, lambda: ran.append("commit failed"))
        session.execute(text("SELECT * FROM no_such_table"))
    assert ran == []


def test_after_commit_needs_a_unit_of_work_from_the_database(session: Session) -> None:
    with pytest.raises(ValueError, match="Database.begin"):
        after_commit(session, lambda: None)
