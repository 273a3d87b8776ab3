"""Oversized bodies, and texts built to break storage or Slack formatting.

* A body over ``bot.transport.http.MAX_BODY_BYTES`` (1 MiB) is refused with 413 from its headers
  alone (the client has sent a sliver of a declared 50 MB); chunked bodies too; a body of
  exactly 1 MiB is served; the server keeps serving afterwards.
* Texts with SQL, HTML, mrkdwn control characters and Slack's special mentions, RTL and
  zero-width marks, emoji, NUL and a lone surrogate go through a channel message (stored,
  classified, alerted), ``/classify`` and a moderator's label, on SQLite and PostgreSQL:
  each is stored verbatim, except NUL and lone surrogates, which both backends store as
  U+FFFD (PostgreSQL text cannot hold NUL; see ``storage.texts.storable_text``); and it is
  shown escaped (``&amp; &lt; &gt;``) in every Block Kit message, so ``<!channel>`` or a
  forged link never becomes live.
"""

from __future__ import annotations

import json
import re
import socket
import time
from typing import Any

import pytest
from sqlalchemy import select

from bot.listeners.slack_text import to_plain
from bot.transport.http import MAX_BODY_BYTES
from bot.ui.blocks import escape
from storage.db import Database
from storage.models import Annotation, Message, Prediction
from storage.texts import storable_text, text_hash
from tests.bot.conftest import GENERAL, MEMBER, MODERATOR, Bot
from tests.reliability.conftest import BotFactory, Report, posted_to

HOSTILE_TEXTS = {
    "sql": "'; DROP TABLE messages; -- Robert'); DELETE FROM annotations WHERE '1'='1",
    "html": '<script>alert("x")</script><img src=x onerror=alert(1)><b>bold</b>',
    "mrkdwn": "<!channel> <!here> <!everyone> <@U0ADMIN01> <#C0GENERAL> <https://evil.example|bank>",
    "entities": "&amp; &lt;b&gt; & < > &#60; AT&T",
    "rtl": "\u202egnp.exe\u202c \u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627 \u200f!",
    "zero_width": "f\u200br\u200ce\u200de\ufeff prize\u2060",
    "emoji": "\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7",
    "nul": "before\x00after\x00",
    "lone_surrogate": "half an emoji \ud83d here",
    "controls": "bell\x07 tab\t cr\r esc\x1b[31m del\x7f",
    "multiline": "line one\n> fake quote\n```code```\n*bold* _it_ ~s~",
}
# Slack's own markup, as it arrives on the wire: mentions, a channel, a labelled link.
WIRE_MARKUP = "<!channel> <!here> <@U0ADMIN01> <#C0GENERAL|general> <https://evil.example|bank>"
# The fake spam model alerts on "free": every text below is alerted, so its alert is checked.
TRIGGER = " free"
_ENTITY = re.compile(r"&(amp|lt|gt);")


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def _quoted_lines(blocks: list[dict[str, Any]]) -> list[str]:
    """The lines of every ``> `` block quote in the blocks' mrkdwn texts."""
    lines = []
    for block in blocks:
        text = (block.get("text") or {}).get("text") or ""
        lines += [line[2:] for line in text.split("\n") if line.startswith("> ")]
    return lines


def _assert_shown_escaped(blocks: list[dict[str, Any]], original: str) -> None:
    quoted = _quoted_lines(blocks)
    assert quoted, f"the text is not quoted in {blocks}"
    for line in quoted:
        assert "<" not in line and ">" not in line, f"live markup in {line!r}"
        assert "&" not in _ENTITY.sub("", line), f"an unescaped & in {line!r}"
    shown = "\n".join(_unescape(line) for line in quoted)
    assert shown == "\n".join(original.splitlines() or [""]), "not shown verbatim"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _one(database: Database, query: Any) -> Any:
    with database.begin() as session:
        return session.execute(query).scalar_one()


def _cases() -> dict[str, tuple[str, str]]:
    """Name -> (text as Slack sends it, text as the user typed it).

    Slack escapes ``& < >`` in what users type, and writes mentions and links as ``<...>``
    control sequences; the bot stores the text as typed (``bot.listeners.slack_text.to_plain``).
    """
    cases = {
        name: (escape(typed + TRIGGER), typed + TRIGGER) for name, typed in HOSTILE_TEXTS.items()
    }
    wire = WIRE_MARKUP + TRIGGER
    cases["slack_markup"] = (wire, to_plain(wire))
    return cases


def test_hostile_texts_are_stored_verbatim_and_shown_escaped(
    any_database: Database, serve_bot: BotFactory, report: Report
) -> None:
    bot = serve_bot(any_database)
    replaced = classified = 0
    cases = _cases()
    assert cases["slack_markup"][1] == "@channel @here @U0ADMIN01 #general bank free"
    for name, (wire, text) in cases.items():
        expected = storable_text(text)
        replaced += expected != text

        # A channel message: stored, classified, alerted.
        alerts_before = len(bot.fake.calls("chat.postMessage"))
        event = bot.sender.message_event(wire, user_id=MEMBER)
        assert bot.sender.event(event).status == 200, name
        [*_, alert] = bot.fake.wait_for("chat.postMessage", alerts_before + 1)
        bot.settle()
        stored = _one(any_database, select(Message.text).where(Message.ts == event["ts"]))
        assert stored == expected, name
        _assert_shown_escaped(alert.params["blocks"], text)

        # A moderator labels it from the alert: the annotation keeps the text too.
        posted = bot.fake.message(alert.params["channel"], alert.response["ts"])
        assert posted is not None
        message = {"type": "message", "ts": posted.ts, "text": posted.text, "blocks": posted.blocks}
        updates_before = len(bot.fake.calls("chat.update"))
        clicked = bot.sender.click(
            user_id=MODERATOR,
            blocks=posted.blocks,
            action_id="bertbot_label:spam",
            channel_id=posted.channel,
            message=message,
        )
        assert clicked.status == 200
        [*_, update] = bot.fake.wait_for("chat.update", updates_before + 1)
        bot.settle()
        _assert_shown_escaped(update.params["blocks"], text)
        annotated = _one(
            any_database,
            select(Annotation.text).order_by(Annotation.id.desc()).limit(1),
        )
        assert annotated == expected, name

        # /classify: answered privately, the text quoted escaped, the prediction keeps it.
        # (A form-encoded slash command is UTF-8: it cannot carry a lone surrogate.)
        if not _utf8(wire):
            continue
        classified += 1
        delivery = bot.sender.command(wire, user_id=MODERATOR)
        assert delivery.status == 200
        assert delivery.response_url is not None
        [answer] = bot.fake.wait_for("response_url", where=posted_to(delivery.response_url))
        bot.settle()
        _assert_shown_escaped(answer.params["blocks"], text.strip())
        predicted = _one(
            any_database,
            select(Prediction.text)
            .where(Prediction.text.is_not(None))
            .order_by(Prediction.id.desc())
            .limit(1),
        )
        assert predicted == storable_text(text.strip()), name

    counts = bot.counts()
    report.add(
        backend=any_database.dialect,
        texts=len(cases),
        requests_sent=2 * len(cases) + classified,
        texts_with_unstorable_characters_replaced=replaced,
        messages_expected=len(cases),
        messages_found=counts["messages"],
        annotations_expected=len(cases),
        annotations_found=counts["annotations"],
        predictions_expected=2 * (len(cases) + classified),
        predictions_found=counts["predictions"],
    )
    report.emit()
    assert counts["messages"] == counts["annotations"] == len(cases)
    # Two tasks, for each message and each /classify.
    assert counts["predictions"] == 2 * (len(cases) + classified)


# Oversized bodies ---------------------------------------------------------------------------


def _raw_request(bot: Bot, head: bytes, body_parts: list[bytes]) -> tuple[int, int, float]:
    """Send a request by hand; return (status, body bytes sent before the answer, seconds)."""
    started = time.monotonic()
    sent = 0
    with socket.create_connection((bot.server.host, bot.server.port), timeout=10) as sock:
        sock.sendall(head)
        for part in body_parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed: stop sending, as a client would
            sent += len(part)
        answer = b""
        while b"\r\n" not in answer:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:  # closed with our unread bytes: the answer is lost
                break
            if not chunk:
                break
            answer += chunk
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, sent, time.monotonic() - started


def _health(bot: Bot) -> int:
    status, _, _ = _raw_request(
        bot, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", []
    )
    return status


def test_oversized_bodies_are_refused_before_they_are_read(
    sqlite_database: Database, serve_bot: BotFactory, report: Report
) -> None:
    bot = serve_bot(sqlite_database)
    declared = 50 * 1024 * 1024
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    big_status, big_sent, big_s = _raw_request(bot, head, [b"x" * 65536])

    chunk = b"y" * 65536
    chunked_head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    chunked_status, chunked_sent, _ = _raw_request(bot, chunked_head, [framed] * 40)  # 2.5 MB

    # Exactly the limit is served; one byte more is not.
    padding = "p" * (MAX_BODY_BYTES - len(json.dumps({"type": "url_verification", "x": ""})))
    at_limit = json.dumps({"type": "url_verification", "x": padding}).encode()
    assert len(at_limit) == MAX_BODY_BYTES
    limit_status = bot.sender.post(at_limit, "application/json").status
    over_head = head.replace(str(declared).encode(), str(MAX_BODY_BYTES + 1).encode())
    over_status, _, _ = _raw_request(bot, over_head, [at_limit + b" "])
    health = _health(bot)
    report.add(
        requests_sent=5,
        declared_bytes=declared,
        body_bytes_sent_before_413=big_sent,
        seconds_to_413=round(big_s, 3),
        chunked_bytes_sent=chunked_sent,
        statuses={
            "declared_50MB": big_status,
            "chunked_2.5MB": chunked_status,
            "exactly_1MiB": limit_status,
            "1MiB_plus_1": over_status,
            "healthz_after": health,
        },
    )
    report.emit()

    assert big_status == 413 and big_s < 2.0
    assert big_sent < declared // 100
    assert chunked_status == 413
    assert limit_status != 413 and limit_status < 500  # read in full (url_verification: 200)
    assert over_status == 413
    assert health == 200
    assert bot.counts()["events"] == 0


@pytest.mark.parametrize("text", ["x" * 40_000, "\U0001f600" * 20_000])
def test_slacks_longest_messages_fit_under_the_limit(
    sqlite_database: Database, serve_bot: BotFactory, text: str
) -> None:
    """Slack truncates message text at 40,000 characters: such a message is still served."""
    bot = serve_bot(sqlite_database)
    event = bot.sender.message_event(text, user_id=MEMBER, channel_id=GENERAL)
    assert bot.sender.event(event).status == 200
    bot.settle()
    assert _one(sqlite_database, select(Message.text)) == text


def test_unstorable_characters_are_replaced_and_hashed_as_stored() -> None:
    assert storable_text("a\x00b\ud83dc") == "a\ufffdb\ufffdc"
    assert storable_text("plain <b>&amp;</b> \U0001f44d") == "plain <b>&amp;</b> \U0001f44d"
    # The identity of a labelled text is that of the text the database keeps.
    assert text_hash("a\x00b") == text_hash("a\ufffdb")
