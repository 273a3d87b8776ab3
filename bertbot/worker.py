"""``bertbot worker``'s side of a queued retrain: run it once, report it in Slack.

A job is delivered at least once. :class:`RetrainWorker` makes a second delivery harmless:
while a worker runs a job it holds the job's lease (renewed on a heartbeat), and when it
has run it takes the job's "done" lease for :data:`DONE_KEEP`. A delivery that finds the
job done is dropped; one that finds it running elsewhere raises :class:`JobBusyError`, so
the broker delivers it again later (by then the other worker finished, or died and its
lease lapsed). Below that, the retrain's own lease keeps one retrain per task.

The ``/retrain`` card is posted by the worker itself (where the job ran), with the bot
token, in the channel the command came from or through its response_url: the card does
not depend on the bot process that took the command still running.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from bertbot.leadership import HeldLease
from bertbot.settings import Settings
from bot.services.observer import RetrainObserver
from bot.services.retrain_requests import JobInfo, JobReporter, RetrainReport
from bot.services.retraining import RetrainService
from bot.services.roles import Roles
from storage import runs
from storage.db import Database
from storage.enums import utcnow
from trainer.decisions import RetrainProgress
from trainer.jobs import (
    JOB_LEASE_PREFIX,
    SCHEDULE,
    JobBusyError,
    JobError,
    RetrainJob,
    job_done_lease,
    job_lease,
)
from trainer.options import RetrainOptions

logger = logging.getLogger(__name__)

DONE_KEEP = timedelta(days=7)  # a redelivery later than this would run again


class LoggedReporter:
    """Reports a job in the worker's log (no Slack destination or no bot token)."""

    def started(self, job: JobInfo) -> None:
        logger.info("retrain of %s for %s: started", job.task, job.requested_by)

    def progress(self, job: JobInfo, update: RetrainProgress) -> None:
        logger.info("retrain of %s: %s", job.task, update)

    def finished(self, job: JobInfo, report: RetrainReport) -> None:
        logger.info("retrain of %s: run %d %s", job.task, report.run.id, report.run.status.value)

    def failed(self, job: JobInfo, message: str) -> None:
        logger.warning("retrain of %s: %s", job.task, message)


class RetrainWorker:
    """Runs queued retrain jobs (the task queue's handler)."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        options: RetrainOptions,
        *,
        reporter_for: Callable[[RetrainJob], JobReporter] | None = None,
        observer: RetrainObserver | None = None,
        on_done: Callable[[RetrainJob, str], None] | None = None,
    ) -> None:
        """Wire the worker.

        Args:
            settings: The tasks, the roles, the schedule's settings.
            database: The shared store.
            options: How retrains run here (this machine's threads, the artifact root).
            reporter_for: Where an admin's job reports (default: the log).
            observer: Told how each retrain ended (metrics).
            on_done: Told each job's outcome (``--json`` lines, tests).
        """
        self._settings, self._database, self._options = settings, database, options
        self._reporter_for = reporter_for or (lambda _job: LoggedReporter())
        self._observer = observer
        self._on_done = on_done
        self._service = RetrainService(
            database,
            settings.task_specs,
            options,
            Roles.of(admins=settings.admins, moderators=settings.moderators),
            observer=observer,
        )

    def handle(self, body: Mapping[str, Any]) -> str:
        """Run one delivered job (at most once per job id); returns its outcome.

        Raises:
            JobBusyError: Another worker runs this job now (deliver it again later).
            StorageError: The database is unreachable (deliver it again later).
        """
        try:
            job = RetrainJob.from_message(body)
        except JobError as exc:  # delivering it again would not help
            logger.error("dropped a message that is not a retrain job: %s", exc)
            return self._done(None, f"dropped: {exc}")
        with self._database.begin() as session:
            runs.purge_expired_leases(session=session, prefix=JOB_LEASE_PREFIX)
            done = runs.get_lease(session=session, name=job_done_lease(job.job_id))
        if done is not None and done.expires_at > utcnow():
            logger.info("job %s (%s) ran already: dropping the duplicate", job.job_id, job.task)
            return self._done(job, "duplicate")
        claim = HeldLease(self._database, job_lease(job.job_id), self._options.lease_ttl)
        if not claim.take():
            holder = claim.current()
            raise JobBusyError(
                f"job {job.job_id} ({job.task}) is running on "
                f"{holder.holder if holder else 'another worker'}"
            )
        stop = threading.Event()
        keeper = threading.Thread(
            target=_renew, args=(claim, stop), name=f"job-{job.job_id[:8]}", daemon=True
        )
        keeper.start()
        try:
            outcome = self._run(job)
        except BaseException:
            stop.set()
            claim.release()
            raise
        stop.set()
        keeper.join(5)
        HeldLease(self._database, job_done_lease(job.job_id), DONE_KEEP, claim.holder).take()
        claim.release()
        return self._done(job, outcome)

    def _run(self, job: RetrainJob) -> str:
        from bertbot.scheduler import scheduled_retrain

        logger.info(
            "job %s: retrain %s for %s (%s%s)",
            job.job_id,
            job.task,
            job.requested_by,
            job.trigger,
            ", forced" if job.force else "",
        )
        if job.task not in self._settings.task_specs:
            logger.error("job %s names %s, not an active task here", job.job_id, job.task)
            return f"{job.task}: not an active task"
        if job.trigger == SCHEDULE:
            return scheduled_retrain(
                self._settings, self._database, job.task, self._options, observer=self._observer
            )
        plan = self._service.plan(job.task, force=job.force)
        self._service.run_now(JobInfo(plan, job.requested_by, utcnow()), self._reporter_for(job))
        return f"{job.task}: ran for {job.requested_by}"

    def _done(self, job: RetrainJob | None, outcome: str) -> str:
        logger.info("job %s: %s", job.job_id if job else "?", outcome)
        if self._on_done is not None and job is not None:
            self._on_done(job, outcome)
        return outcome


def _renew(claim: HeldLease, stop: threading.Event) -> None:
    interval = max(claim.ttl.total_seconds() / 3, 0.5)
    while not stop.wait(interval):
        try:
            if not claim.renew():
                logger.error("lost the claim on %s", claim.name)
                return
        except Exception:  # the next beat tries again; the claim lapses if none succeeds
            logger.warning("could not renew %s", claim.name, exc_info=True)
