"""Admin retrains from Slack: the background worker and the registry moves behind the card.

:class:`RetrainService` owns one single-thread executor: ``/retrain`` reserves a job per
task on the listener thread (cheap database reads only) and the learning loop
(:func:`trainer.retrain.retrain`, or an injected runner in tests) runs on the worker, never
on a Bolt listener thread. A job reports through a :class:`JobReporter`; the Slack one is
:class:`bot.services.retrain_card.SlackRetrainCard`. The same service moves the ``production`` alias
for the card's "Promote anyway" and "Roll back" buttons through
:func:`trainer.promotion.manual_move`, the function ``bertbot models promote|rollback``
calls.

With a task queue (``dispatch``, set when ``BERTBOT_BROKER_URL`` is), a job is not run
here: it is queued as a :class:`trainer.jobs.RetrainJob` carrying where its card goes, and
``bertbot worker`` runs it with :meth:`RetrainService.run_now` and posts the card.

Listeners find the service in Bolt's context under :data:`CONTEXT_KEY` (see
:meth:`RetrainService.middleware`); no module keeps one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from bot.services.errors import BotError, NotAllowedError
from bot.services.observer import NullObserver, RetrainObserver
from bot.services.retrain_requests import (
    PROMOTE,
    ROLLBACK,
    Addressed,
    Busy,
    JobInfo,
    JobReporter,
    MoveRequest,
    RequestOutcome,
    RetrainPlan,
    RetrainReport,
    RetrainRequest,
    RetrainRunner,
)
from bot.services.roles import Roles
from storage import registry, runs
from storage.db import Database
from storage.enums import RunStatus, RunTrigger, utcnow
from storage.errors import NotFoundError
from storage.records import TrainingRunRecord
from trainer.decisions import RetrainProgress
from trainer.jobs import ADMIN, QueueUnavailableError, RetrainJob
from trainer.promotion import retrain_lease
from trainer.tasks import TaskSpec

if TYPE_CHECKING:
    from trainer.promotion import AliasMove
    from trainer.retrain import RetrainOptions

logger = logging.getLogger(__name__)

CONTEXT_KEY = "bertbot_retraining"
WORKER_THREAD_PREFIX = "bertbot-retrain"


class RetrainService:
    """Admin retrains on one background worker thread, and the card's alias moves.

    Thread-safe. At most one job per task is queued or running in this process; the
    database lease (taken by the runner) keeps other processes out, and is read to say
    who is retraining when a second request comes.
    """

    def __init__(
        self,
        database: Database,
        tasks: Mapping[str, TaskSpec],
        options: RetrainOptions,
        roles: Roles,
        *,
        runner: RetrainRunner | None = None,
        on_alias_moved: Callable[[str], None] | None = None,
        progress_interval_s: float = 10.0,
        observer: RetrainObserver | None = None,
        dispatch: Callable[[RetrainJob], None] | None = None,
    ) -> None:
        """Wire the service.

        Args:
            database: The store (labels, registry, runs, leases, audit).
            tasks: The active tasks by name.
            options: The learning loop's options (``bertbot.services.retrain_options``).
            roles: Who is an admin (checked again here, whatever the listener did).
            runner: Runs one retrain; default :func:`trainer.retrain.retrain`.
            on_alias_moved: Called with the task after production moved in this process
                (``ProductionModels.notify``: hot reload now, not at the next poll).
            progress_interval_s: Least time between two progress updates of a card.
            observer: Told how each retrain ended and how long it ran (the metrics).
            dispatch: Queues a job for a worker instead of running it here (the broker).
        """
        if not tasks:
            raise ValueError("RetrainService needs at least one task")
        self._database = database
        self._tasks = dict(tasks)
        self._options = options
        self.roles = roles
        self._runner = runner
        self._on_alias_moved = on_alias_moved
        self.progress_interval_s = progress_interval_s
        self._observer: RetrainObserver = observer or NullObserver()
        self._dispatch = dispatch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=WORKER_THREAD_PREFIX)
        # Hot reloads after a button's move load a model: not on a listener thread, and
        # not behind a training job on the worker.
        self._reloads = ThreadPoolExecutor(1, thread_name_prefix="bertbot-reload")
        self._lock = threading.Lock()
        self._jobs: dict[str, JobInfo] = {}
        self._running: str | None = None

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def middleware(self, context: dict[str, Any], next: Callable[[], None]) -> None:
        """A Bolt global middleware putting this service in every listener's context."""
        context[CONTEXT_KEY] = self
        next()

    # /retrain ------------------------------------------------------------------------

    def request(
        self,
        request: RetrainRequest,
        *,
        user_id: str,
        reporter_for: Callable[[JobInfo], JobReporter],
        acknowledge: Callable[[RequestOutcome], None] | None = None,
        team_id: str | None = None,
    ) -> RequestOutcome:
        """Queue a retrain per requested task that is not already queued or running.

        Runs on the listener thread: it reads the label counts and leases, reserves the
        jobs, calls ``acknowledge`` (so the user's answer comes before any progress
        message), then hands the jobs to the worker.

        Args:
            request: The tasks and ``force``.
            user_id: The Slack user asking; must be an admin (of ``team_id``).
            team_id: The workspace asking (its roles decide; the model trained is shared).
            reporter_for: Builds where each job reports (a Slack card).
            acknowledge: Told what was queued before the jobs start.

        Returns:
            The jobs queued, the tasks already busy, the tasks not worth a retrain.

        Raises:
            NotAllowedError: The user is not an admin; nothing was read or queued.
            BotError: The bot is shutting down.
        """
        if not self.roles.is_admin(user_id, team_id):
            raise NotAllowedError("Only admins can retrain models. Nothing was started.")
        busy: list[Busy] = []
        plans: list[RetrainPlan] = []
        for name in request.tasks:
            current = self.busy(name)
            if current is not None:
                busy.append(current)
            else:
                plans.append(self.plan(name, force=request.force))
        jobs: list[JobInfo] = []
        with self._lock:
            for plan in plans:
                if plan.too_few:
                    continue
                existing = self._jobs.get(plan.task.name)
                if existing is not None:  # another request reserved it meanwhile
                    busy.append(_busy_here(existing, None, running=self._running))
                    continue
                job = JobInfo(plan, user_id, utcnow())
                self._jobs[job.task] = job
                jobs.append(job)
        outcome = RequestOutcome(
            tuple(job.plan for job in jobs),
            tuple(busy),
            tuple(plan for plan in plans if plan.too_few),
        )
        try:
            if acknowledge is not None:
                acknowledge(outcome)
        finally:
            for job in jobs:  # reserved: start them even if the answer could not be sent
                self._submit(job, reporter_for(job))
        return outcome

    def plan(self, task: str, *, force: bool = False) -> RetrainPlan:
        """Count a task's effective labels and the corrections since production's snapshot.

        The same counts :func:`trainer.retrain.retrain` takes, read without training.
        """
        from trainer.promotion import retrain_need
        from trainer.retrain import take_snapshot

        spec = self._spec(task)
        snapshot = take_snapshot(self._database, spec.name)
        with self._database.begin() as session:
            need = retrain_need(
                session, spec.name, min_new_labels=self._options.min_new_labels, force=force
            )
        return RetrainPlan(
            spec,
            len(snapshot.examples),
            need.new_corrections,
            need.production.version if need.production else None,
            need.min_new_labels,
            force,
        )

    def busy(self, task: str) -> Busy | None:
        """Who is retraining ``task`` now: this bot's worker, or a live lease elsewhere."""
        with self._lock:
            job = self._jobs.get(task)
            running = self._running
        with self._database.begin() as session:
            lease = runs.get_lease(session=session, name=retrain_lease(task))
            run = None
            if lease is not None and lease.expires_at > utcnow() and lease.run_id is not None:
                try:
                    run = runs.get_run(session=session, run_id=lease.run_id)
                except NotFoundError:
                    run = None
            live = lease is not None and lease.expires_at > utcnow()
        if job is not None:
            return _busy_here(job, run, running=running)
        if not live or lease is None:
            return None
        if run is None:
            return Busy(task, lease.holder, lease.acquired_at, lease.run_id, None)
        return Busy(
            task, run.requested_by, run.started_at or run.created_at, run.id, str(run.trigger)
        )

    def report(self, run_id: int, *, previous_production: str | None = None) -> RetrainReport:
        """A run as the registry has it now (the card is rendered from this, never guessed).

        Raises:
            NotFoundError: No such run.
            BotError: Its task is no longer active.
        """
        with self._database.begin() as session:
            run = runs.get_run(session=session, run_id=run_id)
            candidate = (
                registry.get_model_version_by_id(
                    session=session, version_id=run.candidate_version_id
                )
                if run.candidate_version_id is not None
                else None
            )
            production = registry.get_alias(session=session, task=run.task)
        return RetrainReport(self._spec(run.task), run, candidate, production, previous_production)

    # The card's buttons --------------------------------------------------------------

    def move(self, request: MoveRequest, *, user_id: str, team_id: str | None = None) -> AliasMove:
        """Promote the card's candidate anyway, or roll back the promotion the card shows.

        The role is checked before anything is read; the move and its audit entry share
        one unit of work (:func:`trainer.promotion.move_alias`). Production models in
        this process reload in the background.

        Raises:
            NotAllowedError: The user is not an admin; nothing changed.
            BotError: The move is not possible (production moved meanwhile, artifact
                deleted, nothing to roll back to, ...); nothing changed.
        """
        from trainer.promotion import PromotionError, manual_move

        if not self.roles.is_admin(user_id, team_id):
            raise NotAllowedError(
                "Only admins can promote or roll back models. Nothing was changed."
            )
        spec = self._spec(request.task)
        reason = request.reason.strip()
        if not reason:
            raise BotError("Say why: the reason is kept in the audit log.")
        details = {"via": "slack", "run": request.run_id}
        if request.action not in (PROMOTE, ROLLBACK):
            raise BotError(f"Unknown action {request.action!r}.")
        promote = request.action == PROMOTE
        try:
            move = manual_move(
                self._database,
                spec.name,
                action=PROMOTE if promote else ROLLBACK,
                actor=user_id,
                reason=reason,
                home=self._options.artifacts,
                # "Promote anyway" names its candidate; "Roll back" undoes the promotion the
                # card shows, so production must still be that version.
                version=request.version if promote else None,
                expected_production=None if promote else request.version,
                details=details | ({"gate_overridden": True} if promote else {}),
            )
        except PromotionError as exc:
            raise BotError(f"{str(exc)[:1].upper()}{str(exc)[1:]}.") from exc
        logger.info(
            "%s by %s via Slack: %s production %s -> %s",
            request.action,
            user_id,
            spec.name,
            move.previous.version if move.previous else "none",
            move.current.version,
        )
        self._reload_soon(spec.name)
        return move

    # Life cycle ----------------------------------------------------------------------

    def drain(self, timeout: float | None = None) -> None:
        """Wait until every job queued so far has ended (tests, orderly shutdown).

        Raises:
            TimeoutError: A job is still running after ``timeout`` seconds.
        """
        # The worker runs jobs in order: once a no-op queued now has run, so have they.
        self._executor.submit(lambda: None).result(timeout)
        self._reloads.submit(lambda: None).result(timeout)

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop taking jobs and drop queued ones; with ``wait``, let the running one end.

        A retrain cut short by the process exiting is recorded as abandoned by the next
        retrain of the task once its lease expires.
        """
        self._executor.shutdown(wait=wait, cancel_futures=True)
        self._reloads.shutdown(wait=wait, cancel_futures=True)

    # The worker ------------------------------------------------------------------------

    def run_now(self, job: JobInfo, reporter: JobReporter) -> None:
        """Run one job on the calling thread (``bertbot worker``), reporting to ``reporter``
        as this service's own worker thread would; never raises."""
        self._run(job, reporter)

    def _submit(self, job: JobInfo, reporter: JobReporter) -> None:
        if self._dispatch is not None:
            self._queue(job, reporter)
            return
        try:
            self._executor.submit(self._run, job, reporter)
        except RuntimeError as exc:  # shut down
            with self._lock:
                self._jobs.pop(job.task, None)
            raise BotError("bertbot is shutting down; try again in a minute.") from exc

    def _queue(self, job: JobInfo, reporter: JobReporter) -> None:
        assert self._dispatch is not None
        channel_id, response_url = (
            reporter.destination if isinstance(reporter, Addressed) else (None, None)
        )
        queued = RetrainJob(
            job.task,
            ADMIN,
            job.requested_by,
            force=job.plan.force,
            channel_id=channel_id,
            response_url=response_url,
        )
        try:
            self._dispatch(queued)
        except QueueUnavailableError as exc:
            logger.error("could not queue the retrain of %s: %s", job.task, exc)
            reporter.failed(job, f"Retraining {job.task} could not be queued ({exc}).")
        finally:
            with self._lock:  # the worker's lease says it is busy from now on
                self._jobs.pop(job.task, None)

    def _run(self, job: JobInfo, reporter: JobReporter) -> None:
        # The worker's error boundary: nothing may escape into the executor's Future,
        # where it would vanish unlogged.
        with self._lock:
            self._running = job.task
        try:
            self._run_job(job, reporter)
        except Exception:
            logger.exception("the retrain job of %s for %s crashed", job.task, job.requested_by)
        finally:
            with self._lock:
                self._jobs.pop(job.task, None)
                self._running = None

    def _run_job(self, job: JobInfo, reporter: JobReporter) -> None:
        from trainer.retrain import AlreadyRunningError, RetrainError
        from trainer.train import TrainingError

        reporter.started(job)
        runner = self._runner or _default_runner()

        def progress(update: RetrainProgress) -> None:
            reporter.progress(job, update)

        started = time.monotonic()
        try:
            outcome = runner(
                self._database,
                job.plan.task,
                self._options,
                trigger=RunTrigger.ADMIN,
                requested_by=job.requested_by,
                force=job.plan.force,
                progress=progress,
            )
        except AlreadyRunningError as exc:  # no run was recorded: nothing to count
            logger.info("retrain of %s for %s not started: %s", job.task, job.requested_by, exc)
            reporter.failed(job, f"Not started: {job.task} is being retrained elsewhere ({exc}).")
            return
        except (RetrainError, TrainingError) as exc:
            self._finished(job.task, RunStatus.FAILED, started)
            logger.exception("retrain of %s for %s failed", job.task, job.requested_by)
            reporter.failed(job, f"Retraining {job.task} failed: {exc}")
            return
        except Exception:
            self._finished(job.task, RunStatus.FAILED, started)
            reference = uuid.uuid4().hex[:8]
            logger.exception(
                "retrain of %s for %s failed (ref %s)", job.task, job.requested_by, reference
            )
            reporter.failed(
                job,
                f"Retraining {job.task} failed on bertbot's side (reference {reference}); "
                "it has been logged and production is unchanged.",
            )
            return
        self._finished(job.task, outcome.status, started)
        report = self.report(outcome.run.id, previous_production=job.plan.production)
        logger.info(
            "retrain of %s for %s: run %d %s (promoted: %s)",
            job.task,
            job.requested_by,
            report.run.id,
            report.run.status.value,
            report.promoted,
        )
        if report.promoted:
            self._reload(job.task)
        reporter.finished(job, report)

    def _finished(self, task: str, status: RunStatus, started: float) -> None:
        self._observer.retrain_finished(task, status.value, time.monotonic() - started)

    def _reload(self, task: str) -> None:
        if self._on_alias_moved is None:
            return
        try:
            self._on_alias_moved(task)
        except Exception:  # a failed reload must not hide the result; the poll retries
            logger.exception("could not reload %s after its production moved", task)

    def _reload_soon(self, task: str) -> None:
        if self._on_alias_moved is None:
            return
        try:
            self._reloads.submit(self._reload, task)
        except RuntimeError:
            logger.warning("not reloading %s: shutting down (the poll would have)", task)

    def _spec(self, task: str) -> TaskSpec:
        spec = self._tasks.get(task)
        if spec is None:
            raise BotError(f"{task} is not an active task ({', '.join(self._tasks)}).")
        return spec


def _busy_here(job: JobInfo, run: TrainingRunRecord | None, *, running: str | None) -> Busy:
    mine = run is not None and run.requested_by == job.requested_by
    return Busy(
        job.task,
        job.requested_by,
        job.requested_at,
        run.id if run is not None and mine else None,
        str(RunTrigger.ADMIN),
        queued=running != job.task,
    )


def _default_runner() -> RetrainRunner:
    from trainer.retrain import retrain

    return retrain
