"""A served bot with the status surfaces (``/bertbot``, App Home, the label shortcut).

Payload builders for what Slack sends from those surfaces: ``app_home_opened``, a click in
a published view (the Home tab), a message shortcut and a modal's ``view_submission``,
signed and posted by the same :class:`SlackSender` as the other tests.
"""

from __future__ import annotations

import json
import time
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import Delivery, SlackSender
from bot.emulator.outbound import FakeSlack, find_element
from bot.second_opinion_policy import SecondOpinionPolicy
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.review_queue import ReviewOptions
from bot.services.roles import Roles
from bot.services.status import NextRetrain, StatusService
from bot.transport.http import BotHttpServer
from storage.db import Database
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    MODERATOR,
    SIGNING_SECRET,
    Bot,
    FakeModels,
    TrackingExecutor,
)
from trainer.tasks import TaskSpec


@dataclass
class SurfaceBot(Bot):
    status: StatusService


@contextmanager
def serve_bot(
    database: Database,
    fake: FakeSlack,
    tasks: Mapping[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
    *,
    next_retrain: NextRetrain | None = None,
    review: ReviewOptions | None = None,
    roles: Roles | None = None,
    second_opinion: SecondOpinionPolicy | None = None,
) -> Iterator[SurfaceBot]:
    """Like conftest's ``bot`` fixture, with a :class:`StatusService` given to create_app."""
    roles = roles or Roles.of(admins=[ADMIN], moderators=[MODERATOR])
    services = BotServices(
        database,
        models,
        tasks,
        roles,
        alerts=alert_policy,
        review=review,
        second_opinion=second_opinion,
    )
    status = StatusService(
        database,
        models,
        tasks,
        roles,
        next_retrain=next_retrain,
        batcher=services.batcher,
        open_appeals=services.appeals.open_items,
        review=services.review,
        second_opinions=services.second_opinions.board,
    )
    client = make_client(BOT_TOKEN, base_url=fake.api_url)
    executor = TrackingExecutor(8)
    app = create_app(
        BotConfig(signing_secret=SIGNING_SECRET), services, client, executor=executor, status=status
    )
    server = BotHttpServer(app, host="127.0.0.1", port=0, threads=8).start()
    sender = SlackSender(server.events_url, SIGNING_SECRET, fake=fake)
    try:
        yield SurfaceBot(fake, sender, server, services, database, models, executor, status)
    finally:
        server.close()
        executor.wait_idle()
        executor.shutdown(wait=True)
        services.close()


# What Slack sends ---------------------------------------------------------------------


def _user(sender: SlackSender, user_id: str) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": user_id.lower(),
        "name": user_id.lower(),
        "team_id": sender.team_id,
    }


def _trigger_id() -> str:
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:16]}"


def _interaction(sender: SlackSender, payload: Mapping[str, Any]) -> Delivery:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return sender.post(body, "application/x-www-form-urlencoded")


def home_opened(sender: SlackSender, user_id: str, *, tab: str = "home") -> Delivery:
    """An ``app_home_opened`` event (the user opened the app's Home or Messages tab)."""
    ts = sender.new_ts()
    return sender.event(
        {
            "type": "app_home_opened",
            "user": user_id,
            "channel": "D0HOME",
            "tab": tab,
            "event_ts": ts,
        }
    )


def view_click(
    sender: SlackSender,
    *,
    user_id: str,
    view: Mapping[str, Any],
    action_id: str,
    value: str | None = None,
) -> Delivery:
    """Click a button (or pick a select option) in a published view such as the Home tab.

    Like Slack, the payload carries the view and no response_url.
    """
    block_id, element = find_element(view["blocks"], action_id, value)
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": element["type"],
        "action_ts": f"{time.time():.6f}",
    }
    if element["type"] == "button":
        action["value"] = element.get("value")
        action["text"] = element.get("text")
    else:
        action["selected_option"] = next(
            o for o in element.get("options", []) if o.get("value") == value
        )
    payload = {
        "type": "block_actions",
        "user": _user(sender, user_id),
        "api_app_id": sender.api_app_id,
        "token": "verification-token-unused",
        "container": {"type": "view", "view_id": view.get("id")},
        "trigger_id": _trigger_id(),
        "team": {"id": sender.team_id, "domain": sender.team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": dict(view),
        "actions": [action],
    }
    return _interaction(sender, payload)


def message_shortcut(
    sender: SlackSender,
    *,
    user_id: str,
    channel_id: str,
    message: Mapping[str, Any],
    callback_id: str = "label_with_bertbot",
    channel_name: str | None = None,
) -> Delivery:
    """A message shortcut (``message_action``) on ``message``, with a fresh trigger_id.

    ``channel_name`` is what Slack names the channel (``directmessage`` in a DM, ``mpdm-...``
    in a group DM); by default the id in lower case.
    """
    payload = {
        "type": "message_action",
        "token": "verification-token-unused",
        "action_ts": f"{time.time():.6f}",
        "team": {"id": sender.team_id, "domain": sender.team_domain},
        "user": _user(sender, user_id),
        "channel": {"id": channel_id, "name": channel_name or channel_id.lower()},
        "is_enterprise_install": False,
        "enterprise": None,
        "api_app_id": sender.api_app_id,
        "callback_id": callback_id,
        "trigger_id": _trigger_id(),
        "response_url": sender.fake.new_response_url() if sender.fake else "",
        "message_ts": message["ts"],
        "message": dict(message),
    }
    return _interaction(sender, payload)


def user_message(
    sender: SlackSender, text: str, *, user_id: str, ts: str | None = None
) -> dict[str, Any]:
    """A user's message as a shortcut payload carries it."""
    return {
        "type": "message",
        "user": user_id,
        "text": text,
        "ts": ts or sender.new_ts(),
        "team": sender.team_id,
    }


def view_submission(
    sender: SlackSender,
    *,
    user_id: str,
    view: Mapping[str, Any],
    choices: Mapping[str, str] | None = None,
) -> Delivery:
    """Submit a modal as Slack does: the view with ``state.values`` of its input blocks.

    Args:
        sender: The signed sender.
        user_id: Who submits.
        view: The view as opened (``views.open``'s answer, with its id).
        choices: Option value picked (or text typed) per input block id; the other inputs
            stay empty.
    """
    choices = dict(choices or {})
    values: dict[str, Any] = {}
    for block in view.get("blocks", []):
        if block.get("type") != "input":
            continue
        element = block["element"]
        if element["type"] == "plain_text_input":  # the choice is the text typed
            values[block["block_id"]] = {
                element["action_id"]: {
                    "type": "plain_text_input",
                    "value": choices.get(block["block_id"]),
                }
            }
            continue
        picked = choices.get(block["block_id"])
        option = next((o for o in element.get("options", []) if o["value"] == picked), None)
        values[block["block_id"]] = {
            element["action_id"]: {"type": element["type"], "selected_option": option}
        }
    payload = {
        "type": "view_submission",
        "team": {"id": sender.team_id, "domain": sender.team_domain},
        "user": _user(sender, user_id),
        "api_app_id": sender.api_app_id,
        "token": "verification-token-unused",
        "trigger_id": _trigger_id(),
        "view": {**dict(view), "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _interaction(sender, payload)


def block_ids(blocks: Sequence[Mapping[str, Any]], prefix: str) -> list[str]:
    return [str(b["block_id"]) for b in blocks if str(b.get("block_id", "")).startswith(prefix)]


def all_text(blocks: Sequence[Mapping[str, Any]]) -> str:
    """Every text of the blocks, joined (for assertions on what a user reads)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                if not isinstance(value, str):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(list(blocks))
    return "\n".join(found)
