"""Roles per workspace and the team-scoped reads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from storage import alerts, annotations, appeals, messages, overview, review_queue
from storage import label_quality as quality_store
from storage import second_opinion as opinions
from storage import workspace_roles as roles
from storage.enums import AnnotationSource, utcnow


def test_grant_revoke_list_and_team_roles(session: Session) -> None:
    first, created = roles.grant_role(
        session=session, team_id="T1", user_id="U1", role="admin", granted_by="cli"
    )
    assert created and first.team_id == "T1" and first.granted_by == "cli"
    assert roles.grant_role(
        session=session, team_id="T1", user_id="U1", role="admin", granted_by="U9"
    ) == (first, False)
    roles.grant_role(session=session, team_id="T1", user_id="U2", role="moderator", granted_by="U1")
    roles.grant_role(session=session, team_id="T2", user_id="U2", role="admin", granted_by="cli")
    assert roles.team_roles(session=session, team_id="T1") == roles.TeamRoles(
        frozenset({"U1"}), frozenset({"U2"})
    )
    assert roles.team_roles(session=session, team_id="T3").empty
    assert [(r.team_id, r.user_id, r.role) for r in roles.list_roles(session=session)] == [
        ("T1", "U1", "admin"),
        ("T1", "U2", "moderator"),
        ("T2", "U2", "admin"),
    ]
    assert roles.teams_with_roles(session=session) == ["T1", "T2"]
    assert roles.revoke_role(session=session, team_id="T1", user_id="U2", role="moderator")
    assert not roles.revoke_role(session=session, team_id="T1", user_id="U2", role="moderator")
    assert roles.team_roles(session=session, team_id="T1").moderators == frozenset()
    with pytest.raises(ValueError, match="unknown role"):
        roles.grant_role(session=session, team_id="T1", user_id="U3", role="owner", granted_by="x")


def _message(session: Session, team: str, text: str) -> tuple[int, int]:
    message = messages.add_message(
        session=session, team_id=team, channel_id="C1", ts=text, text=text, user_id="U9"
    )
    prediction = messages.add_prediction(
        session=session,
        task="spam",
        model_version="3",
        label="spam",
        scores={"ham": 0.45, "spam": 0.55},
        latency_ms=1.0,
        message_id=message.id,
    )
    return message.id, prediction.id


def test_reads_scoped_to_a_team_see_its_own_data_and_labels_of_no_team(session: Session) -> None:
    since = utcnow() - timedelta(days=1)
    ids = {team: _message(session, team, f"text of {team}") for team in ("T1", "T2")}
    annotations.add_annotation(
        session=session, task="spam", text="seed", label="ham", annotator="seed",
        source=AnnotationSource.SEED,
    )  # fmt: skip
    for team, (message_id, prediction_id) in ids.items():
        label, _ = annotations.add_annotation(
            session=session,
            task="spam",
            text=f"text of {team}",
            label="ham",
            annotator=f"U{team}",
            source=AnnotationSource.CORRECTION,
            message_id=message_id,
            prediction_id=prediction_id,
        )
        assert label.team_id == team  # from the message
        assert opinions.open_request(session=session, annotation=label, reason="sampled")
        alert = alerts.add_alert(
            session=session, prediction_id=prediction_id, label="spam", channel="C0M"
        )
        appeals.add_appeal(session=session, alert_id=alert.id, author_id="U9", note=team)
        _message(session, team, f"unlabelled of {team}")
    for team, other in (("T1", "T2"), ("T2", "T1")):
        queue = review_queue.queue_candidates(
            session=session, task="spam", since=since, team_id=team
        )
        assert [c.message.text for c in queue] == [f"unlabelled of {team}"]
        recent = overview.review_queue(session=session, since=since, team_id=team)
        assert [c.message.text for c in recent] == [f"unlabelled of {team}"]
        assert (
            annotations.count_corrections_since(
                session=session, task="spam", since=None, team_id=team
            )
            == 1
        )
        counts = overview.label_source_counts(session=session, task="spam", team_id=team)
        assert sum(row.count for row in counts) == 2  # the seed and its own correction
        wanted = opinions.wanted(session=session, tasks=["spam"], excluding="U0", team_id=team)
        assert [view.text for view in wanted] == [f"text of {team}"]
        assert [a.note for a in appeals.open_appeals(session=session, team_id=team)] == [team]
        seen = annotations.list_annotations(session=session, team_id=team)
        assert {a.text for a in seen} == {"seed", f"text of {team}"}
        assert quality_store.team_annotators(session=session, task="spam", team_id=team) == {
            f"U{team}"
        }
        assert f"text of {other}" not in {a.text for a in seen}
    assert len(review_queue.queue_candidates(session=session, task="spam", since=since)) == 2
    assert len(appeals.open_appeals(session=session)) == 2


def test_digests_are_claimed_per_moderator_and_team(session: Session) -> None:
    now, day = utcnow(), timedelta(days=1)
    for team in ("T1", "T2", None):
        claimed, _ = review_queue.claim_digest(
            session=session, user_id="U1", every=day, items=3, now=now, team_id=team
        )
        assert claimed
    assert review_queue.claim_digest(
        session=session, user_id="U1", every=day, items=3, now=now, team_id="T1"
    ) == (False, now)
    review_queue.release_digest(session=session, user_id="U1", previous=None, team_id="T2")
    assert review_queue.digest_sent_at(session=session, user_id="U1", team_id="T2") is None
    assert review_queue.digest_sent_at(session=session, user_id="U1", team_id="T1") == now
    assert review_queue.digest_sent_at(session=session, user_id="U1") == now
    assert roles.known_teams(session=session) == []
