"""What ``/retrain`` asks and what a retrain job reports: plain values and their protocols.

:class:`bot.services.retraining.RetrainService` takes these in and hands them out; the
Block Kit builders in :mod:`bot.ui.retrain` render them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Final, Protocol, runtime_checkable

from bot.services.errors import BotError
from storage.db import Database
from storage.enums import RunStatus, RunTrigger
from storage.records import ModelVersionRecord, TrainingRunRecord
from trainer.decisions import GateDecision, RetrainProgress
from trainer.tasks import TaskSpec

if TYPE_CHECKING:
    from trainer.retrain import RetrainOptions, RetrainOutcome

FORCE_WORDS = frozenset({"--force", "force", "-f"})
PROMOTE: Final = "promote"
ROLLBACK: Final = "rollback"


@runtime_checkable
class Addressed(Protocol):
    """A reporter that can say where it reports, so a worker elsewhere can report there."""

    @property
    def destination(self) -> tuple[str | None, str | None]:
        """(channel_id, response_url)."""
        ...


class RetrainRunner(Protocol):
    """:func:`trainer.retrain.retrain`'s signature (tests inject a fast fake)."""

    def __call__(
        self,
        database: Database,
        spec: TaskSpec,
        options: RetrainOptions,
        *,
        trigger: RunTrigger,
        requested_by: str,
        force: bool = False,
        progress: Callable[[RetrainProgress], None] | None = None,
    ) -> RetrainOutcome: ...


@dataclass(frozen=True)
class RetrainRequest:
    """What ``/retrain`` was asked: the tasks, in order, and whether to force."""

    tasks: tuple[str, ...]
    force: bool = False


@dataclass(frozen=True)
class RetrainPlan:
    """A task's labels as a retrain would see them now.

    Attributes:
        task: The task.
        examples: Effective labelled examples (what the snapshot would hold).
        new_corrections: Moderator/admin labels since production's snapshot (all if none).
        production: Production's version name, None if the task has no model yet.
        min_new_labels: Corrections needed before an unforced retrain runs.
        force: Retrain even with fewer new corrections.
    """

    task: TaskSpec
    examples: int
    new_corrections: int
    production: str | None
    min_new_labels: int
    force: bool

    @property
    def too_few(self) -> bool:
        """The retrain loop's own rule: too few corrections to be worth a retrain."""
        from trainer.promotion import too_few_new_labels

        return too_few_new_labels(
            has_production=self.production is not None,
            new_corrections=self.new_corrections,
            min_new_labels=self.min_new_labels,
            force=self.force,
        )


@dataclass(frozen=True)
class Busy:
    """A retrain of the task that is already queued or running.

    Attributes:
        task: The task.
        requested_by: Who started it (a Slack user id, ``scheduler``, ``cli``).
        since: When it was requested (here) or started (elsewhere), UTC.
        run_id: Its training run, once it has one.
        trigger: ``admin``, ``schedule`` or ``cli`` when known.
        queued: Waiting for this bot's worker behind another task.
    """

    task: str
    requested_by: str
    since: datetime
    run_id: int | None
    trigger: str | None
    queued: bool = False


@dataclass(frozen=True)
class RequestOutcome:
    """What a ``/retrain`` did: jobs queued, tasks busy, tasks with too few new labels."""

    started: tuple[RetrainPlan, ...]
    busy: tuple[Busy, ...]
    not_started: tuple[RetrainPlan, ...]


@dataclass(frozen=True)
class JobInfo:
    """One queued retrain on this bot's worker."""

    plan: RetrainPlan
    requested_by: str
    requested_at: datetime

    @property
    def task(self) -> str:
        return self.plan.task.name


@dataclass(frozen=True)
class RetrainReport:
    """A finished run as the registry records it (what the result card shows).

    Attributes:
        task: The task.
        run: The training run (status, gate decision with every number, error).
        candidate: The version the run registered, if it got that far.
        production: What production is *now*.
        previous_production: Production's version when the job was requested.
    """

    task: TaskSpec
    run: TrainingRunRecord
    candidate: ModelVersionRecord | None
    production: ModelVersionRecord | None
    previous_production: str | None = None

    @property
    def promoted(self) -> bool:
        """True when the registry's production alias points at the candidate."""
        return (
            self.candidate is not None
            and self.production is not None
            and self.production.id == self.candidate.id
        )

    @property
    def decision(self) -> GateDecision | None:
        """The gate's verdict as the run recorded it (None: the run ended before one)."""
        return GateDecision.from_json(self.run.gate_decision)

    @property
    def superseded(self) -> bool:
        """The gate passed, but production moved while the candidate trained."""
        return self.run.status == RunStatus.SUPERSEDED

    @property
    def skipped(self) -> bool:
        return self.run.status == RunStatus.SKIPPED


@dataclass(frozen=True)
class MoveRequest:
    """A card button's ask: promote its candidate, or roll back the promotion it shows."""

    action: str
    task: str
    version: str
    run_id: int | None
    reason: str


class JobReporter(Protocol):
    """Where a job tells its progress and its end (called on the worker thread)."""

    def started(self, job: JobInfo) -> None: ...

    def progress(self, job: JobInfo, update: RetrainProgress) -> None: ...

    def finished(self, job: JobInfo, report: RetrainReport) -> None: ...

    def failed(self, job: JobInfo, message: str) -> None: ...


def parse_retrain(text: str, task_names: Sequence[str]) -> RetrainRequest | None:
    """Read ``/retrain [task ...] [--force]``; None asks for the usage help.

    No task means every active task. ``force`` (or ``--force``) retrains even when fewer
    corrections than the gate's minimum arrived since production's snapshot.

    Raises:
        BotError: A task is not active; the message lists the active ones.
    """
    words = [word.lower() for word in text.replace(",", " ").split()]
    if words in (["help"], ["-h"], ["--help"]):
        return None
    force = any(word in FORCE_WORDS for word in words)
    names = [word for word in words if word not in FORCE_WORDS]
    unknown = [name for name in names if name not in task_names]
    if unknown:
        raise BotError(
            f"Unknown task {', '.join(repr(name) for name in unknown)}. "
            f"Active tasks: {', '.join(task_names)}. Usage: `/retrain [task] [--force]`."
        )
    return RetrainRequest(tuple(dict.fromkeys(names)) or tuple(task_names), force)
