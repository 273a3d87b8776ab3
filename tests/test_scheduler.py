from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from bertbot.scheduler import (
    build_scheduler,
    drift_job_id,
    job_id,
    scheduled_drift_check,
    scheduled_retrain,
)
from bertbot.services import retrain_options
from bertbot.settings import load_settings
from bot.observability import SchedulerMetrics
from storage import runs, schema
from storage.db import Database


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BERTBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BERTBOT_RETRAIN__SCHEDULE", "15 2 * * *")
    monkeypatch.setenv("BERTBOT_RETRAIN__MISFIRE_GRACE_SECONDS", "900")
    return load_settings()


def test_one_job_per_task_with_safe_options(settings) -> None:  # type: ignore[no-untyped-def]
    scheduler = BackgroundScheduler(timezone="UTC")
    database = Database.connect("sqlite://")
    options = retrain_options(settings, beside_serving=False)
    build_scheduler(settings, database, options, scheduler=scheduler)
    build_scheduler(settings, database, options, scheduler=scheduler)  # replace_existing
    scheduler.start(paused=True)
    try:
        jobs = {job.id: job for job in scheduler.get_jobs()}
        drift_jobs = {drift_job_id("spam"), drift_job_id("sentiment")}
        assert set(jobs) == {job_id("spam"), job_id("sentiment")} | drift_jobs
        for name in drift_jobs:  # every BERTBOT_DRIFT__INTERVAL_HOURS (default 24)
            drift = jobs.pop(name)
            assert drift.max_instances == 1 and drift.coalesce is True
            assert drift.trigger.interval == timedelta(hours=24)
        for job in jobs.values():
            assert job.max_instances == 1 and job.coalesce is True
            assert job.misfire_grace_time == 900
            assert (
                str(job.trigger)
                == "cron[month='*', day='*', day_of_week='*', hour='2', minute='15']"
            )
            assert job.next_run_time.hour == 2 and job.next_run_time.minute == 15
    finally:
        scheduler.shutdown(wait=False)


def test_a_scheduled_run_never_raises_into_the_scheduler(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    database = Database.connect(f"sqlite:///{tmp_path / 's.db'}")
    schema.upgrade(database)
    with database.begin() as session:
        runs.acquire_lease(
            session=session, name="retrain:spam", holder="other", ttl=timedelta(minutes=5)
        )
    metrics = SchedulerMetrics(process=False)
    options = retrain_options(settings, beside_serving=False)
    assert "already running" in scheduled_retrain(
        settings, database, "spam", options, observer=metrics
    )
    # No labels at all: the run fails with a clear message, recorded, not raised.
    outcome = scheduled_retrain(settings, database, "sentiment", options, observer=metrics)
    assert "failed" in outcome and "import seed data" in outcome
    # Counted in the scheduler's metrics: the failure, not the run that never started.
    count = metrics.registry.get_sample_value
    assert count("bertbot_retrain_runs_total", {"task": "sentiment", "outcome": "failed"}) == 1
    assert count("bertbot_retrain_runs_total", {"task": "spam", "outcome": "failed"}) is None


def test_drift_checks_can_be_turned_off_and_never_raise(  # type: ignore[no-untyped-def]
    settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BERTBOT_DRIFT__INTERVAL_HOURS", "0")
    off = load_settings()
    scheduler = BackgroundScheduler(timezone="UTC")
    build_scheduler(
        off,
        Database.connect("sqlite://"),
        retrain_options(off, beside_serving=False),
        scheduler=scheduler,
    )
    assert {job.id for job in scheduler.get_jobs()} == {job_id("spam"), job_id("sentiment")}

    database = Database.connect(f"sqlite:///{tmp_path / 'd.db'}")
    schema.upgrade(database)
    told = []

    class Notifier:
        def notify_pending(self) -> list[int]:
            told.append(True)
            return []

    outcome = scheduled_drift_check(settings, database, "spam", tmp_path, Notifier())
    assert outcome.startswith("spam: not run: spam has no production model")
    assert told == [True]  # untold episodes are still told after a check that could not run


def test_the_review_digest_job_runs_hourly_unless_turned_off(  # type: ignore[no-untyped-def]
    settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bertbot.scheduler import REVIEW_DIGEST_JOB, scheduled_review_digest
    from storage.errors import StorageError

    class Digest:
        def __init__(self, fail: bool = False) -> None:
            self.fail = fail

        def send_due(self) -> list[object]:
            if self.fail:
                raise StorageError("database down")
            return []

    scheduler = BackgroundScheduler(timezone="UTC")
    options = retrain_options(settings, beside_serving=False)
    database = Database.connect("sqlite://")
    build_scheduler(settings, database, options, scheduler=scheduler, review_digest=Digest())
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job(REVIEW_DIGEST_JOB)
        assert job.trigger.interval == timedelta(hours=1) and job.max_instances == 1
    finally:
        scheduler.shutdown(wait=False)
    monkeypatch.setenv("BERTBOT_REVIEW__DIGEST_EVERY_HOURS", "0")
    off = load_settings()
    scheduler = BackgroundScheduler(timezone="UTC")
    build_scheduler(off, database, options, scheduler=scheduler, review_digest=Digest())
    assert REVIEW_DIGEST_JOB not in {job.id for job in scheduler.get_jobs()}
    assert scheduled_review_digest(Digest()) == "review digest: sent to 0 of 0 moderator(s)"
    assert scheduled_review_digest(Digest(fail=True)).startswith("review digest: failed")
