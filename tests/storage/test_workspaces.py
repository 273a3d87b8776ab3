"""slack_sdk's OAuth stores on bertbot's migrated tables, and purging an uninstalled workspace."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from slack_sdk.oauth.installation_store.models.installation import Installation
from sqlalchemy.orm import Session

from storage import annotations, messages, workspaces
from storage.db import Database
from storage.enums import AnnotationSource


def _installation(team_id: str, token: str, *, expires_in: int | None = None) -> Installation:
    return Installation(
        app_id="A0APP",
        team_id=team_id,
        team_name=f"team {team_id}",
        bot_token=token,
        bot_id=f"B{team_id}",
        bot_user_id=f"U{team_id}",
        bot_scopes=["chat:write", "commands"],
        bot_refresh_token="xoxe-1-refresh" if expires_in else None,
        bot_token_expires_in=expires_in,
        user_id="U0INSTALLER",
    )


def test_the_installation_store_saves_finds_and_deletes_per_team(
    fresh_database: Database,
) -> None:
    client_id = f"client-{uuid.uuid4().hex[:8]}"
    store = workspaces.installation_store(fresh_database, client_id)
    store.save(_installation("T0ONE", "xoxb-one"))
    store.save(_installation("T0TWO", "xoxe.xoxb-two", expires_in=3600))

    one = store.find_bot(enterprise_id=None, team_id="T0ONE")
    two = store.find_bot(enterprise_id=None, team_id="T0TWO")
    assert one is not None and one.bot_token == "xoxb-one" and one.bot_user_id == "UT0ONE"
    assert two is not None and two.bot_refresh_token == "xoxe-1-refresh"
    assert two.bot_token_expires_at is not None
    assert abs(two.bot_token_expires_at - (datetime.now(UTC).timestamp() + 3600)) < 120
    # Another app's rows are not this one's.
    assert (
        workspaces.installation_store(fresh_database, "other").find_bot(
            enterprise_id=None, team_id="T0ONE"
        )
        is None
    )

    store.delete_all(enterprise_id=None, team_id="T0ONE")
    assert store.find_bot(enterprise_id=None, team_id="T0ONE") is None
    assert store.find_installation(enterprise_id=None, team_id="T0ONE") is None
    assert store.find_bot(enterprise_id=None, team_id="T0TWO") is not None


def test_an_oauth_state_is_consumed_once(fresh_database: Database) -> None:
    store = workspaces.oauth_state_store(fresh_database, expiration_seconds=60)
    state = store.issue()
    assert store.consume(state) is True
    assert store.consume(state) is False
    assert store.consume("never-issued") is False
    expired = workspaces.oauth_state_store(fresh_database, expiration_seconds=-1).issue()
    assert store.consume(expired) is False


def _message_with_correction(session: Session, team_id: str, ts: str) -> None:
    message = messages.add_message(
        session=session, team_id=team_id, channel_id="C1", ts=ts, text="WIN", user_id="U1"
    )
    prediction = messages.add_prediction(
        session=session,
        task="spam",
        model_version="3",
        label="spam",
        scores={"ham": 0.1, "spam": 0.9},
        latency_ms=1.0,
        message_id=message.id,
    )
    annotations.add_annotation(
        session=session,
        task="spam",
        text="WIN",
        label="ham",
        annotator="U0MOD",
        source=AnnotationSource.CORRECTION,
        message_id=message.id,
        prediction_id=prediction.id,
    )


def test_an_uninstalled_workspace_is_purged_after_the_retention(session: Session) -> None:
    _message_with_correction(session, "T0GONE", "1.1")
    _message_with_correction(session, "T0GONE", "1.2")
    _message_with_correction(session, "T0STAY", "1.1")
    then = datetime(2026, 1, 1, tzinfo=UTC)
    workspaces.record_uninstall(
        session=session, team_id="T0GONE", reason="app_uninstalled", now=then
    )
    # A second event (tokens_revoked after app_uninstalled) keeps the first time.
    again = workspaces.record_uninstall(
        session=session, team_id="T0GONE", reason="tokens_revoked", now=then + timedelta(days=1)
    )
    assert again.uninstalled_at == then and again.reason == "app_uninstalled"

    assert workspaces.due_purges(session=session, uninstalled_before=then - timedelta(1)) == []
    due = workspaces.due_purges(session=session, uninstalled_before=then + timedelta(days=30))
    assert [record.team_id for record in due] == ["T0GONE"]

    counts = workspaces.purge_workspace(session=session, team_id="T0GONE")
    assert counts == workspaces.PurgeCounts("T0GONE", messages=2, predictions=2, corrections=2)
    assert workspaces.count_workspace_messages(session=session, team_id="T0GONE") == 0
    assert workspaces.count_workspace_messages(session=session, team_id="T0STAY") == 1
    assert (
        workspaces.due_purges(session=session, uninstalled_before=then + timedelta(days=90)) == []
    )
    (record,) = [r for r in workspaces.list_uninstalls(session=session) if r.team_id == "T0GONE"]
    assert record.purged_at is not None


def test_installing_again_cancels_a_pending_purge(fresh_database: Database) -> None:
    team = f"T{uuid.uuid4().hex[:8].upper()}"
    with fresh_database.begin() as session:
        workspaces.record_uninstall(session=session, team_id=team, reason="app_uninstalled")
    store = workspaces.installation_store(fresh_database, "client")
    store.save(_installation(team, "xoxb-back"))
    with fresh_database.begin() as session:
        assert team not in {r.team_id for r in workspaces.list_uninstalls(session=session)}
