"""A local stand-in for Slack: a Web API server that records calls, and a signed sender.

:class:`FakeSlack` answers the Web API methods bertbot uses with Slack-shaped JSON on
``127.0.0.1`` (a free port by default), records every call, keeps the messages the bot
posts, and can be told to answer the next calls of a method with ``429 Retry-After`` or a
5xx. :class:`SlackSender` signs and posts slash commands, Events API callbacks and
interactions to the bot exactly as Slack does (v0 HMAC-SHA256 over ``v0:ts:body``).

It is product code: the local emulator (no Slack at all) grows out of it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

LOCAL_BOT_TOKEN = "xoxb-local-bertbot"
LOCAL_SIGNING_SECRET = "local-signing-secret-not-for-slack"
LOCAL_TEAM_ID = "T0LOCAL00"
LOCAL_TEAM_DOMAIN = "bertbot-local"
LOCAL_BOT_USER_ID = "U0BERTBOT"
LOCAL_BOT_ID = "B0BERTBOT"
LOCAL_APP_ID = "A0BERTBOT"
LOCAL_APP_TOKEN = "xapp-1-A0BERTBOT-local-bertbot"
DEFAULT_CHANNELS = {"general": "C0GENERAL", "moderators": "C0MODERATORS", "random": "C0RANDOM"}

RESPONSE_URL_METHOD = "response_url"
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


@dataclass(frozen=True)
class RecordedCall:
    """One request the fake received.

    Attributes:
        method: The Web API method (``chat.postMessage``) or ``response_url``.
        path: The request path.
        params: Form, query and JSON fields merged; JSON-encoded fields (``blocks``,
            ``view``, ...) decoded.
        headers: Request headers, names lower-cased.
        status: The HTTP status answered.
        response: The JSON answered.
        at: ``time.monotonic()`` when it arrived.
    """

    method: str
    path: str
    params: dict[str, Any]
    headers: dict[str, str]
    status: int
    response: dict[str, Any]
    at: float

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def token(self) -> str | None:
        return _token_of(self.params, self.headers)


@dataclass
class FakeMessage:
    """A message the bot posted (or a user message the sender told the fake about)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str
    thread_ts: str | None = None
    edits: int = 0
    reactions: set[str] = field(default_factory=set)
    metadata: dict[str, Any] | None = None


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    remaining: int


class FakeSlack:
    """A recording Slack Web API on a local port.

    Use as a context manager, or ``start()``/``stop()``. Point the bot's WebClient at
    :attr:`api_url`. Thread-safe: the server answers each request on its own thread.
    """

    def __init__(
        self,
        *,
        bot_token: str = LOCAL_BOT_TOKEN,
        app_token: str = LOCAL_APP_TOKEN,
        team_id: str = LOCAL_TEAM_ID,
        team_domain: str = LOCAL_TEAM_DOMAIN,
        bot_user_id: str = LOCAL_BOT_USER_ID,
        bot_id: str = LOCAL_BOT_ID,
        channels: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """Configure the workspace the fake pretends to be.

        Args:
            bot_token: The only token the bot's methods accept.
            app_token: The only token ``apps.connections.open`` accepts (Socket Mode);
                it answers with :attr:`socket_mode_url`, which a test sets to its
                local WebSocket server.
            team_id: The workspace id.
            team_domain: The workspace's domain (in permalinks).
            bot_user_id: The bot's user id (``auth.test``).
            bot_id: The bot's bot id.
            channels: Channel names to ids (``chat.postMessage`` accepts either).
            users: User ids to names (``users.info``); the bot user is always known.
            host: Where to listen.
            port: 0 picks a free port.
        """
        self.bot_token = bot_token
        self.app_token = app_token
        self.socket_mode_url: str | None = None
        self.team_id = team_id
        self.team_domain = team_domain
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._channels = dict(DEFAULT_CHANNELS if channels is None else channels)
        self._users = {bot_user_id: "bertbot", **dict(users or {})}
        self._host = host
        self._port = port
        self._lock = threading.Condition()
        self._calls: list[RecordedCall] = []
        self._messages: dict[tuple[str, str], FakeMessage] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._response_urls: dict[str, list[dict[str, Any]]] = {}
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Life cycle ------------------------------------------------------------------------

    def start(self) -> FakeSlack:
        if self._server is not None:
            return self
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = ThreadingHTTPServer((self._host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-slack",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Slack is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        """The Web API base URL to give a WebClient (ends with ``/``)."""
        return self.base_url + "/api/"

    # Set-up and inspection -----------------------------------------------------------

    def channel_id(self, name_or_id: str) -> str | None:
        """The id of a channel given by name (``moderators``, ``#moderators``) or id."""
        name = name_or_id.lstrip("#")
        if name in self._channels:
            return self._channels[name]
        if name[:1] in ("C", "G", "D") and name.upper() == name:
            return name
        return None

    def add_user(self, user_id: str, name: str) -> None:
        with self._lock:
            self._users[user_id] = name

    def add_message(
        self, channel: str, ts: str, text: str, *, user: str, thread_ts: str | None = None
    ) -> FakeMessage:
        """Remember a user's message (so ``reactions.add`` and permalinks find it)."""
        message = FakeMessage(channel, ts, text, [], user, thread_ts)
        with self._lock:
            self._messages[(channel, ts)] = message
        return message

    def new_response_url(self) -> str:
        """A fresh ``response_url`` that records what the bot posts to it."""
        key = uuid.uuid4().hex
        with self._lock:
            self._response_urls[key] = []
        return f"{self.base_url}/response_url/{key}"

    def new_ts(self) -> str:
        """A message timestamp, unique and increasing, like Slack's ``1700000000.000100``."""
        return f"{int(time.time())}.{next(self._ts):06d}"

    def fail_next(
        self, method: str, *, times: int = 1, status: int = 429, retry_after: int | None = 1
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``status`` (429 or 5xx).

        A 429 carries ``Retry-After: retry_after`` seconds, as Slack's rate limiter does.
        """
        if not (status == 429 or 500 <= status <= 599):
            raise ValueError("fail_next injects 429 or a 5xx status")
        with self._lock:
            self._failures.setdefault(method, []).append(
                _Failure(status, retry_after if status == 429 else None, times)
            )

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        """Recorded calls in arrival order, optionally of one method."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def wait_for(
        self,
        method: str,
        count: int = 1,
        *,
        timeout: float = 5.0,
        where: Callable[[RecordedCall], bool] | None = None,
    ) -> list[RecordedCall]:
        """Block until ``count`` calls of ``method`` (matching ``where``) were recorded.

        Raises:
            TimeoutError: Fewer arrived in time; the message lists what did arrive.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [
                    c for c in self._calls if c.method == method and (where is None or where(c))
                ]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = sorted({c.method for c in self._calls})
                    raise TimeoutError(
                        f"{len(found)} of {count} {method} call(s) after {timeout}s; "
                        f"methods seen: {seen}"
                    )
                self._lock.wait(remaining)

    def message(self, channel: str, ts: str) -> FakeMessage | None:
        with self._lock:
            return self._messages.get((self.channel_id(channel) or channel, ts))

    def messages(self, channel: str | None = None) -> list[FakeMessage]:
        """Messages the bot posted (and user messages added), optionally in one channel."""
        wanted = None if channel is None else (self.channel_id(channel) or channel)
        with self._lock:
            return [
                m
                for m in self._messages.values()
                if m.user == self.bot_user_id and (wanted is None or m.channel == wanted)
            ]

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        """What the bot posted to a response_url, in order."""
        key = response_url.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            return list(self._response_urls.get(key, []))

    def reset(self) -> None:
        """Forget calls, messages, failures and response_urls."""
        with self._lock:
            self._calls.clear()
            self._messages.clear()
            self._failures.clear()
            self._response_urls.clear()

    # Request handling (called on the server's threads) --------------------------------

    def _handle(
        self, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if path.startswith("/api/"):
            method = path[len("/api/") :].strip("/")
        elif path.startswith("/response_url/"):
            method = RESPONSE_URL_METHOD
        else:
            method = path
        status, body, extra = self._answer(method, path, params, headers)
        call = RecordedCall(method, path, params, headers, status, body, time.monotonic())
        with self._lock:
            self._calls.append(call)
            self._lock.notify_all()
        return status, body, extra

    def _answer(
        self, method: str, path: str, params: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        failure = self._take_failure(method)
        if failure is not None:
            if failure.status == 429:
                return (
                    429,
                    {"ok": False, "error": "ratelimited"},
                    {"Retry-After": str(failure.retry_after or 1)},
                )
            return failure.status, {"ok": False, "error": "fatal_error"}, {}
        if method == RESPONSE_URL_METHOD:
            key = path.rstrip("/").rsplit("/", 1)[-1]
            with self._lock:
                if key not in self._response_urls:
                    return 404, {"ok": False, "error": "expired_url"}, {}
                self._response_urls[key].append(params)
            return 200, {"ok": True}, {}
        handler = _METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        token = _token_of(params, headers)
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        expected = self.app_token if method in _APP_TOKEN_METHODS else self.bot_token
        if token != expected:
            # Like Slack: the other kind of valid token is refused by type, anything else as bad.
            known = token in (self.bot_token, self.app_token)
            error = "not_allowed_token_type" if known else "invalid_auth"
            return 200, {"ok": False, "error": error}, {}
        with self._lock:
            return 200, handler(self, params), {}

    def _take_failure(self, method: str) -> _Failure | None:
        with self._lock:
            queue = self._failures.get(method)
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            return failure

    # Web API methods (called with the lock held) --------------------------------------

    def _error(self, error: str) -> dict[str, Any]:
        return {"ok": False, "error": error}

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": self._users[self.bot_user_id],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel_id(str(params.get("channel", "")))
        if channel is None:
            return self._error("channel_not_found")
        if not params.get("text") and not params.get("blocks"):
            return self._error("no_text")
        ts = self.new_ts()
        message = FakeMessage(
            channel,
            ts,
            str(params.get("text") or ""),
            list(params.get("blocks") or []),
            self.bot_user_id,
            params.get("thread_ts"),
        )
        metadata = params.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, dict) or not isinstance(metadata.get("event_type"), str):
                return self._error("invalid_metadata_format")
            message.metadata = metadata
        self._messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": self._message_json(message)}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel_id(str(params.get("channel", "")))
        message = self._messages.get((channel or "", str(params.get("ts", ""))))
        if message is None:
            return self._error("message_not_found")
        if message.user != self.bot_user_id:
            return self._error("cant_update_message")
        if "text" in params:
            message.text = str(params["text"])
        if "blocks" in params:
            message.blocks = list(params["blocks"] or [])
        message.edits += 1
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "text": message.text,
            "message": self._message_json(message),
        }

    def _post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.channel_id(str(params.get("channel", ""))) is None:
            return self._error("channel_not_found")
        if not params.get("user"):
            return self._error("user_not_in_channel")
        if not params.get("text") and not params.get("blocks"):
            return self._error("no_text")
        return {"ok": True, "message_ts": self.new_ts()}

    def _permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel_id(str(params.get("channel", "")))
        ts = str(params.get("message_ts", ""))
        if channel is None or not ts:
            return self._error("channel_not_found" if channel is None else "message_not_found")
        return {
            "ok": True,
            "channel": channel,
            "permalink": f"https://{self.team_domain}.slack.com/archives/{channel}/"
            f"p{ts.replace('.', '')}",
        }

    def _view(self, params: dict[str, Any], *, needs: str) -> dict[str, Any]:
        view = params.get("view")
        if not isinstance(view, dict):
            return self._error("invalid_arguments")
        if not params.get(needs) and not (needs == "view_id" and params.get("external_id")):
            return self._error("invalid_arguments")
        view_id = params.get("view_id") or "V" + uuid.uuid4().hex[:10].upper()
        return {
            "ok": True,
            "view": {
                **view,
                "id": view_id,
                "team_id": self.team_id,
                "app_id": LOCAL_APP_ID,
                "bot_id": self.bot_id,
                "hash": uuid.uuid4().hex[:16],
            },
        }

    def _reactions_add(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.channel_id(str(params.get("channel", "")))
        name = str(params.get("name", "")).strip(":")
        if channel is None:
            return self._error("channel_not_found")
        if not name:
            return self._error("invalid_name")
        key = (channel, str(params.get("timestamp", "")))
        message = self._messages.setdefault(
            key, FakeMessage(channel, key[1], "", [], user="U0UNKNOWN")
        )
        if name in message.reactions:
            return self._error("already_reacted")
        message.reactions.add(name)
        return {"ok": True}

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        # Newest first, after ``oldest`` (exclusive), ``limit`` per page, cursor = offset.
        channel = self.channel_id(str(params.get("channel", "")))
        if channel is None:
            return self._error("channel_not_found")
        try:
            oldest = str(params.get("oldest") or "0")
            float(oldest)  # Slack refuses what is not a number
            after = _ts_key(oldest)
            limit = min(max(int(params.get("limit") or 100), 1), 999)
            offset = int(params.get("cursor") or 0)
        except ValueError:
            return self._error("invalid_arguments")
        found = sorted(
            (
                m
                for m in self._messages.values()
                if m.channel == channel and m.thread_ts is None and _ts_key(m.ts) > after
            ),
            key=lambda m: _ts_key(m.ts),
            reverse=True,
        )
        page = found[offset : offset + limit]
        with_metadata = _flag(params.get("include_all_metadata"))
        more = offset + limit < len(found)
        return {
            "ok": True,
            "messages": [self._message_json(m, with_metadata=with_metadata) for m in page],
            "has_more": more,
            "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
        }

    def _conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        # Every channel is public here; cursor = offset.
        try:
            limit = min(max(int(params.get("limit") or 100), 1), 1000)
            offset = int(params.get("cursor") or 0)
        except ValueError:
            return self._error("invalid_arguments")
        channels = sorted(self._channels.items(), key=lambda item: item[1])
        page = channels[offset : offset + limit]
        more = offset + limit < len(channels)
        return {
            "ok": True,
            "channels": [
                {
                    "id": cid,
                    "name": name,
                    "is_channel": True,
                    "is_private": False,
                    "is_member": True,
                }
                for name, cid in page
            ],
            "response_metadata": {"next_cursor": str(offset + limit) if more else ""},
        }

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user_id = str(params.get("user", ""))
        name = self._users.get(user_id)
        if name is None:
            return self._error("user_not_found")
        return {
            "ok": True,
            "user": {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "real_name": name,
                "is_bot": user_id == self.bot_user_id,
                "deleted": False,
                "tz": "UTC",
                "profile": {"display_name": name, "real_name": name},
            },
        }

    def _connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        # Slack answers with a fresh wss:// URL; a test points this at its ws:// server.
        if self.socket_mode_url is None:
            return self._error("socket_mode_not_enabled")
        return {"ok": True, "url": self.socket_mode_url}

    def _message_json(self, message: FakeMessage, *, with_metadata: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "user": message.user,
            "text": message.text,
            "blocks": message.blocks,
            "ts": message.ts,
            "team": self.team_id,
        }
        if message.user == self.bot_user_id:
            data["bot_id"] = self.bot_id
        if message.thread_ts:
            data["thread_ts"] = message.thread_ts
        if message.metadata is not None and with_metadata:
            data["metadata"] = message.metadata
        return data


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "chat.getPermalink": FakeSlack._permalink,
    "views.open": lambda fake, params: fake._view(params, needs="trigger_id"),
    "views.update": lambda fake, params: fake._view(params, needs="view_id"),
    "views.publish": lambda fake, params: fake._view(params, needs="user_id"),
    "reactions.add": FakeSlack._reactions_add,
    "users.info": FakeSlack._users_info,
    "conversations.history": FakeSlack._history,
    "conversations.list": FakeSlack._conversations_list,
    "apps.connections.open": FakeSlack._connections_open,
}
# Methods called with the app-level token (xapp-) instead of the bot token.
_APP_TOKEN_METHODS = frozenset({"apps.connections.open"})


class _Handler(BaseHTTPRequestHandler):
    owner: FakeSlack
    server_version = "FakeSlack/1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self._serve()

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        params = _parse_params(url.query, raw, headers.get("content-type", ""))
        status, body, extra = self.owner._handle(url.path, params, headers)
        payload = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("fake slack: " + format, *args)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("true", "1")


def _ts_key(ts: str) -> tuple[int, int]:
    # "1700000000.000100" -> (1700000000, 100): ordered like Slack's timestamps.
    seconds, _, fraction = ts.partition(".")
    try:
        return int(seconds or 0), int((fraction or "0").ljust(6, "0")[:6])
    except ValueError:
        return 0, 0


def _token_of(params: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    token = params.get("token")
    return str(token) if token else None


def _parse_params(query: str, raw: bytes, content_type: str) -> dict[str, Any]:
    params: dict[str, Any] = {
        k: v for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)
    }
    text = raw.decode("utf-8", errors="replace")
    if "application/json" in content_type and text.strip():
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = {"_invalid_json": text}
        if isinstance(body, dict):
            params.update(body)
    elif text:
        params.update(urllib.parse.parse_qsl(text, keep_blank_values=True))
    for name in _JSON_FIELDS:
        value = params.get(name)
        if isinstance(value, str) and value[:1] in ("[", "{"):
            try:
                params[name] = json.loads(value)
            except json.JSONDecodeError:
                pass
    return params


# Sending requests to the bot, as Slack does ---------------------------------------------


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


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


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
        fields = {
            "token": "verification-token-unused",
            "team_id": self.team_id,
            "team_domain": self.team_domain,
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name or user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": self.api_app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": self._trigger_id(),
        }
        return self.post(
            urllib.parse.urlencode(fields).encode(),
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
            "token": "verification-token-unused",
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
        payload: dict[str, Any] = {
            "type": "block_actions",
            "user": {
                "id": user_id,
                "username": user_id.lower(),
                "name": user_id.lower(),
                "team_id": self.team_id,
            },
            "api_app_id": self.api_app_id,
            "token": "verification-token-unused",
            "container": {
                "type": "message",
                "message_ts": ts,
                "channel_id": channel_id,
                "is_ephemeral": ephemeral,
            },
            "trigger_id": self._trigger_id(),
            "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": channel_id.lower()},
            "state": {"values": {}},
            "response_url": response_url,
            "actions": [dict(a) for a in actions],
        }
        if message is not None and not ephemeral:
            payload["message"] = dict(message)
        body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
        return self.post(
            body,
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

    @staticmethod
    def _trigger_id() -> str:
        return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex[:16]}"


def new_event_id() -> str:
    """A Slack-like event id (``Ev`` + 10 characters)."""
    return "Ev" + uuid.uuid4().hex[:10].upper()


def iter_elements(
    blocks: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[str | None, Mapping[str, Any]]]:
    """Every interactive element of a message with its block id."""
    for block in blocks:
        block_id = block.get("block_id")
        if block.get("type") == "actions":
            for element in block.get("elements", []):
                yield block_id, element
        elif isinstance(block.get("accessory"), Mapping):
            yield block_id, block["accessory"]


def find_element(
    blocks: Sequence[Mapping[str, Any]], action_id: str, value: str | None = None
) -> tuple[str | None, Mapping[str, Any]]:
    """The (block id, element) with ``action_id``; for a select, one offering ``value``.

    Raises:
        LookupError: Nothing matches.
    """
    for block_id, element in iter_elements(blocks):
        if element.get("action_id") != action_id:
            continue
        if value is None or element.get("value") == value:
            return block_id, element
        if any(o.get("value") == value for o in element.get("options", [])):
            return block_id, element
    raise LookupError(f"no element {action_id!r} (value {value!r}) in the blocks")
