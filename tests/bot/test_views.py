"""The view builders as pure functions: limits, escaping, who gets controls."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.services.status import (
    HomeOverview,
    MessagePredictions,
    ReviewItem,
    RunSummary,
    StatusReport,
    TaskPrediction,
)
from bot.ui.format import MAX_BLOCKS
from bot.ui.home import home_view, run_line
from bot.ui.label_modal import label_modal
from storage.records import MessageRecord
from trainer.tasks import BUILTIN_TASKS

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SPAM, SENTIMENT = BUILTIN_TASKS["spam"], BUILTIN_TASKS["sentiment"]


def _message(text: str = "hi") -> MessageRecord:
    return MessageRecord(1, "T", "C1", "1.1", "U1", text, None, NOW, None, None)


def test_a_task_without_a_model_gets_no_label_input() -> None:
    found = MessagePredictions(
        _message(),
        (
            TaskPrediction(SPAM, 7, "spam", 0.9, "3"),
            TaskPrediction(SENTIMENT, None, None, None, None),
        ),
        first_seen=False,
        can_label=True,
    )
    view = label_modal(found)
    assert [b["block_id"] for b in view["blocks"] if b["type"] == "input"] == ["label:7"]
    assert "*sentiment*: no production model yet" in str(view["blocks"])
    assert view["submit"]["text"] == "Save labels"
    only_missing = MessagePredictions(
        _message(), (TaskPrediction(SENTIMENT, None, None, None, None),), False, True
    )
    assert "submit" not in label_modal(only_missing)  # nothing to submit


def test_the_home_tab_stays_within_slacks_block_limit() -> None:
    queue = tuple(
        ReviewItem(i, SPAM, "spam", 0.5, 0.0, "3", NOW, _message(f"m{i}")) for i in range(80)
    )
    home = HomeOverview(StatusReport((), None, NOW), (), queue, can_label=True)
    blocks = home_view(home)["blocks"]
    assert len(blocks) == MAX_BLOCKS
    assert "left out" in blocks[-1]["elements"][0]["text"]


def test_a_run_line_escapes_who_asked_and_the_reason_but_mentions_slack_users() -> None:
    run = RunSummary(3, "spam", "failed", "cli", "cli:<ana>", NOW, None, None, None, "x < y")
    line = run_line(run)
    assert "cli by cli:&lt;ana&gt;" in line and "x &lt; y" in line
    by_admin = RunSummary(4, "spam", "queued", "admin", "U0ADMIN01", NOW, None, None, None, None)
    assert "admin by <@U0ADMIN01>" in run_line(by_admin)
