"""Scheduled retrains and drift checks: APScheduler 3, one job of each per task, in exactly one
process.

The database lease (trainer.retrain) is what guarantees that no task trains twice at once
across processes; the scheduler's own settings keep a single process from piling up runs.
Its caller chooses the retrains' options: ``bertbot scheduler`` runs alone and trains on
every core, ``serve --with-scheduler`` with ``BERTBOT_RETRAIN__THREADS`` (see
:func:`bertbot.services.retrain_options`). Drift checks run every
``BERTBOT_DRIFT__INTERVAL_HOURS`` (0: never); after each, the admins of any untold drift
episode are told in Slack when the process has a bot token (a ``DriftNotifier``). With a
bot token too, moderators get the review digest (``BERTBOT_REVIEW__DIGEST_*``).

With ``BERTBOT_BROKER_URL`` a scheduled retrain is queued for ``bertbot worker`` instead of
run here. ``bertbot scheduler`` may run on several machines: :func:`run_scheduler` runs the
jobs only while this process holds the scheduler lease (:mod:`bertbot.leadership`); the
others wait, paused, and the first to find the lease lapsed takes over with its jobs
scheduled from that moment on (nothing the old leader may have run is caught up).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bertbot.leadership import SCHEDULER_LEASE, HeldLease, Leadership
from bertbot.settings import Settings
from bot.services.observer import RetrainObserver
from storage.db import Database
from storage.enums import RunStatus, RunTrigger
from storage.errors import StorageError
from trainer.jobs import SCHEDULE, RetrainJob, scheduled_job_id
from trainer.options import RetrainOptions
from trainer.promotion import retrain_lease
from trainer.retrain import AlreadyRunningError, RetrainError, retrain

logger = logging.getLogger(__name__)


def job_id(task: str) -> str:
    """The scheduler's job id of a task: its retrain lease's name, so logs line up."""
    return retrain_lease(task)


def drift_job_id(task: str) -> str:
    return f"drift:{task}"


REVIEW_DIGEST_JOB = "review-digest"
DIGEST_CHECK_HOURS = 1.0  # how often due digests are looked for (each has its own period)


def retrain_trigger(settings: Settings) -> CronTrigger:
    """The retrain schedule (``BERTBOT_RETRAIN__SCHEDULE`` in ``BERTBOT_RETRAIN__TIMEZONE``)."""
    return CronTrigger.from_crontab(settings.retrain.schedule, timezone=settings.retrain.timezone)


def next_retrain_at(settings: Settings, now: datetime) -> datetime | None:
    """When the schedule fires next after ``now``, computed without starting a scheduler.

    Args:
        settings: The retrain schedule and time zone.
        now: An aware datetime.

    Returns:
        The next fire time (aware, in the schedule's time zone); None if it never fires.
    """
    fire: datetime | None = retrain_trigger(settings).get_next_fire_time(None, now)
    return fire


def scheduled_retrain(
    settings: Settings,
    database: Database,
    task: str,
    options: RetrainOptions,
    on_promoted: Callable[[str], None] | None = None,
    observer: RetrainObserver | None = None,
    enqueue: Callable[[RetrainJob], None] | None = None,
) -> str:
    """One scheduled run; logs and returns its outcome, never raises into the scheduler.

    ``observer`` (the process's metrics) is told how a run that started ended. With
    ``enqueue`` (a broker is configured) the retrain is queued for a worker instead, under
    an id fixed by the task and the minute, so schedulers that overlap queue it once.
    """
    from trainer.train import TrainingError

    if enqueue is not None:
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        job = RetrainJob(task, SCHEDULE, "scheduler", job_id=scheduled_job_id(task, now))
        try:
            enqueue(job)
        except Exception as exc:  # the broker's errors vary by client; the next fire retries
            logger.error("could not queue the scheduled retrain of %s: %s", task, exc)
            return f"{task}: not queued: {exc}"
        logger.info("scheduled retrain of %s queued (job %s)", task, job.job_id)
        return f"{task}: queued"

    spec = settings.task_specs[task]
    started = time.monotonic()

    def finished(status: RunStatus) -> None:
        if observer is not None:
            observer.retrain_finished(task, status.value, time.monotonic() - started)

    try:
        outcome = retrain(
            database,
            spec,
            options,
            trigger=RunTrigger.SCHEDULE,
            requested_by="scheduler",
            on_promoted=on_promoted,
        )
    except AlreadyRunningError as exc:  # no run was recorded: nothing to count
        logger.info("scheduled retrain of %s not started: %s", task, exc)
        return f"{task}: {exc}"
    except (RetrainError, TrainingError, StorageError, ValueError) as exc:
        finished(RunStatus.FAILED)
        logger.error("scheduled retrain of %s failed: %s", task, exc)
        return f"{task}: failed: {exc}"
    finished(outcome.status)
    logger.info(
        "scheduled retrain of %s: run %d %s: %s",
        task,
        outcome.run.id,
        outcome.status.value,
        outcome.message,
    )
    return f"{task}: {outcome.status.value}: {outcome.message}"


def scheduled_drift_check(
    settings: Settings,
    database: Database,
    task: str,
    home: Any,
    notifier: Any | None = None,
    models: Callable[[str], Any] | None = None,
) -> str:
    """One scheduled drift check; logs and returns its outcome, never raises into the
    scheduler. Then tells admins of untold drift episodes (``notifier``, if any).

    Args:
        settings: ``BERTBOT_DRIFT__*`` and the task.
        database: The store.
        task: The task to check.
        home: Where production's artifact is.
        notifier: A :class:`bot.services.drift_notice.DriftNotifier`, or None (no Slack).
        models: The serving process's classifier of a task (reused when it is production).
    """
    from trainer.drift_check import DriftCheckError, check_drift

    try:
        report = check_drift(
            database,
            settings.task_specs[task],
            settings.drift.options(),
            home=home,
            classifier=models(task) if models is not None else None,
        )
        outcome = (
            f"{task}: {'drift' if report.drifted else 'no drift'} (p {report.p_value:.4g}), "
            f"episode {report.episode_change}, expected macro-F1 {report.expected_macro_f1:.3f}"
        )
        logger.info("scheduled drift check of %s", outcome)
    except DriftCheckError as exc:
        logger.info("scheduled drift check of %s not run: %s", task, exc)
        outcome = f"{task}: not run: {exc}"
    except (StorageError, ValueError, OSError) as exc:
        logger.error("scheduled drift check of %s failed: %s", task, exc)
        return f"{task}: failed: {exc}"
    if notifier is not None:
        try:
            notifier.notify_pending()
        except StorageError as exc:
            logger.error("could not tell admins of drift: %s", exc)
    return outcome


def scheduled_review_digest(digest: Any) -> str:
    """One run of the review digest (a :class:`bot.services.review_digest.ReviewDigest`);
    logs and returns its outcome, never raises into the scheduler."""
    try:
        outcomes = digest.send_due()
    except StorageError as exc:
        logger.error("review digest failed: %s", exc)
        return f"review digest: failed: {exc}"
    sent = [o.user_id for o in outcomes if o.outcome == "sent"]
    logger.info("review digest: sent to %d of %d moderator(s)", len(sent), len(outcomes))
    return f"review digest: sent to {len(sent)} of {len(outcomes)} moderator(s)"


def build_scheduler(
    settings: Settings,
    database: Database,
    options: RetrainOptions,
    on_promoted: Callable[[str], None] | None = None,
    scheduler: Any | None = None,
    observer: RetrainObserver | None = None,
    drift_notifier: Any | None = None,
    models: Callable[[str], Any] | None = None,
    review_digest: Any | None = None,
    enqueue: Callable[[RetrainJob], None] | None = None,
) -> Any:
    """A (not yet started) scheduler with one retrain job per active task, run with
    ``options``; ``observer`` (the process's metrics) is told how each run ended. With
    ``BERTBOT_DRIFT__INTERVAL_HOURS`` above 0, a drift check per task too, whose drift
    episodes ``drift_notifier`` tells admins about; ``models`` lends a serving process's
    production classifiers to the checks. With a ``review_digest`` and
    ``BERTBOT_REVIEW__DIGEST_EVERY_HOURS`` above 0, due digests are sent every hour (or every
    period, if shorter); the database keeps each moderator to one per period. With
    ``enqueue``, retrains are queued for a worker (:func:`scheduled_retrain`)."""
    scheduler = scheduler or BackgroundScheduler(timezone=settings.retrain.timezone)
    trigger = retrain_trigger(settings)
    for task in settings.tasks:
        scheduler.add_job(
            scheduled_retrain,
            trigger=trigger,
            args=(settings, database, task, options, on_promoted, observer, enqueue),
            id=job_id(task),
            name=f"retrain {task}",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=settings.retrain.misfire_grace_seconds,
        )
        if settings.drift.interval_hours > 0:
            scheduler.add_job(
                scheduled_drift_check,
                trigger=IntervalTrigger(
                    hours=settings.drift.interval_hours, timezone=settings.retrain.timezone
                ),
                args=(settings, database, task, options.artifacts, drift_notifier, models),
                id=drift_job_id(task),
                name=f"drift check {task}",
                replace_existing=True,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=settings.retrain.misfire_grace_seconds,
            )
    every = settings.review.digest_every_hours
    if review_digest is not None and every > 0:
        scheduler.add_job(
            scheduled_review_digest,
            trigger=IntervalTrigger(
                hours=min(every, DIGEST_CHECK_HOURS), timezone=settings.retrain.timezone
            ),
            args=(review_digest,),
            id=REVIEW_DIGEST_JOB,
            name="review digest",
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=settings.retrain.misfire_grace_seconds,
        )
    return scheduler


def next_runs(scheduler: Any) -> dict[str, Any]:
    return {job.id: job.next_run_time for job in scheduler.get_jobs()}


def run_scheduler(
    settings: Settings,
    database: Database,
    options: RetrainOptions,
    observer: RetrainObserver | None = None,
    drift_notifier: Any | None = None,
    review_digest: Any | None = None,
    enqueue: Callable[[RetrainJob], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (``bertbot scheduler``), each retrain with ``options``;
    ``observer``, ``drift_notifier``, ``review_digest`` and ``enqueue`` as for
    :func:`build_scheduler`. The jobs run only while this process leads (see the module)."""
    scheduler = build_scheduler(
        settings,
        database,
        options,
        observer=observer,
        drift_notifier=drift_notifier,
        review_digest=review_digest,
        enqueue=enqueue,
    )
    stop = threading.Event()

    def shutdown(signum: int, _frame: Any) -> None:
        logger.info("signal %d: stopping the scheduler", signum)
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    scheduler.start(paused=True)
    leadership = scheduler_leadership(settings, database, scheduler)
    logger.info("scheduler %s: waiting for the lead", leadership.lease.holder)
    try:
        leadership.run(stop, settings.scheduler.heartbeat_seconds)
    finally:
        scheduler.shutdown(wait=True)


def scheduler_leadership(settings: Settings, database: Database, scheduler: Any) -> Leadership:
    """The scheduler runs its jobs only while it holds the scheduler lease."""

    def elected() -> None:
        resume_from_now(scheduler)
        for job, when in next_runs(scheduler).items():
            logger.info("%s: next run %s", job, when)

    lease = HeldLease(
        database, SCHEDULER_LEASE, timedelta(seconds=settings.scheduler.lease_seconds)
    )
    return Leadership(lease, on_elected=elected, on_deposed=scheduler.pause)


def resume_from_now(scheduler: Any) -> None:
    """Resume a paused scheduler with every job due at its next fire time from now: what
    fell due while another process led is not caught up (it may have run there)."""
    now = datetime.now(UTC)
    for job in scheduler.get_jobs():
        job.modify(next_run_time=job.trigger.get_next_fire_time(None, now))
    scheduler.resume()
