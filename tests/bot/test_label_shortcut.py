"""The "Label with bertbot" message shortcut and its modal, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.emulator.outbound import LOCAL_TEAM_ID, FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from storage import annotations, messages
from storage.db import Database
from storage.enums import AnnotationSource
from tests.bot.conftest import ADMIN, GENERAL, HAM_TEXT, MEMBER, MODERATOR, SPAM_TEXT, FakeModels
from tests.bot.surfaces import (
    SurfaceBot,
    all_text,
    block_ids,
    message_shortcut,
    serve_bot,
    user_message,
    view_submission,
)
from trainer.tasks import TaskSpec

ONLY_MODERATORS = "Only moderators and admins can label messages. Nothing was stored."


@pytest.fixture
def shortcut_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    with serve_bot(database, fake_slack, tasks, alert_policy, models) as bot:
        yield bot


def _shortcut(
    bot: SurfaceBot,
    user_id: str,
    message: dict[str, Any],
    channel: dict[str, str] | None = None,
) -> RecordedCall:
    before = len(bot.fake.calls("views.open"))
    delivery = message_shortcut(
        bot.sender,
        user_id=user_id,
        channel_id=(channel or {}).get("id", GENERAL),
        message=message,
        channel_name=(channel or {}).get("name"),
    )
    assert delivery.status == 200 and delivery.body == b""  # acked at once
    call = bot.fake.wait_for("views.open", before + 1)[-1]
    bot.settle()
    assert call.ok
    return call


def _stored_predictions(bot: SurfaceBot, ts: str) -> dict[str, Any]:
    with bot.database.begin() as session:
        message = messages.find_message(
            session=session, team_id=LOCAL_TEAM_ID, channel_id=GENERAL, ts=ts
        )
        assert message is not None
        found = messages.predictions_for_message(session=session, message_id=message.id)
    return {p.task: p for p in found}


def _corrections(bot: SurfaceBot) -> list[Any]:
    with bot.database.begin() as session:
        return annotations.list_annotations(session=session, source=AnnotationSource.CORRECTION)


def test_the_shortcut_classifies_an_unseen_message_and_opens_a_modal(
    shortcut_bot: SurfaceBot,
) -> None:
    message = user_message(shortcut_bot.sender, SPAM_TEXT + " <!here>", user_id=MEMBER)
    call = _shortcut(shortcut_bot, MODERATOR, message)

    stored = _stored_predictions(shortcut_bot, message["ts"])
    assert set(stored) == {"spam", "sentiment"}
    view = call.params["view"]
    assert call.params["trigger_id"]
    assert view["type"] == "modal" and view["callback_id"] == "bertbot_label_modal"
    assert view["submit"]["text"] == "Save labels"
    text = all_text(view["blocks"])
    assert "*spam*: model v3 says *Spam* (97%)" in text
    assert "*sentiment*: model v5 says *Neutral* (97%)" in text
    assert "had not seen this message before" in text
    # Slack's <!here> mention is decoded to the text "@here" and never shown as a live one.
    assert "here @here" in text and "<!here>" not in text
    # One optional label select per task, named by the stored prediction.
    assert block_ids(view["blocks"], "label:") == [
        f"label:{stored['spam'].id}",
        f"label:{stored['sentiment'].id}",
    ]


def test_a_message_the_bot_has_seen_keeps_its_predictions(shortcut_bot: SurfaceBot) -> None:
    event = shortcut_bot.sender.message_event(HAM_TEXT, user_id=MEMBER)
    shortcut_bot.sender.event(event)
    shortcut_bot.settle()
    stored = _stored_predictions(shortcut_bot, event["ts"])
    calls = {task: model.calls for task, model in shortcut_bot.models.models.items()}

    call = _shortcut(
        shortcut_bot,
        ADMIN,
        user_message(shortcut_bot.sender, HAM_TEXT, user_id=MEMBER, ts=event["ts"]),
    )

    assert {task: model.calls for task, model in shortcut_bot.models.models.items()} == calls
    assert _stored_predictions(shortcut_bot, event["ts"]) == stored
    view = call.params["view"]
    assert block_ids(view["blocks"], "label:") == [
        f"label:{stored['spam'].id}",
        f"label:{stored['sentiment'].id}",
    ]
    assert "had not seen" not in all_text(view["blocks"])


def test_a_member_sees_predictions_and_a_note_but_no_controls(shortcut_bot: SurfaceBot) -> None:
    call = _shortcut(
        shortcut_bot, MEMBER, user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)
    )
    view = call.params["view"]
    assert "submit" not in view
    assert [b for b in view["blocks"] if b["type"] == "input"] == []
    text = all_text(view["blocks"])
    assert "*spam*: model v3 says *Spam*" in text
    assert "Only moderators and admins can label messages." in text


def test_a_moderator_submission_stores_corrections_linked_to_the_predictions(
    shortcut_bot: SurfaceBot,
) -> None:
    message = user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)
    opened = _shortcut(shortcut_bot, MODERATOR, message)
    stored = _stored_predictions(shortcut_bot, message["ts"])
    view = opened.response["view"]

    delivery = view_submission(
        shortcut_bot.sender,
        user_id=MODERATOR,
        view=view,
        choices={f"label:{stored['spam'].id}": "ham"},  # sentiment left empty
    )
    assert delivery.status == 200 and delivery.body == b""  # the modal closes
    confirmation = shortcut_bot.fake.wait_for("chat.postEphemeral")[0]
    shortcut_bot.settle()

    [correction] = _corrections(shortcut_bot)
    assert (correction.task, correction.label, correction.annotator) == ("spam", "ham", MODERATOR)
    assert (correction.prediction_id, correction.predicted_label) == (stored["spam"].id, "spam")
    assert correction.predicted_model_version == "3"
    assert correction.message_id == stored["spam"].message_id and correction.text == SPAM_TEXT
    assert (confirmation.params["channel"], confirmation.params["user"]) == (GENERAL, MODERATOR)
    assert confirmation.params["text"].startswith(f"Labelled *Not spam* by <@{MODERATOR}>")

    # The same submission again (a double click, a retry) stores nothing new.
    view_submission(
        shortcut_bot.sender,
        user_id=MODERATOR,
        view=view,
        choices={f"label:{stored['spam'].id}": "ham"},
    )
    shortcut_bot.fake.wait_for("chat.postEphemeral", 2)
    shortcut_bot.settle()
    assert len(_corrections(shortcut_bot)) == 1


def test_a_submission_without_any_label_is_answered_with_an_error(
    shortcut_bot: SurfaceBot,
) -> None:
    message = user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)
    view = _shortcut(shortcut_bot, MODERATOR, message).response["view"]
    answer = view_submission(shortcut_bot.sender, user_id=MODERATOR, view=view).json()
    assert answer["response_action"] == "errors"
    assert set(answer["errors"].values()) == {"Choose a label for at least one task."}
    shortcut_bot.settle()
    assert _corrections(shortcut_bot) == []


def test_a_members_submission_is_refused_and_stores_nothing(shortcut_bot: SurfaceBot) -> None:
    message = user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)
    view = _shortcut(shortcut_bot, MEMBER, message).response["view"]
    before = shortcut_bot.counts()

    answer = view_submission(shortcut_bot.sender, user_id=MEMBER, view=view).json()

    assert answer["response_action"] == "errors"
    assert list(answer["errors"].values()) == [ONLY_MODERATORS]
    shortcut_bot.settle()
    assert shortcut_bot.counts() == before
    assert shortcut_bot.fake.calls("chat.postEphemeral") == []


def test_a_moderators_modal_replayed_by_a_member_is_refused(shortcut_bot: SurfaceBot) -> None:
    message = user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)
    view = _shortcut(shortcut_bot, MODERATOR, message).response["view"]
    stored = _stored_predictions(shortcut_bot, message["ts"])
    choices = {f"label:{stored['spam'].id}": "ham", f"label:{stored['sentiment'].id}": "negative"}
    before = shortcut_bot.counts()

    answer = view_submission(shortcut_bot.sender, user_id=MEMBER, view=view, choices=choices).json()

    assert answer["response_action"] == "errors"
    assert answer["errors"] == {block_id: ONLY_MODERATORS for block_id in choices}
    shortcut_bot.settle()
    assert shortcut_bot.counts() == before
    assert _corrections(shortcut_bot) == []
    assert shortcut_bot.fake.calls("chat.postEphemeral") == []


def test_bots_messages_and_empty_texts_get_a_note_and_nothing_is_stored(
    shortcut_bot: SurfaceBot,
) -> None:
    from_a_bot = user_message(shortcut_bot.sender, SPAM_TEXT, user_id="U0OTHERBOT")
    from_a_bot["bot_id"] = "B0OTHER"
    note = all_text(_shortcut(shortcut_bot, MODERATOR, from_a_bot).params["view"]["blocks"])
    assert "does not classify messages from bots" in note
    empty = user_message(shortcut_bot.sender, "  ", user_id=MEMBER)
    note = all_text(_shortcut(shortcut_bot, MODERATOR, empty).params["view"]["blocks"])
    assert "has no text" in note
    assert shortcut_bot.counts()["messages"] == 0 and shortcut_bot.counts()["predictions"] == 0


def test_a_missed_edit_is_stored_and_classified_again(shortcut_bot: SurfaceBot) -> None:
    event = shortcut_bot.sender.message_event(HAM_TEXT, user_id=MEMBER)
    shortcut_bot.sender.event(event)
    shortcut_bot.settle()
    before = _stored_predictions(shortcut_bot, event["ts"])

    edited = user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER, ts=event["ts"])
    view = _shortcut(shortcut_bot, MODERATOR, edited).params["view"]

    after = _stored_predictions(shortcut_bot, event["ts"])
    assert after["spam"].id != before["spam"].id and after["spam"].label == "spam"
    assert block_ids(view["blocks"], "label:")[0] == f"label:{after['spam'].id}"
    with shortcut_bot.database.begin() as session:
        message = messages.get_message(session=session, message_id=after["spam"].message_id)
    assert message.text == SPAM_TEXT and message.edited_at is not None


@pytest.mark.parametrize(
    "channel",
    [
        {"id": "D0MEMBERDM", "name": "directmessage"},
        {"id": "C0GROUPDM1", "name": "mpdm-mo--me--ad-1"},
        {"id": "G0GROUPDM2", "name": "mpdm-mo--ad-1"},
    ],
    ids=["dm", "group-dm", "old-group-dm"],
)
def test_a_shortcut_in_a_dm_stores_nothing_and_says_so_privately(
    shortcut_bot: SurfaceBot, channel: dict[str, str]
) -> None:
    before = shortcut_bot.counts()
    message = user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)

    call = _shortcut(shortcut_bot, MODERATOR, message, channel=channel)

    assert shortcut_bot.counts() == before  # no message, prediction or label
    view = call.params["view"]  # a modal: only the user who ran the shortcut sees it
    assert "submit" not in view and [b for b in view["blocks"] if b["type"] == "input"] == []
    assert "does not classify direct messages or group DMs" in all_text(view["blocks"])
    assert "Nothing was stored." in all_text(view["blocks"])
    assert all(model.calls == 0 for model in shortcut_bot.models.models.values())
    assert shortcut_bot.fake.calls("chat.postMessage") == []  # no alert either


def test_a_shortcut_in_a_channel_bertbot_is_not_in_stores_nothing(
    shortcut_bot: SurfaceBot,
) -> None:
    shortcut_bot.fake.remove_bot(GENERAL)
    before = shortcut_bot.counts()

    call = _shortcut(
        shortcut_bot, MODERATOR, user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER)
    )

    assert shortcut_bot.counts() == before
    assert "bertbot is not in this channel" in all_text(call.params["view"]["blocks"])
    [info] = shortcut_bot.fake.calls("conversations.info")
    assert info.params["channel"] == GENERAL and info.response["channel"]["is_member"] is False


@pytest.mark.parametrize(
    ("channel", "note"),
    [
        ({"id": "C0ELSEWHERE", "name": "elsewhere"}, "bertbot is not in this channel"),
        ({"id": GENERAL, "name": "general"}, "could not check that it is in this channel"),
    ],
    ids=["unknown-private-channel", "slack-error"],
)
def test_a_shortcut_whose_channel_slack_cannot_vouch_for_stores_nothing(
    shortcut_bot: SurfaceBot, channel: dict[str, str], note: str
) -> None:
    if channel["id"] == GENERAL:
        shortcut_bot.fake.fail_next("conversations.info", status=500)
    before = shortcut_bot.counts()

    call = _shortcut(
        shortcut_bot,
        MODERATOR,
        user_message(shortcut_bot.sender, SPAM_TEXT, user_id=MEMBER),
        channel=channel,
    )

    assert shortcut_bot.counts() == before
    assert note in all_text(call.params["view"]["blocks"])
