"""Suspect corrections and annotator quality, for admins (the CLI, ``/bertbot status``, Home).

Reading is open to whoever runs the CLI; every decision (clear a suspect, replace its label,
clear an annotator's flag) needs an admin (BERTBOT_ADMINS) and is audited. Each method owns
its unit of work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bot.services.errors import BotError, NotAllowedError
from bot.services.roles import Roles
from storage import annotations as label_store
from storage import audit
from storage import label_quality as quality_store
from storage.db import Database
from storage.enums import AnnotationSource, SuspectStatus
from storage.errors import NotFoundError
from trainer.label_quality import cohen_kappa, pairwise_agreement
from trainer.tasks import TaskSpec


@dataclass(frozen=True)
class SuspectItem:
    """A suspect correction as people read it."""

    id: int
    task: str
    annotation_id: int
    annotator: str
    text: str
    given_label: str
    suggested_label: str | None
    given_probability: float | None
    reason: str
    status: str
    run_id: int | None
    created_at: datetime
    decided_by: str | None
    decided_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("created_at", "decided_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(frozen=True)
class AnnotatorQuality:
    """One annotator of a task (``bertbot annotators``).

    Attributes:
        annotator: The Slack user id.
        corrections: Their corrections and appeal decisions for the task.
        kappa: Cohen's kappa with the other moderators over texts both labelled (None: no
            such texts).
        kappa_pairs: How many (text, other moderator) pairs that kappa is over.
        oof_agreement: Share of their checked corrections the latest label check's
            out-of-fold predictions agreed with (None: not in a check that ran).
        suspects: Their suspects not cleared (held or confirmed).
        suspect_rate: ``suspects / corrections``.
        flagged: An admin has not cleared their open flag: their corrections are held out.
    """

    annotator: str
    corrections: int
    kappa: float | None
    kappa_pairs: int
    oof_agreement: float | None
    suspects: int
    held: int
    suspect_rate: float | None
    flagged: bool
    flagged_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["flagged_at"] = self.flagged_at.isoformat() if self.flagged_at else None
        return data


@dataclass(frozen=True)
class TaskQuality:
    """What admins see per task in ``/bertbot status`` and on Home."""

    task: str
    held_out: int
    held_suspects: int
    flagged: tuple[str, ...]
    last_check: str | None


class LabelQualityService:
    """Suspects and annotators of the active tasks."""

    def __init__(self, database: Database, tasks: Mapping[str, TaskSpec], roles: Roles) -> None:
        self._database = database
        self._tasks = dict(tasks)
        self._roles = roles

    def spec(self, task: str) -> TaskSpec:
        if task not in self._tasks:
            raise BotError(f"unknown task {task!r}; known: {', '.join(self._tasks)}")
        return self._tasks[task]

    def suspects(self, task: str, status: SuspectStatus | None) -> list[SuspectItem]:
        """A task's suspects (``status`` None: all), oldest first."""
        self.spec(task)
        with self._database.begin() as session:
            found = quality_store.list_suspects(session=session, task=task, status=status)
        return [_item(s) for s in found]

    def clear_suspect(self, suspect_id: int, *, by: str) -> SuspectItem:
        """Keep a suspect's label: it trains again. Admins only; audited."""
        self._require_admin(by)
        with self._database.begin() as session:
            record = self._decide(session, suspect_id, SuspectStatus.CLEARED, by, {})
        return record

    def relabel_suspect(self, suspect_id: int, label: str, *, by: str) -> SuspectItem:
        """Replace a suspect's label with an admin's (stored as a new annotation, source
        ``admin``); the suspect is confirmed. Admins only; audited."""
        self._require_admin(by)
        with self._database.begin() as session:
            found = self._get(session, suspect_id)
            spec = self.spec(found.suspect.task)
            if label not in spec.labels:
                raise BotError(f"{label!r} is not a {spec.name} label: {', '.join(spec.labels)}")
            annotation, _ = label_store.add_annotation(
                session=session,
                task=spec.name,
                text=found.text,
                label=label,
                annotator=by,
                source=AnnotationSource.ADMIN,
            )
            return self._decide(
                session,
                suspect_id,
                SuspectStatus.CONFIRMED,
                by,
                {"label": label, "annotation": annotation.id},
            )

    def annotators(self, task: str) -> list[AnnotatorQuality]:
        """Every annotator of the task's corrections, with their agreement and suspects."""
        self.spec(task)
        with self._database.begin() as session:
            counts = quality_store.annotator_counts(session=session, task=task)
            labels = quality_store.human_labels_by_text(session=session, task=task)
            check = quality_store.latest_check(session=session, task=task, ran=True)
            flags = {f.annotator: f for f in quality_store.list_flags(session=session, task=task)}
        pairs = pairwise_agreement(labels)
        checked = (check.details.get("annotators") or {}) if check else {}
        result = []
        for row in counts:
            stats = checked.get(row.annotator) or {}
            n = stats.get("n") or 0
            flag = flags.get(row.annotator)
            result.append(
                AnnotatorQuality(
                    annotator=row.annotator,
                    corrections=row.corrections,
                    kappa=_round(cohen_kappa(pairs.get(row.annotator, []))),
                    kappa_pairs=len(pairs.get(row.annotator, [])),
                    oof_agreement=_round(stats.get("agree", 0) / n) if n else None,
                    suspects=row.suspects,
                    held=row.held,
                    suspect_rate=_round(row.suspects / row.corrections)
                    if row.corrections
                    else None,
                    flagged=flag is not None,
                    flagged_at=flag.flagged_at if flag else None,
                )
            )
        return result

    def clear_annotator(self, task: str, annotator: str, *, by: str) -> int:
        """Clear an annotator's flag: their corrections train again. Admins only; audited.

        Returns:
            The id of the flag cleared.
        """
        self._require_admin(by)
        self.spec(task)
        with self._database.begin() as session:
            try:
                flag = quality_store.clear_flag(
                    session=session, task=task, annotator=annotator, by=by
                )
            except NotFoundError as exc:
                raise BotError(str(exc)) from exc
            audit.record_audit(
                session=session,
                actor=by,
                action="clear_annotator",
                subject=f"{task}/annotator/{annotator}",
                details={"flag": flag.id, "suspects": flag.suspects, "of": flag.corrections},
            )
        return flag.id

    def overview(self, user_id: str | None, team_id: str | None = None) -> tuple[TaskQuality, ...]:
        """Held-out counts and flagged annotators per task; empty for anyone but admins.

        Args:
            user_id: Who asks (the workspace's admins only).
            team_id: Count only what concerns this workspace: held-out texts its people
                labelled, suspects among its corrections, flagged annotators who label
                there (None: everything).
        """
        if not self._roles.is_admin(user_id, team_id):
            return ()
        result = []
        with self._database.begin() as session:
            for name in self._tasks:
                held = label_store_held(session, name, team_id)
                suspects = quality_store.list_suspects(session=session, task=name, team_id=team_id)
                flags = quality_store.list_flags(session=session, task=name)
                if team_id is not None:
                    ours = quality_store.team_annotators(
                        session=session, task=name, team_id=team_id
                    )
                    flags = [flag for flag in flags if flag.annotator in ours]
                check = quality_store.latest_check(session=session, task=name)
                result.append(
                    TaskQuality(
                        name,
                        held,
                        len(suspects),
                        tuple(f.annotator for f in flags),
                        check.reason if check else None,
                    )
                )
        return tuple(result)

    def _require_admin(self, user: str) -> None:
        if not self._roles.is_admin(user):
            raise NotAllowedError(
                f"{user} is not an admin (BERTBOT_ADMINS): only admins decide held-out labels"
            )

    @staticmethod
    def _get(session: Any, suspect_id: int) -> quality_store.SuspectWithText:
        try:
            return quality_store.get_suspect(session=session, suspect_id=suspect_id)
        except NotFoundError as exc:
            raise BotError(str(exc)) from exc

    def _decide(
        self,
        session: Any,
        suspect_id: int,
        status: SuspectStatus,
        by: str,
        details: dict[str, Any],
    ) -> SuspectItem:
        found = self._get(session, suspect_id)
        try:
            decided = quality_store.decide_suspect(
                session=session, suspect_id=suspect_id, status=status, by=by
            )
        except quality_store.DecisionError as exc:
            raise BotError(str(exc)) from exc
        audit.record_audit(
            session=session,
            actor=by,
            action="clear_suspect" if status == SuspectStatus.CLEARED else "confirm_suspect",
            subject=f"{decided.task}/suspect/{suspect_id}",
            details={"given_label": decided.given_label, "reason": decided.reason} | details,
        )
        return _item(quality_store.SuspectWithText(decided, found.text))


def label_store_held(session: Any, task: str, team_id: str | None = None) -> int:
    """How many texts of the task the next retrain holds out (of those a workspace's people
    labelled, when ``team_id`` is given)."""
    from trainer.label_check import held_out

    held = held_out(session, task)
    if team_id is None:
        return len(held)
    ours = quality_store.team_text_hashes(session=session, task=task, team_id=team_id)
    return len(held.keys() & ours)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _item(found: quality_store.SuspectWithText) -> SuspectItem:
    s = found.suspect
    return SuspectItem(
        id=s.id,
        task=s.task,
        annotation_id=s.annotation_id,
        annotator=s.annotator,
        text=found.text,
        given_label=s.given_label,
        suggested_label=s.suggested_label,
        given_probability=s.given_probability,
        reason=s.reason,
        status=str(s.status),
        run_id=s.run_id,
        created_at=s.created_at,
        decided_by=s.decided_by,
        decided_at=s.decided_at,
    )
