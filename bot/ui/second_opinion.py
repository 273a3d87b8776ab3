"""Block Kit for second opinions in the Home tab: "Second opinion wanted" (moderators, blind
to the first label) and "Disputes" (admins, with both labels and who gave them).

Every control carries ``<request id>:<label>`` as its value, so a click says what to store
without server-side state; the service checks the role and the request on every click.
"""

from __future__ import annotations

from typing import Any

from bot.services.second_opinion import DisputeItem, OpinionBoard, OpinionItem, OpinionOutcome
from bot.ui.blocks import escape, label_title, percent, quote
from bot.ui.format import Block, context, divider, header, plain, section, when, who
from trainer.tasks import TaskSpec

OPINION_ACTION_PREFIX = "bertbot_opinion:"
DISPUTE_ACTION_PREFIX = "bertbot_dispute:"
OPINION_SELECT_ACTION = "bertbot_opinion_select"
DISPUTE_SELECT_ACTION = "bertbot_dispute_select"
OPINION_HEADER = "Second opinion wanted"
DISPUTES_HEADER = "Disputes"
QUOTE_CHARS = 280
_MAX_BUTTONS = 5


def board_blocks(board: OpinionBoard) -> list[Block]:
    """The sections a user may act on (none when there is nothing for them)."""
    blocks: list[Block] = []
    if board.wanted:
        blocks += [
            divider(),
            header(OPINION_HEADER),
            context(
                "Another moderator labelled these; label them as you see them (their label "
                "is not shown). If you disagree, an admin decides."
            ),
        ]
        for item in board.wanted:
            blocks += opinion_blocks(item)
    if board.disputes:
        blocks += [
            divider(),
            header(DISPUTES_HEADER),
            context(
                "Two moderators disagreed; these texts are kept out of training until you "
                "decide. Your label becomes the effective one."
            ),
        ]
        for dispute in board.disputes:
            blocks += dispute_blocks(dispute)
    return blocks


def opinion_blocks(item: OpinionItem) -> list[Block]:
    """A request for a second moderator: the text and the model's prediction, no first label."""
    if item.predicted_label is not None and item.probability is not None:
        said = (
            f"model v{escape(item.model_version or '?')} said "
            f"*{escape(label_title(item.task, item.predicted_label))}* "
            f"({percent(item.probability)})"
        )
    else:
        said = "no prediction stored"
    return [
        section(
            f"*{item.task.name}*: {said} · asked {when(item.created_at)}\n"
            f"{quote(item.text, QUOTE_CHARS)}",
            block_id=f"opinion_text:{item.request_id}",
        ),
        _controls(
            item.task,
            item.request_id,
            f"opinion:{item.request_id}",
            OPINION_ACTION_PREFIX,
            OPINION_SELECT_ACTION,
        ),
    ]


def dispute_blocks(item: DisputeItem) -> list[Block]:
    """A dispute for admins: both labels and who gave them, the prediction, the text."""
    task = item.task
    predicted = (
        f"model v{escape(item.model_version or '?')} said "
        f"{escape(label_title(task, item.predicted_label))} ({percent(item.probability)})"
        if item.predicted_label is not None and item.probability is not None
        else "no prediction stored"
    )
    return [
        section(
            f":scales: *{task.name}* dispute {item.request_id}: "
            f"{who(item.first_annotator)} said *{escape(label_title(task, item.first_label))}*, "
            f"{who(item.second_annotator)} said *{escape(label_title(task, item.second_label))}* "
            f"· {predicted} · {escape(item.reason)} · {when(item.answered_at)}\n"
            f"{quote(item.text, QUOTE_CHARS)}",
            block_id=f"dispute_text:{item.request_id}",
        ),
        _controls(
            task,
            item.request_id,
            f"dispute:{item.request_id}",
            DISPUTE_ACTION_PREFIX,
            DISPUTE_SELECT_ACTION,
        ),
    ]


def outcome_text(outcome: OpinionOutcome) -> str:
    """The notice after a click (escaped mrkdwn)."""
    title = escape(label_title(outcome.task, outcome.label))
    first = escape(label_title(outcome.task, outcome.first_label))
    again = " (already stored)" if not outcome.created else ""
    if outcome.status == "agreed":
        return f"Labelled *{title}*{again}: you agreed with the first moderator. Thank you!"
    if outcome.status == "disputed":
        return (
            f"Labelled *{title}*{again}: the first moderator said *{first}*, so an admin "
            "will decide. The text is kept out of training until then."
        )
    return f"Dispute {outcome.request_id} decided{again}: *{title}* is the label now."


def parse_value(value: Any) -> tuple[int, str] | None:
    """``<request id>:<label>`` from a control's value (None when malformed)."""
    request_id, _, label = str(value or "").partition(":")
    if not request_id.isdigit() or not label:
        return None
    return int(request_id), label


def _controls(
    task: TaskSpec, request_id: int, block_id: str, prefix: str, select_action: str
) -> Block:
    labels = list(task.labels)
    elements: list[dict[str, Any]]
    if len(labels) <= _MAX_BUTTONS:
        elements = [
            {
                "type": "button",
                "action_id": f"{prefix}{label}",
                "text": plain(label_title(task, label)),
                "value": f"{request_id}:{label}",
            }
            for label in labels
        ]
    else:
        elements = [
            {
                "type": "static_select",
                "action_id": select_action,
                "placeholder": plain("Label as …"),
                "options": [
                    {"text": plain(label_title(task, label)), "value": f"{request_id}:{label}"}
                    for label in labels
                ],
            }
        ]
    return {"type": "actions", "block_id": block_id, "elements": elements}
