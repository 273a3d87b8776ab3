""" "Why?": an explanation of a stored prediction, computed on click (never on ingest).

The explanation is made by the task's production model *now* (the words that pushed its
prediction and its nearest labelled training examples, see :mod:`trainer.explain`); when
that is not the version that made the stored prediction, the answer says so.

Who may ask (:func:`may_explain`, the one rule, checked server-side on every click):

- a prediction of a channel message (alerts, the review queue): moderators and admins,
  since it quotes and ranks the words of a message in a channel the user may not be in;
- a ``/classify`` text: moderators and admins, and the user who ran ``/classify``. That
  user's id is written by the bot into the button of the private answer only they see
  (Slack signs the click and names the clicker); the database says the prediction is a
  free text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

from bot.services.errors import BotError, NotAllowedError, UnavailableError
from bot.services.predictor import Predictor, check_workspace, load_prediction
from bot.services.roles import Roles
from storage.db import Database
from storage.errors import NotFoundError, StorageError
from trainer.explain import (
    Explainable,
    ExplainError,
    ExplainOptions,
    Explanation,
    can_explain,
)
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExplainedPrediction:
    """A stored prediction and the production model's explanation of its text.

    Attributes:
        task: The task.
        text: The text explained.
        predicted_label: What the stored prediction said.
        predicted_version: The model version that said it.
        explanation: The production model's explanation now.
    """

    task: TaskSpec
    text: str
    predicted_label: str
    predicted_version: str
    explanation: Explanation


def may_explain(
    roles: Roles,
    user_id: str | None,
    *,
    channel_message: bool,
    requested_by: str | None,
    team_id: str | None = None,
) -> bool:
    """Whether a user may see why a prediction was made (see the module's docstring).

    Args:
        roles: Admins and moderators.
        user_id: Who clicked.
        channel_message: The prediction is of a channel message (not a ``/classify`` text).
        requested_by: The user the bot showed the ``/classify`` answer to, if any.
        team_id: The workspace of the click (its roles decide).
    """
    if roles.can_label(user_id, team_id):
        return True
    return not channel_message and user_id is not None and requested_by == user_id


class ExplanationService:
    """Explains stored predictions. Thread-safe; every call runs the model, so call it on a
    listener's worker thread after the ack, never while ingesting."""

    def __init__(
        self, database: Database, predictor: Predictor, roles: Roles, options: ExplainOptions
    ) -> None:
        """Wire the service.

        Args:
            database: Where the predictions are.
            predictor: The tasks and their production models.
            roles: Who may ask.
            options: Steps, words and neighbours per explanation.
        """
        self._database = database
        self._predictor = predictor
        self._roles = roles
        self.options = options

    def explain(
        self,
        *,
        user_id: str,
        prediction_id: int,
        requested_by: str | None = None,
        team_id: str | None = None,
    ) -> ExplainedPrediction:
        """Explain a stored prediction for a user allowed to see it.

        Args:
            user_id: The Slack user who clicked "Why?".
            prediction_id: The stored prediction.
            requested_by: The user a ``/classify`` answer was shown to (from its button).
            team_id: The workspace of the click: the user's roles there decide, and another
                workspace's message is refused.

        Returns:
            The explanation and what it explains.

        Raises:
            NotAllowedError: The user may not see this prediction's explanation.
            UnavailableError: The database cannot be reached.
            BotError: The prediction is gone, or its task has no model that can explain.
        """
        # Refused before anything is read when even a /classify text would be refused.
        if not may_explain(
            self._roles,
            user_id,
            channel_message=False,
            requested_by=requested_by,
            team_id=team_id,
        ):
            raise NotAllowedError("Only moderators and admins can ask why for this prediction.")
        try:
            with self._database.begin() as session:
                prediction, text = load_prediction(session, prediction_id)
                check_workspace(session, prediction, team_id)
        except NotFoundError as exc:
            raise BotError(
                "That prediction is no longer stored, so it cannot be explained."
            ) from exc
        except StorageError as exc:
            raise UnavailableError(
                "The database is unavailable right now; please ask again in a moment."
            ) from exc
        channel_message = prediction.message_id is not None
        if not may_explain(
            self._roles,
            user_id,
            channel_message=channel_message,
            requested_by=requested_by,
            team_id=team_id,
        ):
            raise NotAllowedError(
                "Only moderators and admins can ask why for a channel message's prediction."
            )
        spec = self._predictor.task(prediction.task)
        if spec is None:
            raise BotError(f"The {prediction.task} task is no longer active.")
        model = self._predictor.model(spec.name)
        if model is None:
            raise BotError(f"The {spec.name} task has no production model to explain with.")
        if not can_explain(model):
            raise BotError(f"The {spec.name} model v{model.version} cannot explain predictions.")
        try:
            explanation = cast(Explainable, model).explain(text, self.options)
        except ExplainError as exc:
            logger.warning("cannot explain prediction %s: %s", prediction_id, exc)
            raise BotError(
                f"The {spec.name} model v{model.version} cannot explain predictions: its "
                "encoder predates explanations. An admin can re-import the encoder "
                "(`bertbot encoder import --force`) and retrain."
            ) from exc
        logger.info(
            "explained prediction %s (%s) for %s",
            prediction_id,
            spec.name,
            self._roles.role_of(user_id, team_id),
        )
        return ExplainedPrediction(
            spec, text, prediction.label, prediction.model_version, explanation
        )
