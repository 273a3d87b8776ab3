"""Moving a task's ``production`` alias by hand: promote a version or roll back, audited.

``bertbot models promote|rollback`` and the admin buttons of Slack's ``/retrain`` card both
call :func:`move_production`, so a manual move is checked, recorded and explained the same
way wherever it starts. The gate's own promotions happen in :mod:`trainer.retrain`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from storage import audit, registry
from storage.db import Database
from storage.enums import VersionStatus
from storage.records import ModelVersionRecord

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

PROMOTE: Final = "promote"
ROLLBACK: Final = "rollback"
MoveAction = Literal["promote", "rollback"]


class PromotionError(ValueError):
    """The alias cannot move as asked; the message says why and is meant for the user."""


@dataclass(frozen=True)
class AliasMove:
    """A completed move of the production alias.

    Attributes:
        task: The task.
        action: ``promote`` or ``rollback``.
        previous: What production was before (None: the task had none).
        current: What production is now.
        actor: Who moved it (a Slack user id, ``cli``).
        reason: Why, as given (kept in the audit log).
    """

    task: str
    action: MoveAction
    previous: ModelVersionRecord | None
    current: ModelVersionRecord
    actor: str
    reason: str

    @property
    def overrides_gate(self) -> bool:
        """True when the new production is a candidate the gate had rejected."""
        return self.current.status == VersionStatus.REJECTED


def move_production(
    database: Database,
    task: str,
    *,
    action: MoveAction,
    actor: str,
    reason: str,
    version: str | None = None,
    expected_production: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AliasMove:
    """Point ``production`` at a version and audit it, in one unit of work.

    Args:
        database: The store.
        task: The task.
        action: ``promote`` (``version`` required) or ``rollback`` (to ``version``, or by
            default to the version production pointed to before its latest move).
        actor: Who is moving it.
        reason: Why (kept in the audit log).
        version: The target version's name.
        expected_production: Refuse unless production is this version now (a card's
            "Roll back" undoes the promotion it shows, not a later one).
        details: Extra audit details (where the move came from, a run id, ...).

    Returns:
        The move.

    Raises:
        PromotionError: No such version, its artifact was deleted, it is production
            already, production moved meanwhile, or there is nothing to roll back to.
    """
    if action not in (PROMOTE, ROLLBACK):
        raise ValueError(f"unknown alias move {action!r}")
    if action == PROMOTE and not version:
        raise PromotionError(f"name the {task} version to promote")
    with database.begin() as session:
        versions = registry.list_model_versions(session=session, task=task)
        production = registry.get_alias(session=session, task=task)
        if expected_production is not None and (
            production is None or production.version != expected_production
        ):
            now = f"v{production.version}" if production else "none"
            raise PromotionError(
                f"{task} production is {now} now, not v{expected_production}; nothing changed"
            )
        if version:
            target = next((v for v in versions if v.version == version), None)
            if target is None:
                raise PromotionError(f"{task} has no version {version!r}")
        else:
            target = previous_production(session, task, production, versions)
        if target.artifact_deleted_at is not None:
            raise PromotionError(f"{task} v{target.version}'s artifact was deleted")
        if production is not None and target.id == production.id:
            raise PromotionError(f"{task} v{target.version} is production already")
        registry.set_alias(session=session, task=task, version_id=target.id, updated_by=actor)
        audit.record_audit(
            session=session,
            actor=actor,
            action=action,
            subject=f"{task}/{target.version}",
            details={
                **dict(details or {}),
                "reason": reason,
                "previous": production.version if production else None,
                "gate_status": target.status.value,
            },
        )
    return AliasMove(task, action, production, target, actor, reason)


def previous_production(
    session: Session,
    task: str,
    production: ModelVersionRecord | None,
    versions: Sequence[ModelVersionRecord],
) -> ModelVersionRecord:
    """The version production pointed to before its latest move (from the audit log).

    Raises:
        PromotionError: The task has no production, or no earlier production is recorded.
    """
    if production is None:
        raise PromotionError(f"{task} has no production model to roll back")
    by_name = {v.version: v for v in versions}
    moves = [
        e
        for e in audit.list_audit(session=session, subject_prefix=f"{task}/", limit=1000)
        if e.action in (PROMOTE, ROLLBACK)
    ]
    # Newest first: the first move to the current production tells where it came from.
    for entry in moves:
        if entry.subject == f"{task}/{production.version}":
            previous = entry.details.get("previous")
            if previous is None and entry.details.get("previous_version_id") is not None:
                previous = next(
                    (v.version for v in versions if v.id == entry.details["previous_version_id"]),
                    None,
                )
            if previous in by_name:
                return by_name[previous]
            break
    raise PromotionError(f"{task} has no earlier production version; name one to roll back to")
