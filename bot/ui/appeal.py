"""Block Kit for authors and appeals: the author's notice with its Appeal button, the
appeal modal, the moderators' appeal item and the answers to the author."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.services.appeals import NOTE_MAX_CHARS
from bot.ui.blocks import escape, label_title, percent, quote
from bot.ui.format import Block, context, plain, section

if TYPE_CHECKING:
    from bot.services.alert_outbox import Alert
    from bot.services.appeals import AppealDecision, AppealItem

APPEAL_OPEN_ACTION = "appeal_open"
APPEAL_SUBMIT_CALLBACK = "appeal_submit"
APPEAL_DECIDE_ACTION = "appeal_decide"
APPEAL_NOTE_BLOCK = "appeal_note"
APPEAL_NOTE_ACTION = "note"
RESTORED_PREFIX = "Restored after review"


def notice_text(alert: Alert, *, removed: bool) -> str:
    done = "removed" if removed else "flagged"
    return (
        f"Your message in <#{alert.message.channel_id}> was {done} as possible "
        f"{alert.label} ({percent(alert.probability)} confidence)."
    )


def notice_blocks(alert: Alert, *, removed: bool) -> list[Block]:
    """The author's private notice: what was flagged, where, how sure, and an Appeal button."""
    what = "It was removed from the channel." if removed else "Moderators have been asked to look."
    return [
        section(
            f":warning: {notice_text(alert, removed=removed)} {what}\n{quote(alert.message.text)}"
        ),
        context(
            "If this is a mistake, appeal: a moderator will review it and you will get an answer."
        ),
        {
            "type": "actions",
            "block_id": f"appeal_{alert.alert_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": APPEAL_OPEN_ACTION,
                    "text": plain("Appeal"),
                    "value": str(alert.alert_id),
                }
            ],
        },
    ]


def appeal_modal(alert_id: int, item: AppealItem) -> dict[str, Any]:
    """The author's appeal: the message, and a note for the moderators."""
    return {
        "type": "modal",
        "callback_id": APPEAL_SUBMIT_CALLBACK,
        "private_metadata": str(alert_id),
        "title": plain("Appeal"),
        "submit": plain("Send appeal"),
        "close": plain("Cancel"),
        "blocks": [
            section(
                f"Flagged as possible {escape(item.label)} "
                f"({percent(item.probability)}) in <#{item.channel_id}>:\n{quote(item.text)}"
            ),
            {
                "type": "input",
                "block_id": APPEAL_NOTE_BLOCK,
                "label": plain("Why is this not " + item.label + "?"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": APPEAL_NOTE_ACTION,
                    "multiline": True,
                    "max_length": NOTE_MAX_CHARS,
                },
            },
        ],
    }


def appeal_item_blocks(item: AppealItem) -> list[Block]:
    """An appeal for moderators (the top of the review queue): note, message, decision."""
    removed = " (removed)" if item.removed else ""
    task = item.task
    keep, restore = item.label, next(label for label in task.labels if label != item.label)
    return [
        section(
            f":scales: *Appeal* from <@{item.author_id}> in <#{item.channel_id}>{removed}: "
            f"possible {escape(item.label)} ({percent(item.probability)})\n{quote(item.text)}\n"
            f"*Their note:* {escape(item.note) or '_none_'}"
        ),
        {
            "type": "actions",
            "block_id": f"appeal_decide_{item.appeal_id}",
            "elements": [
                {
                    "type": "button",
                    "action_id": f"{APPEAL_DECIDE_ACTION}_{restore}",
                    "text": plain(f"Uphold: {label_title(task, restore)}"),
                    "style": "primary",
                    "value": f"{item.appeal_id}:{restore}",
                },
                {
                    "type": "button",
                    "action_id": f"{APPEAL_DECIDE_ACTION}_{keep}",
                    "text": plain(f"Deny: {label_title(task, keep)}"),
                    "value": f"{item.appeal_id}:{keep}",
                },
            ],
        },
    ]


def appeal_item_text(item: AppealItem) -> str:
    return f"Appeal from <@{item.author_id}> about a message in <#{item.channel_id}>"


def decided_text(decision: AppealDecision, moderator: str) -> str:
    outcome = "upheld" if decision.upheld else "denied"
    return f"Appeal {outcome} by <@{moderator}>: labelled {decision.label}."


def answer_text(decision: AppealDecision) -> str:
    """The answer to the author."""
    where = f"<#{decision.item.channel_id}>"
    if decision.upheld:
        restored = " It has been restored in the channel." if decision.restored_ts else ""
        return (
            f"Your appeal was upheld: your message in {where} is not {decision.item.label}."
            f"{restored} Thank you, this also teaches the bot."
        )
    return (
        f"Your appeal was reviewed: a moderator kept your message in {where} as {decision.label}."
    )


def appealed_text(item: AppealItem) -> str:
    return (
        f"Your appeal about your message in <#{item.channel_id}> was sent to the moderators. "
        "You will get an answer here."
    )


def restored_text(author_id: str, text: str) -> str:
    """A removed message re-posted on its author's behalf after an upheld appeal."""
    return f"_{RESTORED_PREFIX}_ · originally posted by <@{author_id}>:\n{quote(text, 3000)}"
