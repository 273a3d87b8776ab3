"""Which corrections go to a second moderator: the routing rule, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.second_opinion_policy import (
    SAMPLED,
    SecondOpinionPolicy,
    routing_reason,
    sample_position,
)
from storage.enums import AnnotationSource
from storage.records import AnnotationRecord, PredictionRecord
from storage.texts import text_hash

NOW = datetime(2026, 12, 4, tzinfo=UTC)


def _annotation(text: str, label: str, annotator: str = "U0MOD1") -> AnnotationRecord:
    return AnnotationRecord(
        id=1,
        task="spam",
        message_id=None,
        text=text,
        text_hash=text_hash(text),
        label=label,
        annotator=annotator,
        source=AnnotationSource.CORRECTION,
        prediction_id=1,
        predicted_label=None,
        predicted_model_version=None,
        idempotency_key=None,
        created_at=NOW,
    )


def _prediction(label: str, probability: float) -> PredictionRecord:
    other = "ham" if label == "spam" else "spam"
    return PredictionRecord(
        id=1,
        message_id=None,
        text="x",
        task="spam",
        model_version="3",
        label=label,
        scores={label: probability, other: 1 - probability},
        latency_ms=1.0,
        created_at=NOW,
    )


TEXTS = [f"message number {i}" for i in range(400)]


def test_share_zero_routes_only_confident_contradictions() -> None:
    policy = SecondOpinionPolicy(share=0.0, confidence=0.95)
    assert all(
        routing_reason(_annotation(t, "ham"), _prediction("ham", 0.99), policy) is None
        for t in TEXTS
    )
    assert routing_reason(_annotation("a", "spam"), _prediction("ham", 0.94), policy) is None
    assert routing_reason(_annotation("a", "spam"), None, policy) is None
    reason = routing_reason(_annotation("a", "spam"), _prediction("ham", 0.97), policy)
    assert reason == "contradicts a 0.97 prediction"
    assert routing_reason(_annotation("a", "spam"), _prediction("ham", 0.95), policy) is not None


def test_share_one_routes_every_correction() -> None:
    policy = SecondOpinionPolicy(share=1.0)
    assert all(
        routing_reason(_annotation(t, "ham"), _prediction("ham", 0.6), policy) == SAMPLED
        for t in TEXTS
    )
    # a confident contradiction says so, sampled or not
    reason = routing_reason(_annotation("a", "spam"), _prediction("ham", 0.99), policy)
    assert reason == "contradicts a 0.99 prediction"


def test_the_sample_is_a_deterministic_hash_of_the_correction() -> None:
    policy = SecondOpinionPolicy(share=0.10)
    routed = [
        t
        for t in TEXTS
        if routing_reason(_annotation(t, "ham"), _prediction("ham", 0.6), policy) == SAMPLED
    ]
    assert routed == [t for t in TEXTS if sample_position(_annotation(t, "ham")) < 0.10]
    assert 20 <= len(routed) <= 60  # about a tenth of 400
    assert sample_position(_annotation("hello", "ham")) == sample_position(
        _annotation("HELLO ", "ham")  # the same normalised text
    )
    assert sample_position(_annotation("hello", "ham")) != sample_position(
        _annotation("hello", "ham", annotator="U0MOD2")
    )
    assert all(0.0 <= sample_position(_annotation(t, "spam")) < 1.0 for t in TEXTS)


@pytest.mark.parametrize(("share", "confidence"), [(-0.1, 0.95), (1.1, 0.95), (0.1, 0.0)])
def test_a_policy_out_of_bounds_is_refused(share: float, confidence: float) -> None:
    with pytest.raises(ValueError, match="second opinion"):
        SecondOpinionPolicy(share=share, confidence=confidence)
