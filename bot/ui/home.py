"""The App Home tab: status, recent training runs, second opinions and disputes (see
:mod:`bot.ui.second_opinion`) and the "Needs review" queue.

Moderators and admins get label controls on each queued prediction; their block ids name
the prediction (as alerts' do, see :func:`bot.ui.blocks.label_block_id`) and their action ids
are the Home tab's own, so a click is answered by re-publishing the tab. Members see the
status and the runs but not the queue: it quotes messages from channels they may not be in.
"""

from __future__ import annotations

from typing import Any

from bot.services.review_queue import Budget
from bot.services.status import HomeOverview, ReviewItem, RunSummary
from bot.ui.appeal import appeal_item_blocks
from bot.ui.blocks import escape, label_block_id, label_title, percent, quote, why_button
from bot.ui.format import (
    Block,
    context,
    divider,
    header,
    limit_blocks,
    plain,
    section,
    shorten,
    when,
    who,
)
from bot.ui.second_opinion import board_blocks
from bot.ui.status import data_line, next_retrain_line, production_line, quality_line

HOME_LABEL_ACTION_PREFIX = "bertbot_home_label:"
HOME_RELABEL_ACTION = "bertbot_home_relabel"
HOME_SKIP_ACTION = "bertbot_home_skip"
HOME_NOT_SURE_ACTION = "bertbot_home_not_sure"
SKIP_KINDS = {HOME_SKIP_ACTION: "skip", HOME_NOT_SURE_ACTION: "not_sure"}
NOTICE_BLOCK = "notice"
QUEUE_QUOTE_CHARS = 280
_MAX_BUTTONS = 5
_REASONS = {"drift": ":chart_with_upwards_trend: _flagged by drift watch_"}

_RUN_ICONS = {
    "queued": ":clock3:",
    "running": ":hourglass_flowing_sand:",
    "succeeded": ":white_check_mark:",
    "rejected": ":no_entry_sign:",
    "failed": ":x:",
    "skipped": ":fast_forward:",
    "superseded": ":twisted_rightwards_arrows:",
}


def home_view(
    home: HomeOverview, *, notice: str | None = None, answer: list[Block] | None = None
) -> dict[str, Any]:
    """The Home tab for one user.

    Args:
        home: What the service found for the user.
        notice: A line to show on top (mrkdwn the caller built and escaped), e.g. the
            outcome of the user's last click.
        answer: Blocks to show on top, under the notice (e.g. a "Why?" explanation).
    """
    blocks: list[Block] = []
    if notice:
        blocks.append(context(notice, block_id=NOTICE_BLOCK))
    if answer:
        blocks += [*answer, divider()]
    blocks.append(header("bertbot"))
    for status in home.status.tasks:
        blocks.append(section(production_line(status), block_id=f"task:{status.task.name}"))
        blocks.append(context(data_line(status), block_id=f"data:{status.task.name}"))
    blocks.append(context(next_retrain_line(home.status), block_id="next_retrain"))
    for quality in home.status.quality:  # admins only: held-out labels, flagged annotators
        blocks.append(context(quality_line(quality), block_id=f"quality:{quality.task}"))
    blocks += [divider(), header("Recent training runs")]
    if home.runs:
        blocks += [context(run_line(run), block_id=f"run:{run.id}") for run in home.runs]
    else:
        blocks.append(context("No training runs yet."))
    blocks += board_blocks(home.opinions)  # second opinions wanted; disputes (admins)
    blocks += [divider(), header("Needs review")]
    if not home.can_label:
        blocks.append(context("The review queue is for moderators and admins."))
    elif not home.queue and not home.appeals:
        blocks.append(context("Nothing to review: every recent message was labelled or is clear."))
    else:
        for appeal in home.appeals:  # authors' appeals first
            blocks += appeal_item_blocks(appeal)
        if home.budget is not None:
            blocks.append(context(budget_line(home.budget), block_id="budget"))
        if home.queue:
            blocks.append(
                context(
                    "Recent channel messages drift watch flagged (most unlike the data the "
                    "model was checked on) come first, then those the model was least sure "
                    "about, spread over different kinds of message; near-duplicates are asked "
                    "once. A label you give here is a correction for the next retrain; "
                    "*Skip* or *Not sure* takes a message out of your queue."
                )
            )
        for item in home.queue:
            blocks += review_blocks(item)
    return {"type": "home", "blocks": limit_blocks(blocks)}


def budget_line(budget: Budget) -> str:
    """The user's labels today against the daily budget."""
    if budget.reached:
        return (
            f":tada: You reached today's label budget ({budget.labelled} of {budget.budget}). "
            "Thank you: the queue will be here tomorrow (labels are still welcome)."
        )
    return f"Labels today: {budget.labelled} of {budget.budget}."


def run_line(run: RunSummary) -> str:
    icon = _RUN_ICONS.get(run.status, ":grey_question:")
    line = (
        f"{icon} *{escape(run.task)}* run {run.id} {escape(run.status)} · "
        f"{escape(run.trigger)} by {who(run.requested_by)} · {when(run.created_at)}"
    )
    if run.candidate_version:
        line += f" · candidate v{escape(run.candidate_version)}"
        if run.promoted is not None:
            line += " promoted" if run.promoted else " not promoted"
    if run.summary:
        line += f"\n{escape(shorten(run.summary, 280))}"
    return line


def review_blocks(item: ReviewItem) -> list[Block]:
    """A queued prediction: the message, what the model said, one control per label."""
    message = item.message
    author = f"<@{message.user_id}>" if message.user_id else "someone"
    said = escape(label_title(item.task, item.label))
    flagged = f"{_REASONS.get(item.reason, escape(item.reason))} · " if item.reason else ""
    why = f"\n_{escape(item.why)}_" if item.why and not item.reason else ""
    text = (
        f"{flagged}*{item.task.name}*: model v{escape(item.model_version)} said *{said}* "
        f"({percent(item.top_probability)}, margin {percent(item.margin)}) · "
        f"{author} in <#{message.channel_id}> · {when(message.received_at)}{why}\n"
        f"{quote(message.text, QUEUE_QUOTE_CHARS)}"
    )
    labels = list(item.task.labels)
    elements: list[dict[str, Any]]
    if len(labels) <= _MAX_BUTTONS:
        elements = [_button(item, label) for label in labels]
    else:
        elements = [
            {
                "type": "static_select",
                "action_id": HOME_RELABEL_ACTION,
                "placeholder": plain("Label as …"),
                "options": [
                    {"text": plain(label_title(item.task, label)), "value": label}
                    for label in labels
                ],
            }
        ]
    return [
        section(text, block_id=f"review:{item.prediction_id}"),
        {
            "type": "actions",
            "block_id": label_block_id(item.prediction_id),
            "elements": [*elements, why_button(item.prediction_id), *_pass_buttons(item)],
        },
    ]


def skip_value(task: str, message_id: int) -> str:
    return f"{task}:{message_id}"


def parse_skip_value(value: Any) -> tuple[str, int] | None:
    """(task, message id) of a Skip / Not sure button's value; None when malformed."""
    task, _, message_id = str(value or "").partition(":")
    if not task or not message_id.isdigit():
        return None
    return task, int(message_id)


def _pass_buttons(item: ReviewItem) -> list[dict[str, Any]]:
    value = skip_value(item.task.name, item.message.id)
    return [
        {"type": "button", "action_id": action, "text": plain(text), "value": value}
        for action, text in ((HOME_SKIP_ACTION, "Skip"), (HOME_NOT_SURE_ACTION, "Not sure"))
    ]


def _button(item: ReviewItem, label: str) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{HOME_LABEL_ACTION_PREFIX}{label}",
        "text": plain(label_title(item.task, label)),
        "value": label,
    }
    if label == item.task.alert_label:
        button["style"] = "danger"
    return button
