"""``/classify`` over real HTTP: signed commands in, answers through the fake's response_url."""

from __future__ import annotations

import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.emulator.outbound import RecordedCall
from storage import messages
from tests.bot.conftest import HAM_TEXT, MEMBER, MODERATOR, SPAM_TEXT, Bot, FakeModels

SLACK_ACK_LIMIT_S = 3.0


def _answer(bot: Bot, response_url: str | None, timeout: float = 5.0) -> RecordedCall:
    assert response_url is not None
    return bot.fake.wait_for(
        "response_url",
        where=lambda c: c.path.endswith(response_url.rsplit("/", 1)[-1]),
        timeout=timeout,
    )[0]


def _all_text(blocks: list[dict]) -> str:
    parts = []
    for block in blocks:
        if "text" in block:
            parts.append(block["text"]["text"])
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                parts.append(element["text"])
    return "\n".join(parts)


def _actions(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["type"] == "actions"]


def test_classify_answers_a_known_spam_within_3s_with_the_right_label(bot: Bot) -> None:
    delivery = bot.sender.command(SPAM_TEXT, user_id=MEMBER)
    assert delivery.status == 200
    answer = _answer(bot, delivery.response_url)
    latency = answer.at - delivery.sent_at
    print(
        f"\n/classify over HTTP: ack {delivery.elapsed_s * 1000:.1f} ms, "
        f"answer {latency * 1000:.1f} ms"
    )
    assert delivery.elapsed_s < SLACK_ACK_LIMIT_S
    assert latency < SLACK_ACK_LIMIT_S
    assert answer.params["response_type"] == "ephemeral"
    text = _all_text(answer.params["blocks"])
    assert "*spam*: *Spam* · 97% · model v3" in text
    assert "*sentiment*: *Neutral* · 97% · model v5" in text
    # A member gets no label controls, only "Why?" on each result (theirs to ask).
    assert [
        (c["block_id"], [e["value"] for e in c["elements"]])
        for c in _actions(answer.params["blocks"])
    ] == [("why:1", [f"1:{MEMBER}"]), ("why:2", [f"2:{MEMBER}"])]


def test_classify_stores_one_prediction_per_task_with_the_text(bot: Bot) -> None:
    delivery = bot.sender.command(HAM_TEXT, user_id=MEMBER)
    _answer(bot, delivery.response_url)
    bot.settle()
    assert bot.counts()["predictions"] == 2
    with bot.database.begin() as session:
        stored = [messages.get_prediction(session=session, prediction_id=i) for i in (1, 2)]
    assert {(p.task, p.label, p.model_version) for p in stored} == {
        ("spam", "ham", "3"),
        ("sentiment", "neutral", "5"),
    }
    assert all(p.text == HAM_TEXT and p.message_id is None for p in stored)


def test_moderators_get_a_correct_button_and_a_relabel_select_per_task(bot: Bot) -> None:
    delivery = bot.sender.command("I love it", user_id=MODERATOR)
    blocks = _answer(bot, delivery.response_url).params["blocks"]
    controls = _actions(blocks)
    assert [c["block_id"] for c in controls] == ["label:1", "label:2"]
    spam_button, spam_select, why = controls[0]["elements"]
    assert (why["action_id"], why["value"]) == ("bertbot_why", f"1:{MODERATOR}")
    assert spam_button["text"]["text"] == "✓ Correct" and spam_button["value"] == "ham"
    assert [o["value"] for o in spam_select["options"]] == ["spam"]
    sentiment_select = controls[1]["elements"][1]
    assert [o["value"] for o in sentiment_select["options"]] == ["negative", "neutral"]


def test_a_task_prefix_limits_the_answer_to_that_task(bot: Bot) -> None:
    delivery = bot.sender.command("sentiment: I hate mondays", user_id=MEMBER)
    text = _all_text(_answer(bot, delivery.response_url).params["blocks"])
    assert "*sentiment*: *Negative*" in text and "*spam*" not in text
    assert "I hate mondays" in text and "sentiment:" not in text
    bot.settle()
    assert bot.counts()["predictions"] == 1


def test_empty_text_gets_usage_help_in_the_ack_and_stores_nothing(bot: Bot) -> None:
    delivery = bot.sender.command("   ", user_id=MEMBER)
    assert delivery.status == 200
    body = delivery.json()
    assert body["response_type"] == "ephemeral"
    assert "Usage: `/classify <text>`" in body["text"]
    assert "`/classify sentiment: <text>`" in body["text"]
    bot.settle()
    assert bot.counts()["predictions"] == 0
    assert bot.fake.calls("response_url") == []


def test_over_long_text_says_it_was_truncated_for_the_model(bot: Bot) -> None:
    delivery = bot.sender.command("word " * 100, user_id=MEMBER)
    text = _all_text(_answer(bot, delivery.response_url).params["blocks"])
    assert "truncated for the model" in text
    assert "102 word pieces" in text


def test_user_text_is_escaped_in_the_answer(bot: Bot) -> None:
    # Typed "<!channel> free & <https://x.test|prize>": Slack escapes &, < and > in
    # command text; the bot decodes it and escapes it again for display (no live mention).
    typed = "&lt;!channel&gt; free &amp; &lt;https://x.test|prize&gt;"
    delivery = bot.sender.command(typed, user_id=MEMBER)
    text = _all_text(_answer(bot, delivery.response_url).params["blocks"])
    assert "&lt;!channel&gt; free &amp; &lt;https://x.test|prize&gt;" in text
    assert "<!channel>" not in text


def test_a_task_without_a_production_model_says_so(bot: Bot, models: FakeModels) -> None:
    del models.models["sentiment"]
    delivery = bot.sender.command(HAM_TEXT, user_id=MEMBER)
    text = _all_text(_answer(bot, delivery.response_url).params["blocks"])
    assert "*sentiment*: no production model yet" in text
    assert "*spam*: *Not spam*" in text


def test_bad_signature_is_refused_with_401_and_nothing_happens(bot: Bot) -> None:
    delivery = bot.sender.command(SPAM_TEXT, user_id=MODERATOR, bad_signature=True)
    assert delivery.status == 401
    bot.settle()
    time.sleep(0.2)
    assert bot.fake.calls("response_url") == []
    assert bot.counts() == {
        "events": 0,
        "messages": 0,
        "predictions": 0,
        "annotations": 0,
        "audit": 0,
    }


def test_a_timestamp_older_than_5_minutes_is_refused_with_401(bot: Bot) -> None:
    six_minutes_ago = int(time.time()) - 6 * 60
    delivery = bot.sender.command(SPAM_TEXT, user_id=MODERATOR, timestamp=six_minutes_ago)
    assert delivery.status == 401
    bot.settle()
    time.sleep(0.2)
    assert bot.fake.calls("response_url") == []
    assert bot.counts()["predictions"] == 0


def test_50_concurrent_commands_are_all_answered_within_3s_once_each(
    bot: Bot, models: FakeModels
) -> None:
    for model in models.models.values():
        model.delay_s = 0.02  # each model call costs 20 ms, whatever its batch
    texts = [f"{'free prize' if i % 2 else 'lunch at noon'} number {i}" for i in range(50)]
    with ThreadPoolExecutor(50) as pool:
        deliveries = list(pool.map(lambda t: bot.sender.command(t, user_id=MEMBER), texts))
    assert [d.status for d in deliveries] == [200] * 50
    urls = [d.response_url for d in deliveries]
    assert len(set(urls)) == 50
    answers = bot.fake.wait_for("response_url", 50, timeout=10)
    bot.settle()
    by_url = {}
    for call in bot.fake.calls("response_url"):
        key = call.path.rsplit("/", 1)[-1]
        assert key not in by_url, "a command was answered twice"
        by_url[key] = call
    latencies = []
    for delivery, text in zip(deliveries, texts, strict=True):
        answer = by_url[delivery.response_url.rsplit("/", 1)[-1]]  # type: ignore[union-attr]
        latencies.append(answer.at - delivery.sent_at)
        expected = "*Spam*" if "free" in text else "*Not spam*"
        assert expected in _all_text(answer.params["blocks"])
        assert text.split()[-1] in _all_text(answer.params["blocks"])
    acks = sorted(d.elapsed_s for d in deliveries)
    latencies.sort()
    print(
        f"\n50 concurrent /classify: ack p50 {statistics.median(acks) * 1000:.0f} ms, "
        f"max {acks[-1] * 1000:.0f} ms; answer p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )
    assert len(answers) == 50
    assert acks[-1] < SLACK_ACK_LIMIT_S
    assert latencies[-1] < SLACK_ACK_LIMIT_S
    assert bot.counts()["predictions"] == 100
    # The commands shared model calls (the batcher), yet each got its own text's answer.
    for model in models.models.values():
        assert sum(model.batch_sizes) == 50
        assert model.calls < 40, model.batch_sizes


def test_a_failing_model_gets_a_short_apology_with_a_reference_never_a_traceback(
    bot: Bot, models: FakeModels, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(texts: object) -> None:
        raise RuntimeError("tensor shapes do not match: secret internals")

    models.models["spam"].predict = broken  # type: ignore[method-assign, assignment]
    with caplog.at_level(logging.ERROR, logger="bot.listeners"):
        delivery = bot.sender.command(HAM_TEXT, user_id=MEMBER)
        answer = _answer(bot, delivery.response_url)
        bot.settle()
    assert delivery.status == 200
    text = answer.params["text"]
    assert text.startswith("Sorry, something went wrong on bertbot's side (reference `")
    assert "secret internals" not in text and "Traceback" not in text
    reference = text.split("`")[1]
    [record] = [r for r in caplog.records if reference in r.getMessage()]
    assert "command /classify" in record.getMessage() and record.exc_info is not None
    assert bot.counts()["predictions"] == 0
