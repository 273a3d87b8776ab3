"""Block Kit builders: pure functions from results to message blocks.

Every text a user wrote is escaped for mrkdwn (``&``, ``<``, ``>``) before it goes into a
block, so a message cannot mention ``@channel`` or forge a link through the bot.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainer.tasks import TaskSpec

if TYPE_CHECKING:
    from bot.services.alert_outbox import Alert
    from bot.services.classification import ClassifyOutcome
    from bot.services.corrections import Correction
    from bot.services.predictor import TaskResult

Block = dict[str, Any]

# Every labelling control carries the label as its value and lives in an actions block whose
# block_id names the prediction, so a click says what to store without any server-side state.
LABEL_ACTION_PREFIX = "bertbot_label:"
RELABEL_ACTION = "bertbot_relabel"
LABEL_BLOCK_PREFIX = "label:"
STATUS_BLOCK_PREFIX = "status:"
# "Why?" carries its prediction id (and, on a /classify answer, whom the answer was for).
WHY_ACTION = "bertbot_why"
WHY_BLOCK_PREFIX = "why:"

QUOTE_CHARS = 300
_MAX_BUTTONS = 5
_PLAIN_TEXT_MAX = 75


def escape(text: str) -> str:
    """Escape text for Slack mrkdwn: ``&``, ``<`` and ``>`` (the control characters)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """A user's text as an escaped mrkdwn block quote, shortened to ``limit`` characters."""
    shown = text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
    lines = escape(shown).splitlines() or [""]
    return "\n".join(f"> {line}" for line in lines)


def label_title(task: TaskSpec, label: str) -> str:
    """How a label reads on a button: ``Spam`` / ``Not spam`` for a binary alert task."""
    if task.alert_label is not None and len(task.labels) == 2:
        return label.capitalize() if label == task.alert_label else f"Not {task.alert_label}"
    return label.replace("_", " ").capitalize()


def percent(probability: float) -> str:
    return f"{probability * 100:.0f}%"


def label_block_id(prediction_id: int) -> str:
    return f"{LABEL_BLOCK_PREFIX}{prediction_id}"


def prediction_id_of(block_id: str | None) -> int | None:
    """The prediction named by a labelling block's id (None for any other block)."""
    if not block_id or not block_id.startswith(LABEL_BLOCK_PREFIX):
        return None
    tail = block_id[len(LABEL_BLOCK_PREFIX) :]
    return int(tail) if tail.isdigit() else None


def _plain(text: str) -> dict[str, Any]:
    if len(text) > _PLAIN_TEXT_MAX:
        text = text[: _PLAIN_TEXT_MAX - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def _section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": _mrkdwn(text[:3000])}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "context", "elements": [_mrkdwn(text[:3000])]}
    if block_id:
        block["block_id"] = block_id
    return block


def _label_button(task: TaskSpec, label: str, text: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": f"{LABEL_ACTION_PREFIX}{label}",
        "text": _plain(text or label_title(task, label)),
        "value": label,
    }
    if label == task.alert_label:
        button["style"] = "danger"
    return button


def why_button(prediction_id: int, requested_by: str | None = None) -> dict[str, Any]:
    """The "Why?" button of a prediction; ``requested_by``: the user a /classify answer is for."""
    value = str(prediction_id) if requested_by is None else f"{prediction_id}:{requested_by}"
    return {"type": "button", "action_id": WHY_ACTION, "text": _plain("Why?"), "value": value}


def parse_why_value(value: str | None) -> tuple[int, str | None] | None:
    """``(prediction_id, requested_by)`` from a "Why?" button's value (None: malformed)."""
    head, _, requested_by = (value or "").partition(":")
    if not head.isdigit():
        return None
    return int(head), requested_by or None


def _relabel_select(task: TaskSpec, labels: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "static_select",
        "action_id": RELABEL_ACTION,
        "placeholder": _plain("Relabel as …"),
        "options": [{"text": _plain(label_title(task, label)), "value": label} for label in labels],
    }


# /classify ------------------------------------------------------------------------------


def usage_text(task_names: Sequence[str], command: str = "/classify") -> str:
    example = task_names[-1] if task_names else "sentiment"
    return (
        f"Usage: `{command} <text>` classifies a text privately for every task "
        f"({', '.join(task_names)}); `{command} {example}: <text>` runs one task."
    )


def usage_blocks(task_names: Sequence[str], command: str = "/classify") -> list[Block]:
    return [_section(usage_text(task_names, command))]


def _result_line(result: TaskResult) -> str:
    name = f"*{result.task.name}*"
    prediction = result.prediction
    if prediction is None:
        return f"{name}: no production model yet"
    return (
        f"{name}: *{escape(label_title(result.task, prediction.label))}* · "
        f"{percent(prediction.confidence)} · model v{escape(prediction.model_version)}"
    )


def classify_text(outcome: ClassifyOutcome) -> str:
    """The notification text of a ``/classify`` result (blocks carry the details)."""
    return "; ".join(_result_line(r).replace("*", "") for r in outcome.results)


def classify_blocks(
    outcome: ClassifyOutcome, *, can_label: bool, requested_by: str | None = None
) -> list[Block]:
    """A private ``/classify`` result: one line per task, label controls for moderators.

    Args:
        outcome: The text and each task's result.
        can_label: Add a "Correct" button and a "Relabel as …" select per task.
        requested_by: Who ran ``/classify``: each stored result gets a "Why?" button that
            this user (and moderators and admins) may click.
    """
    blocks: list[Block] = [_section(f"*/classify*\n{quote(outcome.text)}")]
    if outcome.truncated:
        blocks.append(
            _context(
                f":scissors: This text is long ({outcome.num_tokens} word pieces): it was "
                "truncated for the model, which read only its beginning."
            )
        )
    for result in outcome.results:
        blocks.append(_section(_result_line(result), block_id=f"result:{result.task.name}"))
        if result.prediction is None or result.prediction_id is None:
            continue
        why = why_button(result.prediction_id, requested_by)
        if can_label:
            predicted = result.prediction.label
            others = [label for label in result.task.labels if label != predicted]
            blocks.append(
                {
                    "type": "actions",
                    "block_id": label_block_id(result.prediction_id),
                    "elements": [
                        _label_button(result.task, predicted, "✓ Correct") | {"style": "primary"},
                        _relabel_select(result.task, others),
                        why,
                    ],
                }
            )
        elif requested_by is not None:
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"{WHY_BLOCK_PREFIX}{result.prediction_id}",
                    "elements": [why],
                }
            )
    if all(result.prediction is None for result in outcome.results):
        blocks.append(
            _context("No model is serving yet: an admin can train one with `bertbot setup`.")
        )
    elif not outcome.stored:
        blocks.append(
            _context(
                ":warning: The database is unavailable: this result was not stored and cannot "
                "be labelled. Try again in a moment to label it."
            )
        )
    return blocks


# Moderator alerts ---------------------------------------------------------------------


def alert_text(alert: Alert) -> str:
    return f"Possible {alert.label} ({percent(alert.probability)}) in <#{alert.message.channel_id}>"


def alert_blocks(alert: Alert, *, permalink: str | None = None) -> list[Block]:
    """The moderators' alert: the message, a link to it, and one button per label.

    Args:
        alert: The prediction that crossed the threshold and its message.
        permalink: The message's link, if Slack gave one.
    """
    message = alert.message
    author = f"<@{message.user_id}>" if message.user_id else "someone"
    link = (
        f"<{escape(permalink)}|View message>"
        if permalink
        else f"message {escape(message.ts)} in <#{message.channel_id}>"
    )
    labels = list(alert.task.labels)
    if alert.label in labels:  # the alert label's button first
        labels.remove(alert.label)
        labels.insert(0, alert.label)
    elements: list[dict[str, Any]]
    if len(labels) <= _MAX_BUTTONS:
        elements = [_label_button(alert.task, label) for label in labels]
    else:
        elements = [_relabel_select(alert.task, labels)]
    return [
        _section(
            f":rotating_light: *Possible {escape(alert.label)}* ({percent(alert.probability)}) "
            f"from {author} in <#{message.channel_id}>\n{quote(message.text)}"
        ),
        _context(f"{link} · {alert.task.name} model v{escape(alert.model_version)}"),
        {
            "type": "actions",
            "block_id": label_block_id(alert.prediction_id),
            "elements": [*elements, why_button(alert.prediction_id)],
        },
    ]


# After a click --------------------------------------------------------------------------


def labelled_text(correction: Correction, user_id: str) -> str:
    """``Labelled <label> by <@user>``, plus what the model had said."""
    task = correction.task
    label = escape(label_title(task, correction.annotation.label))
    predicted = escape(label_title(task, correction.predicted_label))
    return (
        f"Labelled *{label}* by <@{user_id}> "
        f"({task.name}; model v{escape(correction.model_version)} said {predicted})"
    )


def repeated_text(correction: Correction) -> str:
    label = escape(label_title(correction.task, correction.annotation.label))
    return f"You labelled this *{label}* already; nothing new was stored."


def with_status(blocks: Sequence[Mapping[str, Any]], prediction_id: int, text: str) -> list[Block]:
    """A copy of a message's blocks with a status line under the prediction's controls.

    An earlier status line for the same prediction is replaced; the controls stay, so a
    moderator can still change the label.
    """
    status_id = f"{STATUS_BLOCK_PREFIX}{prediction_id}"
    kept = [copy.deepcopy(dict(b)) for b in blocks if b.get("block_id") != status_id]
    status = _context(text, block_id=status_id)
    controls = label_block_id(prediction_id)
    for index, block in enumerate(kept):
        if block.get("block_id") == controls:
            kept.insert(index + 1, status)
            return kept
    kept.append(status)
    return kept


def error_text(reference: str) -> str:
    return (
        f"Sorry, something went wrong on bertbot's side (reference `{reference}`). "
        "It has been logged; please try again in a minute."
    )
