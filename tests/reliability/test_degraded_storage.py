"""The bot's answers when the database cannot be reached, and errors right after an ack.

Fast and backend-free (a SQLite URL in a directory that does not exist fails every unit of
work), so the behaviour the PostgreSQL restart test relies on is checked on every run:

* ``/classify`` still answers within Slack's 3 s, with the predictions and without label
  controls, saying the result was not stored;
* a label click is acked at once and told that nothing was stored and that trying again
  is safe;
* a listener that fails unexpectedly just after ``ack()`` still gets its 200 to Slack at
  once (Bolt would otherwise answer 404 after 3 s, see ``bot.app.handle_error``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.emulator.inbound import Delivery
from bot.emulator.outbound import RecordedCall, iter_elements
from storage.db import Database
from tests.bot.conftest import GENERAL, MEMBER, MODERATOR, SPAM_TEXT
from tests.reliability.conftest import BotFactory, FullBot, Report, posted_to

SLACK_LIMIT_S = 3.0


@pytest.fixture
def unreachable_database(tmp_path: Path) -> Iterator[Database]:
    database = Database.connect(f"sqlite:///{tmp_path / 'missing' / 'bot.db'}")
    yield database
    database.dispose()


def _classify(bot: FullBot, text: str, user_id: str) -> tuple[Delivery, RecordedCall]:
    delivery = bot.sender.command(text, user_id=user_id)
    assert delivery.response_url is not None
    [answer] = bot.fake.wait_for("response_url", where=posted_to(delivery.response_url))
    return delivery, answer


def test_classify_answers_and_a_click_is_refused_cleanly_without_a_database(
    unreachable_database: Database, serve_bot: BotFactory, report: Report
) -> None:
    bot = serve_bot(unreachable_database)
    delivery, answer = _classify(bot, SPAM_TEXT, MODERATOR)
    latency = answer.at - delivery.sent_at
    shown = json.dumps(answer.params["blocks"])
    assert delivery.status == 200 and latency < SLACK_LIMIT_S
    assert "*spam*: *Spam*" in shown  # the prediction is there
    assert "database is unavailable" in shown
    assert not [e for _, e in iter_elements(answer.params["blocks"])]  # nothing to click

    action = {
        "action_id": "bertbot_label:ham",
        "block_id": "label:1",
        "type": "button",
        "value": "ham",
    }
    click = bot.sender.block_actions(
        user_id=MODERATOR, actions=[action], channel_id=GENERAL, ephemeral=True
    )
    assert click.response_url is not None
    [reply] = bot.fake.wait_for("response_url", where=posted_to(click.response_url))
    assert click.status == 200 and click.elapsed_s < SLACK_LIMIT_S
    assert "Nothing was stored; please try again" in reply.params["text"]
    report.add(
        requests_sent=2,
        faults_injected=1,
        classify_answer_s=round(latency, 3),
        click_ack_s=round(click.elapsed_s, 3),
    )
    report.emit()


def test_an_error_just_after_ack_still_answers_slack_at_once(
    sqlite_database: Database,
    serve_bot: BotFactory,
    monkeypatch: pytest.MonkeyPatch,
    report: Report,
) -> None:
    bot = serve_bot(sqlite_database)

    def broken(**_: Any) -> None:
        raise RuntimeError("a bug right after ack()")

    monkeypatch.setattr(bot.services.classification, "classify", broken)
    statuses, slowest = [], 0.0
    for i in range(20):
        delivery = bot.sender.command(f"text {i}", user_id=MEMBER)
        statuses.append(delivery.status)
        slowest = max(slowest, delivery.elapsed_s)
    bot.settle()
    errors = bot.fake.calls("response_url")
    report.add(requests_sent=20, faults_injected=20, statuses=statuses, slowest_ack_s=slowest)
    report.emit()
    assert statuses == [200] * 20
    assert slowest < 1.0
    assert len(errors) == 20 and all("went wrong" in c.params["text"] for c in errors)
