"""The fake Slack itself: Web API answers, recording, injected failures, Slack's signing."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.webhook import WebhookClient

from bot.app import make_client
from bot.emulator.inbound import SlackSender, slack_signature
from bot.emulator.outbound import FakeSlack, find_element

TOKEN = "xoxb-fake-test"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=TOKEN, users={"U0ALICE": "alice"}) as running:
        yield running


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return make_client(TOKEN, base_url=fake.api_url)


def test_it_answers_the_bots_methods_with_slack_shaped_json(
    fake: FakeSlack, client: WebClient
) -> None:
    assert client.auth_test()["user_id"] == fake.bot_user_id
    posted = client.chat_postMessage(channel="moderators", text="hi", blocks=[{"type": "divider"}])
    assert posted["channel"] == "C0MODERATORS" and posted["ts"]
    assert posted["message"]["bot_id"] == fake.bot_id
    updated = client.chat_update(channel=posted["channel"], ts=posted["ts"], text="edited")
    assert updated["text"] == "edited"
    assert fake.message("moderators", posted["ts"]).text == "edited"  # type: ignore[union-attr]
    assert client.chat_postEphemeral(channel="C0GENERAL", user="U0ALICE", text="psst")["message_ts"]
    view = {"type": "modal", "title": {"type": "plain_text", "text": "x"}, "blocks": []}
    opened = client.views_open(trigger_id="1.2.3", view=view)["view"]
    assert opened["id"].startswith("V") and opened["type"] == "modal"
    assert client.views_update(view_id=opened["id"], view=view)["view"]["id"] == opened["id"]
    assert client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": []})["ok"]
    assert client.reactions_add(channel="C0GENERAL", timestamp=posted["ts"], name="eyes")["ok"]
    assert client.users_info(user="U0ALICE")["user"]["name"] == "alice"
    link = client.chat_getPermalink(channel="C0GENERAL", message_ts="1700000000.000100")
    assert link["permalink"].endswith("/archives/C0GENERAL/p1700000000000100")


def test_it_records_every_call_with_params_and_authorization(
    fake: FakeSlack, client: WebClient
) -> None:
    client.chat_postMessage(channel="C0GENERAL", text="hello", blocks=[{"type": "divider"}])
    [call] = fake.calls("chat.postMessage")
    assert call.headers["authorization"] == f"Bearer {TOKEN}" and call.token == TOKEN
    assert call.params["blocks"] == [{"type": "divider"}]  # JSON fields come back decoded
    assert call.status == 200 and call.ok


def test_slack_errors_look_like_slacks(fake: FakeSlack, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("chat.scheduleMessage", json={"channel": "C0GENERAL"})
    assert unknown.value.response["error"] == "unknown_method"
    with pytest.raises(SlackApiError) as bad_token:
        WebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert bad_token.value.response["error"] == "invalid_auth"
    with pytest.raises(SlackApiError) as no_channel:
        client.chat_postMessage(channel="no-such-channel", text="x")
    assert no_channel.value.response["error"] == "channel_not_found"
    with pytest.raises(SlackApiError) as again:
        for _ in range(2):
            client.reactions_add(channel="C0GENERAL", timestamp="1.2", name="eyes")
    assert again.value.response["error"] == "already_reacted"
    with pytest.raises(SlackApiError):
        client.users_info(user="U0NOBODY")


def test_a_429_carries_retry_after_and_the_client_waits_it_out(
    fake: FakeSlack, client: WebClient
) -> None:
    fake.fail_next("chat.postMessage", status=429, retry_after=1)
    started = time.monotonic()
    assert client.chat_postMessage(channel="C0GENERAL", text="x")["ok"]
    first, second = fake.calls("chat.postMessage")
    assert (first.status, first.response["error"], second.status) == (429, "ratelimited", 200)
    assert time.monotonic() - started >= 1.0


def test_5xx_answers_are_injected_for_the_next_n_calls(fake: FakeSlack) -> None:
    fake.fail_next("users.info", times=2, status=500)
    plain = WebClient(token=TOKEN, base_url=fake.api_url)
    for _ in range(2):
        with pytest.raises(SlackApiError):
            plain.users_info(user="U0ALICE")
    assert plain.users_info(user="U0ALICE")["ok"]
    assert [c.status for c in fake.calls("users.info")] == [500, 500, 200]


def test_response_urls_record_what_is_posted(fake: FakeSlack) -> None:
    url = fake.new_response_url()
    assert WebhookClient(url).send(text="done", response_type="ephemeral").status_code == 200
    assert fake.responses(url) == [{"text": "done", "response_type": "ephemeral"}]
    assert WebhookClient(fake.base_url + "/response_url/unknown").send(text="x").status_code == 404


def test_wait_for_blocks_until_calls_arrive_and_times_out_clearly(
    fake: FakeSlack, client: WebClient
) -> None:
    threading.Timer(0.1, lambda: client.auth_test()).start()
    assert fake.wait_for("auth.test", timeout=5)[0].ok
    with pytest.raises(TimeoutError, match="0 of 1 views.open"):
        fake.wait_for("views.open", timeout=0.1)


class _Recorder:
    """A tiny HTTP endpoint standing in for the bot, to look at what the sender sends."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/slack/events"


@pytest.fixture
def recorder() -> Iterator[_Recorder]:
    running = _Recorder()
    yield running
    running.server.shutdown()
    running.server.server_close()


def test_the_sender_signs_exactly_like_slack(recorder: _Recorder, fake: FakeSlack) -> None:
    sender = SlackSender(recorder.url, "s3cret", fake=fake)
    sender.command("hello world", user_id="U0ALICE")
    sender.event(sender.message_event("hi", user_id="U0ALICE"), retry_num=2, retry_reason="timeout")
    sender.block_actions(
        user_id="U0ALICE",
        actions=[{"action_id": "a", "block_id": "b", "type": "button"}],
        channel_id="C1",
    )
    verifier = SignatureVerifier("s3cret")
    for headers, body in recorder.received:
        assert verifier.is_valid(
            body, headers["x-slack-request-timestamp"], headers["x-slack-signature"]
        )
    (command_headers, command), (event_headers, event), (_, action) = recorder.received
    assert command_headers["content-type"] == "application/x-www-form-urlencoded"
    form = dict(urllib.parse.parse_qsl(command.decode()))
    assert form["command"] == "/classify" and form["text"] == "hello world"
    assert form["response_url"].startswith(fake.base_url + "/response_url/")
    assert {"token", "team_id", "channel_id", "user_id", "user_name", "trigger_id"} <= set(form)
    envelope = json.loads(event)
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    assert envelope["event"]["type"] == "message"
    assert (event_headers["x-slack-retry-num"], event_headers["x-slack-retry-reason"]) == (
        "2",
        "timeout",
    )
    payload = json.loads(dict(urllib.parse.parse_qsl(action.decode()))["payload"])
    assert payload["type"] == "block_actions" and payload["user"]["id"] == "U0ALICE"
    assert payload["container"]["channel_id"] == "C1" and payload["response_url"]


def test_bad_signatures_and_old_timestamps_fail_slacks_own_verifier(recorder: _Recorder) -> None:
    sender = SlackSender(recorder.url, "s3cret")
    sender.command("x", user_id="U0ALICE", bad_signature=True)
    sender.command("x", user_id="U0ALICE", timestamp=int(time.time()) - 6 * 60)
    verifier = SignatureVerifier("s3cret")
    results = [
        verifier.is_valid(body, h["x-slack-request-timestamp"], h["x-slack-signature"])
        for h, body in recorder.received
    ]
    assert results == [False, False]


def test_signature_format() -> None:
    signature = slack_signature("secret", "1531420618", b"a=b")
    assert signature.startswith("v0=") and len(signature) == 3 + 64


def test_find_element_finds_buttons_by_value_and_selects_by_option() -> None:
    blocks = [
        {
            "type": "actions",
            "block_id": "label:1",
            "elements": [
                {"type": "button", "action_id": "ok", "value": "spam"},
                {"type": "static_select", "action_id": "pick", "options": [{"value": "ham"}]},
            ],
        }
    ]
    assert find_element(blocks, "ok")[0] == "label:1"
    assert find_element(blocks, "pick", "ham")[1]["type"] == "static_select"
    with pytest.raises(LookupError):
        find_element(blocks, "pick", "eggs")


def test_a_long_retry_after_fails_at_once_instead_of_blocking_a_listener_thread(
    fake: FakeSlack, client: WebClient
) -> None:
    assert any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers)
    fake.fail_next("chat.postMessage", status=429, retry_after=60)
    started = time.monotonic()
    with pytest.raises(SlackApiError) as limited:
        client.chat_postMessage(channel="C0GENERAL", text="x")
    assert limited.value.response.status_code == 429
    assert time.monotonic() - started < 1.0
    assert len(fake.calls("chat.postMessage")) == 1
