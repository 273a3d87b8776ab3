"""Which moderators' corrections get a second opinion: the policy and the routing rule.

Kept apart from the service (like :mod:`bot.inbox_policy`) so the settings can build the
policy without importing the bot's services.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from storage.records import AnnotationRecord, PredictionRecord

SAMPLED = "sampled"


@dataclass(frozen=True)
class SecondOpinionPolicy:
    """Which corrections get a second opinion (``BERTBOT_REVIEW__SECOND_OPINION_*``).

    Attributes:
        share: The share of corrections sampled, by :func:`sample_position` (0: none, 1: all).
        confidence: A correction contradicting a prediction this sure (its stored
            probability of the predicted label) always gets one.
    """

    share: float = 0.10
    confidence: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"second opinion share must be between 0 and 1, got {self.share!r}")
        if not 0.0 < self.confidence <= 1.0:
            raise ValueError(
                f"second opinion confidence must be in (0, 1], got {self.confidence!r}"
            )


def sample_position(annotation: AnnotationRecord) -> float:
    """Where a correction falls in [0, 1): sha256 of its task, text hash, annotator and label.

    A correction is sampled when this is below the share, so the same correction is always
    sampled or never, on every process and database.
    """
    key = "\x1f".join(
        (annotation.task, annotation.text_hash, annotation.annotator, annotation.label)
    )
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:16], 16) / 2**64


def routing_reason(
    annotation: AnnotationRecord, prediction: PredictionRecord | None, policy: SecondOpinionPolicy
) -> str | None:
    """Why a moderator's correction needs a second opinion, or None when it does not.

    ``contradicts a 0.97 prediction`` when it gives another label than a prediction at
    least ``policy.confidence`` sure; else ``sampled`` when :func:`sample_position` is below
    ``policy.share``.
    """
    if prediction is not None and annotation.label != prediction.label:
        probability = float(prediction.scores.get(prediction.label, 0.0))
        if probability >= policy.confidence:
            return f"contradicts a {probability:.2f} prediction"
    if sample_position(annotation) < policy.share:
        return SAMPLED
    return None
