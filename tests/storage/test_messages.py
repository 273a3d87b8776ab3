from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from storage import messages
from storage.errors import DuplicateError, NotFoundError


def _message(session: Session, ts: str = "1700000000.000100", text: str = "hello"):
    return messages.add_message(
        session=session, team_id="T1", channel_id="C1", ts=ts, text=text, user_id="U1"
    )


def test_event_ids_are_processed_once_and_the_first_row_is_kept(session: Session) -> None:
    assert messages.record_event(session=session, event_id="Ev1", event_type="message")
    assert not messages.record_event(session=session, event_id="Ev1", event_type="app_mention")
    assert messages.record_event(session=session, event_id="Ev2", event_type="message")
    from storage.models import SlackEvent

    assert session.get(SlackEvent, "Ev1").event_type == "message"


def test_duplicate_message_is_rejected_and_the_first_is_kept(session: Session) -> None:
    first = _message(session, text="original")
    with pytest.raises(DuplicateError):
        _message(session, text="imposter")
    found = messages.find_message(session=session, team_id="T1", channel_id="C1", ts=first.ts)
    assert found is not None and found.text == "original" and found.id == first.id
    # The same ts in another channel is a different message.
    other = messages.add_message(
        session=session, team_id="T1", channel_id="C2", ts=first.ts, text="x", user_id=None
    )
    assert other.id != first.id


def test_edit_and_delete_keep_the_row(session: Session) -> None:
    message = _message(session)
    edited = messages.edit_message(session=session, message_id=message.id, text="hello again")
    assert edited.text == "hello again" and edited.edited_at is not None
    deleted = messages.mark_message_deleted(session=session, message_id=message.id)
    assert deleted.deleted_at is not None
    assert messages.get_message(session=session, message_id=message.id).text == "hello again"
    with pytest.raises(NotFoundError):
        messages.get_message(session=session, message_id=10**9)


def test_predictions_for_messages_and_free_text(session: Session) -> None:
    message = _message(session)
    stored = messages.add_prediction(
        session=session,
        task="spam",
        model_version="3",
        label="spam",
        scores={"ham": 0.1, "spam": 0.9},
        latency_ms=12.5,
        message_id=message.id,
    )
    free = messages.add_prediction(
        session=session,
        task="sentiment",
        model_version="1",
        label="positive",
        scores={"negative": 0.1, "neutral": 0.2, "positive": 0.7},
        latency_ms=9.0,
        text="I love it",
    )
    assert messages.get_prediction(session=session, prediction_id=free.id).text == "I love it"
    again = messages.predictions_for_message(session=session, message_id=message.id)
    assert [p.id for p in again] == [stored.id]
    assert again[0].scores == {"ham": 0.1, "spam": 0.9}
    assert again[0].created_at.tzinfo is not None
    with pytest.raises(ValueError):
        messages.add_prediction(
            session=session,
            task="spam",
            model_version="3",
            label="ham",
            scores={},
            latency_ms=1.0,
        )
