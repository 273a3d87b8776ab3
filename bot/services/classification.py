"""``/classify``: a free text predicted by each requested task's production model, and stored.

The listener parses the command with :func:`parse_classify`, calls
:meth:`ClassificationService.classify` and renders the :class:`ClassifyOutcome` with
:mod:`bot.ui.blocks`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bot.services.predictor import Predictor, TaskResult
from storage.db import Database
from storage.errors import StorageError

logger = logging.getLogger(__name__)

_TASK_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)\s*:\s*(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ClassifyRequest:
    """What ``/classify`` was asked: a text and the tasks to run."""

    text: str
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class ClassifyOutcome:
    """A ``/classify`` answer; ``stored`` is False when the database could not record it
    (the predictions are still shown, without label controls)."""

    text: str
    results: tuple[TaskResult, ...]
    stored: bool = True

    @property
    def truncated(self) -> bool:
        """True when any model read only the beginning of the text."""
        return any(r.prediction is not None and r.prediction.truncated for r in self.results)

    @property
    def num_tokens(self) -> int:
        return max((r.prediction.num_tokens for r in self.results if r.prediction), default=0)


def parse_classify(text: str, task_names: Sequence[str]) -> ClassifyRequest | None:
    """Read ``/classify [task:] <text>``; None when there is nothing to classify.

    A leading ``<task>:`` limits the request to that task when it names an active task;
    otherwise the whole text is classified for every task.
    """
    text = text.strip()
    if not text:
        return None
    match = _TASK_PREFIX.match(text)
    if match and match.group(1).lower() in task_names:
        rest = match.group(2).strip()
        return ClassifyRequest(rest, (match.group(1).lower(),)) if rest else None
    return ClassifyRequest(text, tuple(task_names))


class ClassificationService:
    """Answers ``/classify``. Thread-safe: each call runs its own unit of work."""

    def __init__(self, database: Database, predictor: Predictor) -> None:
        """Wire the service.

        Args:
            database: Where the predictions go.
            predictor: The tasks and their production models.
        """
        self._database = database
        self._predictor = predictor

    @property
    def task_names(self) -> tuple[str, ...]:
        return self._predictor.task_names

    def classify(self, request: ClassifyRequest, *, requested_by: str) -> ClassifyOutcome:
        """Predict a free text with each requested task's production model and store it.

        Args:
            request: The text and the tasks (see :func:`parse_classify`).
            requested_by: The Slack user who asked (logged).

        Returns:
            One result per task, in the request's order; tasks without a production model
            have ``prediction=None``.
        """
        predicted = self._predictor.predict(request.text, request.tasks)
        results: tuple[TaskResult, ...] = tuple(
            TaskResult(spec, None, None) for spec, _ in predicted
        )
        if any(prediction is not None for _, prediction in predicted):
            try:
                with self._database.begin() as session:
                    results = tuple(
                        self._predictor.store(session, spec, prediction, text=request.text)
                        for spec, prediction in predicted
                    )
            except StorageError:
                # The answer needs no database; only its record and label controls are lost.
                logger.exception("could not store the /classify predictions for %s", requested_by)
                results = tuple(TaskResult(spec, p, None) for spec, p in predicted)
                return ClassifyOutcome(request.text, results, stored=False)
        logger.debug("classified a text for %s: %s", requested_by, [r.task.name for r in results])
        return ClassifyOutcome(request.text, results)
