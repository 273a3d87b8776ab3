"""The "Label with bertbot" modal: each task's prediction for a message, a label per task.

Moderators and admins get one optional label select per task (an input block whose id
names the prediction, see :func:`bot.ui.blocks.label_block_id`) and a submit button; anyone
else gets the predictions and a note that only moderators label. The submission is checked
again server-side: the modal is never trusted to say who may label.
"""

from __future__ import annotations

import json
from typing import Any

from bot.services.status import MessagePredictions, TaskPrediction
from bot.ui.blocks import escape, label_block_id, label_title, percent, quote
from bot.ui.format import Block, context, limit_blocks, plain, section

SHORTCUT_CALLBACK = "label_with_bertbot"
MODAL_CALLBACK = "bertbot_label_modal"
LABEL_SELECT_ACTION = "bertbot_modal_label"
TITLE = "Label with bertbot"
ONLY_MODERATORS = "Only moderators and admins can label messages. Nothing was stored."
PICK_ONE = "Choose a label for at least one task."


def label_modal(found: MessagePredictions) -> dict[str, Any]:
    """The modal for a message: predictions, and label selects for those who may label."""
    message = found.message
    author = f"<@{message.user_id}>" if message.user_id else "Someone"
    blocks: list[Block] = [
        section(f"{author} in <#{message.channel_id}>\n{quote(message.text)}", "message")
    ]
    if found.first_seen:
        blocks.append(context("bertbot had not seen this message before: it was classified now."))
    inputs = 0
    for prediction in found.predictions:
        blocks.append(section(prediction_line(prediction), f"prediction:{prediction.task.name}"))
        if found.can_label and prediction.prediction_id is not None:
            blocks.append(_label_input(prediction))
            inputs += 1
    if not found.can_label:
        blocks.append(context(":lock: Only moderators and admins can label messages."))
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": plain(TITLE, 24),
        "close": plain("Close", 24),
        "blocks": limit_blocks(blocks),
        "private_metadata": json.dumps({"channel": message.channel_id, "message": message.id}),
    }
    if inputs:
        view["submit"] = plain("Save labels", 24)
    return view


def prediction_line(prediction: TaskPrediction) -> str:
    name = f"*{prediction.task.name}*"
    if prediction.label is None:
        return f"{name}: no production model yet"
    said = escape(label_title(prediction.task, prediction.label))
    line = f"{name}: model v{escape(prediction.model_version or '?')} says *{said}*"
    if prediction.probability is not None:
        line += f" ({percent(prediction.probability)})"
    return line


def _label_input(prediction: TaskPrediction) -> Block:
    assert prediction.prediction_id is not None
    task = prediction.task
    return {
        "type": "input",
        "block_id": label_block_id(prediction.prediction_id),
        "optional": True,
        "label": plain(f"{task.name} label", 2000),
        "element": {
            "type": "static_select",
            "action_id": LABEL_SELECT_ACTION,
            "placeholder": plain("Choose a label"),
            "options": [
                {"text": plain(label_title(task, label)), "value": label} for label in task.labels
            ],
        },
    }


def note_modal(text: str) -> dict[str, Any]:
    """A modal that only says something (the message cannot be labelled, or an error)."""
    return {
        "type": "modal",
        "callback_id": MODAL_CALLBACK,
        "title": plain(TITLE, 24),
        "close": plain("Close", 24),
        "blocks": [section(escape(text))],
    }


def saved_text(lines: list[str]) -> str:
    """The confirmation after a submission (each line built and escaped by the caller)."""
    return "\n".join(lines) if lines else "Nothing was stored."
