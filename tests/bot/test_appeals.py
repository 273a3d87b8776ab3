"""The author's notice and appeal, over real HTTP: Appeal -> note -> the top of the
moderators' queue -> a moderator's decision stored as a label of source ``appeal`` -> the
author answered (and a removed message re-posted when the appeal is upheld)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.emulator.inbound import new_event_id
from bot.emulator.outbound import LOCAL_ADMIN_USER_TOKEN, FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from bot.services.appeals import AppealPolicy, AppealService
from bot.services.errors import BotError, NotAllowedError
from bot.ui import appeal as appeal_ui
from storage import annotations, audit
from storage import appeals as appeal_store
from storage.db import Database
from storage.enums import AnnotationSource, AppealStatus
from tests.bot.conftest import (
    ADMIN,
    GENERAL,
    MEMBER,
    MODERATOR,
    MODERATORS_CHANNEL,
    SPAM_TEXT,
    FakeModels,
    eventually,
)
from tests.bot.surfaces import (
    SurfaceBot,
    all_text,
    home_opened,
    serve_bot,
    view_click,
    view_submission,
)
from trainer.tasks import TaskSpec

DM = "D0MEMBER"
NOTE = "It is my bakery's opening offer, posted in the right channel"


@pytest.fixture
def alert_policy() -> AlertPolicy:
    return AlertPolicy(channel="moderators", admin_token=LOCAL_ADMIN_USER_TOKEN)


@pytest.fixture
def appeal_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    with serve_bot(database, fake_slack, tasks, alert_policy, models) as bot:
        yield bot


def _flag(bot: SurfaceBot, action: str, *, user: str = MEMBER) -> RecordedCall:
    """Post a spam message under a policy with ``action``; return the author's notice."""
    bot.services.policies.set(
        actor=ADMIN, channel_id=GENERAL, task="spam", threshold=0.5, action=action
    )
    before = len(_dms(bot, user))
    event = bot.sender.message_event(SPAM_TEXT, user_id=user, channel_id=GENERAL)
    assert bot.sender.event(event, event_id=new_event_id()).status == 200
    bot.settle()
    return eventually(lambda: _dms(bot, user)[before:])[0]


def _dms(bot: SurfaceBot, user: str = MEMBER) -> list[RecordedCall]:
    return [c for c in bot.fake.calls("chat.postMessage") if c.ok and c.params["channel"] == user]


def _click_appeal(bot: SurfaceBot, user: str, notice: RecordedCall) -> Any:
    before = len(bot.fake.calls("views.open"))
    delivery = bot.sender.click(
        user_id=user,
        blocks=notice.params["blocks"],
        action_id=appeal_ui.APPEAL_OPEN_ACTION,
        channel_id=DM,
        message={"ts": notice.response["ts"], "blocks": notice.params["blocks"]},
    )
    assert delivery.status == 200
    bot.settle()
    opened = bot.fake.calls("views.open")[before:]
    return opened[0] if opened else delivery


def _appeal(bot: SurfaceBot, notice: RecordedCall, note: str = NOTE) -> RecordedCall:
    """The author appeals; returns the appeal's post in the moderators' channel."""
    opened = _click_appeal(bot, MEMBER, notice)
    assert isinstance(opened, RecordedCall) and opened.ok
    view = opened.response["view"]
    assert view["callback_id"] == appeal_ui.APPEAL_SUBMIT_CALLBACK
    delivery = view_submission(
        bot.sender, user_id=MEMBER, view=view, choices={appeal_ui.APPEAL_NOTE_BLOCK: note}
    )
    assert delivery.status == 200 and delivery.body == b""
    bot.settle()
    return eventually(
        lambda: [
            c
            for c in bot.fake.calls("chat.postMessage")
            if c.params["channel"] == "moderators" and "Appeal" in c.params["text"]
        ]
    )[-1]


def _decide(bot: SurfaceBot, user: str, post: RecordedCall, label: str) -> None:
    delivery = bot.sender.click(
        user_id=user,
        blocks=post.params["blocks"],
        action_id=f"{appeal_ui.APPEAL_DECIDE_ACTION}_{label}",
        channel_id=MODERATORS_CHANNEL,
        message={"ts": post.response["ts"], "blocks": post.params["blocks"]},
    )
    assert delivery.status == 200
    bot.settle()


def _alert_id(notice: RecordedCall) -> int:
    return int(notice.params["blocks"][-1]["elements"][0]["value"])


def _appeal_labels(bot: SurfaceBot) -> list[Any]:
    with bot.database.begin() as session:
        return annotations.list_annotations(session=session, source=AnnotationSource.APPEAL)


def test_removed_then_upheld_on_appeal_is_restored_labelled_and_answered(
    appeal_bot: SurfaceBot,
) -> None:
    bot = appeal_bot
    notice = _flag(bot, "remove")
    assert "was removed as possible spam (97% confidence)" in notice.params["text"]
    assert bot.fake.deleted()[0].text == SPAM_TEXT

    post = _appeal(bot, notice)
    text = all_text(post.params["blocks"])
    assert f"<@{MEMBER}>" in text and NOTE in text and "(removed)" in text
    assert any("sent to the moderators" in c.params["text"] for c in _dms(bot))

    # The appeal leads the moderators' review queue in the Home tab.
    before = len(bot.fake.calls("views.publish"))
    assert home_opened(bot.sender, MODERATOR).status == 200
    home = bot.fake.wait_for("views.publish", before + 1)[-1].params["view"]["blocks"]
    titles = [all_text([b]) for b in home]
    first_after_header = titles[titles.index("Needs review") + 1]
    assert first_after_header.startswith(":scales: *Appeal*") and NOTE in first_after_header

    _decide(bot, MODERATOR, post, "ham")
    (label,) = eventually(lambda: _appeal_labels(bot))
    assert (label.label, label.annotator, label.text) == ("ham", MODERATOR, SPAM_TEXT)
    restored = eventually(
        lambda: [
            c
            for c in bot.fake.calls("chat.postMessage")
            if c.params["channel"] == GENERAL and appeal_ui.RESTORED_PREFIX in c.params["text"]
        ]
    )[0]
    assert SPAM_TEXT in restored.params["text"] and f"<@{MEMBER}>" in restored.params["text"]
    answer = eventually(lambda: [c for c in _dms(bot) if "upheld" in c.params["text"]])[0]
    assert "restored" in answer.params["text"]
    updated = eventually(lambda: bot.fake.calls("chat.update"))[-1]
    assert f"Appeal upheld by <@{MODERATOR}>" in updated.params["text"]
    with bot.database.begin() as session:
        appeal = appeal_store.appeal_for_alert(session=session, alert_id=_alert_id(notice))
        entries = audit.list_audit(session=session, subject_prefix="appeal/")
    assert (
        appeal is not None
        and appeal.status is AppealStatus.UPHELD
        and appeal.decided_by == MODERATOR
    )
    assert [e.action for e in entries] == ["appeal.decide", "appeal.open"]


def test_notify_then_denied_keeps_the_label_and_answers_the_author(
    appeal_bot: SurfaceBot,
) -> None:
    bot = appeal_bot
    notice = _flag(bot, "notify")
    assert "was flagged as possible spam" in notice.params["text"]
    assert bot.fake.calls("chat.delete") == []
    post = _appeal(bot, notice)
    _decide(bot, MODERATOR, post, "spam")
    (label,) = eventually(lambda: _appeal_labels(bot))
    assert label.label == "spam"
    answer = eventually(lambda: [c for c in _dms(bot) if "reviewed" in c.params["text"]])[0]
    assert "kept your message" in answer.params["text"]
    assert not any(
        appeal_ui.RESTORED_PREFIX in c.params.get("text", "")
        for c in bot.fake.calls("chat.postMessage")
    )


def test_only_the_author_appeals_their_own_message(appeal_bot: SurfaceBot) -> None:
    bot = appeal_bot
    notice = _flag(bot, "notify")
    refused = _click_appeal(bot, MODERATOR, notice)
    assert not isinstance(refused, RecordedCall)  # no modal opened
    answer = eventually(lambda: bot.fake.responses(refused.response_url))[0]
    assert "Only the author" in answer["text"]
    with bot.database.begin() as session:
        assert appeal_store.open_appeals(session=session) == []


def test_only_moderators_decide(appeal_bot: SurfaceBot) -> None:
    bot = appeal_bot
    post = _appeal(bot, _flag(bot, "notify"))
    _decide(bot, MEMBER, post, "ham")
    assert _appeal_labels(bot) == []
    with bot.database.begin() as session:
        assert len(appeal_store.open_appeals(session=session)) == 1
    _decide(bot, ADMIN, post, "ham")  # admins moderate too
    assert len(eventually(lambda: _appeal_labels(bot))) == 1


def test_a_decision_is_stored_once_when_two_moderators_click(appeal_bot: SurfaceBot) -> None:
    bot = appeal_bot
    post = _appeal(bot, _flag(bot, "notify"))
    _decide(bot, MODERATOR, post, "ham")
    _decide(bot, ADMIN, post, "spam")
    assert [a.label for a in eventually(lambda: _appeal_labels(bot))] == ["ham"]


def test_appeals_are_one_per_flag_and_rate_limited_per_author(appeal_bot: SurfaceBot) -> None:
    bot = appeal_bot
    appeals = AppealService(
        bot.database, bot.services.predictor, bot.services.roles, AppealPolicy(per_day=1)
    )
    first = _flag(bot, "notify")
    second = _flag(bot, "notify")
    first_alert, second_alert = _alert_id(first), _alert_id(second)
    appeals.submit(user_id=MEMBER, alert_id=first_alert, note="")
    with pytest.raises(BotError, match="appealed this already"):
        appeals.submit(user_id=MEMBER, alert_id=first_alert, note="")
    with pytest.raises(BotError, match="1 time\\(s\\) a day"):
        appeals.check(user_id=MEMBER, alert_id=second_alert)
    with pytest.raises(NotAllowedError):
        appeals.check(user_id=MODERATOR, alert_id=second_alert)


def test_a_moderator_decides_from_the_home_tab(appeal_bot: SurfaceBot) -> None:
    bot = appeal_bot
    _appeal(bot, _flag(bot, "notify"))
    before = len(bot.fake.calls("views.publish"))
    assert home_opened(bot.sender, MODERATOR).status == 200
    view = bot.fake.wait_for("views.publish", before + 1)[-1].response["view"]
    delivery = view_click(
        bot.sender,
        user_id=MODERATOR,
        view=view,
        action_id=f"{appeal_ui.APPEAL_DECIDE_ACTION}_ham",
    )
    assert delivery.status == 200
    bot.settle()
    republished = bot.fake.wait_for("views.publish", before + 2)[-1].params["view"]["blocks"]
    assert f"Appeal upheld by <@{MODERATOR}>" in all_text(republished[:1])
    assert ":scales:" not in all_text(republished)  # no longer in the queue
    assert [a.label for a in _appeal_labels(bot)] == ["ham"]
