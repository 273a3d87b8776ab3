"""The review digest: a moderator's DM saying how many items wait in App Home's queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.ui.blocks import escape
from bot.ui.format import context, section


@dataclass(frozen=True)
class DigestContent:
    text: str
    blocks: list[dict[str, Any]]


def digest_message(
    waiting: Sequence[tuple[str, int]], *, offered: int, remaining: int, budget: int
) -> DigestContent:
    """The DM.

    Args:
        waiting: (task, items waiting) for each task with items.
        offered: How many to ask for now (at most the remaining budget).
        remaining: Labels left in today's budget.
        budget: The daily budget.
    """
    total = sum(count for _, count in waiting)
    tasks = ", ".join(f"{count} {escape(task)}" for task, count in waiting)
    text = (
        f"{total} message{'s' if total != 1 else ''} wait for a label ({tasks}). Could you "
        f"label {offered} of them? Open bertbot's *Home* tab: *Needs review* lists them, "
        "the most useful first."
    )
    note = (
        f"Today's budget: {remaining} of {budget} labels left. *Skip* or *Not sure* takes a "
        "message out of your queue. You get this at most once a period, only when enough waits."
    )
    return DigestContent(text=text, blocks=[section(text), context(note)])
