"""``/bertbot status`` and ``/bertbot help``: pure builders from a :class:`StatusReport`."""

from __future__ import annotations

from datetime import datetime

from bot.services.label_quality import TaskQuality
from bot.services.status import LabelCount, StatusReport, TaskStatus
from bot.ui.blocks import escape, label_title
from bot.ui.format import Block, context, header, limit_blocks, score, section, when, who
from storage.records import InboxStats

COMMAND = "/bertbot"
SUBCOMMANDS = (
    ("status", "models, metrics, labels and the next retrain"),
    ("policy", "the moderation policy per channel and task (admins)"),
    ("roles", "this workspace's moderators and admins: list, add or remove (admins)"),
    ("help", "this help"),
)


def usage_text(command: str = COMMAND) -> str:
    lines = [f"`{command} {name}`: {purpose}" for name, purpose in SUBCOMMANDS]
    return "Usage:\n" + "\n".join(lines) + "\nThe App Home tab shows the same, plus recent runs."


def usage_blocks(unknown: str | None = None, command: str = COMMAND) -> list[Block]:
    """Help text; ``unknown`` is a subcommand that was not understood (echoed, escaped)."""
    blocks = []
    if unknown:
        blocks.append(section(f"`{escape(unknown[:50])}` is not a {command} command."))
    blocks.append(section(usage_text(command)))
    return blocks


def production_line(status: TaskStatus) -> str:
    name = f"*{status.task.name}*"
    model = status.production
    if model is None:
        return f"{name}: no production model yet (an admin can train one with `bertbot setup`)"
    line = (
        f"{name}: production *v{escape(model.version)}* · macro-F1 {score(model.macro_f1)} · "
        f"accuracy {score(model.accuracy)}"
    )
    if model.scored_on == "validation":
        line += " (validation)"
    if model.promoted_at is not None:
        line += f" · promoted {when(model.promoted_at)}"
        if model.promoted_by:
            line += f" by {who(model.promoted_by)}"
    return line


def _label_count(status: TaskStatus, count: LabelCount) -> str:
    sources = ", ".join(f"{escape(source)} {n:,}" for source, n in count.by_source)
    title = escape(label_title(status.task, count.label))
    return f"{title} {count.total:,}" + (f" ({sources})" if sources else "")


def data_line(status: TaskStatus) -> str:
    labels = " · ".join(_label_count(status, count) for count in status.labels)
    corrections = status.corrections_since_training
    noun = "correction" if corrections == 1 else "corrections"
    if status.production is not None:
        since = f"{corrections:,} {noun} since v{escape(status.production.version)}'s training data"
    else:
        since = f"{corrections:,} {noun} so far"
    return f"Labels: {labels}\n{since}"


def next_retrain_line(report: StatusReport) -> str:
    if report.next_retrain is None:
        return ":calendar: No retrain is scheduled."
    return f":calendar: Next scheduled retrain: {when(report.next_retrain)}"


def inbox_line(stats: InboxStats, now: datetime) -> str:
    """Acknowledged events still to handle, the oldest's age, and dead letters."""
    waiting = stats.pending + stats.working
    line = f"{waiting} waiting"
    if waiting and stats.oldest_waiting_at is not None:
        seconds = max(0.0, (now - stats.oldest_waiting_at).total_seconds())
        line += (
            f" (oldest {seconds:.0f} s)" if seconds < 120 else f" (oldest {seconds / 60:.0f} min)"
        )
    return line + f", {stats.dead} dead letter(s), {stats.done} handled"


def quality_line(quality: TaskQuality) -> str:
    """Admins' line about a task's held-out labels (``bertbot review suspects``)."""
    name = escape(quality.task)
    line = (
        f":mag: {name}: {quality.held_out} label(s) held out of retrains "
        f"({quality.held_suspects} suspect(s) to review: `bertbot review suspects --task {name}`)"
    )
    if quality.flagged:
        flagged = ", ".join(f"<@{escape(user)}>" for user in quality.flagged)
        line += f"; flagged annotator(s): {flagged} (`bertbot annotators --task {name}`)"
    return line


def status_blocks(report: StatusReport) -> list[Block]:
    """Per task: the production model and its metrics, the labels, and new corrections."""
    blocks: list[Block] = [header("bertbot status")]
    for status in report.tasks:
        blocks.append(section(production_line(status), block_id=f"task:{status.task.name}"))
        blocks.append(context(data_line(status), block_id=f"data:{status.task.name}"))
    blocks.append(context(next_retrain_line(report), block_id="next_retrain"))
    for quality in report.quality:  # admins only
        blocks.append(context(quality_line(quality), block_id=f"quality:{quality.task}"))
    if report.inbox is not None:
        icon = ":warning:" if report.inbox.dead else ":inbox_tray:"
        text = f"{icon} Events inbox: {inbox_line(report.inbox, report.generated_at)}"
        if report.inbox.dead:
            text += " · `bertbot inbox list --dead`"
        blocks.append(context(text, block_id="inbox"))
    return limit_blocks(blocks)


def status_text(report: StatusReport) -> str:
    """The notification text (the blocks carry the details)."""
    parts = []
    for status in report.tasks:
        model = status.production
        if model is None:
            parts.append(f"{status.task.name}: no model yet")
        else:
            parts.append(
                f"{status.task.name}: v{escape(model.version)} macro-F1 {score(model.macro_f1)}"
            )
    return "bertbot status: " + "; ".join(parts)
