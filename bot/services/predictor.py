"""The one shared predictor: each active task's production model, and how a prediction is kept.

:class:`Predictor` is shared by classification (``/classify``), ingestion (channel
messages), the alert outbox and corrections: the same tasks, the same models, and one
method (:meth:`Predictor.store`) that records a prediction as a :class:`TaskResult` and
tells the predictor's :attr:`~Predictor.observer` once it is committed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from bot.services.errors import BotError
from bot.services.observer import NullObserver, PredictionObserver
from storage import messages
from storage.db import after_commit
from storage.errors import NotFoundError
from storage.records import PredictionRecord
from trainer.batching import Batcher
from trainer.serving import Classifier, Prediction
from trainer.tasks import TaskSpec


class ModelSource(Protocol):
    """Where the production classifier of a task comes from (``ProductionModels``)."""

    def get(self, task: str) -> Classifier | None: ...


@dataclass(frozen=True)
class TaskResult:
    """One task's answer for a text.

    Attributes:
        task: The task.
        prediction: The production model's prediction; None when the task has no model yet.
        prediction_id: The stored prediction (what a correction links to).
    """

    task: TaskSpec
    prediction: Prediction | None
    prediction_id: int | None


class Predictor:
    """The active tasks, in display order, and their production models.

    Every prediction goes through one :class:`trainer.batching.Batcher`, so texts from
    concurrent callers share model calls. Thread-safe: it keeps no per-request state.

    Attributes:
        batcher: The process's batcher.
        observer: Told about stored predictions (and batches of predictions).
    """

    def __init__(
        self,
        models: ModelSource,
        tasks: Mapping[str, TaskSpec],
        batcher: Batcher | None = None,
        *,
        observer: PredictionObserver | None = None,
    ) -> None:
        """Keep the tasks and where their models come from.

        Args:
            models: The production classifier per task (``ProductionModels`` or a fake).
            tasks: The active tasks by name, in display order.
            batcher: The process's batcher (default: one of its own over ``models``).
            observer: Told about predictions (the process's metrics); default: nobody.
        """
        if not tasks:
            raise ValueError("BotServices needs at least one task")
        self._models = models
        self._tasks = dict(tasks)
        self.observer: PredictionObserver = observer or NullObserver()
        self.batcher = batcher or Batcher(models, observer=self.observer)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def task(self, name: str) -> TaskSpec | None:
        return self._tasks.get(name)

    def predict(
        self, text: str, task_names: Sequence[str]
    ) -> list[tuple[TaskSpec, Prediction | None]]:
        """Each task's production prediction for ``text`` (None for a task without a model).

        The tasks' batches run at once (one worker per task); this waits for all of them.
        """
        futures = [(self._tasks[name], self.batcher.submit(name, [text])) for name in task_names]
        predicted: list[tuple[TaskSpec, Prediction | None]] = []
        for spec, future in futures:
            result = self.batcher.wait(future)
            predicted.append((spec, result[0] if result is not None else None))
        return predicted

    def model(self, name: str) -> Classifier | None:
        """The task's production classifier now (its version, its labels); None: no model."""
        return self._models.get(name)

    def close(self) -> None:
        """Stop the batcher (texts already queued are still predicted)."""
        self.batcher.close()

    def store(
        self,
        session: Any,
        spec: TaskSpec,
        prediction: Prediction | None,
        *,
        message_id: int | None = None,
        text: str | None = None,
    ) -> TaskResult:
        """:func:`store_prediction`, and the observer told once the unit of work commits.

        Arguments and result as for :func:`store_prediction`; ``session`` must come from
        ``Database.begin()``.
        """
        result = store_prediction(session, spec, prediction, message_id=message_id, text=text)
        if prediction is not None:
            after_commit(
                session,
                partial(
                    self.observer.prediction_stored,
                    spec.name,
                    prediction.label,
                    prediction.model_version,
                ),
            )
        return result


def load_prediction(session: Any, prediction_id: int) -> tuple[PredictionRecord, str]:
    """A stored prediction and the text it predicted (its own, or its channel message's).

    Raises:
        NotFoundError: No such prediction.
    """
    prediction = messages.get_prediction(session=session, prediction_id=prediction_id)
    text = prediction.text
    if text is None and prediction.message_id is not None:
        text = messages.get_message(session=session, message_id=prediction.message_id).text
    if text is None:  # pragma: no cover - storage requires a text or a message
        raise NotFoundError(f"prediction {prediction_id} has no text")
    return prediction, text


OTHER_WORKSPACE = "That message is not in this workspace."


def check_workspace(session: Any, prediction: PredictionRecord, team_id: str | None) -> None:
    """Refuse acting from one workspace on another's channel message (a forged or stale
    button). A free text's prediction (``/classify``) and a request naming no workspace pass.

    Raises:
        BotError: The prediction's message is in another workspace.
    """
    if team_id is None or prediction.message_id is None:
        return
    message = messages.get_message(session=session, message_id=prediction.message_id)
    if message.team_id != team_id:
        raise BotError(OTHER_WORKSPACE)


def store_prediction(
    session: Any,
    spec: TaskSpec,
    prediction: Prediction | None,
    *,
    message_id: int | None = None,
    text: str | None = None,
) -> TaskResult:
    """Record a prediction in the caller's unit of work (nothing for a task without a model).

    Args:
        session: The caller's unit of work.
        spec: The task.
        prediction: What its production model said, or None.
        message_id: The channel message predicted, or
        text: the free text predicted (``/classify``).

    Returns:
        The result, with the stored prediction's id (None when nothing was predicted).
    """
    if prediction is None:
        return TaskResult(spec, None, None)
    record = messages.add_prediction(
        session=session,
        task=spec.name,
        model_version=prediction.model_version,
        label=prediction.label,
        scores=prediction.probabilities,
        latency_ms=prediction.latency_ms,
        message_id=message_id,
        text=text,
    )
    return TaskResult(spec, prediction, record.id)
