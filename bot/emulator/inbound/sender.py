"""Signed requests to the bot, posted the way Slack posts them.

:class:`SlackSender` signs and posts slash commands, Events API callbacks and interactions
to the bot exactly as Slack does (v0 HMAC-SHA256 over ``v0:ts:body``, see
:mod:`.signing`); the payloads come from :mod:`.payloads`. A :class:`Delivery` is the bot's
answer. Given the :class:`bot.emulator.outbound.FakeSlack`, the sender takes its
response_urls and message timestamps from it and tells it about people's messages.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.emulator.inbound import payloads
from bot.emulator.inbound.signing import slack_signature
from bot.emulator.outbound import (
    DEFAULT_CHANNELS,
    LOCAL_APP_ID,
    LOCAL_BOT_USER_ID,
    LOCAL_TEAM_DOMAIN,
    LOCAL_TEAM_ID,
    FakeSlack,
    find_element,
)


@dataclass(frozen=True)
class Delivery:
    """The bot's answer to one signed request.

    Attributes:
        status: HTTP status.
        body: Raw response body.
        headers: Response headers, names lower-cased.
        elapsed_s: Seconds from sending to the full answer.
        response_url: The response_url sent with the request, if any.
        sent_at: ``time.monotonic()`` when the request was sent.
    """

    status: int
    body: bytes
    headers: dict[str, str]
    elapsed_s: float
    response_url: str | None = None
    sent_at: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body) if self.body.strip() else None


class SlackSender:
    """Posts signed requests to a bot's ``/slack/events`` the way Slack does.

    Slash commands and interactions are form-encoded (interactions as a ``payload=``
    JSON field); Events API callbacks are JSON. Each method can send a bad signature or
    a chosen timestamp (e.g. 6 minutes old) to exercise request verification.
    """

    def __init__(
        self,
        events_url: str,
        signing_secret: str,
        *,
        fake: FakeSlack | None = None,
        team_id: str = LOCAL_TEAM_ID,
        team_domain: str = LOCAL_TEAM_DOMAIN,
        api_app_id: str = LOCAL_APP_ID,
        timeout: float = 10.0,
    ) -> None:
        """Configure the sender.

        Args:
            events_url: The bot's request URL (``http://127.0.0.1:3000/slack/events``).
            signing_secret: The secret the bot verifies with.
            fake: The fake Slack that issues response_urls and learns user messages.
            team_id: The workspace id put in every payload.
            team_domain: The workspace domain.
            api_app_id: The app id put in every payload.
            timeout: Seconds to wait for the bot's answer.
        """
        self.events_url = events_url
        self.signing_secret = signing_secret
        self.fake = fake
        self.team_id = team_id
        self.team_domain = team_domain
        self.api_app_id = api_app_id
        self.timeout = timeout
        self._ts = itertools.count(1)

    @property
    def workspace(self) -> payloads.Workspace:
        """The ids every payload carries."""
        return payloads.Workspace(self.team_id, self.team_domain, self.api_app_id)

    # Signing and posting -------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The ``X-Slack-Request-Timestamp`` and ``X-Slack-Signature`` headers for a body."""
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(self.signing_secret, ts, body),
        }

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        headers: Mapping[str, str] | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
        response_url: str | None = None,
    ) -> Delivery:
        """Sign ``body`` and POST it to the bot; never raises for an HTTP error status."""
        signed = self.sign(body, timestamp)
        if bad_signature:
            signed["X-Slack-Signature"] = slack_signature(
                "not-" + self.signing_secret, signed["X-Slack-Request-Timestamp"], body
            )
        request = urllib.request.Request(
            self.events_url,
            data=body,
            method="POST",
            headers={"Content-Type": content_type, **signed, **dict(headers or {})},
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status, data = response.status, response.read()
                answer_headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as exc:
            status, data = exc.code, exc.read()
            answer_headers = {k.lower(): v for k, v in exc.headers.items()}
        return Delivery(
            status,
            data,
            answer_headers,
            time.monotonic() - started,
            response_url,
            started,
        )

    # Slash commands ------------------------------------------------------------------

    def command(
        self,
        text: str = "",
        *,
        command: str = "/classify",
        user_id: str,
        user_name: str | None = None,
        channel_id: str = DEFAULT_CHANNELS["general"],
        channel_name: str = "general",
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> Delivery:
        """Send a slash command, form-encoded like Slack, with a fresh response_url."""
        response_url = self._response_url()
        fields = payloads.slash_command(
            self.workspace,
            command=command,
            text=text,
            user_id=user_id,
            user_name=user_name or user_id.lower(),
            channel_id=channel_id,
            channel_name=channel_name,
            response_url=response_url,
            trigger_id=payloads.new_trigger_id(),
        )
        return self.post(
            payloads.form_body(fields),
            "application/x-www-form-urlencoded",
            bad_signature=bad_signature,
            timestamp=timestamp,
            response_url=response_url,
        )

    # Events API ----------------------------------------------------------------------

    def event(
        self,
        event: Mapping[str, Any],
        *,
        event_id: str | None = None,
        event_time: int | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> Delivery:
        """Send an ``event_callback``; ``retry_num`` adds Slack's retry headers."""
        envelope = {
            "token": payloads.VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": self.api_app_id,
            "event": dict(event),
            "type": "event_callback",
            "event_id": event_id or new_event_id(),
            "event_time": event_time or int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.fake.bot_user_id if self.fake else LOCAL_BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": "4-" + uuid.uuid4().hex[:20],
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return self.post(
            json.dumps(envelope).encode(),
            "application/json",
            headers=headers,
            bad_signature=bad_signature,
            timestamp=timestamp,
        )

    def new_ts(self) -> str:
        """A message timestamp for a user's message."""
        if self.fake is not None:
            return self.fake.new_ts()
        return f"{int(time.time())}.{next(self._ts):06d}"

    def message_event(
        self,
        text: str,
        *,
        user_id: str,
        channel_id: str = DEFAULT_CHANNELS["general"],
        ts: str | None = None,
        channel_type: str = "channel",
        **extra: Any,
    ) -> dict[str, Any]:
        """A ``message`` event as Slack sends it for ``message.channels``/``message.groups``."""
        ts = ts or self.new_ts()
        event = {
            "type": "message",
            "user": user_id,
            "text": text,
            "ts": ts,
            "team": self.team_id,
            "channel": channel_id,
            "event_ts": ts,
            "channel_type": channel_type,
            **extra,
        }
        if self.fake is not None and "bot_id" not in extra:
            self.fake.add_message(channel_id, ts, text, user=user_id)
        return event

    def changed_event(
        self,
        *,
        channel_id: str,
        ts: str,
        text: str,
        previous_text: str | None,
        user_id: str,
        channel_type: str = "channel",
    ) -> dict[str, Any]:
        """A ``message_changed`` event for an edit of message ``ts``."""
        edited_ts = self.new_ts()
        event: dict[str, Any] = {
            "type": "message",
            "subtype": "message_changed",
            "hidden": True,
            "channel": channel_id,
            "channel_type": channel_type,
            "ts": edited_ts,
            "event_ts": edited_ts,
            "message": {
                "type": "message",
                "user": user_id,
                "text": text,
                "ts": ts,
                "team": self.team_id,
                "edited": {"user": user_id, "ts": edited_ts},
            },
        }
        if previous_text is not None:
            event["previous_message"] = {
                "type": "message",
                "user": user_id,
                "text": previous_text,
                "ts": ts,
            }
        return event

    def deleted_event(
        self, *, channel_id: str, ts: str, channel_type: str = "channel"
    ) -> dict[str, Any]:
        """A ``message_deleted`` event for message ``ts``."""
        event_ts = self.new_ts()
        return {
            "type": "message",
            "subtype": "message_deleted",
            "hidden": True,
            "channel": channel_id,
            "channel_type": channel_type,
            "ts": event_ts,
            "event_ts": event_ts,
            "deleted_ts": ts,
            "previous_message": {"type": "message", "ts": ts},
        }

    # Interactivity -------------------------------------------------------------------

    def block_actions(
        self,
        *,
        user_id: str,
        actions: Sequence[Mapping[str, Any]],
        channel_id: str,
        message: Mapping[str, Any] | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
        response_url: str | None = None,
        bad_signature: bool = False,
        timestamp: int | None = None,
    ) -> Delivery:
        """Send a ``block_actions`` interaction as a form field ``payload=<json>``.

        Like Slack, a click in an ephemeral message carries no copy of the message.
        """
        response_url = response_url or self._response_url()
        ts = message_ts or (message or {}).get("ts") or self.new_ts()
        payload = payloads.message_block_actions(
            self.workspace,
            user=payloads.user_object(user_id, user_id.lower(), self.workspace),
            actions=actions,
            channel_id=channel_id,
            channel_name=channel_id.lower(),
            message_ts=ts,
            message=None if ephemeral else message,
            response_url=response_url,
            trigger_id=payloads.new_trigger_id(),
        )
        # Said by the caller, not by the copy of the message (which a test may leave out).
        payload["container"]["is_ephemeral"] = ephemeral
        return self.post(
            payloads.interaction_body(payload),
            "application/x-www-form-urlencoded",
            bad_signature=bad_signature,
            timestamp=timestamp,
            response_url=response_url,
        )

    def click(
        self,
        *,
        user_id: str,
        blocks: Sequence[Mapping[str, Any]],
        action_id: str,
        value: str | None = None,
        channel_id: str,
        message: Mapping[str, Any] | None = None,
        message_ts: str | None = None,
        ephemeral: bool = False,
        response_url: str | None = None,
    ) -> Delivery:
        """Click a button (or pick a select option by ``value``) found in ``blocks``.

        Raises:
            LookupError: No element with that action id (and value) is in the blocks.
        """
        block_id, element = find_element(blocks, action_id, value)
        action: dict[str, Any] = {
            "action_id": action_id,
            "block_id": block_id,
            "type": element["type"],
            "action_ts": f"{time.time():.6f}",
        }
        if element["type"] == "button":
            action["value"] = element.get("value")
            action["text"] = element.get("text")
        elif element["type"] == "static_select":
            option = next(o for o in element.get("options", []) if o.get("value") == value)
            action["selected_option"] = option
            action["placeholder"] = element.get("placeholder")
        else:  # pragma: no cover - other elements are not used yet
            raise LookupError(f"clicking a {element['type']} is not supported")
        return self.block_actions(
            user_id=user_id,
            actions=[action],
            channel_id=channel_id,
            message=message,
            message_ts=message_ts,
            ephemeral=ephemeral,
            response_url=response_url,
        )

    # Helpers -------------------------------------------------------------------------

    def _response_url(self) -> str:
        if self.fake is not None:
            return self.fake.new_response_url()
        return "http://127.0.0.1:9/response_url/" + uuid.uuid4().hex


def new_event_id() -> str:
    """A Slack-like event id (``Ev`` + 10 characters)."""
    return "Ev" + uuid.uuid4().hex[:10].upper()
