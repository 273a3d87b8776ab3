"""The admins' drift notice: one message per episode, retried after a failed post."""

from __future__ import annotations

from bot.app import make_client
from bot.emulator.outbound import FakeSlack
from bot.services.drift_notice import DRIFT_EVENT, DriftNotifier
from storage import drift
from storage.db import Database
from storage.drift import NewDriftCheck
from tests.bot.conftest import ADMIN, BOT_TOKEN, MODERATORS_CHANNEL
from trainer.tasks import BUILTIN_TASKS, TaskSpec


def _check(drifted: bool) -> NewDriftCheck:
    return NewDriftCheck(
        task="sentiment",
        model_version="4",
        days=7.0,
        n_recent=300,
        n_reference=500,
        p_value=0.002 if drifted else 0.5,
        p_embeddings=0.001,
        p_labels=0.04,
        alpha=0.01,
        drifted=drifted,
        expected_macro_f1=0.612,
        details={
            "reference_labels": {"negative": 0.3, "neutral": 0.4, "positive": 0.3},
            "recent_labels": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
        },
    )


def test_one_message_per_episode_and_a_failed_post_is_retried(
    database: Database, fake_slack: FakeSlack, tasks: dict[str, TaskSpec]
) -> None:
    client = make_client(BOT_TOKEN, base_url=fake_slack.api_url, rate_limit_retries=0)
    notifier = DriftNotifier(
        database, client, tasks, channel=MODERATORS_CHANNEL, admins=[ADMIN, "U0ADMIN02"]
    )
    assert notifier.notify_pending() == []  # nothing drifted
    with database.begin() as session:
        episode = drift.record_check(session=session, check=_check(True)).episode
    assert episode is not None

    fake_slack.fail_next("chat.postMessage", status=500)
    assert notifier.notify_pending() == []  # failed: recorded, kept for the next run
    with database.begin() as session:
        failed = drift.get_episode(session=session, episode_id=episode.id)
    assert failed.notified_at is None and failed.last_error and failed.notice_attempts == 1

    assert notifier.notify_pending() == [episode.id]
    assert notifier.notify_pending() == []  # told once
    with database.begin() as session:  # the episode goes on: still no second message
        drift.record_check(session=session, check=_check(True))
    assert notifier.notify_pending() == []

    [message] = fake_slack.messages(MODERATORS_CHANNEL)
    assert message.metadata == {"event_type": DRIFT_EVENT, "event_payload": {"episode": episode.id}}
    summary = message.blocks[0]["text"]["text"]
    assert summary.startswith(f"<@{ADMIN}> <@U0ADMIN02> :warning: *Drift in sentiment*")
    assert "(300 compared)" in summary and "production v4" in summary and "p = 0.002" in summary
    assert "*Expected macro-F1 on the recent messages: 0.612*" in message.blocks[1]["text"]["text"]
    labels = message.blocks[2]["elements"][0]["text"]
    assert labels == (
        "Predicted labels: eval split Negative 30%, Neutral 40%, Positive 30%; "
        "recent Negative 70%, Neutral 20%, Positive 10%."
    )
    with database.begin() as session:
        told = drift.get_episode(session=session, episode_id=episode.id)
    assert told.notified_at is not None and told.notice_ts == message.ts
    assert told.notice_channel == MODERATORS_CHANNEL

    # The episode ends; a new one gets its own message.
    with database.begin() as session:
        drift.record_check(session=session, check=_check(False))
        drift.record_check(session=session, check=_check(True))
    assert len(notifier.notify_pending()) == 1
    assert len(fake_slack.messages(MODERATORS_CHANNEL)) == 2
    # Another task's episode is not this notifier's (it serves only its tasks).
    only_spam = DriftNotifier(
        database, client, {"spam": BUILTIN_TASKS["spam"]}, channel=MODERATORS_CHANNEL
    )
    with database.begin() as session:
        drift.record_check(session=session, check=_check(False))
        drift.record_check(session=session, check=_check(True))
    assert only_spam.notify_pending() == []
