"""Block Kit builders: pure functions, escaping of user text, label controls."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

from bot.services.alert_outbox import Alert
from bot.services.classification import ClassifyOutcome
from bot.services.predictor import TaskResult
from bot.ui import blocks
from storage.records import MessageRecord
from trainer.serving import Prediction
from trainer.tasks import BUILTIN_TASKS

SPAM = BUILTIN_TASKS["spam"]
SENTIMENT = BUILTIN_TASKS["sentiment"]
HOSTILE = "<!channel> & <https://evil.test|click> > me"


def _prediction(label: str, probabilities: dict[str, float], truncated: bool = False) -> Prediction:
    return Prediction(label, probabilities, "4", 1.0, 300 if truncated else 9, truncated)


def _outcome(text: str = "hello", truncated: bool = False) -> ClassifyOutcome:
    return ClassifyOutcome(
        text,
        (
            TaskResult(SPAM, _prediction("spam", {"ham": 0.1, "spam": 0.9}, truncated), 11),
            TaskResult(
                SENTIMENT,
                _prediction("neutral", {"negative": 0.2, "neutral": 0.5, "positive": 0.3}),
                12,
            ),
        ),
    )


def _texts(built: list[dict]) -> str:
    out = []
    for block in built:
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn")
    return "\n".join(out)


def test_escape_replaces_the_three_control_characters() -> None:
    assert blocks.escape("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert blocks.escape("&amp;") == "&amp;amp;"  # escaped once more: shown as typed


def test_quote_escapes_every_line_and_shortens_long_text() -> None:
    assert blocks.quote("<b>\nc & d") == "> &lt;b&gt;\n> c &amp; d"
    quoted = blocks.quote("x" * 500, limit=20)
    assert quoted.startswith("> ") and quoted.endswith("…") and len(quoted) == 22


def test_user_text_cannot_mention_channels_or_forge_links() -> None:
    for built in (
        blocks.classify_blocks(_outcome(HOSTILE), can_label=True),
        blocks.alert_blocks(_alert(HOSTILE), permalink="https://x.test/p1?a=1&b=<2>"),
    ):
        text = _texts(built)
        assert "<!channel>" not in text and "<https://evil.test" not in text
        assert "&lt;!channel&gt; &amp; &lt;https://evil.test|click&gt; &gt; me" in text


def test_label_titles_read_naturally() -> None:
    assert blocks.label_title(SPAM, "spam") == "Spam"
    assert blocks.label_title(SPAM, "ham") == "Not spam"
    assert blocks.label_title(SENTIMENT, "positive") == "Positive"


def test_classify_blocks_give_moderators_a_correct_button_and_a_relabel_select() -> None:
    built = blocks.classify_blocks(_outcome(), can_label=True)
    controls = [b for b in built if b["type"] == "actions"]
    assert [c["block_id"] for c in controls] == ["label:11", "label:12"]
    button, select, why = controls[0]["elements"]
    assert (why["action_id"], why["value"]) == ("bertbot_why", "11")
    assert button["action_id"] == "bertbot_label:spam" and button["value"] == "spam"
    assert button["text"]["text"] == "✓ Correct"
    assert select["action_id"] == "bertbot_relabel"
    assert [o["value"] for o in select["options"]] == ["ham"]
    assert "*spam*: *Spam* · 90% · model v4" in _texts(built)


def test_classify_blocks_give_members_no_controls() -> None:
    built = blocks.classify_blocks(_outcome(), can_label=False)
    assert [b for b in built if b["type"] == "actions"] == []


def test_classify_blocks_say_when_the_text_was_truncated() -> None:
    assert "truncated for the model" not in _texts(
        blocks.classify_blocks(_outcome(), can_label=False)
    )
    text = _texts(blocks.classify_blocks(_outcome(truncated=True), can_label=False))
    assert "truncated for the model" in text and "300 word pieces" in text


def test_classify_blocks_without_any_model() -> None:
    outcome = ClassifyOutcome("hi", (TaskResult(SPAM, None, None),))
    text = _texts(blocks.classify_blocks(outcome, can_label=True))
    assert "*spam*: no production model yet" in text and "No model is serving yet" in text


def _alert(text: str = "free prize") -> Alert:
    message = MessageRecord(
        7, "T1", "C1", "1700000000.000100", "U1", text, None, datetime.now(UTC), None, None
    )
    return Alert(SPAM, "spam", 0.93, 21, "4", message)


def test_alert_blocks_link_the_message_and_offer_spam_and_not_spam() -> None:
    built = blocks.alert_blocks(_alert(), permalink="https://team.slack.com/archives/C1/p1")
    assert "*Possible spam* (93%) from <@U1> in <#C1>" in built[0]["text"]["text"]
    assert "<https://team.slack.com/archives/C1/p1|View message>" in _texts(built)
    actions = built[-1]
    assert actions["block_id"] == "label:21"
    assert [(e["text"]["text"], e["value"], e.get("style")) for e in actions["elements"]] == [
        ("Spam", "spam", "danger"),
        ("Not spam", "ham", None),
        ("Why?", "21", None),
    ]


def test_alert_blocks_without_a_permalink_name_the_channel_and_ts() -> None:
    assert "message 1700000000.000100 in <#C1>" in _texts(blocks.alert_blocks(_alert()))


def test_with_status_adds_one_status_line_under_the_controls_without_mutating() -> None:
    original = blocks.alert_blocks(_alert())
    frozen = copy.deepcopy(original)
    once = blocks.with_status(original, 21, "Labelled *Spam* by <@U2>")
    assert original == frozen
    assert [b.get("block_id") for b in once][-2:] == ["label:21", "status:21"]
    twice = blocks.with_status(once, 21, "Labelled *Not spam* by <@U3>")
    statuses = [b for b in twice if b.get("block_id") == "status:21"]
    assert len(statuses) == 1 and "Not spam" in statuses[0]["elements"][0]["text"]
    assert len(twice) == len(once)


def test_prediction_ids_are_read_only_from_label_blocks() -> None:
    assert blocks.prediction_id_of("label:42") == 42
    assert blocks.prediction_id_of("status:42") is None
    assert blocks.prediction_id_of("label:4x") is None
    assert blocks.prediction_id_of(None) is None


def test_usage_names_the_tasks() -> None:
    text = blocks.usage_text(["spam", "sentiment"])
    assert "`/classify <text>`" in text and "(spam, sentiment)" in text
    assert "`/classify sentiment: <text>`" in text
