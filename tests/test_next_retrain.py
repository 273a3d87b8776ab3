"""The next scheduled retrain, computed from the settings without starting a scheduler."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from bertbot.scheduler import build_scheduler, job_id, next_retrain_at, next_runs
from bertbot.services import retrain_options
from bertbot.settings import Settings, load_settings
from storage.db import Database


def _settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, schedule: str, timezone: str
) -> Settings:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BERTBOT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BERTBOT_RETRAIN__SCHEDULE", schedule)
    monkeypatch.setenv("BERTBOT_RETRAIN__TIMEZONE", timezone)
    return load_settings()


def test_the_next_fire_time_follows_the_schedule_and_its_time_zone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(monkeypatch, tmp_path, "15 2 * * *", "Europe/Berlin")
    before = datetime(2026, 1, 10, 0, 30, tzinfo=UTC)  # 01:30 in Berlin: today's run is ahead
    assert next_retrain_at(settings, before) == datetime(2026, 1, 10, 1, 15, tzinfo=UTC)
    after = datetime(2026, 1, 10, 2, 0, tzinfo=UTC)  # 03:00 in Berlin: tomorrow's
    assert next_retrain_at(settings, after) == datetime(2026, 1, 11, 1, 15, tzinfo=UTC)


def test_it_agrees_with_a_started_scheduler(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = _settings(monkeypatch, tmp_path, "*/7 * * * *", "UTC")
    scheduler = BackgroundScheduler(timezone="UTC")
    options = retrain_options(settings, beside_serving=False)
    build_scheduler(settings, Database.connect("sqlite://"), options, scheduler=scheduler)
    before = datetime.now(UTC)
    scheduler.start(paused=True)
    try:
        retrain_jobs = {job_id(task) for task in settings.tasks}
        fire_times = {t for name, t in next_runs(scheduler).items() if name in retrain_jobs}
    finally:
        scheduler.shutdown(wait=False)
    after = datetime.now(UTC)
    # Both retrain jobs fire together, when the schedule says (a minute may pass meanwhile).
    assert len(fire_times) == 1
    assert fire_times <= {next_retrain_at(settings, before), next_retrain_at(settings, after)}
