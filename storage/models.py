"""SQLAlchemy 2.0 typed models: the tables of the learning loop.

Alembic migrations are the only way these tables are created or changed; a test
checks that autogenerate finds no difference between this module and the migrations.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from storage.enums import (
    AnnotationSource,
    AppealStatus,
    InboxStatus,
    PolicyAction,
    RunStatus,
    RunTrigger,
    SecondOpinionStatus,
    SkipKind,
    Split,
    SuspectStatus,
    VersionStatus,
    utcnow,
)
from storage.texts import storable_text

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StoredText(TypeDecorator[str]):
    """Text stored verbatim, except NUL and lone surrogates (see ``texts.storable_text``)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else storable_text(value)


def _enum(cls: type[enum.StrEnum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK so adding a value never needs a PostgreSQL type migration.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Message(Base):
    """A Slack message the bot saw in a channel it is in."""

    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("team_id", "channel_id", "ts"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(StoredText)
    thread_ts: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    edited_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


class SlackEvent(Base):
    """An Events API delivery already processed (de-duplication by event id)."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str | None] = mapped_column(String(32))
    event_type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Prediction(Base):
    """What a model version said about a message (or a free text from /classify)."""

    __tablename__ = "predictions"
    __table_args__ = (
        CheckConstraint("message_id IS NOT NULL OR text IS NOT NULL", name="message_or_text"),
        Index(None, "task", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str | None] = mapped_column(StoredText)
    task: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(32))
    scores: Mapped[dict[str, Any]]
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """A moderators' alert to post (an outbox row).

    Stored in the unit of work that stores its prediction, so a crash between the commit
    and the post to Slack loses nothing: the row stays pending until a process claims it
    (``claimed_until``), posts it and records ``posted_at`` and Slack's ``slack_ts``.
    """

    __tablename__ = "alerts"
    __table_args__ = (Index(None, "posted_at", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), unique=True
    )
    label: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[datetime | None]
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    # What the channel's policy does beyond the moderators' post (see PolicyAction).
    action: Mapped[PolicyAction] = mapped_column(
        _enum(PolicyAction, "policy_action"), server_default=PolicyAction.ALERT.value
    )
    removed_at: Mapped[datetime | None]


class ChannelPolicy(Base):
    """How one channel is moderated for one task; the workspace default covers the rest.

    ``threshold`` and ``action`` left NULL follow the workspace default. Changed only
    through the policy service, which writes an audit entry with every change.
    """

    __tablename__ = "channel_policies"
    __table_args__ = (UniqueConstraint("channel_id", "task"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(32))
    watch: Mapped[bool] = mapped_column(Boolean)
    threshold: Mapped[float | None] = mapped_column(Float)
    action: Mapped[PolicyAction | None] = mapped_column(_enum(PolicyAction, "policy_action"))
    exempt: Mapped[list[str]] = mapped_column(JSON)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Appeal(Base):
    """An author contesting an alert about their message, and the moderator's decision."""

    __tablename__ = "appeals"
    __table_args__ = (Index(None, "author_id", "created_at"), Index(None, "status", "created_at"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), unique=True)
    author_id: Mapped[str] = mapped_column(String(32))
    note: Mapped[str] = mapped_column(StoredText)
    status: Mapped[AppealStatus] = mapped_column(_enum(AppealStatus, "appeal_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    label: Mapped[str | None] = mapped_column(String(32))


class InboxItem(Base):
    """A Slack event delivery, stored before it is acknowledged (the durable inbox).

    Written in its own short unit of work before the 200 (HTTP) or the envelope ack (Socket
    Mode); handled after, by whichever process claims it (``claimed_by`` until
    ``claimed_until``); marked ``done`` in the unit of work of its effects. A failure waits
    until ``available_at`` (exponential back-off); after too many it is ``dead``.
    """

    __tablename__ = "inbox"
    __table_args__ = (Index(None, "status", "available_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event_type: Mapped[str] = mapped_column(String(64))
    team_id: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[InboxStatus] = mapped_column(_enum(InboxStatus, "inbox_status"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class Annotation(Base):
    """A label for a text: a seed import, a moderator's correction or an admin's decision.

    Rows are never updated or deleted: a changed mind is a newer annotation.
    """

    __tablename__ = "annotations"
    __table_args__ = (
        Index(None, "task", "text_hash", "created_at"),
        Index(None, "task", "source", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    text: Mapped[str] = mapped_column(StoredText)
    text_hash: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(32))
    annotator: Mapped[str] = mapped_column(String(64))
    source: Mapped[AnnotationSource] = mapped_column(_enum(AnnotationSource, "annotation_source"))
    prediction_id: Mapped[int | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL")
    )
    predicted_label: Mapped[str | None] = mapped_column(String(32))
    predicted_model_version: Mapped[str | None] = mapped_column(String(64))
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The workspace whose moderator gave the label (NULL: seed and imported labels, shared).
    team_id: Mapped[str | None] = mapped_column(String(32), index=True)


class SecondOpinion(Base):
    """A moderator's correction sent to a second moderator, and what came of it.

    ``active_hash`` holds the text hash while the request is open or disputed and NULL
    after, so a unique constraint keeps one active request per task and text. The answers
    and the admin's decision are annotations like any label (linked here by id).
    """

    __tablename__ = "second_opinions"
    __table_args__ = (
        UniqueConstraint("task", "active_hash"),
        Index(None, "task", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    annotation_id: Mapped[int] = mapped_column(
        ForeignKey("annotations.id", ondelete="CASCADE"), unique=True
    )
    prediction_id: Mapped[int | None] = mapped_column(
        ForeignKey("predictions.id", ondelete="SET NULL")
    )
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    text_hash: Mapped[str] = mapped_column(String(64))
    active_hash: Mapped[str | None] = mapped_column(String(64))
    first_annotator: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    status: Mapped[SecondOpinionStatus] = mapped_column(
        _enum(SecondOpinionStatus, "second_opinion_status")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    second_annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="SET NULL")
    )
    second_annotator: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime | None]
    decision_annotation_id: Mapped[int | None] = mapped_column(
        ForeignKey("annotations.id", ondelete="SET NULL")
    )
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]


class SplitAssignment(Base):
    """The train/eval side of a normalised text, fixed the first time it is labelled."""

    __tablename__ = "split_assignments"

    text_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    split: Mapped[Split] = mapped_column(_enum(Split, "split"))
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """An immutable record of one trained model artifact."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("task", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[VersionStatus] = mapped_column(_enum(VersionStatus, "version_status"))
    artifact_uri: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    base_encoder: Mapped[str] = mapped_column(String(128))
    hyperparameters: Mapped[dict[str, Any]]
    data_snapshot: Mapped[dict[str, Any]]
    metrics: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    artifact_deleted_at: Mapped[datetime | None]


class Alias(Base):
    """A named pointer (``production``) from a task to one model version."""

    __tablename__ = "aliases"

    task: Mapped[str] = mapped_column(String(32), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingRun(Base):
    """One retrain attempt, from request to gate decision."""

    __tablename__ = "training_runs"
    __table_args__ = (Index(None, "task", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[RunTrigger] = mapped_column(_enum(RunTrigger, "run_trigger"))
    requested_by: Mapped[str] = mapped_column(String(64))
    status: Mapped[RunStatus] = mapped_column(_enum(RunStatus, "run_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    candidate_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    gate_decision: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Lease(Base):
    """A time-limited lock on a named resource (one retrain per task across processes)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[int | None] = mapped_column(Integer)
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class AuditEntry(Base):
    """Who did what to which subject, and when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "subject", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DriftEpisode(Base):
    """A stretch of consecutive drift checks of a task that found drift.

    A check that finds drift opens an episode (or joins the open one); a check that finds
    none ends it. ``open_task`` holds the task while the episode is open and NULL after, so
    a unique constraint keeps a task to one open episode even when two checks race. Admins
    are told once per episode: the notice is claimed (``notice_claimed_until``), posted,
    then marked (``notified_at``, Slack's ``notice_ts``).
    """

    __tablename__ = "drift_episodes"
    __table_args__ = (Index(None, "task", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    open_task: Mapped[str | None] = mapped_column(String(32), unique=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    checks: Mapped[int] = mapped_column(Integer, default=1)
    notice_claimed_until: Mapped[datetime | None]
    notice_attempts: Mapped[int] = mapped_column(Integer, default=0)
    notified_at: Mapped[datetime | None]
    notice_channel: Mapped[str | None] = mapped_column(String(80))
    notice_ts: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)


class DriftCheck(Base):
    """One drift check of a task: recent channel messages against production's eval split."""

    __tablename__ = "drift_checks"
    __table_args__ = (Index(None, "task", "checked_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_version: Mapped[str] = mapped_column(String(64))
    days: Mapped[float] = mapped_column(Float)
    n_recent: Mapped[int] = mapped_column(Integer)
    n_reference: Mapped[int] = mapped_column(Integer)
    p_value: Mapped[float] = mapped_column(Float)
    p_embeddings: Mapped[float] = mapped_column(Float)
    p_labels: Mapped[float] = mapped_column(Float)
    alpha: Mapped[float] = mapped_column(Float)
    drifted: Mapped[bool] = mapped_column(Boolean)
    expected_macro_f1: Mapped[float] = mapped_column(Float)
    details: Mapped[dict[str, Any]]
    episode_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_episodes.id", ondelete="SET NULL"), index=True
    )


class ReviewFlag(Base):
    """A channel message put in the review queue for a reason other than doubt (``drift``).

    One row per task, message and reason; flagging it again refreshes ``flagged_at``.
    """

    __tablename__ = "review_flags"
    __table_args__ = (
        UniqueConstraint("task", "message_id", "reason"),
        Index(None, "flagged_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(32))
    score: Mapped[float | None] = mapped_column(Float)
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)
    drift_check_id: Mapped[int | None] = mapped_column(
        ForeignKey("drift_checks.id", ondelete="SET NULL")
    )


class ReviewSkip(Base):
    """A moderator's "Skip" or "Not sure" on a review-queue item (a message, for a task).

    One row per task, message and moderator (a second click updates its kind and time). The
    message leaves that moderator's queue at once, and everyone's once two moderators passed.
    """

    __tablename__ = "review_skips"
    __table_args__ = (UniqueConstraint("task", "message_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[SkipKind] = mapped_column(_enum(SkipKind, "skip_kind"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewDigest(Base):
    """When a moderator was last sent a workspace's review digest (so a restart does not
    re-send). ``team_id`` is ``""`` for the digest of no workspace in particular."""

    __tablename__ = "review_digests"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    team_id: Mapped[str] = mapped_column(String(32), primary_key=True, server_default="")
    sent_at: Mapped[datetime]
    items: Mapped[int] = mapped_column(Integer, default=0)


class LabelCheck(Base):
    """One label check before a retrain: ran or skipped (``reason``), with what it measured.

    ``details`` holds the check's numbers, among them each annotator's agreement with the
    out-of-fold predictions (``annotators``: ``{user: {"n", "agree", "suspects"}}``).
    """

    __tablename__ = "label_checks"
    __table_args__ = (Index(None, "task", "checked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    ran: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]]


class LabelSuspect(Base):
    """A correction doubted by the label check or the gate: held out until an admin decides.

    One row per annotation (a cleared label is not doubted again); rows are never deleted.
    """

    __tablename__ = "label_suspects"
    __table_args__ = (Index(None, "task", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    annotation_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("annotations.id", ondelete="CASCADE"),
        unique=True,
    )
    text_hash: Mapped[str] = mapped_column(String(64))
    annotator: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(200))
    given_label: Mapped[str] = mapped_column(String(32))
    suggested_label: Mapped[str | None] = mapped_column(String(32))
    given_probability: Mapped[float | None] = mapped_column(Float)
    status: Mapped[SuspectStatus] = mapped_column(_enum(SuspectStatus, "suspect_status"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]


class AnnotatorFlag(Base):
    """An annotator whose corrections were suspect far more often than their peers'.

    While ``cleared_at`` is NULL their corrections of the task are held out of training;
    an admin clears it (audited). The numbers are those of the check that flagged them.
    """

    __tablename__ = "annotator_flags"
    __table_args__ = (Index(None, "task", "annotator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(32))
    annotator: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id", ondelete="SET NULL"))
    flagged_at: Mapped[datetime] = mapped_column(default=utcnow)
    corrections: Mapped[int] = mapped_column(Integer)
    suspects: Mapped[int] = mapped_column(Integer)
    peer_rate: Mapped[float] = mapped_column(Float)
    p_value: Mapped[float] = mapped_column(Float)
    cleared_by: Mapped[str | None] = mapped_column(String(64))
    cleared_at: Mapped[datetime | None]


# The workspace tables (slack_sdk's OAuth stores, uninstall records, roles) live in their own
# module; importing it registers them on Base.metadata beside the tables above.
from storage import workspaces as _workspaces  # noqa: E402, F401
