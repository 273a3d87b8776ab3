"""Request checks: what Bolt would choke on is refused, what Slack sends is not, and the
body of a request Slack did not sign never reaches a log."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

import pytest
from slack_bolt import App
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.emulator.inbound import slack_signature
from bot.transport.request_checks import (
    MAX_FORM_FIELDS,
    MAX_JSON_DEPTH,
    BadRequest,
    Unverified,
    bolt_verification,
    checked_request,
    envelope_problem,
    json_too_deep,
    request_kind,
)
from tests.bot.conftest import MEMBER, MODERATOR, SIGNING_SECRET, Bot

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # found by the reliability fuzzing: Bolt reads body.get("event", {}).get(...)
        ({"event": None}, "event is null"),
        ({"type": "event_callback", "event_id": "Ev1", "event": None}, "event is null"),
        ({"type": "view_submission", "view": None}, "view is null"),
        (
            {"type": "event_callback", "event": {"type": "tokens_revoked", "tokens": None}},
            "event: tokens is null",
        ),
        ({"event": "x"}, "event: the body is not an object"),
        ({"actions": [1]}, "actions: the body is not an object"),
        ({"command": 7}, "command is not a string"),
    ],
)
def test_bodies_bolt_cannot_read_are_refused(body: dict[str, Any], problem: str) -> None:
    assert envelope_problem(body) == problem


@pytest.mark.parametrize(
    "body",
    [
        {
            "type": "event_callback",
            "event_id": "Ev1",
            "event": {"type": "message", "thread_ts": None},
        },
        {"type": "block_actions", "user": {"id": "U1"}, "message": None, "state": None},
        {"token": "t", "team_id": "T1", "enterprise_id": None, "command": "/classify"},
    ],
)
def test_nulls_slack_does_send_are_accepted(body: dict[str, Any]) -> None:
    assert envelope_problem(body) is None


# --- Bodies Bolt's parsing would choke on: refused with 400 before it parses them ---------


def _nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + "1" * (opener == "[") + closer * depth


def _refusal(body: bytes, headers: dict[str, str]) -> BadRequest:
    with pytest.raises(BadRequest) as refused:
        checked_request(body, "", headers)
    assert refused.value.status == 400
    return refused.value


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        # the request: ~200 KB of "[" made json.loads raise RecursionError (a 500)
        (b"[" * 200_000, JSON),
        (b"{" + b'"a":{' * 100_000, {}),
        (_nested(MAX_JSON_DEPTH + 1).encode(), JSON),
        (('{"event": ' + _nested(MAX_JSON_DEPTH)[:-1] + "}").encode(), JSON),
        (('{"a":' * (MAX_JSON_DEPTH + 1) + "1" + "}" * (MAX_JSON_DEPTH + 1)).encode(), JSON),
    ],
)
def test_json_nested_too_deeply_is_refused(body: bytes, headers: dict[str, str]) -> None:
    assert "nested too deeply" in _refusal(body, headers).reason


def test_the_depth_limit_counts_arrays_and_objects_but_not_strings() -> None:
    assert not json_too_deep(_nested(MAX_JSON_DEPTH))
    assert json_too_deep(_nested(MAX_JSON_DEPTH + 1))
    assert json_too_deep("[{" * 33)
    assert not json_too_deep(json.dumps(["[" * 500, "{" * 500, '\\"[' * 500]))
    # an unterminated string stops the scan: a parser fails there, no deeper
    assert not json_too_deep('["' + "[" * 500)


@pytest.mark.parametrize(
    "body",
    [
        '{"a":' * MAX_JSON_DEPTH + "1" + "}" * MAX_JSON_DEPTH,
        '{"type": "url_verification", "a": ' + _nested(MAX_JSON_DEPTH - 1) + "}",
        # brackets inside strings (a message full of them) do not nest anything
        json.dumps({"type": "url_verification", "text": "[" * 5000 + '\\"{' * 500}),
    ],
)
def test_json_just_under_the_depth_limit_is_parsed(body: str) -> None:
    assert checked_request(body.encode(), "", JSON).body


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"type": "event_callback", "text": "\xff"}', JSON),
        (b"\xc3\x28", FORM),
        (b"command=/classify&text=\xe2\x82", FORM),
        # percent-encoded bytes that are not UTF-8 (parse_qsl would replace them silently)
        (b"command=%2Fclassify&text=%ff%fe&user_id=U1", FORM),
        (b"payload=%7B%22type%22%3A%22%C3%28%22%7D", FORM),
    ],
)
def test_bodies_that_are_not_utf8_are_refused(body: bytes, headers: dict[str, str]) -> None:
    assert "not UTF-8" in _refusal(body, headers).reason


@pytest.mark.parametrize(
    "body",
    [
        "&".join(f"f{i}=x" for i in range(MAX_FORM_FIELDS + 1)),
        "a&" * 300_000,
        "payload=" + urllib.parse.quote(_nested(MAX_JSON_DEPTH + 1)),
        "payload=" + "%5B" * 200_000,
        "text=x&payload=" + urllib.parse.quote('{"view":' * 5000),
    ],
)
def test_huge_forms_are_refused(body: str) -> None:
    reason = _refusal(body.encode(), FORM).reason
    assert "fields" in reason or "nested too deeply" in reason


def _slash_command_form() -> bytes:
    """A /classify as Slack posts it (every field Slack sends)."""
    return urllib.parse.urlencode(
        {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": "T0001",
            "team_domain": "example",
            "enterprise_id": "E0001",
            "enterprise_name": "Globular Construct Inc",
            "channel_id": "C2147483705",
            "channel_name": "test",
            "user_id": MODERATOR,
            "user_name": "Steve",
            "command": "/classify",
            "text": 'spam: [[[WIN]]] a {FREE} prize \u2014 "now" 100% & more',
            "api_app_id": "A123456",
            "is_enterprise_install": "false",
            "response_url": "https://hooks.slack.com/commands/1234/5678",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }
    ).encode()


def _rich_text_event() -> bytes:
    """A message event as Slack posts it, with the deepest blocks it sends (a quoted list)."""
    styled = {"type": "text", "text": "WIN [now]", "style": {"bold": True, "italic": True}}
    section = {"type": "rich_text_section", "elements": [styled, {"type": "emoji", "name": "x"}]}
    listed = {"type": "rich_text_list", "style": "bullet", "indent": 0, "elements": [section]}
    quote = {"type": "rich_text_quote", "elements": [styled]}
    message = {
        "type": "message",
        "user": MEMBER,
        "text": "WIN a FREE prize",
        "ts": "1700000000.000100",
        "channel": "C0GENERAL",
        "channel_type": "channel",
        "event_ts": "1700000000.000100",
        "blocks": [{"type": "rich_text", "block_id": "b1", "elements": [listed, quote]}],
        "attachments": [{"blocks": [{"type": "rich_text", "elements": [listed]}]}],
    }
    return json.dumps(
        {
            "token": "t",
            "team_id": "T0LOCAL00",
            "api_app_id": "A0BERTBOT",
            "type": "event_callback",
            "event_id": "Ev1",
            "event_time": 1700000000,
            "event": {
                "type": "message",
                "subtype": "message_changed",
                "channel": "C0GENERAL",
                "message": message,
                "previous_message": message,
                "ts": "1700000000.000200",
            },
            "authorizations": [{"team_id": "T0LOCAL00", "user_id": "U0BERTBOT", "is_bot": True}],
        }
    ).encode()


def _view_submission_form() -> bytes:
    payload = {
        "type": "view_submission",
        "user": {"id": MODERATOR},
        "team": {"id": "T0LOCAL00"},
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": "bertbot_label_modal",
            "blocks": [{"type": "input", "element": {"type": "static_select", "options": []}}],
            "state": {"values": {"b": {"a": {"type": "static_select", "selected_option": None}}}},
        },
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (_slash_command_form(), FORM),
        (_rich_text_event(), JSON),
        (_rich_text_event(), {"content-type": "application/json; charset=utf-8"}),
        (_view_submission_form(), FORM),
        (b"ssl_check=1&token=x", FORM),
    ],
)
def test_what_slack_sends_is_accepted(body: bytes, headers: dict[str, str]) -> None:
    now = str(int(time.time()))
    signed = headers | {
        "x-slack-request-timestamp": now,
        "x-slack-signature": slack_signature(SIGNING_SECRET, now, body),
    }
    request = checked_request(body, "", signed, SignatureVerifier(SIGNING_SECRET))
    assert request.body


# --- Signatures: checked before Bolt, with Bolt's verifier -------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-slack-request-timestamp": "{now}"},
        {"x-slack-request-timestamp": "{now}", "x-slack-signature": ""},
        {"x-slack-request-timestamp": "{now}", "x-slack-signature": "{wrong}"},
        {"x-slack-request-timestamp": "{old}", "x-slack-signature": "{old_right}"},
    ],
)
def test_unsigned_requests_are_refused_before_their_envelope_is_read(
    headers: dict[str, str],
) -> None:
    body = b'{"event": null}'  # an envelope problem too: the signature is checked first
    now, old = str(int(time.time())), str(int(time.time()) - 301)
    values = {
        "{now}": now,
        "{old}": old,
        "{wrong}": slack_signature("not-" + SIGNING_SECRET, now, body),
        "{old_right}": slack_signature(SIGNING_SECRET, old, body),
    }
    filled = JSON | {name: values.get(value, value) for name, value in headers.items()}
    with pytest.raises(Unverified) as refused:
        checked_request(body, "", filled, SignatureVerifier(SIGNING_SECRET))
    assert refused.value.status == 401


def test_bolts_own_invalid_signature_log_shows_no_body(caplog: pytest.LogCaptureFixture) -> None:
    """The backstop: a request that passed the handler's check but not Bolt's (its five
    minutes ran out in between) is logged by Bolt with its body redacted."""
    app = App(signing_secret=SIGNING_SECRET, token="xoxb-test", token_verification_enabled=False)
    verification = bolt_verification(app)
    assert verification is not None
    marker = f"marker-{uuid.uuid4().hex}"
    request = BoltRequest(
        body=json.dumps({"text": marker}),
        headers={"x-slack-request-timestamp": "1", "x-slack-signature": "v0=00"},
    )
    with caplog.at_level(logging.DEBUG):
        caplog.set_level(logging.DEBUG, logger=verification.logger.name)
        response = verification.process(
            req=request, resp=BoltResponse(status=200), next=lambda: BoltResponse(status=200)
        )
    assert response.status == 401
    bolt_records = [r for r in caplog.records if r.name == verification.logger.name]
    assert bolt_records and "sha256" in bolt_records[0].getMessage()
    assert all(marker not in _everything_in(record) for record in caplog.records)


def _everything_in(record: logging.LogRecord) -> str:
    return " ".join(
        [str(record.msg), repr(record.args), record.getMessage(), record.exc_text or ""]
        + ([logging.Formatter().formatException(record.exc_info)] if record.exc_info else [])
    )


def _marked_requests(marker: str) -> list[tuple[bytes, dict[str, str]]]:
    """20 requests carrying ``marker``, none correctly signed: a wrong secret, no signature,
    garbage, a timestamp past five minutes; as events, commands and interactions."""
    now = int(time.time())
    bodies = [
        (
            json.dumps({"type": "event_callback", "event": {"type": "message", "text": marker}}),
            "application/json",
        ),
        (
            urllib.parse.urlencode({"command": "/classify", "text": marker, "user_id": MODERATOR}),
            "application/x-www-form-urlencoded",
        ),
        (
            urllib.parse.urlencode({"payload": json.dumps({"type": "shortcut", "x": marker})}),
            "application/x-www-form-urlencoded",
        ),
        (f"{marker} " * 50, "text/plain"),
        (json.dumps({"event": None, "text": marker}), "application/json"),
    ]
    requests = []
    for index in range(20):
        text, content_type = bodies[index % len(bodies)]
        body = text.encode()
        kind = index % 4
        if kind == 0:
            headers = {
                "X-Slack-Request-Timestamp": str(now),
                "X-Slack-Signature": slack_signature("not-" + SIGNING_SECRET, str(now), body),
            }
        elif kind == 1:
            headers = {}
        elif kind == 2:
            headers = {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + marker}
        else:
            old = str(now - 600)
            headers = {
                "X-Slack-Request-Timestamp": old,
                "X-Slack-Signature": slack_signature(SIGNING_SECRET, old, body),
            }
        requests.append((body, headers | {"Content-Type": content_type}))
    return requests


class _AllRecords(logging.Handler):
    """Every record that reaches the root logger, whatever its level."""

    def __init__(self) -> None:
        super().__init__(level=0)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.parametrize("level", [logging.DEBUG, logging.INFO])
def test_unsigned_request_bodies_reach_no_log_record(
    bot: Bot, caplog: pytest.LogCaptureFixture, level: int
) -> None:
    marker = f"marker-{uuid.uuid4().hex}"
    for name in (None, "slack_bolt", "slack_bolt.RequestVerification", "bot", "bot.listeners"):
        caplog.set_level(level, logger=name)  # restored after the test
    # Bolt's verification logger lets its "Invalid request signature ... body" line through.
    assert logging.getLogger("slack_bolt.RequestVerification").isEnabledFor(logging.INFO)
    captured = _AllRecords()
    logging.getLogger().addHandler(captured)
    answers = []
    try:
        for body, headers in _marked_requests(marker):
            request = urllib.request.Request(bot.server.events_url, data=body, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    answers.append((response.status, response.read()))
            except urllib.error.HTTPError as exc:
                answers.append((exc.code, exc.read()))
        bot.settle()
    finally:
        logging.getLogger().removeHandler(captured)

    leaked = [r.getMessage()[:120] for r in captured.records if marker in _everything_in(r)]
    assert not leaked
    assert answers == [(401, b'{"error": "invalid request"}')] * 20
    refusals = [
        r.getMessage() for r in captured.records if r.name == "bot.transport.request_checks"
    ]
    assert len(refusals) == 20 and all("bytes, sha256 " in message for message in refusals)
    assert set(bot.counts().values()) == {0}


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"command": "/classify", "text": "hi", "user_id": MEMBER}, "command"),
        ({"type": "event_callback", "event": {"type": "message"}}, "event"),
        ({"type": "block_actions", "actions": []}, "action"),
        ({"type": "interactive_message"}, "action"),
        ({"type": "view_submission"}, "view"),
        ({"type": "view_closed"}, "view"),
        ({"type": "block_suggestion"}, "options"),
        ({"type": "shortcut"}, "shortcut"),
        ({"type": "message_action"}, "shortcut"),
        ({"type": "url_verification", "challenge": "c"}, "other"),
        ({"ssl_check": "1"}, "other"),
        ({"type": "something_new"}, "other"),
    ],
)
def test_request_kind_names_a_bounded_set_of_kinds(payload: dict[str, Any], kind: str) -> None:
    assert request_kind(payload) == kind
