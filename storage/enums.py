"""Values shared across layers: the enums stored in the tables, and the clock.

Kept apart from the ORM module so bot/ and trainer/ can use them without importing
SQLAlchemy (storage/models.py re-uses them for its columns).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


class AnnotationSource(enum.StrEnum):
    SEED = "seed"
    CORRECTION = "correction"
    ADMIN = "admin"
    IMPORT = "import"
    APPEAL = "appeal"


class Split(enum.StrEnum):
    TRAIN = "train"
    EVAL = "eval"


class RunTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    ADMIN = "admin"
    CLI = "cli"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    SKIPPED = "skipped"
    SUPERSEDED = "superseded"


class VersionStatus(enum.StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class InboxStatus(enum.StrEnum):
    """Where an acknowledged Slack delivery is: waiting, being handled, handled, given up."""

    PENDING = "pending"
    WORKING = "working"
    DONE = "done"
    DEAD = "dead"


class PolicyAction(enum.StrEnum):
    """What happens to a message whose alert label crosses its channel's threshold.

    Every action but ``log`` alerts the moderators; ``react`` also puts an emoji on the
    message, ``notify`` also tells its author privately, ``remove`` deletes it (with an
    admin's user token) and tells its author.
    """

    LOG = "log"
    ALERT = "alert"
    REACT = "react"
    NOTIFY = "notify"
    REMOVE = "remove"


class AppealStatus(enum.StrEnum):
    """An author's appeal: waiting for a moderator, upheld (the author was right: the
    message is fine) or denied (the flag stands)."""

    OPEN = "open"
    UPHELD = "upheld"
    DENIED = "denied"


class SkipKind(enum.StrEnum):
    """How a moderator passed on a review-queue item without labelling it."""

    SKIP = "skip"
    NOT_SURE = "not_sure"


class SecondOpinionStatus(enum.StrEnum):
    """A request for a second moderator's label: waiting, answered alike (agreed), answered
    differently (disputed: held out of training), or settled by an admin (decided)."""

    OPEN = "open"
    AGREED = "agreed"
    DISPUTED = "disputed"
    DECIDED = "decided"


class SuspectStatus(enum.StrEnum):
    """A correction the label check (or the gate) doubts: held out of training and of the
    gate's eval until an admin decides; cleared (the label stands) or confirmed (an admin's
    label replaced it). Never deleted."""

    HELD = "held"
    CLEARED = "cleared"
    CONFIRMED = "confirmed"
