""" "Why?" over real HTTP: on alerts, /classify answers and review items; who may ask; and
that ingesting messages never computes an explanation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.emulator.outbound import FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from bot.services.explanations import may_explain
from bot.services.roles import Roles
from storage.db import Database
from tests.bot.conftest import (
    ADMIN,
    GENERAL,
    HAM_TEXT,
    MEMBER,
    MODERATOR,
    MODERATORS_CHANNEL,
    SPAM_TEXT,
    Bot,
    FakeModels,
)
from tests.bot.surfaces import SurfaceBot, all_text, home_opened, serve_bot, view_click
from tests.bot.test_home import _seed
from trainer.tasks import TaskSpec

WHY = "bertbot_why"
OTHER_MEMBER = "U0MEMBER02"


def _explained(models: FakeModels) -> list[str]:
    return [text for model in models.models.values() for text in model.explained]


def _alert(bot: Bot) -> RecordedCall:
    event = bot.sender.message_event(SPAM_TEXT, user_id=MEMBER)
    assert bot.sender.event(event).status == 200
    bot.settle()
    [alert] = [c for c in bot.fake.calls("chat.postMessage") if c.ok]
    return alert


def _click(bot: Bot, blocks: list[dict[str, Any]], user_id: str, **where: Any) -> RecordedCall:
    before = len(bot.fake.calls("response_url"))
    why = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    value = next(e["value"] for e in why if e["action_id"] == WHY)
    delivery = bot.sender.click(user_id=user_id, blocks=blocks, action_id=WHY, value=value, **where)
    assert delivery.status == 200
    reply = bot.fake.wait_for("response_url", before + 1)[-1]
    bot.settle()
    return reply


def _classify(bot: Bot, text: str, user_id: str) -> list[dict[str, Any]]:
    delivery = bot.sender.command(text, user_id=user_id)
    key = delivery.response_url.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    call = bot.fake.wait_for("response_url", where=lambda c: c.path.endswith(key))[0]
    bot.settle()
    return call.params["blocks"]


def test_ingesting_messages_never_computes_an_explanation(bot: Bot) -> None:
    for text in (SPAM_TEXT, HAM_TEXT, "I love this", "free prize, win now"):
        event = bot.sender.message_event(text, user_id=MEMBER)
        assert bot.sender.event(event).status == 200
    bot.settle()
    assert bot.counts()["predictions"] == 8  # both tasks predicted every message
    assert sum(model.calls for model in bot.models.models.values()) > 0
    alerts = [c for c in bot.fake.calls("chat.postMessage") if c.ok]
    assert len(alerts) == 2  # the alerts carry a "Why?" button, not an answer
    for alert in alerts:
        actions = next(b for b in alert.params["blocks"] if b["type"] == "actions")
        assert actions["elements"][-1]["action_id"] == WHY
    assert _explained(bot.models) == []


def test_a_moderator_asks_why_on_an_alert_and_gets_a_private_answer(bot: Bot) -> None:
    alert = _alert(bot)
    reply = _click(
        bot,
        alert.params["blocks"],
        MODERATOR,
        channel_id=MODERATORS_CHANNEL,
        message=alert.response["message"],
    )
    assert _explained(bot.models) == [SPAM_TEXT]
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["replace_original"] is False
    text = all_text(reply.params["blocks"])
    assert "*Why Spam?* spam model v3" in text
    assert "`WIN` +0.40" in text and "`FREE` +0.40" in text and "`prize` +0.40" in text
    assert "Most similar labelled examples" in text
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # quoted examples escaped
    assert reply.params["text"].startswith("Why Spam (97%): WIN, FREE, prize")
    assert bot.fake.calls("chat.update") == []  # the shared alert is left as it was


def test_a_member_asking_why_on_an_alert_is_refused_before_any_model_runs(bot: Bot) -> None:
    alert = _alert(bot)
    before = bot.counts()
    reply = _click(
        bot,
        alert.params["blocks"],
        MEMBER,
        channel_id=MODERATORS_CHANNEL,
        message=alert.response["message"],
    )
    assert "Only moderators and admins can ask why" in reply.params["text"]
    assert reply.params["response_type"] == "ephemeral" and not reply.params.get("blocks")
    assert _explained(bot.models) == [] and bot.counts() == before


def test_the_user_who_ran_classify_may_ask_why_and_another_member_may_not(bot: Bot) -> None:
    blocks = _classify(bot, "spam: win a free prize", MEMBER)
    [why] = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert why["action_id"] == WHY and why["value"] == f"1:{MEMBER}"
    reply = _click(bot, blocks, MEMBER, channel_id=GENERAL, ephemeral=True)
    assert "*Why Spam?*" in all_text(reply.params["blocks"])
    assert _explained(bot.models) == ["win a free prize"]

    # The same answer's button clicked by someone else (a replayed payload) is refused.
    refused = _click(bot, blocks, OTHER_MEMBER, channel_id=GENERAL, ephemeral=True)
    assert "Only moderators and admins" in refused.params["text"]
    assert _explained(bot.models) == ["win a free prize"]


def test_a_member_cannot_reach_a_channel_message_through_a_classify_style_button(
    bot: Bot,
) -> None:
    _alert(bot)  # prediction 1 is the channel message's spam prediction
    forged = [
        {
            "type": "actions",
            "block_id": "why:1",
            "elements": [
                {"type": "button", "action_id": WHY, "value": f"1:{MEMBER}", "text": "Why?"}
            ],
        }
    ]
    reply = _click(bot, forged, MEMBER, channel_id=GENERAL, ephemeral=True)
    assert "channel message" in reply.params["text"]
    assert _explained(bot.models) == []


def test_moderators_get_why_beside_the_label_controls_of_classify(bot: Bot) -> None:
    blocks = _classify(bot, "I love this", ADMIN)
    controls = [b for b in blocks if b["type"] == "actions"]
    assert len(controls) == 2  # one per task
    for block in controls:
        assert [e["action_id"] for e in block["elements"]][-1] == WHY
    reply = _click(bot, controls[1:], MODERATOR, channel_id=GENERAL, ephemeral=True)
    assert "*Why Positive?* sentiment model v5" in all_text(reply.params["blocks"])


def test_a_model_that_cannot_explain_says_so(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    from trainer.explain import ExplainError

    def old_encoder(text: str, options: Any) -> Any:
        raise ExplainError("no explain signature")

    monkeypatch.setattr(bot.models.models["spam"], "explain", old_encoder)
    alert = _alert(bot)
    reply = _click(
        bot,
        alert.params["blocks"],
        ADMIN,
        channel_id=MODERATORS_CHANNEL,
        message=alert.response["message"],
    )
    assert "cannot explain predictions" in reply.params["text"]
    assert "bertbot encoder import --force" in reply.params["text"]


def test_the_rule_in_one_place() -> None:
    roles = Roles.of(admins=[ADMIN], moderators=[MODERATOR])
    for user in (ADMIN, MODERATOR):
        assert may_explain(roles, user, channel_message=True, requested_by=None)
    assert not may_explain(roles, MEMBER, channel_message=True, requested_by=MEMBER)
    assert may_explain(roles, MEMBER, channel_message=False, requested_by=MEMBER)
    assert not may_explain(roles, MEMBER, channel_message=False, requested_by=OTHER_MEMBER)
    assert not may_explain(roles, None, channel_message=False, requested_by=None)


@pytest.fixture
def home_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    with serve_bot(database, fake_slack, tasks, alert_policy, models) as bot:
        yield bot


def _home_why(bot: SurfaceBot, user_id: str, view: dict[str, Any], value: str) -> RecordedCall:
    before = len(bot.fake.calls("views.publish"))
    delivery = view_click(bot.sender, user_id=user_id, view=view, action_id=WHY, value=value)
    assert delivery.status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    return call


def test_why_on_a_review_item_answers_on_top_of_the_home_tab(home_bot: SurfaceBot) -> None:
    ids = _seed(home_bot.database)
    assert home_opened(home_bot.sender, MODERATOR).status == 200
    view = home_bot.fake.wait_for("views.publish")[-1].response["view"]
    home_bot.settle()
    buttons = [
        e["value"]
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == WHY
    ]
    assert str(ids["coin"]) in buttons
    after = _home_why(home_bot, MODERATOR, view, str(ids["coin"]))
    assert after.params["user_id"] == MODERATOR
    top = after.params["view"]["blocks"]
    # The production model explains what it says now (the fake reads no keyword here).
    assert top[0]["block_id"] == "why_answer" and "*Why Not spam?*" in all_text(top[:1])
    assert _explained(home_bot.models) == ["coin toss <!channel> & <https://evil.example|click>"]

    # A member replaying the moderator's view is refused on their own tab; no model runs.
    refused = _home_why(home_bot, MEMBER, view, str(ids["coin"]))
    assert refused.params["user_id"] == MEMBER
    notice = all_text(refused.params["view"]["blocks"][:1])
    assert "Only moderators and admins can ask why" in notice
    assert len(_explained(home_bot.models)) == 1
