"""The one owner of promotion: when a retrain is due, which lease guards it, and the only
function that moves a task's ``production`` alias.

Every move — the gate's promotion at the end of a retrain, a task's first model, an admin's
``bertbot models promote|rollback``, the ``/retrain`` card's "Promote anyway" and "Roll back"
buttons — goes through :func:`move_alias`:

1. the target version's artifact is verified in full against its manifest and the
   registry's sha256 (a missing, changed or extra file refuses the move, naming the file);
2. in one unit of work, with the alias row locked, production is compared with what the
   caller expected it to be (compare-and-set): if it moved meanwhile, nothing changes and
   :class:`ProductionMovedError` says where it is now;
3. the alias moves and one audit entry records it, in one format: action ``promote`` or
   ``rollback``, details ``kind``, ``reason``, ``previous`` (a version name or None),
   ``gate_status`` and whatever the caller adds.

The snapshot policy lives here too (:func:`snapshot_time`, :func:`retrain_need`), so the
retrain loop, ``/retrain`` and ``/bertbot status`` count new corrections the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from storage import annotations as label_store
from storage import audit, registry
from storage.db import Database
from storage.enums import VersionStatus
from storage.errors import NotFoundError
from storage.records import ModelVersionRecord
from trainer.artifact import ArtifactError, ArtifactLocation, resolve_artifact, verify_artifact

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PROMOTE: Final = "promote"
ROLLBACK: Final = "rollback"
LEASE_PREFIX: Final = "retrain:"

MoveKind = Literal["first", "gate", "promote", "rollback"]
"""Why an alias moves: a task's first model, the gate's verdict, an admin's promotion (gate
bypassed), or an admin's rollback."""

_KINDS: Final = ("first", "gate", "promote", "rollback")


class PromotionError(ValueError):
    """The alias cannot move as asked; the message says why and is meant for the user."""


class ProductionMovedError(PromotionError):
    """Production is not the version the caller expected: someone else moved it."""


class ArtifactRefusedError(PromotionError):
    """The target's files do not match its manifest or the registry; the message names one."""


def retrain_lease(task: str) -> str:
    """The database lease that keeps two processes from retraining ``task`` at once."""
    return LEASE_PREFIX + task


def snapshot_time(production: ModelVersionRecord | None) -> datetime | None:
    """When production's training labels were snapshotted (None: the task has no model).

    Corrections made after this time are the "new" ones a retrain is waiting for.
    """
    if production is None:
        return None
    taken = production.data_snapshot.get("taken_at")
    if not isinstance(taken, str):
        return production.created_at
    try:
        when = datetime.fromisoformat(taken)
    except ValueError:
        return production.created_at
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def too_few_new_labels(
    *, has_production: bool, new_corrections: int, min_new_labels: int, force: bool
) -> bool:
    """The skip rule: a task with production and fewer new corrections than needed waits.

    A task without production always trains; ``force`` retrains anyway.
    """
    return has_production and not force and new_corrections < min_new_labels


@dataclass(frozen=True)
class RetrainNeed:
    """Whether a task has enough new corrections to be worth retraining.

    Attributes:
        task: The task.
        production: Its production version now (None: it has none).
        new_corrections: Moderator/admin labels since production's snapshot (all: none).
        min_new_labels: Corrections needed before an unforced retrain runs.
        force: Retrain even with fewer.
    """

    task: str
    production: ModelVersionRecord | None
    new_corrections: int
    min_new_labels: int
    force: bool = False

    @property
    def too_few(self) -> bool:
        """True when a retrain would be skipped (a task without production always trains)."""
        return too_few_new_labels(
            has_production=self.production is not None,
            new_corrections=self.new_corrections,
            min_new_labels=self.min_new_labels,
            force=self.force,
        )

    def skip_reason(self) -> str:
        version = self.production.version if self.production else "?"
        return (
            f"skipped: {self.new_corrections} new correction(s) since production {version}'s "
            f"snapshot, fewer than {self.min_new_labels} (use --force to retrain anyway)"
        )


def retrain_need(
    session: Session, task: str, *, min_new_labels: int, force: bool = False
) -> RetrainNeed:
    """Read production and count the corrections since its snapshot, in the caller's session."""
    production = registry.get_alias(session=session, task=task)
    new = label_store.count_corrections_since(
        session=session, task=task, since=snapshot_time(production)
    )
    return RetrainNeed(task, production, new, min_new_labels, force)


@dataclass(frozen=True)
class AliasMove:
    """A completed move of the production alias.

    Attributes:
        task: The task.
        kind: ``first``, ``gate``, ``promote`` or ``rollback``.
        previous: What production was before (None: the task had none).
        current: What production is now.
        actor: Who moved it (a Slack user id, ``cli``, ``scheduler``).
        reason: Why, as given (kept in the audit log).
    """

    task: str
    kind: MoveKind
    previous: ModelVersionRecord | None
    current: ModelVersionRecord
    actor: str
    reason: str

    @property
    def action(self) -> str:
        """The audit action: ``rollback`` for rollbacks, ``promote`` for every other move."""
        return ROLLBACK if self.kind == ROLLBACK else PROMOTE

    @property
    def overrides_gate(self) -> bool:
        """True when the new production is a candidate the gate had rejected."""
        return self.current.status == VersionStatus.REJECTED


def verify_version(home: ArtifactLocation, version: ModelVersionRecord) -> dict[str, Any]:
    """Check a version's files against its manifest and the registry's sha256.

    Returns:
        The manifest.

    Raises:
        ArtifactRefusedError: Deleted, missing, changed or extra files (the file is named).
    """
    label = f"{version.task} v{version.version}"
    if version.artifact_deleted_at is not None:
        raise ArtifactRefusedError(f"{label}'s artifact was deleted")
    try:
        return verify_artifact(resolve_artifact(home, version.artifact_uri), version.sha256)
    except ArtifactError as exc:
        raise ArtifactRefusedError(f"{label} is refused: {exc}") from exc


def move_alias(
    database: Database,
    task: str,
    to_version: str,
    expected_current: str | None,
    actor: str,
    reason: str,
    kind: MoveKind,
    *,
    home: ArtifactLocation,
    details: Mapping[str, Any] | None = None,
    session: Session | None = None,
) -> AliasMove:
    """Move ``production`` to ``to_version`` if it is still ``expected_current``; audit it.

    Args:
        database: The store.
        task: The task.
        to_version: The version to make production.
        expected_current: The version production must be now (None: it must have none).
        actor: Who is moving it.
        reason: Why (kept in the audit log).
        kind: ``first``, ``gate``, ``promote`` or ``rollback``.
        home: Where relative artifact URIs are resolved (BERTBOT_HOME).
        details: Extra audit details (a run id, where the move came from, ...).
        session: A unit of work to join (the retrain registers its candidate and moves the
            alias together); by default the move is its own unit of work.

    Returns:
        The move.

    Raises:
        ProductionMovedError: Production is not ``expected_current``; nothing changed.
        ArtifactRefusedError: The target's files fail verification; nothing changed.
        PromotionError: No such version, or it is production already; nothing changed.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown alias move {kind!r}")
    if session is not None:
        return _move(
            session, task, to_version, expected_current, actor, reason, kind, home, details
        )
    with database.begin() as own:
        target = _version(own, task, to_version)
    verify_version(home, target)  # outside the lock: hashing takes a moment
    with database.begin() as own:
        return _move(
            own,
            task,
            to_version,
            expected_current,
            actor,
            reason,
            kind,
            home,
            details,
            verified=target,
        )


def _move(
    session: Session,
    task: str,
    to_version: str,
    expected_current: str | None,
    actor: str,
    reason: str,
    kind: MoveKind,
    home: ArtifactLocation,
    details: Mapping[str, Any] | None,
    *,
    verified: ModelVersionRecord | None = None,
) -> AliasMove:
    target = _version(session, task, to_version)
    if verified != target:  # not checked yet, or its row changed since (say, deleted)
        verify_version(home, target)
    current = registry.lock_alias(session=session, task=task)
    now = current.version if current else None
    if now != expected_current:
        raise _moved(task, now, expected_current)
    if current is not None and current.id == target.id:
        raise PromotionError(f"{task} v{target.version} is production already")
    moved = registry.compare_and_set_alias(
        session=session,
        task=task,
        version_id=target.id,
        expected_version_id=current.id if current else None,
        updated_by=actor,
    )
    if not moved:  # only when another unit of work created the alias first
        raise ProductionMovedError(f"{task} production moved meanwhile; nothing changed")
    move = AliasMove(task, kind, current, target, actor, reason)
    audit.record_audit(
        session=session,
        actor=actor,
        action=move.action,
        subject=f"{task}/{target.version}",
        details={
            **dict(details or {}),
            "kind": kind,
            "reason": reason,
            "previous": now,
            "gate_status": target.status.value,
        },
    )
    return move


def _moved(task: str, now: str | None, expected: str | None) -> ProductionMovedError:
    return ProductionMovedError(
        f"{task} production moved: it is {_name(now)} now, not {_name(expected)}; nothing changed"
    )


def _name(version: str | None) -> str:
    return f"v{version}" if version is not None else "none"


def _version(session: Session, task: str, version: str) -> ModelVersionRecord:
    try:
        return registry.get_model_version(session=session, task=task, version=version)
    except NotFoundError as exc:
        raise PromotionError(f"{task} has no version {version!r}") from exc


def production_version(database: Database, task: str) -> str | None:
    """The version production points at now (what a manual move expects it to stay)."""
    with database.begin() as session:
        current = registry.get_alias(session=session, task=task)
    return current.version if current else None


def rollback_target(database: Database, task: str) -> tuple[str, str]:
    """Production now and the version it pointed to before its latest move.

    Returns:
        (production's version, the version to roll back to).

    Raises:
        PromotionError: The task has no production, or no earlier production is recorded.
    """
    with database.begin() as session:
        production = registry.get_alias(session=session, task=task)
        if production is None:
            raise PromotionError(f"{task} has no production model to roll back")
        versions = registry.list_model_versions(session=session, task=task)
        moves = [
            e
            for e in audit.list_audit(session=session, subject_prefix=f"{task}/", limit=1000)
            if e.action in (PROMOTE, ROLLBACK)
        ]
    return production.version, _previous(task, production, versions, moves)


def _previous(
    task: str,
    production: ModelVersionRecord,
    versions: Sequence[ModelVersionRecord],
    moves: Sequence[Any],
) -> str:
    names = {v.version for v in versions}
    # Newest first: the latest move to the current production says where it came from.
    for entry in moves:
        if entry.subject == f"{task}/{production.version}":
            previous = entry.details.get("previous")
            if previous in names:
                return str(previous)
            break
    raise PromotionError(f"{task} has no earlier production version; name one to roll back to")


def manual_move(
    database: Database,
    task: str,
    *,
    action: Literal["promote", "rollback"],
    actor: str,
    reason: str,
    home: ArtifactLocation,
    version: str | None = None,
    expected_production: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AliasMove:
    """An admin's promotion (gate bypassed) or rollback, from the CLI or a Slack card.

    Args:
        database: The store.
        task: The task.
        action: ``promote`` (``version`` required) or ``rollback`` (to ``version``, or by
            default to the version production pointed to before its latest move).
        actor: Who is moving it.
        reason: Why (kept in the audit log).
        home: Where artifacts are resolved.
        version: The target version's name.
        expected_production: The production the admin saw (a card's "Roll back" undoes the
            promotion it shows, not a later one); by default production as read now.
        details: Extra audit details.

    Raises:
        PromotionError: As :func:`move_alias`; also an unknown action or no version named.
    """
    if action == PROMOTE:
        if not version:
            raise PromotionError(f"name the {task} version to promote")
        expected = (
            expected_production
            if expected_production is not None
            else production_version(database, task)
        )
        target = version
    elif action == ROLLBACK:
        current = production_version(database, task)
        if current is None:
            raise PromotionError(f"{task} has no production model to roll back")
        if expected_production is not None and current != expected_production:
            raise _moved(task, current, expected_production)
        expected = current
        target = version or rollback_target(database, task)[1]
    else:
        raise ValueError(f"unknown alias move {action!r}")
    return move_alias(
        database, task, target, expected, actor, reason, action, home=home, details=details
    )
