"""Channel policies and appeals in storage, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from storage import alerts, appeals, messages, policies
from storage.annotations import add_annotation
from storage.enums import AnnotationSource, AppealStatus, PolicyAction, utcnow
from storage.errors import DuplicateError


def test_a_policy_is_stored_replaced_listed_and_deleted(session: Session) -> None:
    first = policies.put_policy(
        session=session,
        channel_id="C1",
        task="spam",
        watch=True,
        threshold=0.6,
        action=PolicyAction.REACT,
        exempt=["U1", "S1", "U1"],
        updated_by="U0ADMIN",
    )
    assert first.exempt == ["U1", "S1"] and first.action is PolicyAction.REACT
    again = policies.put_policy(
        session=session,
        channel_id="C1",
        task="spam",
        watch=False,
        threshold=None,
        action=None,
        exempt=[],
        updated_by="cli",
    )
    assert again.id == first.id and (again.watch, again.threshold, again.action) == (
        False,
        None,
        None,
    )
    policies.put_policy(
        session=session,
        channel_id="C0",
        task="sentiment",
        watch=True,
        threshold=None,
        action=PolicyAction.LOG,
        exempt=[],
        updated_by="cli",
    )
    assert [(p.channel_id, p.task) for p in policies.list_policies(session=session)] == [
        ("C0", "sentiment"),
        ("C1", "spam"),
    ]
    assert policies.delete_policy(session=session, channel_id="C1", task="spam") is not None
    assert policies.delete_policy(session=session, channel_id="C1", task="spam") is None
    assert [p.channel_id for p in policies.list_policies(session=session)] == ["C0"]


def _alert(session: Session, ts: str = "1.1") -> int:
    message = messages.add_message(
        session=session, team_id="T1", channel_id="C1", ts=ts, text="WIN a prize", user_id="U1"
    )
    prediction = messages.add_prediction(
        session=session,
        message_id=message.id,
        task="spam",
        model_version="1",
        label="spam",
        scores={"ham": 0.1, "spam": 0.9},
        latency_ms=1.0,
    )
    return alerts.add_alert(
        session=session,
        prediction_id=prediction.id,
        label="spam",
        channel="moderators",
        action=PolicyAction.REMOVE,
    ).id


def test_an_alert_keeps_its_action_and_when_its_message_was_removed(session: Session) -> None:
    alert_id = _alert(session)
    assert alerts.get_alert(session=session, alert_id=alert_id).action is PolicyAction.REMOVE
    removed = alerts.mark_message_removed(session=session, alert_id=alert_id)
    assert removed.removed_at is not None


def test_one_appeal_per_alert_decided_once_and_counted_per_author(session: Session) -> None:
    first, second = _alert(session, "1.1"), _alert(session, "1.2")
    appeal = appeals.add_appeal(session=session, alert_id=first, author_id="U1", note="a recipe")
    with pytest.raises(DuplicateError):
        appeals.add_appeal(session=session, alert_id=first, author_id="U1", note="again")
    appeals.add_appeal(session=session, alert_id=second, author_id="U1", note="")
    since = utcnow() - timedelta(hours=1)
    assert appeals.appeals_since(session=session, author_id="U1", since=since) == 2
    assert appeals.appeals_since(session=session, author_id="U2", since=since) == 0
    assert [a.alert_id for a in appeals.open_appeals(session=session)] == [first, second]
    decided = appeals.decide_appeal(
        session=session,
        appeal_id=appeal.id,
        status=AppealStatus.UPHELD,
        decided_by="U0MOD",
        label="ham",
    )
    assert decided is not None and decided.status is AppealStatus.UPHELD and decided.label == "ham"
    again = appeals.decide_appeal(
        session=session,
        appeal_id=appeal.id,
        status=AppealStatus.DENIED,
        decided_by="U0MOD2",
        label="spam",
    )
    assert again is None
    assert [a.alert_id for a in appeals.open_appeals(session=session)] == [second]


def test_an_annotation_can_come_from_an_appeal(session: Session) -> None:
    annotation, created = add_annotation(
        session=session,
        task="spam",
        text="my sourdough recipe",
        label="ham",
        annotator="U0MOD",
        source=AnnotationSource.APPEAL,
    )
    assert created and annotation.source is AnnotationSource.APPEAL


def test_an_appeal_label_overrides_the_seed_and_counts_as_a_correction(session: Session) -> None:
    from storage.annotations import count_corrections_since, effective_labels

    text = "fresh sourdough at the bakery"
    add_annotation(
        session=session,
        task="spam",
        text=text,
        label="spam",
        annotator="seed",
        source=AnnotationSource.SEED,
    )
    assert count_corrections_since(session=session, task="spam", since=None) == 0
    add_annotation(
        session=session,
        task="spam",
        text=text,
        label="ham",
        annotator="U0MOD",
        source=AnnotationSource.APPEAL,
    )
    (example,) = [e for e in effective_labels(session=session, task="spam") if e.text == text]
    assert (example.label, example.source) == ("ham", AnnotationSource.APPEAL)
    assert count_corrections_since(session=session, task="spam", since=None) == 1
