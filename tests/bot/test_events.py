"""Channel messages over real HTTP: storage, retries, bots, edits, deletions, spam alerts."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.emulator.inbound import new_event_id
from bot.emulator.outbound import RecordedCall
from bot.services.alert_outbox import AlertPolicy
from storage import annotations, messages
from storage.enums import AnnotationSource
from tests.bot.conftest import (
    HAM_TEXT,
    MEMBER,
    MODERATOR,
    MODERATORS_CHANNEL,
    SPAM_TEXT,
    Bot,
    eventually,
)

GENERAL = "C0GENERAL"
PRIVATE = "G0PRIVATE"


def _post(bot: Bot, text: str, **options: Any) -> tuple[dict[str, Any], str]:
    """Deliver a message event; return the event and its id once the listener is done."""
    event = bot.sender.message_event(text, user_id=options.pop("user_id", MEMBER), **options)
    event_id = new_event_id()
    assert bot.sender.event(event, event_id=event_id).status == 200
    bot.settle()
    return event, event_id


def _stored(bot: Bot, channel: str, ts: str) -> Any:
    with bot.database.begin() as session:
        message = messages.find_message(
            session=session, team_id=bot.sender.team_id, channel_id=channel, ts=ts
        )
        predictions = (
            messages.predictions_for_message(session=session, message_id=message.id)
            if message
            else []
        )
    return message, predictions


def _alerts(bot: Bot) -> list[RecordedCall]:
    return [c for c in bot.fake.calls("chat.postMessage") if c.ok]


def test_a_channel_message_is_stored_with_one_prediction_per_task(bot: Bot) -> None:
    event, _ = _post(bot, HAM_TEXT)
    message, predictions = _stored(bot, GENERAL, event["ts"])
    assert message.text == HAM_TEXT and message.user_id == MEMBER
    assert {(p.task, p.label, p.model_version) for p in predictions} == {
        ("spam", "ham", "3"),
        ("sentiment", "neutral", "5"),
    }
    assert _alerts(bot) == []


def test_private_channels_are_stored_and_direct_messages_are_not(bot: Bot) -> None:
    private, _ = _post(bot, HAM_TEXT, channel_id=PRIVATE, channel_type="group")
    direct, _ = _post(bot, HAM_TEXT, channel_id="D0DIRECT", channel_type="im")
    assert _stored(bot, PRIVATE, private["ts"])[0] is not None
    assert _stored(bot, "D0DIRECT", direct["ts"])[0] is None


def test_the_same_event_delivered_three_times_is_stored_once(bot: Bot) -> None:
    event = bot.sender.message_event(SPAM_TEXT, user_id=MEMBER)
    event_id = new_event_id()
    statuses = [bot.sender.event(event, event_id=event_id).status]
    for retry in (1, 2):
        statuses.append(bot.sender.event(event, event_id=event_id, retry_num=retry).status)
    bot.settle()
    assert statuses == [200, 200, 200]
    counts = bot.counts()
    assert (counts["events"], counts["messages"], counts["predictions"]) == (1, 1, 2)
    assert len(_alerts(bot)) == 1
    assert [model.calls for model in bot.models.models.values()] == [1, 1]  # no work on repeats


def test_the_same_message_under_a_new_event_id_is_not_stored_twice(bot: Bot) -> None:
    event = bot.sender.message_event(HAM_TEXT, user_id=MEMBER)
    bot.sender.event(event)
    bot.sender.event(event)
    bot.settle()
    assert bot.counts()["messages"] == 1 and bot.counts()["predictions"] == 2


@pytest.mark.parametrize(
    "extra",
    [
        {"bot_id": "B0OTHER"},
        {"subtype": "bot_message", "bot_id": "B0OTHER"},
        {"user_id": "U0BERTBOT"},  # bertbot's own user
        {"subtype": "channel_join"},
    ],
    ids=["bot_id", "bot_message", "own-user", "channel_join"],
)
def test_bot_messages_and_non_messages_are_ignored(bot: Bot, extra: dict[str, Any]) -> None:
    _post(bot, SPAM_TEXT, **extra)
    assert bot.counts()["messages"] == 0 and bot.counts()["predictions"] == 0
    assert _alerts(bot) == []


def test_a_spam_message_raises_exactly_one_alert_and_not_spam_stores_a_correction(
    bot: Bot,
) -> None:
    event, _ = _post(bot, SPAM_TEXT)
    [alert] = _alerts(bot)
    assert alert.response["channel"] == MODERATORS_CHANNEL
    blocks = alert.params["blocks"]
    alert_text = blocks[0]["text"]["text"]
    assert "*Possible spam* (97%)" in alert_text and f"<@{MEMBER}>" in alert_text
    link = f"https://bertbot-local.slack.com/archives/{GENERAL}/p{event['ts'].replace('.', '')}"
    assert f"<{link}|View message>" in blocks[1]["elements"][0]["text"]
    buttons = blocks[2]["elements"]
    assert [(b["text"]["text"], b["value"]) for b in buttons] == [
        ("Spam", "spam"),
        ("Not spam", "ham"),
        ("Why?", "1"),  # the spam prediction's explanation, on click
    ]

    message, predictions = _stored(bot, GENERAL, event["ts"])
    spam_prediction = next(p for p in predictions if p.task == "spam")
    posted = bot.fake.message(MODERATORS_CHANNEL, alert.response["ts"])
    assert posted is not None
    clicked = bot.sender.click(
        user_id=MODERATOR,
        blocks=posted.blocks,
        action_id="bertbot_label:ham",
        channel_id=MODERATORS_CHANNEL,
        message=alert.response["message"],
    )
    assert clicked.status == 200
    update = bot.fake.wait_for("chat.update")[0]
    bot.settle()

    with bot.database.begin() as session:
        [correction] = annotations.list_annotations(
            session=session, source=AnnotationSource.CORRECTION
        )
    assert (correction.label, correction.annotator) == ("ham", MODERATOR)
    assert (correction.prediction_id, correction.message_id) == (spam_prediction.id, message.id)
    assert correction.predicted_model_version == "3" and correction.text == SPAM_TEXT
    assert update.ok and update.params["ts"] == alert.response["ts"]
    status = [b for b in update.params["blocks"] if b.get("block_id", "").startswith("status:")]
    assert status[0]["elements"][0]["text"].startswith(f"Labelled *Not spam* by <@{MODERATOR}>")
    assert posted.edits == 1 and any(b["type"] == "actions" for b in posted.blocks)


def test_a_member_clicking_an_alert_is_refused_and_the_alert_is_unchanged(bot: Bot) -> None:
    _post(bot, SPAM_TEXT)
    [alert] = _alerts(bot)
    before = bot.counts()
    bot.sender.click(
        user_id=MEMBER,
        blocks=alert.params["blocks"],
        action_id="bertbot_label:ham",
        channel_id=MODERATORS_CHANNEL,
        message=alert.response["message"],
    )
    reply = bot.fake.wait_for("response_url")[0]
    bot.settle()
    assert (
        reply.params["response_type"] == "ephemeral" and reply.params["replace_original"] is False
    )
    assert "Only moderators and admins" in reply.params["text"]
    assert bot.counts() == before and bot.fake.calls("chat.update") == []


def test_an_edit_is_reclassified_and_an_unchanged_edit_is_not(bot: Bot) -> None:
    event, _ = _post(bot, "I love mondays")
    edit = bot.sender.changed_event(
        channel_id=GENERAL,
        ts=event["ts"],
        text="I hate mondays",
        previous_text="I love mondays",
        user_id=MEMBER,
    )
    assert bot.sender.event(edit).status == 200
    bot.settle()
    message, predictions = _stored(bot, GENERAL, event["ts"])
    assert message.text == "I hate mondays" and message.edited_at is not None
    sentiment = [p.label for p in predictions if p.task == "sentiment"]
    assert sentiment == ["positive", "negative"]  # the history is kept

    unfurl = bot.sender.changed_event(
        channel_id=GENERAL,
        ts=event["ts"],
        text="I hate mondays",
        previous_text="I hate mondays",
        user_id=MEMBER,
    )
    bot.sender.event(unfurl)
    bot.settle()
    assert len(_stored(bot, GENERAL, event["ts"])[1]) == 4


def test_an_edit_into_spam_alerts_once_and_an_edit_of_spam_does_not_alert_again(bot: Bot) -> None:
    event, _ = _post(bot, HAM_TEXT)
    for text, previous in ((SPAM_TEXT, HAM_TEXT), (SPAM_TEXT + "!!", SPAM_TEXT)):
        edit = bot.sender.changed_event(
            channel_id=GENERAL, ts=event["ts"], text=text, previous_text=previous, user_id=MEMBER
        )
        bot.sender.event(edit)
        bot.settle()
    assert len(_alerts(bot)) == 1


def test_an_edit_by_a_bot_is_ignored(bot: Bot) -> None:
    event, _ = _post(bot, HAM_TEXT)
    edit = bot.sender.changed_event(
        channel_id=GENERAL, ts=event["ts"], text=SPAM_TEXT, previous_text=HAM_TEXT, user_id=MEMBER
    )
    edit["message"]["bot_id"] = "B0OTHER"
    bot.sender.event(edit)
    bot.settle()
    assert _stored(bot, GENERAL, event["ts"])[0].text == HAM_TEXT


def test_a_deletion_is_marked_and_the_rows_are_kept(bot: Bot) -> None:
    event, _ = _post(bot, HAM_TEXT)
    deletion = bot.sender.deleted_event(channel_id=GENERAL, ts=event["ts"])
    assert bot.sender.event(deletion).status == 200
    bot.settle()
    message, predictions = _stored(bot, GENERAL, event["ts"])
    assert message.deleted_at is not None and len(predictions) == 2


def test_a_429_on_chat_post_message_is_retried_after_retry_after(bot: Bot) -> None:
    bot.fake.fail_next("chat.postMessage", status=429, retry_after=1)
    _post(bot, SPAM_TEXT)
    calls = bot.fake.wait_for("chat.postMessage", 2, timeout=10)
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].ok
    waited = calls[1].at - calls[0].at
    print(f"\n429 retried after {waited:.2f} s (Retry-After: 1)")
    assert waited >= 1.0
    assert len(bot.fake.messages(MODERATORS_CHANNEL)) == 1


def test_a_5xx_on_the_alert_is_logged_and_the_message_stays_stored(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    bot.fake.fail_next("chat.postMessage", status=503)
    with caplog.at_level(logging.ERROR, logger="bot.listeners"):
        event, _ = _post(bot, SPAM_TEXT)
    assert [c.status for c in bot.fake.calls("chat.postMessage")] == [503]
    assert _stored(bot, GENERAL, event["ts"])[0] is not None
    [record] = [r for r in caplog.records if "posting the alerts of" in r.getMessage()]
    assert "event message/-" in record.getMessage() and f"user={MEMBER}" in record.getMessage()
    assert SPAM_TEXT not in record.getMessage()


class TestWithAReaction:
    @pytest.fixture
    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(channel="moderators", threshold=0.8, reaction="rotating_light")

    def test_a_configured_reaction_is_added_to_an_alerted_message(self, bot: Bot) -> None:
        event, _ = _post(bot, SPAM_TEXT)
        [reaction] = eventually(lambda: bot.fake.calls("reactions.add"))
        assert reaction.ok
        assert (reaction.params["channel"], reaction.params["timestamp"]) == (GENERAL, event["ts"])
        assert reaction.params["name"] == "rotating_light"

    def test_no_reaction_below_the_threshold(self, bot: Bot) -> None:
        _post(bot, HAM_TEXT)
        assert bot.fake.calls("reactions.add") == []


def test_a_label_stored_while_the_alert_cannot_be_updated_is_confirmed_privately(
    bot: Bot,
) -> None:
    _post(bot, SPAM_TEXT)
    [alert] = _alerts(bot)
    bot.fake.fail_next("chat.update", status=500)
    bot.sender.click(
        user_id=MODERATOR,
        blocks=alert.params["blocks"],
        action_id="bertbot_label:spam",
        channel_id=MODERATORS_CHANNEL,
        message=alert.response["message"],
    )
    reply = bot.fake.wait_for("response_url")[0]
    bot.settle()
    assert reply.params["text"].endswith("Stored, but the alert could not be updated.")
    assert bot.counts()["annotations"] == 1
