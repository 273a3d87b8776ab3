"""manifest.yml declares exactly what the Bolt app listens to, and the scopes that needs.

The app's listeners are read by building it with an ``App`` that records each
registration (``app.command(...)``, ``app.event(...)``, ...). PyYAML is not a dependency:
the manifest is parsed with the small block-YAML reader below, which refuses anything
outside the plain subset the manifest uses (and agrees with PyYAML where it is installed).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App

import bot.app
from bot.app import BotConfig, create_app
from bot.listeners.events.inbox import INBOX_EVENTS
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.retraining import RetrainService
from bot.services.roles import Roles
from bot.services.status import StatusService
from storage.db import Database
from tests.bot.conftest import FakeModels
from trainer.retrain import RetrainOptions
from trainer.tasks import TaskSpec

MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"
EVENTS_URL = "https://YOUR-HOST/slack/events"

# What bertbot serves: the app built with every optional service registers all of it.
COMMANDS = {"/classify", "/retrain", "/bertbot"}
MESSAGE_SHORTCUTS = {"label_with_bertbot"}
BOT_EVENTS = {
    "message.channels",
    "message.groups",
    "app_home_opened",
    "app_uninstalled",
    "tokens_revoked",
}

# The event type a Bolt listener sees for each subscribed manifest event.
EVENT_TYPE = {"message.channels": "message", "message.groups": "message"}
# Scopes each subscription needs (Slack refuses to save a manifest without them).
EVENT_SCOPES = {"message.channels": "channels:history", "message.groups": "groups:history"}
# The bot-token scopes of each Web API method bertbot's code calls (api.slack.com/methods).
METHOD_SCOPES: dict[str, set[str]] = {
    # The inbox's handler asks once who the bot is, to ignore its own messages.
    "auth_test": set(),
    "chat_getPermalink": set(),
    "chat_postEphemeral": {"chat:write"},
    "chat_postMessage": {"chat:write"},
    "chat_update": {"chat:write"},
    # Looking for an alert a dead poster may have posted (bot/services/alert_outbox.py), in
    # public and private channels; conversations.list finds a channel given by name.
    "conversations_history": {"channels:history", "groups:history"},
    "conversations_list": {"channels:read", "groups:read"},
    # Whether bertbot is in the channel of a "Label with bertbot" shortcut.
    "conversations_info": {"channels:read", "groups:read"},
    "reactions_add": {"reactions:write"},
    # Members of a user group exempt by a channel's policy (bot/services/user_groups.py).
    "usergroups_users_list": {"usergroups:read"},
    "views_open": set(),
    "views_publish": set(),
}
# Calls on the Socket Mode client, not Web API methods.
SOCKET_MODE_CALLS = {"is_connected", "send_socket_mode_response"}
BOT_SOURCES = Path(__file__).resolve().parents[2] / "bot"


# A reader for block YAML: mappings, sequences, plain/quoted scalars, comments. ------------

_KEY = re.compile(r"^([A-Za-z0-9_./-]+):(?:\s+(.*))?$")


def _strip_comment(line: str) -> str:
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'" and (i == 0 or line[i - 1] in " :-"):
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] == " "):
            return line[:i].rstrip()
    return line.rstrip()


def _scalar(text: str) -> Any:
    if text.startswith('"'):
        return json.loads(text)
    if text.startswith("'"):
        if not text.endswith("'") or len(text) < 2:
            raise ValueError(f"unterminated quote: {text}")
        return text[1:-1].replace("''", "'")
    if text[:1] in "[{&*|>!%@`" or ": " in text:
        raise ValueError(f"outside the supported YAML subset: {text!r}")
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~"):
        return None
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return text


def load_block_yaml(source: str) -> Any:
    """Parse the block-YAML subset; raise ValueError on anything else."""
    lines: list[tuple[int, str]] = []
    for raw in source.splitlines():
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ValueError("tabs in indentation")
        text = _strip_comment(raw)
        if text.strip():
            lines.append((len(text) - len(text.lstrip()), text.strip()))

    def block(i: int, indent: int) -> tuple[Any, int]:
        if lines[i][1] == "-" or lines[i][1].startswith("- "):
            return sequence(i, indent)
        return mapping(i, indent)

    def mapping(i: int, indent: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        while i < len(lines) and lines[i][0] == indent:
            match = _KEY.match(lines[i][1])
            if match is None:
                raise ValueError(f"not a 'key: value' line: {lines[i][1]!r}")
            key, value = match.group(1), match.group(2)
            if key in result:
                raise ValueError(f"duplicate key {key!r}")
            if value:
                result[key] = _scalar(value)
                i += 1
            elif i + 1 < len(lines) and lines[i + 1][0] > indent:
                result[key], i = block(i + 1, lines[i + 1][0])
            else:
                result[key] = None
                i += 1
        if i < len(lines) and lines[i][0] > indent:
            raise ValueError(f"unexpected indentation: {lines[i][1]!r}")
        return result, i

    def sequence(i: int, indent: int) -> tuple[list[Any], int]:
        result: list[Any] = []
        while i < len(lines) and lines[i][0] == indent and lines[i][1].startswith("-"):
            item = lines[i][1][1:].strip()
            if _KEY.match(item):  # "- key: value" opens a mapping indented past the dash
                lines[i] = (indent + 2, item)
                value, i = mapping(i, indent + 2)
                result.append(value)
            else:
                result.append(_scalar(item))
                i += 1
        return result, i

    value, end = block(0, lines[0][0])
    if end != len(lines):
        raise ValueError(f"unexpected line: {lines[end][1]!r}")
    return value


def test_the_yaml_reader_handles_the_subset_and_refuses_the_rest() -> None:
    text = 'a:\n  b: "x #1"  # comment\n  c:\n    - d: 1\n      e: true\n    - plain text\n'
    assert load_block_yaml(text) == {"a": {"b": "x #1", "c": [{"d": 1, "e": True}, "plain text"]}}
    for bad in (
        "a: [1, 2]\n",
        "a: b: c\n",
        "a:\n  b: 1\n    c: 2\n",
        "a: 1\na: 2\n",
        "- x\nb: 1\n",
    ):
        with pytest.raises(ValueError):
            load_block_yaml(bad)


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    text = MANIFEST.read_text(encoding="utf-8")
    parsed = load_block_yaml(text)
    try:
        import yaml
    except ImportError:
        pass
    else:
        assert yaml.safe_load(text) == parsed
    assert isinstance(parsed, dict)
    return parsed


# The app's listeners, as registered. ------------------------------------------------------


class RecordingApp(App):
    """A Bolt App that notes what each listener is registered for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.registered: dict[str, list[Any]] = defaultdict(list)
        super().__init__(*args, **kwargs)

    def command(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        self.registered["command"].append(command)
        return super().command(command, *args, **kwargs)

    def event(self, event: Any, *args: Any, **kwargs: Any) -> Any:
        kind = event.get("type") if isinstance(event, dict) else event
        self.registered["event"].append(kind)
        return super().event(event, *args, **kwargs)

    def message(self, keyword: Any = "", *args: Any, **kwargs: Any) -> Any:
        self.registered["event"].append("message")
        return super().message(keyword, *args, **kwargs)

    def shortcut(self, constraints: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(constraints, dict):
            kind = "message_shortcut" if constraints.get("type") == "message_action" else "shortcut"
            self.registered[kind].append(constraints["callback_id"])
        else:
            self.registered["shortcut"].append(constraints)
        return super().shortcut(constraints, *args, **kwargs)

    def message_shortcut(self, callback_id: Any, *args: Any, **kwargs: Any) -> Any:
        self.registered["message_shortcut"].append(callback_id)
        return super().message_shortcut(callback_id, *args, **kwargs)

    def global_shortcut(self, callback_id: Any, *args: Any, **kwargs: Any) -> Any:
        self.registered["shortcut"].append(callback_id)
        return super().global_shortcut(callback_id, *args, **kwargs)

    def action(self, constraints: Any, *args: Any, **kwargs: Any) -> Any:
        self.registered["interactive"].append(constraints)
        return super().action(constraints, *args, **kwargs)

    def view(self, constraints: Any, *args: Any, **kwargs: Any) -> Any:
        self.registered["interactive"].append(constraints)
        return super().view(constraints, *args, **kwargs)


@pytest.fixture
def registered(
    monkeypatch: pytest.MonkeyPatch,
    database: Database,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
    tmp_path: Path,
) -> dict[str, list[Any]]:
    monkeypatch.setattr(bot.app, "App", RecordingApp)
    services = BotServices(
        database, models, tasks, Roles.of(admins=[], moderators=[]), alerts=alert_policy
    )
    from slack_sdk import WebClient

    roles = Roles.of(admins=[], moderators=[])
    app = create_app(
        BotConfig(signing_secret="unused", verify_token=False),
        services,
        WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/api/"),
        status=StatusService(database, models, tasks, roles),
        retraining=RetrainService(
            database,
            tasks,
            RetrainOptions(home=tmp_path, encoder_dir=tmp_path / "encoder", base_encoder="x"),
            roles,
        ),
    )
    assert isinstance(app, RecordingApp)
    return app.registered


def _declared(names: set[str], registered: Any) -> bool:
    if isinstance(registered, re.Pattern):
        return any(registered.search(name) for name in names)
    return registered in names


# The tests. -------------------------------------------------------------------------------


def test_the_manifest_declares_bertbots_surface_and_its_scopes(manifest: dict[str, Any]) -> None:
    features, settings = manifest["features"], manifest["settings"]
    commands = {c["command"]: c for c in features["slash_commands"]}
    assert set(commands) == COMMANDS
    for command in commands.values():
        assert command["url"] == EVENTS_URL
        assert command["description"] and command["usage_hint"]
    shortcuts = features["shortcuts"]
    assert {(s["type"], s["callback_id"]) for s in shortcuts} == {
        ("message", cid) for cid in MESSAGE_SHORTCUTS
    }
    assert [s["name"] for s in shortcuts] == ["Label with bertbot"]
    assert all(s["description"] for s in shortcuts)

    events = settings["event_subscriptions"]
    assert set(events["bot_events"]) == BOT_EVENTS
    assert events["request_url"] == EVENTS_URL
    assert settings["interactivity"] == {"is_enabled": True, "request_url": EVENTS_URL}
    assert settings["socket_mode_enabled"] is False
    assert features["app_home"]["home_tab_enabled"] is True
    assert features["bot_user"]["display_name"]
    assert manifest["display_information"]["name"] == "bertbot"
    assert MANIFEST.read_text(encoding="utf-8").count("YOUR-HOST") - 1 == len(commands) + 3
    assert manifest["oauth_config"]["redirect_urls"] == [
        EVENTS_URL.replace("/slack/events", "/slack/oauth_redirect")
    ]


def test_the_default_oauth_scopes_are_the_manifests(manifest: dict[str, Any]) -> None:
    from bertbot.oauth_settings import DEFAULT_BOT_SCOPES

    assert list(DEFAULT_BOT_SCOPES) == manifest["oauth_config"]["scopes"]["bot"]

    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    needed = {"commands"} | {EVENT_SCOPES[e] for e in BOT_EVENTS if e in EVENT_SCOPES}
    needed |= set().union(*(METHOD_SCOPES[m] for m in _web_api_calls() - SOCKET_MODE_CALLS))
    assert needed <= scopes, f"missing from manifest.yml: {sorted(needed - scopes)}"
    assert scopes <= needed | {"users:read"}  # nothing the bot does not use
    # The admin's user token deletes for the `remove` action, and needs nothing else.
    assert manifest["oauth_config"]["scopes"]["user"] == ["chat:write"]


def test_every_web_api_method_the_bot_calls_has_its_scopes_listed() -> None:
    called = _web_api_calls()
    assert {"chat_postMessage", "conversations_history", "conversations_list"} <= called
    unknown = called - METHOD_SCOPES.keys() - SOCKET_MODE_CALLS
    assert not unknown, f"add the scopes of {sorted(unknown)} to METHOD_SCOPES and manifest.yml"


def _web_api_calls() -> set[str]:
    calls: set[str] = set()
    for path in BOT_SOURCES.rglob("*.py"):
        calls |= set(re.findall(r"\bclient\.([a-z]+_[A-Za-z_]+)\(", path.read_text("utf-8")))
    return calls


def test_everything_the_app_listens_to_is_declared_in_the_manifest(
    manifest: dict[str, Any], registered: dict[str, list[Any]]
) -> None:
    features, settings = manifest["features"], manifest["settings"]
    commands = {c["command"] for c in features["slash_commands"]}
    message_shortcuts = {s["callback_id"] for s in features["shortcuts"] if s["type"] == "message"}
    global_shortcuts = {s["callback_id"] for s in features["shortcuts"] if s["type"] == "global"}
    event_types = {EVENT_TYPE.get(e, e) for e in settings["event_subscriptions"]["bot_events"]}

    assert registered["command"], "the recording App saw no listener at all"
    for command in registered["command"]:
        assert _declared(commands, command), f"{command} is not in manifest.yml"
    for callback_id in registered["message_shortcut"]:
        assert _declared(message_shortcuts, callback_id), f"shortcut {callback_id} undeclared"
    for callback_id in registered["shortcut"]:
        assert _declared(message_shortcuts | global_shortcuts, callback_id), callback_id
    for event in registered["event"]:
        assert _declared(event_types, event), f"event {event} has no subscription"
    if registered["interactive"] or registered["shortcut"] or registered["message_shortcut"]:
        assert settings["interactivity"]["is_enabled"] is True


@pytest.mark.parametrize(
    ("kind", "name"),
    sorted(
        [("command", c) for c in COMMANDS]
        + [("shortcut", s) for s in MESSAGE_SHORTCUTS]
        + [("event", e) for e in BOT_EVENTS]
    ),
)
def test_everything_the_manifest_declares_has_a_listener(
    registered: dict[str, list[Any]], kind: str, name: str
) -> None:
    if kind == "command":
        found = any(_declared({name}, c) for c in registered["command"])
    elif kind == "shortcut":
        found = any(
            _declared({name}, c) for c in registered["message_shortcut"] + registered["shortcut"]
        )
    else:
        # Message events are handled from the durable inbox, not by a Bolt listener.
        handled = [*registered["event"], *INBOX_EVENTS]
        found = any(_declared({EVENT_TYPE.get(name, name)}, e) for e in handled)
    assert found, f"manifest.yml declares {kind} {name} but the app has no listener for it"
