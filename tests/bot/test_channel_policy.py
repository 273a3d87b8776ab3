"""Policy per channel and task over real HTTP: watch, threshold, each action, exemptions.

The fake spam model says P(spam) = 0.97 for a text with "free"/"win"/"prize" and 0.03
otherwise; thresholds of 0.5 and 0.99 put the same spam text on either side.
"""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.emulator.inbound import new_event_id
from bot.emulator.outbound import LOCAL_ADMIN_USER_TOKEN, RecordedCall
from bot.services.alert_outbox import DEFAULT_REACTION, AlertPolicy
from bot.services.errors import NotAllowedError
from bot.services.policy import (
    CLI_ACTOR,
    REMOVE_FALLBACK,
    PolicyError,
    PolicyService,
    policy_subject,
)
from storage import alerts as outbox
from storage import audit, messages
from storage.enums import PolicyAction
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    GENERAL,
    HAM_TEXT,
    MEMBER,
    MODERATOR,
    SPAM_TEXT,
    Bot,
    eventually,
)
from trainer.tasks import TaskSpec

RANDOM = "C0RANDOM"
ABOVE, BELOW = 0.5, 0.99  # the spam text's 0.97 is above the first and below the second


def _post(bot: Bot, text: str, *, channel: str = GENERAL, user: str = MEMBER) -> dict[str, Any]:
    event = bot.sender.message_event(text, user_id=user, channel_id=channel)
    assert bot.sender.event(event, event_id=new_event_id()).status == 200
    bot.settle()
    return event


def _predicted_tasks(bot: Bot, event: dict[str, Any]) -> set[str]:
    with bot.database.begin() as session:
        message = messages.find_message(
            session=session, team_id=bot.sender.team_id, channel_id=event["channel"], ts=event["ts"]
        )
        assert message is not None
        return {
            p.task for p in messages.predictions_for_message(session=session, message_id=message.id)
        }


def _alerts_posted(bot: Bot) -> list[RecordedCall]:
    return [
        c
        for c in bot.fake.calls("chat.postMessage")
        if c.ok and c.params.get("channel") == "moderators"
    ]


def _notices(bot: Bot, user: str = MEMBER) -> list[RecordedCall]:
    return [
        c for c in bot.fake.calls("chat.postMessage") if c.ok and c.params.get("channel") == user
    ]


def _set(bot: Bot, **change: Any) -> Any:
    change.setdefault("channel_id", GENERAL)
    change.setdefault("task", "spam")
    return bot.services.policies.set(actor=ADMIN, **change)


# Without a channel policy: today's behaviour is the workspace default ------------------


def test_the_workspace_default_is_todays_settings(bot: Bot) -> None:
    default = bot.services.policies.for_channel(GENERAL)["spam"]
    assert (default.watch, default.threshold, default.action, default.stored) == (
        True,
        0.8,
        PolicyAction.ALERT,
        False,
    )
    _post(bot, SPAM_TEXT)
    eventually(lambda: len(_alerts_posted(bot)) == 1)
    assert bot.fake.calls("reactions.add") == [] and _notices(bot) == []


# Threshold: each action on both sides ----------------------------------------------------


@pytest.mark.parametrize("action", [a.value for a in PolicyAction])
def test_each_action_does_nothing_below_the_threshold(bot: Bot, action: str) -> None:
    _set(bot, threshold=BELOW, action=action)
    event = _post(bot, SPAM_TEXT)
    assert _predicted_tasks(bot, event) == {"spam", "sentiment"}  # stored, watched
    assert _alerts_posted(bot) == []
    assert bot.fake.calls("reactions.add") == [] and bot.fake.calls("chat.delete") == []
    assert _notices(bot) == []


def test_log_stores_the_prediction_and_alerts_no_one(bot: Bot) -> None:
    _set(bot, threshold=ABOVE, action="log")
    event = _post(bot, SPAM_TEXT)
    assert "spam" in _predicted_tasks(bot, event)
    with bot.database.begin() as session:
        assert outbox.unposted_count(session=session) == 0
    assert _alerts_posted(bot) == [] and _notices(bot) == []


def test_alert_above_the_threshold_alerts_moderators_only(bot: Bot) -> None:
    _set(bot, threshold=ABOVE, action="alert")
    _post(bot, SPAM_TEXT)
    eventually(lambda: len(_alerts_posted(bot)) == 1)
    assert bot.fake.calls("reactions.add") == [] and _notices(bot) == []


def test_a_lower_channel_threshold_alerts_where_the_default_would_not(bot: Bot) -> None:
    bot.models.models["spam"]._confidence = 0.7  # under the default 0.8
    _post(bot, SPAM_TEXT, channel=RANDOM)
    _set(bot, threshold=0.6)
    _post(bot, SPAM_TEXT)
    eventually(lambda: len(_alerts_posted(bot)) == 1)
    assert _alerts_posted(bot)[0].params["blocks"][0]["text"]["text"].count(GENERAL) == 1


def test_react_puts_an_emoji_on_the_message(bot: Bot) -> None:
    _set(bot, threshold=ABOVE, action="react")
    event = _post(bot, SPAM_TEXT)
    reaction = eventually(lambda: bot.fake.calls("reactions.add"))[0]
    assert reaction.params["name"] == DEFAULT_REACTION
    assert reaction.params["timestamp"] == event["ts"] and reaction.params["channel"] == GENERAL
    assert len(_alerts_posted(bot)) == 1 and _notices(bot) == []


def test_notify_tells_the_author_privately_with_an_appeal_button(bot: Bot) -> None:
    _set(bot, threshold=ABOVE, action="notify")
    _post(bot, SPAM_TEXT)
    notice = eventually(lambda: _notices(bot))[0]
    assert "was flagged as possible spam (97% confidence)" in notice.params["text"]
    assert f"<#{GENERAL}>" in notice.params["text"]
    buttons = [e for b in notice.params["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Appeal"]
    assert len(_alerts_posted(bot)) == 1 and bot.fake.calls("chat.delete") == []
    assert "tells the author privately" in str(_alerts_posted(bot)[0].params["blocks"][-1])


def test_remove_without_the_admin_token_falls_back_to_alert(bot: Bot) -> None:
    policy = _set(bot, threshold=ABOVE, action="remove")
    assert policy.requested is PolicyAction.REMOVE and policy.action is PolicyAction.ALERT
    assert policy.note == REMOVE_FALLBACK
    event = _post(bot, SPAM_TEXT)
    eventually(lambda: len(_alerts_posted(bot)) == 1)
    assert bot.fake.calls("chat.delete") == [] and _notices(bot) == []
    assert bot.fake.message(GENERAL, event["ts"]) is not None


class TestWithTheAdminToken:
    @pytest.fixture
    def alert_policy(self) -> AlertPolicy:
        return AlertPolicy(channel="moderators", admin_token=LOCAL_ADMIN_USER_TOKEN)

    def test_remove_deletes_with_the_user_token_and_tells_the_author(self, bot: Bot) -> None:
        policy = _set(bot, threshold=ABOVE, action="remove")
        assert policy.action is PolicyAction.REMOVE and policy.note is None
        event = _post(bot, SPAM_TEXT)
        delete = eventually(lambda: bot.fake.calls("chat.delete"))[0]
        assert delete.ok
        assert delete.headers["authorization"] == f"Bearer {LOCAL_ADMIN_USER_TOKEN}"
        assert delete.params["channel"] == GENERAL and delete.params["ts"] == event["ts"]
        assert bot.fake.message(GENERAL, event["ts"]) is None
        notice = eventually(lambda: _notices(bot))[0]
        assert "was removed as possible spam" in notice.params["text"]
        assert notice.token == BOT_TOKEN
        (alert_post,) = _alerts_posted(bot)
        assert "removes the message" in str(alert_post.params["blocks"][-1])
        with bot.database.begin() as session:
            (alert,) = outbox.alerts_for_message(
                session=session,
                message_id=messages.find_message(
                    session=session, team_id=bot.sender.team_id, channel_id=GENERAL, ts=event["ts"]
                ).id,
            )
        assert alert.action is PolicyAction.REMOVE and alert.removed_at is not None

    def test_a_failed_delete_still_alerts_and_tells_the_author_it_was_flagged(
        self, bot: Bot
    ) -> None:
        bot.fake.fail_next("chat.delete", status=500)
        _set(bot, threshold=ABOVE, action="remove")
        event = _post(bot, SPAM_TEXT)
        notice = eventually(lambda: _notices(bot))[0]
        assert "was flagged as possible spam" in notice.params["text"]
        assert len(_alerts_posted(bot)) == 1
        assert bot.fake.message(GENERAL, event["ts"]) is not None
        with bot.database.begin() as session:
            message = messages.find_message(
                session=session, team_id=bot.sender.team_id, channel_id=GENERAL, ts=event["ts"]
            )
            (alert,) = outbox.alerts_for_message(session=session, message_id=message.id)
        assert alert.removed_at is None

    def test_remove_below_the_threshold_deletes_nothing(self, bot: Bot) -> None:
        _set(bot, threshold=BELOW, action="remove")
        _post(bot, SPAM_TEXT)
        assert bot.fake.calls("chat.delete") == [] and _alerts_posted(bot) == []


def test_a_bot_token_cannot_delete_a_members_message(bot: Bot) -> None:
    """The fake answers like Slack, which is why ``remove`` needs a user token."""
    event = bot.sender.message_event(HAM_TEXT, user_id=MEMBER)
    with pytest.raises(SlackApiError, match="cant_delete_message"):
        WebClient(token=BOT_TOKEN, base_url=bot.fake.api_url).chat_delete(
            channel=GENERAL, ts=event["ts"]
        )


# Watch and exemptions: no prediction stored, no alert --------------------------------------


def test_an_unwatched_channel_stores_no_prediction_and_no_alert_for_that_task(bot: Bot) -> None:
    _set(bot, watch=False)
    event = _post(bot, SPAM_TEXT)
    assert _predicted_tasks(bot, event) == {"sentiment"}
    assert _alerts_posted(bot) == []
    other = _post(bot, SPAM_TEXT, channel=RANDOM)  # the default still watches elsewhere
    assert _predicted_tasks(bot, other) == {"spam", "sentiment"}
    eventually(lambda: len(_alerts_posted(bot)) == 1)


def test_an_exempt_user_gets_no_prediction_and_no_alert_for_that_task(bot: Bot) -> None:
    _set(bot, exempt=[MEMBER], action="remove")
    event = _post(bot, SPAM_TEXT)
    assert _predicted_tasks(bot, event) == {"sentiment"}
    assert _alerts_posted(bot) == [] and bot.fake.calls("chat.delete") == []
    others = _post(bot, SPAM_TEXT, user=MODERATOR)
    assert "spam" in _predicted_tasks(bot, others)


def test_a_user_group_exempts_its_members(bot: Bot) -> None:
    policies = bot.services.policies
    policies._group_members = lambda group: {MEMBER} if group == "S0VENDORS" else set()
    _set(bot, exempt=["S0VENDORS"])
    assert policies.is_exempt(policies.for_channel(GENERAL)["spam"], MEMBER)
    assert not policies.is_exempt(policies.for_channel(GENERAL)["spam"], MODERATOR)
    event = _post(bot, SPAM_TEXT)
    assert _predicted_tasks(bot, event) == {"sentiment"}


# Roles and audit ---------------------------------------------------------------------------


@pytest.mark.parametrize("user", [MODERATOR, MEMBER])
def test_only_admins_set_or_clear_a_policy(bot: Bot, user: str) -> None:
    with pytest.raises(NotAllowedError):
        bot.services.policies.set(actor=user, channel_id=GENERAL, task="spam", watch=False)
    with pytest.raises(NotAllowedError):
        bot.services.policies.clear(actor=user, channel_id=GENERAL, task="spam")
    assert bot.services.policies.for_channel(GENERAL)["spam"].stored is False


def test_policy_changes_are_audited_and_clear_restores_the_default(bot: Bot) -> None:
    _set(bot, threshold=0.6, action="react")
    _set(bot, exempt=["U0VENDOR1"])  # what is not given stays
    current = bot.services.policies.for_channel(GENERAL)["spam"]
    assert (current.threshold, current.action, current.exempt) == (
        0.6,
        PolicyAction.REACT,
        ("U0VENDOR1",),
    )
    bot.services.policies.clear(actor=CLI_ACTOR, channel_id=GENERAL, task="spam")
    assert bot.services.policies.for_channel(GENERAL)["spam"].stored is False
    with bot.database.begin() as session:
        entries = audit.list_audit(session=session, subject_prefix=policy_subject(GENERAL, "spam"))
    assert [(e.actor, e.action) for e in entries] == [
        (CLI_ACTOR, "policy.clear"),
        (ADMIN, "policy.set"),
        (ADMIN, "policy.set"),
    ]
    assert entries[1].details["before"]["action"] == "react"
    assert entries[1].details["after"]["exempt"] == ["U0VENDOR1"]
    assert entries[2].details["before"] is None and entries[2].details["role"] == "admin"


@pytest.mark.parametrize(
    "change",
    [
        {"task": "nope"},
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"action": "ban"},
        {"channel_id": "general"},
        {"exempt": ["bob"]},
    ],
)
def test_bad_policy_changes_are_refused_with_a_reason(bot: Bot, change: dict[str, Any]) -> None:
    with pytest.raises(PolicyError):
        _set(bot, **change)
    assert bot.services.policies.listed(GENERAL)[0].stored is False


def test_another_process_change_applies_once_the_cache_lapses(
    bot: Bot, tasks: dict[str, TaskSpec]
) -> None:
    now = [0.0]
    serving = PolicyService(
        bot.database,
        tasks,
        bot.services.roles,
        cache_seconds=5.0,
        clock=lambda: now[0],
    )
    assert serving.for_channel(GENERAL)["spam"].stored is False
    bot.services.policies.set(actor=CLI_ACTOR, channel_id=GENERAL, task="spam", watch=False)
    assert serving.for_channel(GENERAL)["spam"].stored is False  # cached
    now[0] = 5.0
    assert serving.for_channel(GENERAL)["spam"].watch is False
    serving.set(actor=ADMIN, channel_id=GENERAL, task="spam", watch=True)  # its own: at once
    assert serving.for_channel(GENERAL)["spam"].watch is True
