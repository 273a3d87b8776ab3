from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from storage import runs
from storage.enums import RunStatus, RunTrigger, utcnow


def test_run_lifecycle(session: Session) -> None:
    run = runs.create_run(session=session, task="spam", trigger=RunTrigger.ADMIN, requested_by="U1")
    assert run.status == RunStatus.QUEUED and run.started_at is None
    started = runs.start_run(session=session, run_id=run.id)
    assert started.status == RunStatus.RUNNING and started.started_at is not None
    runs.set_run_progress(session=session, run_id=run.id, progress={"step": 10, "of": 100})
    with pytest.raises(ValueError):
        runs.finish_run(session=session, run_id=run.id, status=RunStatus.RUNNING)
    done = runs.finish_run(
        session=session,
        run_id=run.id,
        status=RunStatus.REJECTED,
        gate_decision={"promote": False, "reason": "delta 0.001 < 0.005"},
    )
    assert done.finished_at is not None and done.gate_decision["promote"] is False
    assert done.progress == {"step": 10, "of": 100}
    newest = runs.list_runs(session=session, task="spam")
    assert newest[0].id == run.id


def test_lease_is_exclusive_until_it_expires(session: Session) -> None:
    now = utcnow()
    ttl = timedelta(minutes=5)
    mine = runs.acquire_lease(
        session=session, name="retrain:spam", holder="a", ttl=ttl, run_id=1, now=now
    )
    assert mine is not None and mine.run_id == 1
    assert (
        runs.acquire_lease(session=session, name="retrain:spam", holder="b", ttl=ttl, now=now)
        is None
    )
    # The holder may take it again (re-entrant) and renew it.
    assert runs.acquire_lease(session=session, name="retrain:spam", holder="a", ttl=ttl, now=now)
    assert runs.renew_lease(session=session, name="retrain:spam", holder="a", ttl=ttl)
    assert not runs.renew_lease(session=session, name="retrain:spam", holder="b", ttl=ttl)
    # Another task's lease is independent.
    assert runs.acquire_lease(session=session, name="retrain:sentiment", holder="b", ttl=ttl)
    # Once expired (its holder died), someone else takes it over.
    later = now + timedelta(minutes=11)
    taken = runs.acquire_lease(
        session=session, name="retrain:spam", holder="b", ttl=ttl, run_id=2, now=later
    )
    assert taken is not None and taken.holder == "b" and taken.run_id == 2
    assert not runs.release_lease(session=session, name="retrain:spam", holder="a")
    assert runs.release_lease(session=session, name="retrain:spam", holder="b")
    assert runs.get_lease(session=session, name="retrain:spam") is None
