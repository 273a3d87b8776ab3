"""The active review queue: what to ask a moderator next, their skips, their daily budget.

Candidates come from storage (:func:`storage.review_queue.queue_candidates`: the age limit,
labels, skips), bounded to the ``pool_size`` least sure; their embeddings from the task's
production classifier's ``embed()`` (cached in memory by model version and message, so the
Home tab renders fast); the choice from :func:`trainer.active.choose`. A classifier without
``embed`` (an old artifact, a test fake) gives an uncertainty-only queue whose reasons say
so. Used by App Home's "Needs review", the digest and ``bertbot review next``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from bot.services.errors import BotError, NotAllowedError
from bot.services.predictor import ModelSource
from bot.services.roles import Roles
from storage import messages
from storage import review_queue as queue_store
from storage.db import Database
from storage.enums import SkipKind
from storage.errors import NotFoundError
from storage.records import MessageRecord, PredictionRecord
from storage.texts import normalise_text
from trainer.active import Candidate, Strategy, choose
from trainer.serving import ServingError
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Told (texts embedded, texts to embed) while a queue's embeddings are computed."""

NOT_ALLOWED = "Only moderators and admins can label messages. Nothing was stored."
EMBED_BATCH = 256
CACHE_ENTRIES = 50_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReviewOptions:
    """How the queue chooses and how often moderators are asked (``BERTBOT_REVIEW__*``).

    Attributes:
        max_age: Messages received longer ago leave the queue.
        pool_size: How many of the least sure candidates the selection looks at.
        digest_min_items: A digest goes out when at least this many items wait.
        digest_every: At most one digest per moderator per this period (0: never).
        daily_budget: Labels a moderator is asked for per day (UTC).
    """

    max_age: timedelta = timedelta(days=14)
    pool_size: int = 500
    digest_min_items: int = 5
    digest_every: timedelta = timedelta(hours=24)
    daily_budget: int = 20

    def __post_init__(self) -> None:
        if self.max_age <= timedelta(0) or self.pool_size < 1:
            raise ValueError("max_age must be positive and pool_size at least 1")
        if self.digest_min_items < 1 or self.daily_budget < 1:
            raise ValueError("digest_min_items and daily_budget must be at least 1")


@dataclass(frozen=True)
class QueueItem:
    """A message the queue asks about, for one task.

    Attributes:
        task: The task to label it for.
        message: The channel message.
        prediction: Its latest stored prediction (label, calibrated probabilities, version).
        margin: Top probability minus the second.
        reason: Why it is asked (``drift-flagged``, ``uncertain: margin 0.04``, ...).
        duplicates: Ids of the near-duplicate messages this item stands for.
        flagged: The review flag's reason (``drift``), if any.
    """

    task: TaskSpec
    message: MessageRecord
    prediction: PredictionRecord
    margin: float
    reason: str
    duplicates: tuple[int, ...] = ()
    flagged: str | None = None

    @property
    def top_probability(self) -> float:
        return max(self.prediction.scores.values(), default=0.0)

    def to_json(self) -> dict[str, Any]:
        """The ``bertbot review next --json`` shape."""
        return {
            "message_id": self.message.id,
            "task": self.task.name,
            "text": self.message.text,
            "predicted_label": self.prediction.label,
            "probabilities": dict(self.prediction.scores),
            "model_version": self.prediction.model_version,
            "margin": round(self.margin, 6),
            "reason": self.reason,
            "duplicates": list(self.duplicates),
        }


@dataclass(frozen=True)
class Budget:
    """A moderator's labels today (UTC) against the daily budget."""

    labelled: int
    budget: int

    @property
    def remaining(self) -> int:
        return max(self.budget - self.labelled, 0)

    @property
    def reached(self) -> bool:
        return self.labelled >= self.budget


class EmbeddingCache:
    """Embeddings by (task, model version, message id, text), least recently used out."""

    def __init__(self, entries: int = CACHE_ENTRIES) -> None:
        self._entries = entries
        self._rows: OrderedDict[tuple[str, str, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int, int]) -> np.ndarray | None:
        with self._lock:
            row = self._rows.get(key)
            if row is not None:
                self._rows.move_to_end(key)
            return row

    def put(self, key: tuple[str, str, int, int], row: np.ndarray) -> None:
        with self._lock:
            self._rows[key] = row
            self._rows.move_to_end(key)
            while len(self._rows) > self._entries:
                self._rows.popitem(last=False)

    def __len__(self) -> int:
        return len(self._rows)


class ReviewQueueService:
    """Builds a task's queue for a moderator; records their skips. Thread-safe."""

    def __init__(
        self,
        database: Database,
        models: ModelSource,
        tasks: Mapping[str, TaskSpec],
        roles: Roles,
        options: ReviewOptions | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        cache: EmbeddingCache | None = None,
    ) -> None:
        """Wire the service.

        Args:
            database: The store.
            models: The production classifier per task (its ``embed`` gives diversity).
            tasks: The active tasks by name, in display order.
            roles: Who may skip (moderators and admins).
            options: The queue's settings.
            clock: The current time (tests).
            cache: Where embeddings are kept between calls (default: a new one).
        """
        self._database = database
        self._models = models
        self._tasks = dict(tasks)
        self._roles = roles
        self.options = options or ReviewOptions()
        self._clock = clock
        self._cache = cache or EmbeddingCache()

    @property
    def tasks(self) -> tuple[TaskSpec, ...]:
        return tuple(self._tasks.values())

    def next(
        self,
        task: str,
        *,
        user_id: str | None = None,
        limit: int = 10,
        strategy: Strategy | str = Strategy.ACTIVE,
        seed: int = 0,
        progress: Progress | None = None,
        team_id: str | None = None,
    ) -> list[QueueItem]:
        """What the queue asks next for a task: drift-flagged items first, then by strategy.

        Args:
            task: The task.
            user_id: The moderator (their skips are left out; None: nobody's).
            limit: How many items.
            strategy: ``active`` (default), ``uncertainty`` or ``random``.
            seed: The ``random`` strategy's seed.
            progress: Told how the embeddings are coming along.
            team_id: The moderator's workspace: only its messages are asked about (None:
                every workspace's, for the operator's ``bertbot review next``).

        Raises:
            BotError: An unknown task or strategy, or a limit below 1.
        """
        spec = self._spec(task)
        try:
            strategy = Strategy(strategy)
        except ValueError as exc:
            known = ", ".join(s.value for s in Strategy)
            raise BotError(f"unknown strategy {strategy!r}; choose one of {known}") from exc
        if limit < 1:
            raise BotError("the queue's limit must be at least 1")
        with self._database.begin() as session:
            found = queue_store.queue_candidates(
                session=session,
                task=task,
                since=self._clock() - self.options.max_age,
                user_id=user_id,
                pool_size=self.options.pool_size,
                team_id=team_id,
            )
        candidates = [
            Candidate(c.message.id, c.message.text, c.prediction.scores, c.flagged) for c in found
        ]
        embeddings, missing = None, "no production model"
        if strategy is Strategy.ACTIVE and candidates:
            embeddings, missing = self._embeddings(spec.name, found, progress)
        chosen = choose(
            candidates,
            limit,
            strategy=strategy,
            embeddings=embeddings,
            seed=seed,
            no_embeddings_reason=f"{missing}: uncertainty only",
        )
        return [
            QueueItem(
                task=spec,
                message=found[c.index].message,
                prediction=found[c.index].prediction,
                margin=found[c.index].margin,
                reason=c.reason,
                duplicates=c.duplicate_ids,
                flagged=found[c.index].flagged,
            )
            for c in chosen
        ]

    def waiting(self, task: str, *, user_id: str | None = None, team_id: str | None = None) -> int:
        """How many items wait for a moderator (candidates, equal texts counted once), in
        one workspace (every workspace when ``team_id`` is None).

        Cheap: no model call. Near-duplicates by embedding are not collapsed here.
        """
        self._spec(task)
        with self._database.begin() as session:
            found = queue_store.queue_candidates(
                session=session,
                task=task,
                since=self._clock() - self.options.max_age,
                user_id=user_id,
                team_id=team_id,
            )
        return len({normalise_text(c.message.text) for c in found})

    def budget(self, user_id: str, team_id: str | None = None) -> Budget:
        """The moderator's labels today (UTC, any task) against the daily budget (counted in
        one workspace when ``team_id`` is given: each workspace asks for its own)."""
        now = self._clock()
        start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._database.begin() as session:
            labelled = queue_store.labels_since(
                session=session, annotator=user_id, since=start, team_id=team_id
            )
        return Budget(labelled, self.options.daily_budget)

    def skip(
        self,
        *,
        task: str,
        message_id: int,
        user_id: str,
        kind: SkipKind | str,
        team_id: str | None = None,
    ) -> queue_store.SkipRecord:
        """Record a moderator's "Skip" or "Not sure": the item leaves their queue, and
        everyone's once a second moderator passes on it.

        Args:
            team_id: The workspace of the click: the user's roles there decide, and only
                its messages can be passed on.

        Raises:
            BotError: The user may not label, or the task or message is unknown (or of
                another workspace).
        """
        if not self._roles.can_label(user_id, team_id):
            raise NotAllowedError(NOT_ALLOWED)
        self._spec(task)
        kind = SkipKind(kind)
        with self._database.begin() as session:
            try:
                message = messages.get_message(session=session, message_id=message_id)
            except NotFoundError as exc:
                raise BotError("That message is no longer stored.") from exc
            if team_id is not None and message.team_id != team_id:
                raise BotError("That message is not in this workspace.")
            record = queue_store.record_skip(
                session=session, task=task, message_id=message_id, user_id=user_id, kind=kind
            )
        logger.info("%s passed on message %d for %s (%s)", user_id, message_id, task, kind)
        return record

    # Internals -----------------------------------------------------------------------

    def _spec(self, task: str) -> TaskSpec:
        spec = self._tasks.get(task)
        if spec is None:
            raise BotError(f"unknown task {task!r}; active: {', '.join(self._tasks)}")
        return spec

    def _embeddings(
        self, task: str, found: Sequence[queue_store.QueueCandidate], progress: Progress | None
    ) -> tuple[np.ndarray | None, str]:
        """Each candidate's embedding from production's ``embed``, or None and why not."""
        model = self._models.get(task)
        if model is None:
            return None, "no production model"
        embed = getattr(model, "embed", None)
        if embed is None:
            return None, f"{task} v{model.version} has no embed()"
        keys = [(task, model.version, c.message.id, hash(c.message.text)) for c in found]
        rows: list[np.ndarray | None] = [self._cache.get(key) for key in keys]
        todo = [i for i, row in enumerate(rows) if row is None]
        if progress is not None:
            progress(len(found) - len(todo), len(found))
        for start in range(0, len(todo), EMBED_BATCH):
            batch = todo[start : start + EMBED_BATCH]
            try:
                vectors = np.asarray(embed([found[i].message.text for i in batch]))
            except ServingError as exc:
                logger.warning("no embeddings for the %s review queue: %s", task, exc)
                return None, f"{task} v{model.version} cannot embed"
            for i, vector in zip(batch, vectors, strict=True):
                rows[i] = vector
                self._cache.put(keys[i], vector)
            if progress is not None:
                progress(len(found) - len(todo) + start + len(batch), len(found))
        return np.stack([row for row in rows if row is not None]), ""
