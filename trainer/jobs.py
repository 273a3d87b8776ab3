"""A retrain as a message on a task queue: what the producer sends and the worker reads.

Plain values only (no broker library here): ``/retrain`` and the scheduler build a
:class:`RetrainJob`, :mod:`bertbot.queue` carries it, ``bertbot worker`` runs it. A job is
delivered at least once; :func:`job_lease` and :func:`job_done_lease` name the database
leases that make a second delivery of the same job do nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

ADMIN: Literal["admin"] = "admin"
SCHEDULE: Literal["schedule"] = "schedule"
JOB_LEASE_PREFIX = "retrain-job:"
JOB_DONE_LEASE_PREFIX = "retrain-job-done:"


class JobError(ValueError):
    """A queued message is not a retrain job this version understands."""


@dataclass(frozen=True)
class RetrainJob:
    """One retrain to run on a worker.

    Attributes:
        task: The task to retrain.
        trigger: ``admin`` (``/retrain``) or ``schedule``.
        requested_by: The Slack user, or ``scheduler``.
        force: Retrain even without enough new corrections.
        channel_id: Where ``/retrain`` was typed (the worker posts the card there).
        response_url: The command's response_url (the card's fallback).
        job_id: Unique per job; a second delivery carries the same id.
    """

    task: str
    trigger: Literal["admin", "schedule"]
    requested_by: str
    force: bool = False
    channel_id: str | None = None
    response_url: str | None = None
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.trigger not in (ADMIN, SCHEDULE):
            raise JobError(f"unknown trigger {self.trigger!r}")
        if not self.task or not self.job_id or len(self.job_id) > 40:
            raise JobError("a retrain job needs a task and a job id of at most 40 characters")

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_message(cls, body: Mapping[str, Any]) -> RetrainJob:
        """Read a queued message.

        Raises:
            JobError: Not a retrain job (missing or unknown fields).
        """
        try:
            return cls(**dict(body))
        except TypeError as exc:
            raise JobError(f"not a retrain job: {exc}") from exc


def scheduled_job_id(task: str, fire_time: datetime) -> str:
    """The id of a scheduled retrain: the same for every scheduler firing at that minute,
    so two leaders that overlap queue one job, not two."""
    key = f"{task}@{fire_time.strftime('%Y-%m-%dT%H:%M%z')}"
    return "s" + hashlib.sha256(key.encode()).hexdigest()[:31]


def job_lease(job_id: str) -> str:
    """Held (and renewed) while a worker runs the job."""
    return JOB_LEASE_PREFIX + job_id


def job_done_lease(job_id: str) -> str:
    """Taken when the job has run: a later delivery of it is dropped."""
    return JOB_DONE_LEASE_PREFIX + job_id


class QueueUnavailableError(RuntimeError):
    """The broker did not take the job (unreachable, refused)."""


class JobBusyError(RuntimeError):
    """Another worker is running this very job now: deliver it again later."""
