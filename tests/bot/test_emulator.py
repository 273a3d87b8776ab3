"""The local Slack emulator, driven through its Python API and its page's JSON API.

Two bots sit behind it, each served over real HTTP by ``BotHttpServer``: bertbot's own app
(keyword-rule fake models, a migrated SQLite database) for the product flows, and a small
demo Bolt app that exercises the Slack surfaces themselves (ack messages, response_url
replace/delete/in_channel, modals with validation, view_closed, App Home, message shortcuts).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.app import BotConfig, create_app, make_client
from bot.emulator import Emulator, EmulatorWebServer, Entry
from bot.emulator.directory import COMMANDS, MESSAGE_SHORTCUTS, SLACKBOT
from bot.emulator.inbound import LOCAL_SIGNING_SECRET
from bot.emulator.inbound.actions import REQUIRED
from bot.emulator.outbound import LOCAL_BOT_TOKEN
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from bot.transport.http import BotHttpServer
from storage import annotations
from storage.db import Database
from storage.enums import AnnotationSource
from tests.bot.conftest import SPAM_TEXT, FakeModels, TrackingExecutor, eventually
from trainer.tasks import TaskSpec

MEMBER, MODERATOR, ADMIN = "U0EMUMEMBER", "U0EMUMODERATOR", "U0EMUADMIN"


@dataclass
class Served:
    emulator: Emulator
    server: BotHttpServer
    executor: TrackingExecutor

    def settle(self) -> None:
        self.executor.wait_idle()


@pytest.fixture
def bertbot(
    database: Database,
    tasks: dict[str, TaskSpec],
    models: FakeModels,
    alert_policy: AlertPolicy,
) -> Iterator[Served]:
    emulator = Emulator().start()
    roles = Roles.of(
        admins=emulator.ids_with_role("admin"), moderators=emulator.ids_with_role("moderator")
    )
    services = BotServices(database, models, tasks, roles, alerts=alert_policy)
    client = make_client(LOCAL_BOT_TOKEN, base_url=emulator.api_url)
    executor = TrackingExecutor(4)
    app = create_app(
        BotConfig(signing_secret=LOCAL_SIGNING_SECRET), services, client, executor=executor
    )
    with BotHttpServer(app, port=0, threads=4) as server:
        emulator.connect(server.events_url)
        try:
            yield Served(emulator, server, executor)
        finally:
            executor.wait_idle()
    executor.shutdown()
    emulator.stop()


def locate(
    emulator: Emulator, entry: Entry, action_id: str, value: str | None = None
) -> tuple[int, str]:
    """Where the page shows the element (block index, element index or "accessory")."""
    _, blocks = emulator.content(entry)
    for b, block in enumerate(blocks):
        elements = [("accessory", block.get("accessory"))] if block.get("accessory") else []
        elements += [(str(i), e) for i, e in enumerate(block.get("elements") or [])]
        for index, element in elements:
            if not isinstance(element, Mapping) or element.get("action_id") != action_id:
                continue
            if value is None or element.get("value") == value or value in _options(element):
                return b, index
    raise LookupError(action_id)


def _options(element: Mapping[str, Any]) -> list[str]:
    return [o["value"] for o in element.get("options") or []]


def text_of(emulator: Emulator, entry: Entry) -> str:
    text, blocks = emulator.content(entry)
    parts = [text]
    for block in blocks:
        parts.append(str((block.get("text") or {}).get("text") or ""))
        parts += [str(e.get("text") or "") for e in block.get("elements") or []]
    return "\n".join(parts)


# bertbot behind the emulator -------------------------------------------------------------


def test_the_emulator_offers_the_commands_and_shortcuts_of_the_manifest() -> None:
    from tests.bot.test_manifest import MANIFEST, load_block_yaml

    features = load_block_yaml(MANIFEST.read_text(encoding="utf-8"))["features"]
    assert COMMANDS == tuple(c["command"] for c in features["slash_commands"])
    shortcuts = [s for s in features["shortcuts"] if s["type"] == "message"]
    assert MESSAGE_SHORTCUTS == tuple((s["name"], s["callback_id"]) for s in shortcuts)


def test_classify_answers_only_the_member_who_asked(bertbot: Served) -> None:
    emulator = bertbot.emulator
    assert emulator.send(MEMBER, "general", "/classify I love this!").ok
    [answer] = eventually(lambda: emulator.entries("general", MEMBER))
    assert answer.ephemeral_to == MEMBER and answer.author == emulator.slack.bot_user_id
    assert "*sentiment*: *Positive*" in text_of(emulator, answer)
    assert emulator.entries("general", MODERATOR) == []  # nobody else sees it
    state = emulator.state(MEMBER)
    [shown] = state["channels"]["C0GENERAL"]
    assert shown["ephemeral"] and "<b>Positive</b>" in shown["html"]
    # It came back over the response_url issued with the signed slash command.
    assert [c.method for c in emulator.slack.calls() if c.method != "auth.test"] == ["response_url"]


def test_a_spam_alert_reaches_moderators_and_not_spam_stores_a_correction(
    bertbot: Served, database: Database
) -> None:
    emulator = bertbot.emulator
    assert emulator.send(MEMBER, "general", SPAM_TEXT).ok
    [posted] = emulator.entries("general")
    assert emulator.content(posted)[0] == SPAM_TEXT
    [alert] = eventually(lambda: emulator.entries("moderators"), timeout=10)
    assert "*Possible spam*" in text_of(emulator, alert)
    block, element = locate(emulator, alert, "bertbot_label:ham")

    # A member's click is refused privately; nothing is stored.
    assert emulator.click(MEMBER, f"m:{alert.id}", block, element, "bertbot_label:ham").ok
    bertbot.settle()
    [refusal] = eventually(
        lambda: [e for e in emulator.entries("moderators", MEMBER) if e.ephemeral_to]
    )
    assert "moderator" in text_of(emulator, refusal).lower()

    assert emulator.click(MODERATOR, f"m:{alert.id}", block, element, "bertbot_label:ham").ok
    bertbot.settle()
    with database.begin() as session:
        [stored] = annotations.list_annotations(session=session, source=AnnotationSource.CORRECTION)
    assert (stored.task, stored.label, stored.annotator) == ("spam", "ham", MODERATOR)
    status = f"Labelled *Not spam* by <@{MODERATOR}>"
    eventually(lambda: status in text_of(emulator, alert))
    [shown] = emulator.state(ADMIN)["channels"]["C0MODERATORS"]
    assert shown["edited"] and "Labelled <b>Not spam</b> by" in shown["html"]


def test_why_renders_on_alerts_and_classify_answers_and_answers_privately(
    bertbot: Served, models: FakeModels
) -> None:
    emulator = bertbot.emulator
    assert emulator.send(MEMBER, "general", SPAM_TEXT).ok
    [alert] = eventually(lambda: emulator.entries("moderators"), timeout=10)
    [shown] = emulator.state(MODERATOR)["channels"]["C0MODERATORS"]
    assert "Why?" in shown["html"]  # the page renders the button
    block, element = locate(emulator, alert, "bertbot_why")
    assert emulator.click(MODERATOR, f"m:{alert.id}", block, element, "bertbot_why").ok
    bertbot.settle()
    [answer] = eventually(
        lambda: [e for e in emulator.entries("moderators", MODERATOR) if e.ephemeral_to]
    )
    assert answer.ephemeral_to == MODERATOR and "*Why Spam?*" in text_of(emulator, answer)
    assert [e for e in emulator.entries("moderators", ADMIN) if e.ephemeral_to] == []
    assert models.models["spam"].explained == [SPAM_TEXT]

    # The member who ran /classify may ask about their own answer.
    assert emulator.send(MEMBER, "general", "/classify spam: win a prize").ok
    [result] = eventually(
        lambda: [e for e in emulator.entries("general", MEMBER) if e.ephemeral_to]
    )
    block, element = locate(emulator, result, "bertbot_why")
    assert emulator.click(MEMBER, f"m:{result.id}", block, element, "bertbot_why").ok
    bertbot.settle()
    why = eventually(
        lambda: [e for e in emulator.entries("general", MEMBER) if "Why Spam" in e.text]
    )
    assert why[0].ephemeral_to == MEMBER
    assert models.models["spam"].explained == [SPAM_TEXT, "win a prize"]


def test_a_stale_click_is_refused_by_the_emulator(bertbot: Served) -> None:
    emulator = bertbot.emulator
    emulator.send(MEMBER, "general", SPAM_TEXT)
    [alert] = eventually(lambda: emulator.entries("moderators"), timeout=10)
    block, element = locate(emulator, alert, "bertbot_label:ham")
    outcome = emulator.click(MODERATOR, f"m:{alert.id}", block, element, "bertbot_label:other")
    assert not outcome.ok and "changed" in (outcome.error or "")


def test_an_unknown_command_gets_slacks_answer_and_never_reaches_the_bot(
    bertbot: Served,
) -> None:
    emulator = bertbot.emulator
    assert emulator.send(MEMBER, "general", "/nope <b>x</b>").ok
    [notice] = emulator.entries("general", MEMBER)
    assert notice.author == SLACKBOT and "`/nope` is not a valid command" in notice.text
    assert not [e for e in emulator.state(MEMBER)["log"] if e["direction"] == "Slack → bot"]


def test_a_wrong_signing_secret_fails_the_command_as_slack_shows_it(
    database: Database, tasks: dict[str, TaskSpec], models: FakeModels
) -> None:
    with Emulator(signing_secret="not-the-bots-secret") as emulator:
        services = BotServices(database, models, tasks, Roles.of())
        client = make_client(LOCAL_BOT_TOKEN, base_url=emulator.api_url)
        app = create_app(BotConfig(signing_secret=LOCAL_SIGNING_SECRET), services, client)
        with BotHttpServer(app, port=0, threads=2) as server:
            emulator.connect(server.events_url)
            emulator.send(MEMBER, "general", "/classify hello")
        [notice] = emulator.entries("general", MEMBER)
        assert notice.author == SLACKBOT
        assert notice.text == '/classify failed with the error "invalid signature (HTTP 401)"'


def test_unknown_web_api_methods_get_slack_shaped_errors(bertbot: Served) -> None:
    emulator = bertbot.emulator
    client = WebClient(token=LOCAL_BOT_TOKEN, base_url=emulator.api_url)
    with pytest.raises(SlackApiError) as raised:
        client.api_call("chat.scheduleMessage", params={"channel": "general", "text": "x"})
    assert raised.value.response.data == {"ok": False, "error": "unknown_method"}
    [logged] = [e for e in emulator.state(MEMBER)["log"] if e["what"] == "chat.scheduleMessage"]
    assert not logged["ok"] and logged["detail"] == "unknown_method"


# Slack's surfaces, with a small demo app -------------------------------------------------

MODAL = {
    "type": "modal",
    "callback_id": "demo",
    "notify_on_close": True,
    "title": {"type": "plain_text", "text": "Demo"},
    "submit": {"type": "plain_text", "text": "Save"},
    "blocks": [
        {
            "type": "input",
            "block_id": "topic",
            "label": {"type": "plain_text", "text": "Topic"},
            "element": {"type": "plain_text_input", "action_id": "text"},
        },
        {
            "type": "input",
            "block_id": "kind",
            "optional": True,
            "label": {"type": "plain_text", "text": "Kind"},
            "element": {
                "type": "static_select",
                "action_id": "pick",
                "options": [
                    {"text": {"type": "plain_text", "text": "A"}, "value": "a"},
                    {"text": {"type": "plain_text", "text": "B"}, "value": "b"},
                ],
            },
        },
    ],
}


def _buttons(*names: str) -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [
            {"type": "button", "action_id": n, "text": {"type": "plain_text", "text": n}}
            for n in names
        ]
        + [
            {
                "type": "static_select",
                "action_id": "choose",
                "options": [{"text": {"type": "plain_text", "text": "B"}, "value": "b"}],
            }
        ],
    }


class Demo:
    """A Bolt app using each Slack surface once; it records what it received."""

    def __init__(self, client: WebClient) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        app = App(
            signing_secret=LOCAL_SIGNING_SECRET,
            client=client,
            token_verification_enabled=False,
        )
        self.app = app

        @app.command("/demo")
        def demo(ack: Ack, respond: Respond, body: dict[str, Any]) -> None:
            self._got(body)
            ack(text="Working on it…")
            respond(response_type="in_channel", text="Pick", blocks=[_buttons("replace", "delete")])

        @app.action("replace")
        def replace(ack: Ack, respond: Respond, body: dict[str, Any]) -> None:
            ack()
            self._got(body)
            respond(replace_original=True, text=f"Replaced by <@{body['user']['id']}>")

        @app.action("delete")
        def delete(ack: Ack, respond: Respond) -> None:
            ack()
            respond(delete_original=True)

        @app.action("choose")
        def choose(ack: Ack, respond: Respond, action: dict[str, Any]) -> None:
            ack()
            respond(replace_original=False, text=f"You chose {action['selected_option']['value']}")

        @app.command("/bertbot")
        def open_modal(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            client.views_open(trigger_id=body["trigger_id"], view=MODAL)

        @app.view("demo")
        def submitted(
            ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient
        ) -> None:
            self._got(body)
            text = view["state"]["values"]["topic"]["text"]["value"]
            if text == "bad":
                ack(response_action="errors", errors={"topic": "Not that one"})
            elif text == "more":
                ack(
                    response_action="update",
                    view={**MODAL, "title": {"type": "plain_text", "text": "More"}},
                )
            else:
                ack()
                client.chat_postMessage(
                    channel="general", text=f"saved {text} by <@{body['user']['id']}>"
                )

        @app.view_closed("demo")
        def closed(ack: Ack, body: dict[str, Any]) -> None:
            ack()
            self._got(body)

        @app.event("app_home_opened")
        def home(event: dict[str, Any], client: WebClient, body: dict[str, Any]) -> None:
            self._got(body)
            client.views_publish(
                user_id=event["user"],
                view={
                    "type": "home",
                    "blocks": [
                        {
                            "type": "section",
                            "text": {"type": "mrkdwn", "text": "*Welcome*"},
                            "accessory": {
                                "type": "button",
                                "action_id": "home_click",
                                "text": {"type": "plain_text", "text": "Click"},
                            },
                        }
                    ],
                },
            )

        @app.action("home_click")
        def home_click(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            self._got(body)
            client.views_publish(
                user_id=body["user"]["id"],
                view={
                    "type": "home",
                    "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "clicked"}}],
                },
            )

        @app.shortcut({"type": "message_action", "callback_id": "label_with_bertbot"})
        def shortcut(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
            ack()
            self._got(body)
            client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    def _got(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.received.append(body)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                b
                for b in self.received
                if b.get("type") == kind
                or (b.get("event") or {}).get("type") == kind
                or b.get("command") == kind
            ]


@pytest.fixture
def demo() -> Iterator[tuple[Emulator, Demo]]:
    with Emulator(commands=("/demo", "/bertbot")) as emulator:
        demo = Demo(make_client(LOCAL_BOT_TOKEN, base_url=emulator.api_url))
        with BotHttpServer(demo.app, port=0, threads=4) as server:
            emulator.connect(server.events_url)
            yield emulator, demo


def test_acks_and_response_urls_replace_delete_and_reply_as_slack_does(
    demo: tuple[Emulator, Demo],
) -> None:
    emulator, app = demo
    emulator.send(MEMBER, "general", "/demo now & <then>")
    [command] = app.of_type("/demo")
    assert command["text"] == "now &amp; &lt;then&gt;" and command["channel_id"] == "C0GENERAL"
    assert command["response_url"].startswith(emulator.slack.base_url + "/response_url/")
    ack, first = eventually(
        lambda: emulator.entries("general", MEMBER)[1:] and emulator.entries("general", MEMBER)
    )
    assert (ack.ephemeral_to, ack.text) == (MEMBER, "Working on it…")
    assert first.ephemeral_to is None and emulator.entries("general", MODERATOR) == [first]

    block, element = locate(emulator, first, "replace")
    assert emulator.click(MODERATOR, f"m:{first.id}", block, element, "replace").ok
    eventually(lambda: emulator.content(first)[0] == f"Replaced by <@{MODERATOR}>")
    [click] = app.of_type("block_actions")
    assert click["message"]["ts"] == first.ts and click["container"]["is_ephemeral"] is False
    assert click["channel"] == {"id": "C0GENERAL", "name": "general"}

    emulator.send(MEMBER, "general", "/demo again")
    second = eventually(lambda: [e for e in emulator.entries("general") if e.id > first.id])[0]
    block, element = locate(emulator, second, "choose", "b")
    emulator.click(MEMBER, f"m:{second.id}", block, element, "choose", value="b")
    eventually(lambda: any(e.text == "You chose b" for e in emulator.entries("general", MEMBER)))
    block, element = locate(emulator, second, "delete")
    emulator.click(MEMBER, f"m:{second.id}", block, element, "delete")
    eventually(lambda: second not in emulator.entries("general"))


def test_modals_validate_submit_update_and_close(demo: tuple[Emulator, Demo]) -> None:
    emulator, app = demo
    emulator.send(ADMIN, "general", "/bertbot")
    modal = eventually(lambda: emulator.modal(ADMIN))
    assert emulator.modal(MEMBER) is None
    view_id = modal["id"]

    emulator.submit(ADMIN, view_id, {"topic": {"text": ""}})  # the client refuses: required
    assert emulator.state(ADMIN)["modal"]["html"].count(REQUIRED) == 1
    assert app.of_type("view_submission") == []

    emulator.submit(ADMIN, view_id, {"topic": {"text": "bad"}, "kind": {"pick": "b"}})
    [sent] = app.of_type("view_submission")
    assert sent["view"]["state"]["values"] == {
        "topic": {"text": {"type": "plain_text_input", "value": "bad"}},
        "kind": {
            "pick": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "B"}, "value": "b"},
            }
        },
    }
    assert "Not that one" in emulator.state(ADMIN)["modal"]["html"]

    emulator.submit(ADMIN, view_id, {"topic": {"text": "more"}})
    assert emulator.state(ADMIN)["modal"]["title"] == "More"
    emulator.submit(ADMIN, view_id, {"topic": {"text": "fine"}})
    assert emulator.modal(ADMIN) is None
    eventually(
        lambda: any(
            emulator.content(e)[0] == f"saved fine by <@{ADMIN}>"
            for e in emulator.entries("general")
        )
    )

    emulator.send(ADMIN, "general", "/bertbot")
    reopened = eventually(lambda: emulator.modal(ADMIN))
    assert emulator.close(ADMIN, reopened["id"]).ok
    [closed] = eventually(lambda: app.of_type("view_closed"))
    assert closed["view"]["id"] == reopened["id"] and closed["is_cleared"] is False


def test_app_home_is_published_on_app_home_opened_and_clicks_carry_the_view(
    demo: tuple[Emulator, Demo],
) -> None:
    emulator, app = demo
    assert emulator.open_home(MODERATOR).ok
    [opened] = eventually(lambda: app.of_type("app_home_opened"))  # events run after the ack
    assert opened["type"] == "event_callback" and opened["event_id"].startswith("Ev")
    assert opened["event"]["tab"] == "home" and "view" not in opened["event"]
    home = eventually(lambda: emulator.home(MODERATOR))
    assert emulator.home(MEMBER) is None
    assert "<b>Welcome</b>" in emulator.state(MODERATOR)["home"]["html"]

    emulator.open_home(MODERATOR)
    assert eventually(lambda: app.of_type("app_home_opened")[1:])[0]["event"]["view"]["id"]
    assert emulator.click(MODERATOR, f"v:{home['id']}", 0, "accessory", "home_click").ok
    [click] = eventually(lambda: app.of_type("block_actions"))
    assert click["container"] == {"type": "view", "view_id": home["id"]}
    assert "response_url" not in click and click["view"]["type"] == "home"
    eventually(lambda: "clicked" in emulator.state(MODERATOR)["home"]["html"])


def test_a_message_shortcut_sends_message_action_with_the_message(
    demo: tuple[Emulator, Demo],
) -> None:
    emulator, app = demo
    emulator.send(MEMBER, "general", "hello <b> & @mo")
    [message] = emulator.entries("general")
    # Slack escapes what people type and turns @name into a mention.
    assert emulator.content(message)[0] == "hello &lt;b&gt; &amp; <@U0EMUMODERATOR>"
    assert emulator.shortcut(MODERATOR, message.id, "label_with_bertbot").ok
    [shortcut] = eventually(lambda: app.of_type("message_action"))  # recorded after its ack
    assert shortcut["callback_id"] == "label_with_bertbot"
    assert shortcut["message"]["ts"] == message.ts and shortcut["message"]["user"] == MEMBER
    assert shortcut["user"]["id"] == MODERATOR and shortcut["channel"]["id"] == "C0GENERAL"
    assert eventually(lambda: emulator.modal(MODERATOR))["callback_id"] == "demo"


# The page's server ----------------------------------------------------------------------


def _request(
    url: str, body: Any = None, *, content_type: str = "application/json", host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    request = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    if data is not None:
        request.add_header("Content-Type", content_type)
    if host is not None:
        request.add_header("Host", host)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_the_page_server_serves_the_page_and_a_guarded_json_api(bertbot: Served) -> None:
    with EmulatorWebServer(bertbot.emulator, port=0) as web:
        status, headers, page = _request(web.url + "/")
        assert status == 200 and b'<script src="/static/app.js"' in page
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert _request(web.url + "/static/app.js")[0] == 200
        assert _request(web.url + "/static/../workspace.py")[0] == 404
        config = json.loads(_request(web.url + "/emulator/api/config")[2])
        assert [u["role"] for u in config["users"]] == ["member", "moderator", "admin"]
        assert [c["name"] for c in config["channels"]] == ["general", "moderators"]

        send = {"user": MEMBER, "channel": "C0GENERAL", "text": "/classify I love this!"}
        # Another site can post a form to localhost, but never JSON, and not via a foreign Host.
        assert (
            _request(web.url + "/emulator/api/send", b"user=x", content_type="text/plain")[0] == 415
        )
        assert _request(web.url + "/emulator/api/send", send, host="evil.example")[0] == 421
        status, _, body = _request(web.url + "/emulator/api/send", send)
        assert status == 200 and json.loads(body) == {"ok": True, "error": None}

        def answered() -> dict[str, Any]:
            state = json.loads(_request(web.url + f"/emulator/api/state?user={MEMBER}")[2])
            return state if state["channels"]["C0GENERAL"] else {}

        state = eventually(answered)
        again = json.loads(
            _request(web.url + f"/emulator/api/state?user={MEMBER}&since={state['version']}")[2]
        )
        assert again == {"version": state["version"], "unchanged": True}
        assert _request(web.url + "/emulator/api/state?user=U0NOBODY")[0] == 404
        assert _request(web.url + "/emulator/api/send", {"user": MEMBER})[0] == 400


def test_the_page_server_refuses_a_public_interface(bertbot: Served) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorWebServer(bertbot.emulator, host="0.0.0.0", port=0)
