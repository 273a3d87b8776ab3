"""Frozen dataclasses that repositories return instead of ORM rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.enums import (
    AnnotationSource,
    AppealStatus,
    InboxStatus,
    PolicyAction,
    RunStatus,
    RunTrigger,
    Split,
    VersionStatus,
)


@dataclass(frozen=True)
class MessageRecord:
    id: int
    team_id: str
    channel_id: str
    ts: str
    user_id: str | None
    text: str
    thread_ts: str | None
    received_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class PredictionRecord:
    id: int
    message_id: int | None
    text: str | None
    task: str
    model_version: str
    label: str
    scores: dict[str, float]
    latency_ms: float
    created_at: datetime


@dataclass(frozen=True)
class AlertRecord:
    """A moderators' alert in the outbox; pending while ``posted_at`` is None."""

    id: int
    prediction_id: int
    label: str
    channel: str
    created_at: datetime
    claimed_until: datetime | None
    attempts: int
    last_error: str | None
    posted_at: datetime | None
    slack_ts: str | None
    action: PolicyAction = PolicyAction.ALERT
    removed_at: datetime | None = None

    @property
    def pending(self) -> bool:
        return self.posted_at is None


@dataclass(frozen=True)
class AnnotationRecord:
    id: int
    task: str
    message_id: int | None
    text: str
    text_hash: str
    label: str
    annotator: str
    source: AnnotationSource
    prediction_id: int | None
    predicted_label: str | None
    predicted_model_version: str | None
    idempotency_key: str | None
    created_at: datetime
    team_id: str | None = None  # the workspace of a moderator's label; None: seed/import


@dataclass(frozen=True)
class LabelledExample:
    """The effective label of one text for a task, with where it came from."""

    text: str
    text_hash: str
    label: str
    source: AnnotationSource
    annotator: str
    annotation_id: int
    created_at: datetime
    split: Split


@dataclass(frozen=True)
class ModelVersionRecord:
    id: int
    task: str
    version: str
    status: VersionStatus
    artifact_uri: str
    sha256: str
    base_encoder: str
    hyperparameters: dict[str, Any]
    data_snapshot: dict[str, Any]
    metrics: dict[str, Any]
    created_by: str
    created_at: datetime
    artifact_deleted_at: datetime | None


@dataclass(frozen=True)
class AliasRecord:
    task: str
    alias: str
    model_version_id: int
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class TrainingRunRecord:
    id: int
    task: str
    trigger: RunTrigger
    requested_by: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    candidate_version_id: int | None
    gate_decision: dict[str, Any] | None
    progress: dict[str, Any] | None


@dataclass(frozen=True)
class LeaseRecord:
    name: str
    holder: str
    run_id: int | None
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    id: int
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class InboxRecord:
    id: int
    event_id: str
    event_type: str
    team_id: str | None
    payload: str
    received_at: datetime
    status: InboxStatus
    attempts: int
    available_at: datetime
    claimed_by: str | None
    claimed_until: datetime | None
    last_error: str | None
    finished_at: datetime | None


@dataclass(frozen=True)
class InboxStats:
    """How the inbox stands: what waits, since when, and what was given up."""

    pending: int
    working: int
    dead: int
    done: int
    oldest_waiting_at: datetime | None


@dataclass(frozen=True)
class DriftEpisodeRecord:
    """Consecutive drift checks of a task that found drift; open while ``ended_at`` is None."""

    id: int
    task: str
    started_at: datetime
    ended_at: datetime | None
    checks: int
    notice_attempts: int
    notified_at: datetime | None
    notice_channel: str | None
    notice_ts: str | None
    last_error: str | None


@dataclass(frozen=True)
class DriftCheckRecord:
    """One drift check: its p-values, verdict and expected macro-F1 (see trainer.drift)."""

    id: int
    task: str
    checked_at: datetime
    model_version: str
    days: float
    n_recent: int
    n_reference: int
    p_value: float
    p_embeddings: float
    p_labels: float
    alpha: float
    drifted: bool
    expected_macro_f1: float
    details: dict[str, Any]
    episode_id: int | None


@dataclass(frozen=True)
class ChannelPolicyRecord:
    """A channel's stored policy for a task (None: the workspace default's value)."""

    id: int
    channel_id: str
    task: str
    watch: bool
    threshold: float | None
    action: PolicyAction | None
    exempt: list[str]
    updated_by: str
    updated_at: datetime


@dataclass(frozen=True)
class AppealRecord:
    id: int
    alert_id: int
    author_id: str
    note: str
    status: AppealStatus
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    label: str | None
