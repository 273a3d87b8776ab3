"""Moderators' clicks on ``/classify`` results, over real HTTP with signed interactions."""

from __future__ import annotations

from typing import Any

from storage import annotations, audit
from storage.enums import AnnotationSource
from tests.bot.conftest import ADMIN, GENERAL, MEMBER, MODERATOR, SPAM_TEXT, Bot

LABEL = "bertbot_label:"
RELABEL = "bertbot_relabel"


def _result_blocks(bot: Bot, text: str, user_id: str = MODERATOR) -> list[dict[str, Any]]:
    """Run /classify as a moderator and return the blocks of the private answer."""
    delivery = bot.sender.command(text, user_id=user_id)
    key = delivery.response_url.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    call = bot.fake.wait_for("response_url", where=lambda c: c.path.endswith(key))[0]
    return call.params["blocks"]


def _click(bot: Bot, blocks: list[dict[str, Any]], user_id: str, action_id: str, value: str):
    before = len(bot.fake.calls("response_url"))
    delivery = bot.sender.click(
        user_id=user_id,
        blocks=blocks,
        action_id=action_id,
        value=value,
        channel_id=GENERAL,
        ephemeral=True,
    )
    assert delivery.status == 200
    reply = bot.fake.wait_for("response_url", before + 1)[-1]
    bot.settle()
    return delivery, reply


def _corrections(bot: Bot) -> list[Any]:
    with bot.database.begin() as session:
        return annotations.list_annotations(session=session, source=AnnotationSource.CORRECTION)


def test_a_moderator_click_stores_an_annotation_with_the_predictions_model_version(
    bot: Bot,
) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)
    _, reply = _click(bot, blocks, MODERATOR, LABEL + "spam", "spam")  # "✓ Correct"
    [stored] = _corrections(bot)
    assert (stored.task, stored.label, stored.annotator) == ("spam", "spam", MODERATOR)
    assert (stored.prediction_id, stored.predicted_label, stored.predicted_model_version) == (
        1,
        "spam",
        "3",
    )
    assert stored.text == SPAM_TEXT and stored.message_id is None
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["replace_original"] is False
    assert reply.params["text"].startswith(f"Labelled *Spam* by <@{MODERATOR}>")
    with bot.database.begin() as session:
        [entry] = audit.list_audit(session=session, subject_prefix="prediction/1")
    assert (entry.actor, entry.action, entry.details["label"]) == (MODERATOR, "label", "spam")
    assert entry.details["model_version"] == "3"


def test_an_admin_may_relabel_with_the_select(bot: Bot) -> None:
    blocks = _result_blocks(bot, "I love this", user_id=ADMIN)
    _click(bot, blocks, ADMIN, RELABEL, "neutral")
    [stored] = _corrections(bot)
    assert (stored.task, stored.label, stored.predicted_label) == (
        "sentiment",
        "neutral",
        "positive",
    )
    assert stored.annotator == ADMIN


def test_a_non_moderator_click_is_refused_privately_and_nothing_is_stored(bot: Bot) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)  # a moderator's result, clicked by a member
    before = bot.counts()
    _, reply = _click(bot, blocks, MEMBER, LABEL + "spam", "spam")
    assert reply.params["response_type"] == "ephemeral"
    assert reply.params["replace_original"] is False
    assert "Only moderators and admins can label" in reply.params["text"]
    assert bot.counts() == before
    assert bot.counts()["annotations"] == 0 and bot.counts()["audit"] == 0


def test_the_same_click_twice_stores_one_annotation(bot: Bot) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)
    _click(bot, blocks, MODERATOR, RELABEL, "ham")
    _, second = _click(bot, blocks, MODERATOR, RELABEL, "ham")
    assert len(_corrections(bot)) == 1
    assert "already" in second.params["text"]
    assert bot.counts()["audit"] == 1


def test_a_changed_mind_stores_a_new_annotation_and_keeps_the_history(bot: Bot) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)
    _click(bot, blocks, MODERATOR, RELABEL, "ham")
    _click(bot, blocks, MODERATOR, LABEL + "spam", "spam")
    assert [a.label for a in _corrections(bot)] == ["ham", "spam"]
    _click(bot, blocks, MODERATOR, RELABEL, "ham")  # and back again
    assert [a.label for a in _corrections(bot)] == ["ham", "spam", "ham"]
    with bot.database.begin() as session:
        effective = annotations.effective_labels(session=session, task="spam")
    assert [(e.text, e.label) for e in effective] == [(SPAM_TEXT, "ham")]


def test_two_moderators_label_the_same_prediction_independently(bot: Bot) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)
    _click(bot, blocks, MODERATOR, RELABEL, "ham")
    _click(bot, blocks, ADMIN, RELABEL, "ham")
    assert [a.annotator for a in _corrections(bot)] == [MODERATOR, ADMIN]


def test_a_label_not_of_the_task_is_refused(bot: Bot) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)
    block_id = next(b["block_id"] for b in blocks if b["type"] == "actions")
    before = len(bot.fake.calls("response_url"))
    bot.sender.block_actions(
        user_id=MODERATOR,
        actions=[
            {"action_id": LABEL + "toxic", "block_id": block_id, "type": "button", "value": "toxic"}
        ],
        channel_id=GENERAL,
        ephemeral=True,
    )
    reply = bot.fake.wait_for("response_url", before + 1)[-1]
    assert "'toxic' is not a spam label" in reply.params["text"]
    bot.settle()
    assert _corrections(bot) == []


def test_a_forged_click_is_refused_with_401(bot: Bot) -> None:
    blocks = _result_blocks(bot, SPAM_TEXT)
    block_id = next(b["block_id"] for b in blocks if b["type"] == "actions")
    delivery = bot.sender.block_actions(
        user_id=MODERATOR,
        actions=[
            {"action_id": LABEL + "ham", "block_id": block_id, "type": "button", "value": "ham"}
        ],
        channel_id=GENERAL,
        ephemeral=True,
        bad_signature=True,
    )
    assert delivery.status == 401
    bot.settle()
    assert _corrections(bot) == []
