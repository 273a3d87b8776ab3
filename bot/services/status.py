"""What bertbot knows, for people: status, the App Home overview, a message's predictions.

The read side of the Slack surface, free of Slack payloads and Block Kit: ``/bertbot
status`` and the Home tab render :class:`StatusReport` and :class:`HomeOverview`; the
"Label with bertbot" shortcut renders :class:`MessagePredictions`. Labels themselves are
stored by :meth:`bot.services.corrections.CorrectionService.correct`, the one path every
labelling control uses. Every method owns its unit of work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from typing import Any

from bot.services.appeals import AppealItem
from bot.services.errors import BotError
from bot.services.ingestion import SlackMessage
from bot.services.label_quality import LabelQualityService, TaskQuality
from bot.services.predictor import ModelSource
from bot.services.review_queue import Budget, ReviewQueueService
from bot.services.roles import Roles
from bot.services.second_opinion import OpinionBoard
from storage import annotations as label_store
from storage import inbox as inbox_store
from storage import messages, overview, registry
from storage.db import Database
from storage.errors import DuplicateError
from storage.records import InboxStats, MessageRecord, PredictionRecord
from trainer.batching import Batcher
from trainer.decisions import GateDecision
from trainer.promotion import snapshot_time
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)

NextRetrain = Callable[[datetime], datetime | None]
"""When the retrain schedule fires next after a given time (None: never)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ProductionModel:
    """The version a task's ``production`` alias points to.

    Attributes:
        version: Its version name.
        macro_f1: Macro-F1 on the eval set (validation if it has no eval score).
        accuracy: Accuracy on the same split.
        scored_on: ``eval`` or ``validation``; None when it has no metrics.
        trained_at: When the version was registered.
        promoted_at: When the alias last moved to it.
        promoted_by: Who moved it.
    """

    version: str
    macro_f1: float | None
    accuracy: float | None
    scored_on: str | None
    trained_at: datetime
    promoted_at: datetime | None
    promoted_by: str | None


@dataclass(frozen=True)
class LabelCount:
    """How many texts carry a label (effective labels, as training sees them), by source."""

    label: str
    by_source: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        return sum(count for _, count in self.by_source)


@dataclass(frozen=True)
class TaskStatus:
    """One task's model and data.

    Attributes:
        task: The task.
        production: Its production model; None before the first promotion.
        labels: One count per label of the task (zeros included), then any other label found.
        corrections_since_training: Moderator and admin labels made after production's
            data snapshot (all of them when there is no production model).
        since: The snapshot time those are counted from (None: all time).
    """

    task: TaskSpec
    production: ProductionModel | None
    labels: tuple[LabelCount, ...]
    corrections_since_training: int
    since: datetime | None


@dataclass(frozen=True)
class StatusReport:
    tasks: tuple[TaskStatus, ...]
    next_retrain: datetime | None
    generated_at: datetime
    inbox: InboxStats | None = None
    quality: tuple[TaskQuality, ...] = ()  # held-out labels and flagged annotators: admins only


@dataclass(frozen=True)
class RunSummary:
    """A training run as people read it.

    Attributes:
        summary: The gate's reason, or the error of a failed run.
        promoted: Whether the gate promoted the candidate (None: no decision yet).
    """

    id: int
    task: str
    status: str
    trigger: str
    requested_by: str
    created_at: datetime
    finished_at: datetime | None
    candidate_version: str | None
    promoted: bool | None
    summary: str | None


@dataclass(frozen=True)
class ReviewItem:
    """A recent channel message's prediction to review: flagged (``reason``, e.g. ``drift``:
    among the messages most unlike production's eval data), or one the model was unsure
    about (``reason`` None)."""

    prediction_id: int
    task: TaskSpec
    label: str
    top_probability: float
    margin: float
    model_version: str
    predicted_at: datetime
    message: MessageRecord
    reason: str | None = None  # the review flag (``drift``), if flagged
    why: str | None = None  # why the queue asks (see :mod:`trainer.active`)
    duplicates: int = 0  # near-duplicate messages this item stands for


@dataclass(frozen=True)
class HomeOverview:
    """Everything one user's Home tab shows.

    Attributes:
        status: Models, labels and the next retrain.
        runs: The newest training runs first.
        queue: Flagged messages first (drift), then the least sure predictions; empty for
            users who may not label, who do not see the queue (it quotes messages of
            channels they may not be in).
        can_label: The user is a moderator or an admin.
    """

    status: StatusReport
    runs: tuple[RunSummary, ...]
    queue: tuple[ReviewItem, ...]
    can_label: bool
    appeals: tuple[AppealItem, ...] = ()  # open appeals: the top of the review queue
    budget: Budget | None = None  # the user's labels today against the daily budget
    opinions: OpinionBoard = OpinionBoard()  # second opinions wanted; disputes (admins)


@dataclass(frozen=True)
class TaskPrediction:
    """A task's stored prediction for a message (``prediction_id`` None: no model yet)."""

    task: TaskSpec
    prediction_id: int | None
    label: str | None
    probability: float | None
    model_version: str | None


@dataclass(frozen=True)
class MessagePredictions:
    """A message and each active task's latest prediction for it.

    Attributes:
        first_seen: The bot had not stored the message before (it is stored now).
        can_label: The asking user is a moderator or an admin.
    """

    message: MessageRecord
    predictions: tuple[TaskPrediction, ...]
    first_seen: bool
    can_label: bool


class StatusService:
    """Status, Home overview and per-message predictions. Thread-safe, no request state."""

    def __init__(
        self,
        database: Database,
        models: ModelSource,
        tasks: Mapping[str, TaskSpec],
        roles: Roles,
        *,
        next_retrain: NextRetrain | None = None,
        batcher: Batcher | None = None,
        review_window: timedelta = timedelta(days=7),
        review_size: int = 10,
        runs_shown: int = 5,
        clock: Callable[[], datetime] = _utcnow,
        open_appeals: Callable[[str | None], Sequence[AppealItem]] | None = None,
        review: ReviewQueueService | None = None,
        second_opinions: Callable[[str, str | None], OpinionBoard] | None = None,
    ) -> None:
        """Wire the service.

        Args:
            database: The store.
            models: The production classifier per task (classifies unseen messages).
            tasks: The active tasks by name, in display order.
            roles: Admins and moderators.
            next_retrain: The retrain schedule's next fire time after a given time (the
                entry point computes it from the settings); None when there is no schedule.
            batcher: The process's batcher (``BotServices.batcher``); default: its own.
            review_window: How far back the review queue looks.
            review_size: How many predictions the review queue shows.
            runs_shown: How many training runs the Home tab lists.
            clock: The current time (tests).
            open_appeals: A workspace's open appeals (``BotServices.appeals.open_items``);
                they lead the review queue.
            review: The active review queue (``BotServices.review``); without it the queue
                is the recent least-sure predictions over ``review_window``.
            second_opinions: A user's second opinions wanted and disputes in a workspace
                (``BotServices.second_opinions.board``).
        """
        if not tasks:
            raise ValueError("StatusService needs at least one task")
        if review_size < 1 or runs_shown < 1:
            raise ValueError("review_size and runs_shown must be at least 1")
        self._database = database
        self._models = models
        self._batcher = batcher or Batcher(models)
        self._tasks = dict(tasks)
        self._roles = roles
        self._next_retrain = next_retrain
        self._review_window = review_window
        self._review_size = review_size
        self._runs_shown = runs_shown
        self._clock = clock
        self._open_appeals = open_appeals
        self._review = review
        self._second_opinions = second_opinions

    # /bertbot status -------------------------------------------------------------------

    def status(self, user_id: str | None = None, team_id: str | None = None) -> StatusReport:
        """Each active task's production model, labels and new corrections; the next retrain.

        Models are shared by every workspace; labels and corrections are counted as the
        asking workspace sees them (the shared seed labels and its own corrections).

        Args:
            user_id: Who asks; admins also get the held-out labels and flagged annotators.
            team_id: The workspace asking (None: every workspace, as with one workspace).
        """
        now = self._clock()
        with self._database.begin() as session:
            tasks = tuple(
                self._task_status(session, spec, team_id) for spec in self._tasks.values()
            )
            inbox = inbox_store.stats(session=session)
        next_retrain = self._next_retrain(now) if self._next_retrain is not None else None
        quality = LabelQualityService(self._database, self._tasks, self._roles).overview(
            user_id, team_id
        )
        return StatusReport(tasks, next_retrain, now, inbox, quality)

    # App Home --------------------------------------------------------------------------

    def home(self, user_id: str, team_id: str | None = None) -> HomeOverview:
        """One user's Home tab: status, recent runs, and (moderators/admins) the review queue.

        Training runs are shared (one model per task); the queue, appeals, second opinions
        and disputes are the workspace's own, and the user's roles there decide.

        Args:
            user_id: The Slack user who opened the tab.
            team_id: Their workspace (None: every workspace, as with one workspace).
        """
        can_label = self._roles.can_label(user_id, team_id)
        report = self.status(user_id, team_id)
        with self._database.begin() as session:
            runs = tuple(
                _run_summary(item)
                for item in overview.recent_runs(session=session, limit=self._runs_shown)
            )
        queue: tuple[ReviewItem, ...] = ()
        budget = None
        if can_label and self._review is not None:
            queue = self._active_queue(user_id, team_id)
            budget = self._review.budget(user_id, team_id)
        elif can_label:
            queue = self._recent_queue(report.generated_at, team_id)
        appeals = tuple(self._open_appeals(team_id)) if can_label and self._open_appeals else ()
        board = self._second_opinions(user_id, team_id) if self._second_opinions else OpinionBoard()
        return HomeOverview(report, runs, queue, can_label, appeals, budget, board)

    def _active_queue(self, user_id: str, team_id: str | None) -> tuple[ReviewItem, ...]:
        """Each task's active queue for the user, drift-flagged items first, then the tasks'
        items taken in turn (each task's best first)."""
        assert self._review is not None
        per_task = [
            self._review.next(name, user_id=user_id, limit=self._review_size, team_id=team_id)
            for name in self._tasks
        ]
        flagged = [item for items in per_task for item in items if item.flagged]
        rest = [[item for item in items if not item.flagged] for items in per_task]
        turns = [item for row in zip_longest(*rest) for item in row if item is not None]
        return tuple(
            ReviewItem(
                prediction_id=item.prediction.id,
                task=item.task,
                label=item.prediction.label,
                top_probability=item.top_probability,
                margin=item.margin,
                model_version=item.prediction.model_version,
                predicted_at=item.prediction.created_at,
                message=item.message,
                reason=item.flagged,
                why=item.reason,
                duplicates=len(item.duplicates),
            )
            for item in [*flagged, *turns][: self._review_size]
        )

    def _recent_queue(self, now: datetime, team_id: str | None) -> tuple[ReviewItem, ...]:
        with self._database.begin() as session:
            return tuple(
                ReviewItem(
                    prediction_id=c.prediction.id,
                    task=self._tasks[c.prediction.task],
                    label=c.prediction.label,
                    top_probability=c.top_probability,
                    margin=c.margin,
                    model_version=c.prediction.model_version,
                    predicted_at=c.prediction.created_at,
                    message=c.message,
                    reason=c.reason,
                )
                for c in overview.review_queue(
                    session=session,
                    since=now - self._review_window,
                    tasks=list(self._tasks),
                    limit=self._review_size,
                    team_id=team_id,
                )
            )

    # "Label with bertbot" ----------------------------------------------------------------

    def predictions_for(self, message: SlackMessage, *, user_id: str) -> MessagePredictions:
        """A message's latest prediction per task, classifying and storing it if unseen.

        A message the bot has stored keeps its predictions; a task without one (its model
        arrived later) is classified now. A message never seen (sent before the bot joined,
        or an event that was lost) is stored and classified, as is a changed text (a missed
        edit).

        Args:
            message: The message, as the shortcut's payload carries it.
            user_id: Who asked (decides ``can_label``; anyone may see predictions).

        Raises:
            BotError: The message has no text to classify.
        """
        if not message.text.strip():
            raise BotError("That message has no text, so bertbot cannot classify it.")
        with self._database.begin() as session:
            stored, first_seen = self._find_or_add(session, message)
            latest: dict[str, PredictionRecord] = {}
            if stored.text != message.text:
                stored = messages.edit_message(
                    session=session, message_id=stored.id, text=message.text
                )
            else:
                for earlier in messages.predictions_for_message(
                    session=session, message_id=stored.id
                ):
                    latest[earlier.task] = earlier  # oldest first: the newest wins
            predictions = []
            for name, spec in self._tasks.items():
                record = latest.get(name) or self._classify(session, spec, stored)
                predictions.append(_task_prediction(spec, record))
        logger.debug("predictions of %s for %s (first seen: %s)", stored.id, user_id, first_seen)
        return MessagePredictions(
            stored,
            tuple(predictions),
            first_seen,
            self._roles.can_label(user_id, message.team_id or None),
        )

    # Internals -----------------------------------------------------------------------

    def _task_status(self, session: Any, spec: TaskSpec, team_id: str | None) -> TaskStatus:
        production = registry.get_alias(session=session, task=spec.name)
        model = since = None
        if production is not None:
            alias = registry.get_alias_record(session=session, task=spec.name)
            scored_on, scores = _scores(production.metrics)
            model = ProductionModel(
                version=production.version,
                macro_f1=_number(scores.get("macro_f1")),
                accuracy=_number(scores.get("accuracy")),
                scored_on=scored_on,
                trained_at=production.created_at,
                promoted_at=alias.updated_at if alias else None,
                promoted_by=alias.updated_by if alias else None,
            )
            since = snapshot_time(production)
        corrections = label_store.count_corrections_since(
            session=session, task=spec.name, since=since, team_id=team_id
        )
        by_label: dict[str, list[tuple[str, int]]] = {label: [] for label in spec.labels}
        for row in overview.label_source_counts(session=session, task=spec.name, team_id=team_id):
            by_label.setdefault(row.label, []).append((str(row.source), row.count))
        labels = tuple(LabelCount(label, tuple(sources)) for label, sources in by_label.items())
        return TaskStatus(spec, model, labels, corrections, since)

    @staticmethod
    def _find_or_add(session: Any, message: SlackMessage) -> tuple[MessageRecord, bool]:
        key = {"team_id": message.team_id, "channel_id": message.channel_id, "ts": message.ts}
        found = messages.find_message(session=session, **key)
        if found is not None:
            return found, False
        try:
            added = messages.add_message(
                session=session,
                text=message.text,
                user_id=message.user_id,
                thread_ts=message.thread_ts,
                **key,
            )
        except DuplicateError:
            # Its message event was stored meanwhile, with its predictions: use those.
            found = messages.find_message(session=session, **key)
            if found is None:  # pragma: no cover - the duplicate was there a moment ago
                raise
            return found, False
        return added, True

    def _classify(
        self, session: Any, spec: TaskSpec, message: MessageRecord
    ) -> PredictionRecord | None:
        predicted = self._batcher.predict(spec.name, [message.text])
        if predicted is None:
            return None
        prediction = predicted[0]
        return messages.add_prediction(
            session=session,
            task=spec.name,
            model_version=prediction.model_version,
            label=prediction.label,
            scores=prediction.probabilities,
            latency_ms=prediction.latency_ms,
            message_id=message.id,
        )


def _task_prediction(spec: TaskSpec, record: PredictionRecord | None) -> TaskPrediction:
    if record is None:
        return TaskPrediction(spec, None, None, None, None)
    return TaskPrediction(
        spec, record.id, record.label, record.scores.get(record.label), record.model_version
    )


def _scores(metrics: Mapping[str, Any]) -> tuple[str | None, Mapping[str, Any]]:
    for split in ("eval", "validation"):
        scores = metrics.get(split)
        if isinstance(scores, Mapping):
            return split, scores
    if "macro_f1" in metrics:  # versions registered by hand keep flat metrics
        return None, metrics
    return None, {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _run_summary(item: overview.RunOverview) -> RunSummary:
    run = item.run
    decision = GateDecision.from_json(run.gate_decision)
    promote = decision.promote if decision is not None else None
    summary = run.error or (decision.reason if decision is not None else None)
    return RunSummary(
        id=run.id,
        task=run.task,
        status=str(run.status),
        trigger=str(run.trigger),
        requested_by=run.requested_by,
        created_at=run.created_at,
        finished_at=run.finished_at,
        candidate_version=item.candidate_version,
        promoted=promote if isinstance(promote, bool) else None,
        summary=str(summary) if summary else None,
    )
