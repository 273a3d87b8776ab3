"""The scheduler leader lease and the worker's once-per-job rule, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bertbot.leadership import SCHEDULER_LEASE, HeldLease, Leadership
from bertbot.scheduler import resume_from_now, scheduled_retrain
from bertbot.settings import load_settings
from bertbot.worker import RetrainWorker
from storage import runs
from storage.db import Database
from trainer.jobs import (
    JOB_LEASE_PREFIX,
    SCHEDULE,
    JobBusyError,
    RetrainJob,
    job_done_lease,
    job_lease,
    scheduled_job_id,
)
from trainer.options import RetrainOptions


class Events:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def leadership(self, name: str, lease: HeldLease) -> Leadership:
        return Leadership(
            lease,
            on_elected=lambda: self.seen.append(f"{name} elected"),
            on_deposed=lambda: self.seen.append(f"{name} deposed"),
        )


def _lease(database: Database, holder: str, ttl: float = 60.0) -> HeldLease:
    return HeldLease(database, SCHEDULER_LEASE, timedelta(seconds=ttl), holder=holder)


def _expire(database: Database, name: str) -> None:
    """What a dead leader's lease looks like once its time is up."""
    with database.begin() as session:
        lease = runs.get_lease(session=session, name=name)
        assert lease is not None
        runs.renew_lease(session=session, name=name, holder=lease.holder, ttl=timedelta(-1))


def test_one_leader_at_a_time_and_a_follower_takes_over_a_lapsed_lease(
    fresh_database: Database,
) -> None:
    events = Events()
    one = events.leadership("one", _lease(fresh_database, "one"))
    two = events.leadership("two", _lease(fresh_database, "two"))
    assert one.step() is True
    assert two.step() is False  # the lease is live: two idles
    assert one.step() is True  # renewed
    assert two.step() is False
    _expire(fresh_database, SCHEDULER_LEASE)  # one died: nobody renews
    assert two.step() is True
    assert one.step() is False  # came back: finds the lease taken and steps down
    assert events.seen == ["one elected", "two elected", "one deposed"]


def test_a_stopping_leader_gives_the_lease_back_at_once(fresh_database: Database) -> None:
    events = Events()
    one = events.leadership("one", _lease(fresh_database, "one"))
    two = events.leadership("two", _lease(fresh_database, "two"))
    assert one.step()
    stop = threading.Event()
    stop.set()
    one.run(stop, heartbeat_seconds=0.01)
    assert events.seen == ["one elected", "one deposed"]
    assert two.step() is True  # no need to wait for the lease to lapse


def test_a_leader_cut_off_from_the_database_steps_down_after_its_lease(
    fresh_database: Database,
) -> None:
    from storage.errors import StorageError

    now = [0.0]

    class Unreachable(HeldLease):
        down = False

        def renew(self) -> bool:
            if self.down:
                raise StorageError("connection refused")
            return super().renew()

    lease = Unreachable(fresh_database, SCHEDULER_LEASE, timedelta(seconds=10), holder="one")
    seen: list[str] = []
    leader = Leadership(
        lease,
        on_elected=lambda: seen.append("elected"),
        on_deposed=lambda: seen.append("deposed"),
        clock=lambda: now[0],
    )
    assert leader.step()
    lease.down = True
    now[0] = 5.0
    assert leader.step()  # within its lease: still leads
    now[0] = 10.0
    assert not leader.step()  # another process may have taken over by now
    assert seen == ["elected", "deposed"]


def test_a_new_leader_schedules_from_now_and_catches_nothing_up() -> None:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    scheduler = BackgroundScheduler(timezone="UTC")
    ran: list[str] = []
    scheduler.add_job(
        lambda: ran.append("x"),
        CronTrigger.from_crontab("* * * * *", timezone="UTC"),
        id="x",
        misfire_grace_time=3600,
        coalesce=True,
    )
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job("x")
        job.modify(next_run_time=datetime(2000, 1, 1, tzinfo=UTC))  # long overdue
        resume_from_now(scheduler)
        assert scheduler.get_job("x").next_run_time > datetime.now(UTC)
        assert ran == []
    finally:
        scheduler.shutdown(wait=False)


# The worker: a job delivered twice runs once ---------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[tuple[str, str]] = []


@pytest.fixture
def worker(fresh_database: Database, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(home=tmp_path / "home", tasks=["spam"])
    options = RetrainOptions(
        home=tmp_path / "home", encoder_dir=tmp_path / "enc", base_encoder="tiny"
    )
    ran: list[str] = []
    done: list[tuple[str, str]] = []
    built = RetrainWorker(
        settings, fresh_database, options, on_done=lambda job, out: done.append((job.job_id, out))
    )

    def fake_run(job: RetrainJob) -> str:
        # Whoever runs a job holds its claim meanwhile.
        with fresh_database.begin() as session:
            lease = runs.get_lease(session=session, name=job_lease(job.job_id))
        assert lease is not None
        ran.append(job.job_id)
        return "ran"

    monkeypatch.setattr(built, "_run", fake_run)
    return built, ran, done


def test_a_job_delivered_twice_runs_once(worker: Any, fresh_database: Database) -> None:
    built, ran, done = worker
    job = RetrainJob("spam", SCHEDULE, "scheduler")
    assert built.handle(job.to_message()) == "ran"
    assert built.handle(job.to_message()) == "duplicate"
    assert ran == [job.job_id]
    assert done == [(job.job_id, "ran"), (job.job_id, "duplicate")]
    with fresh_database.begin() as session:
        assert runs.get_lease(session=session, name=job_lease(job.job_id)) is None
        assert runs.get_lease(session=session, name=job_done_lease(job.job_id)) is not None


def test_a_job_running_elsewhere_is_delivered_again_later(
    worker: Any, fresh_database: Database
) -> None:
    built, ran, _done = worker
    job = RetrainJob("spam", SCHEDULE, "scheduler")
    other = HeldLease(fresh_database, job_lease(job.job_id), timedelta(minutes=5), "other")
    assert other.take()
    with pytest.raises(JobBusyError, match="other"):
        built.handle(job.to_message())
    assert ran == []
    _expire(fresh_database, job_lease(job.job_id))  # the other worker died
    assert built.handle(job.to_message()) == "ran"
    with fresh_database.begin() as session:  # lapsed claims are purged
        assert runs.purge_expired_leases(session=session, prefix=JOB_LEASE_PREFIX) == 0


def test_a_message_that_is_not_a_job_is_dropped(worker: Any) -> None:
    built, ran, _done = worker
    assert built.handle({"task": "spam", "colour": "blue"}).startswith("dropped")
    assert ran == []


def test_the_scheduler_queues_one_job_per_task_and_minute(tmp_path: Any) -> None:
    settings = load_settings(home=tmp_path, tasks=["spam"])
    options = RetrainOptions(home=tmp_path, encoder_dir=tmp_path, base_encoder="tiny")
    queued: list[RetrainJob] = []
    for _ in range(2):  # two leaders overlapping at one fire time
        outcome = scheduled_retrain(settings, None, "spam", options, enqueue=queued.append)  # type: ignore[arg-type]
        assert outcome == "spam: queued"
    assert [job.trigger for job in queued] == [SCHEDULE, SCHEDULE]
    at = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    assert scheduled_job_id("spam", at) == scheduled_job_id("spam", at)
    assert scheduled_job_id("spam", at) != scheduled_job_id("spam", at + timedelta(minutes=1))
    assert scheduled_job_id("spam", at) != scheduled_job_id("sentiment", at)
