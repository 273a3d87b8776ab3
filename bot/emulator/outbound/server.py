"""The fake Slack Web API: an HTTP server on a local port that records every call.

:class:`FakeSlack` answers the Web API methods bertbot uses with Slack-shaped JSON on
``127.0.0.1`` (a free port by default), records every call, keeps the messages the bot
posts, and can be told to answer the next calls of a method with ``429 Retry-After`` or a
5xx. The answers themselves come from the method families in :mod:`.chat`,
:mod:`.conversations`, :mod:`.views` and :mod:`.users` (see :mod:`.methods`).

It is product code: the local emulator (no Slack at all) is built on it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bot.emulator.outbound.identity import (
    DEFAULT_CHANNELS,
    LOCAL_ADMIN_USER_TOKEN,
    LOCAL_APP_ID,
    LOCAL_APP_TOKEN,
    LOCAL_BOT_ID,
    LOCAL_BOT_TOKEN,
    LOCAL_BOT_USER_ID,
    LOCAL_TEAM_DOMAIN,
    LOCAL_TEAM_ID,
)
from bot.emulator.outbound.methods import APP_TOKEN_METHODS, METHODS, USER_TOKEN_METHODS
from bot.emulator.outbound.oauth import FakeOAuth, IssuedToken, auth_test_for
from bot.emulator.outbound.records import FakeMessage, RecordedCall, token_of
from bot.emulator.outbound.state import SlackState

logger = logging.getLogger(__name__)

RESPONSE_URL_METHOD = "response_url"
OAUTH_ACCESS_METHOD = "oauth.v2.access"
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")


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
        admin_user_token: str = LOCAL_ADMIN_USER_TOKEN,
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
            admin_user_token: An admin's user token, accepted by ``chat.delete`` (for
                anyone's message).
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
        self.admin_user_token = admin_user_token
        self.state = SlackState(
            team_id=team_id,
            team_domain=team_domain,
            bot_user_id=bot_user_id,
            bot_id=bot_id,
            channels=DEFAULT_CHANNELS if channels is None else channels,
            users=users or {},
        )
        self._host = host
        self._port = port
        self._lock = threading.Condition()
        self._calls: list[RecordedCall] = []
        self._failures: dict[str, list[_Failure]] = {}
        self._delays: dict[str, float] = {}
        self._response_urls: dict[str, list[dict[str, Any]]] = {}
        self._observers: list[Callable[[RecordedCall], None]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.oauth: FakeOAuth | None = None

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

    # The workspace's ids (kept in :attr:`state`) ---------------------------------------

    @property
    def team_id(self) -> str:
        return self.state.team_id

    @property
    def team_domain(self) -> str:
        return self.state.team_domain

    @property
    def bot_user_id(self) -> str:
        return self.state.bot_user_id

    @property
    def bot_id(self) -> str:
        return self.state.bot_id

    @property
    def socket_mode_url(self) -> str | None:
        """What ``apps.connections.open`` answers with; a test sets its WebSocket server's."""
        return self.state.socket_mode_url

    @socket_mode_url.setter
    def socket_mode_url(self, url: str | None) -> None:
        self.state.socket_mode_url = url

    # Set-up and inspection -----------------------------------------------------------

    def enable_oauth(
        self, client_id: str, client_secret: str, *, token_expires_in: int | None = None
    ) -> FakeOAuth:
        """Act as a distributed app's Slack too: ``oauth.v2.access`` issues per-workspace
        bot tokens (rotating ones with ``token_expires_in``), each accepted by every method
        and answered per workspace by ``auth.test`` (see :mod:`.oauth`)."""
        self.oauth = FakeOAuth(
            client_id, client_secret, app_id=LOCAL_APP_ID, token_expires_in=token_expires_in
        )
        return self.oauth

    def channel_id(self, name_or_id: str) -> str | None:
        """The id of a channel given by name (``moderators``, ``#moderators``) or id."""
        return self.state.channel_id(name_or_id)

    def add_user(self, user_id: str, name: str) -> None:
        with self._lock:
            self.state.users[user_id] = name

    def add_message(
        self, channel: str, ts: str, text: str, *, user: str, thread_ts: str | None = None
    ) -> FakeMessage:
        """Remember a user's message (so ``reactions.add`` and permalinks find it)."""
        message = FakeMessage(channel, ts, text, [], user, thread_ts)
        with self._lock:
            self.state.messages[(channel, ts)] = message
        return message

    def new_response_url(self) -> str:
        """A fresh ``response_url`` that records what the bot posts to it."""
        key = uuid.uuid4().hex
        with self._lock:
            self._response_urls[key] = []
        return f"{self.base_url}/response_url/{key}"

    def new_ts(self) -> str:
        """A message timestamp, unique and increasing, like Slack's ``1700000000.000100``."""
        return self.state.new_ts()

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

    def delay(self, method: str, seconds: float) -> None:
        """Answer every later call of ``method`` only after ``seconds`` (0: at once again)."""
        with self._lock:
            self._delays[method] = seconds

    def remove_bot(self, channel: str) -> None:
        """The bot is no longer a member of ``channel`` (a name or an id)."""
        with self._lock:
            channel_id = self.state.channel_id(channel)
            if channel_id is None:
                raise ValueError(f"unknown channel {channel!r}")
            self.state.left.add(channel_id)

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
            return self.state.messages.get((self.channel_id(channel) or channel, ts))

    def observe(self, observer: Callable[[RecordedCall], None]) -> None:
        """Call ``observer`` with each call once it is answered (on the server's thread)."""
        with self._lock:
            self._observers.append(observer)

    def deleted(self) -> list[FakeMessage]:
        """The messages removed with ``chat.delete``, oldest first."""
        with self._lock:
            return list(self.state.deleted)

    def messages(self, channel: str | None = None) -> list[FakeMessage]:
        """Messages the bot posted (and user messages added), optionally in one channel."""
        wanted = None if channel is None else (self.channel_id(channel) or channel)
        with self._lock:
            return [
                m
                for m in self.state.messages.values()
                if m.user == self.bot_user_id and (wanted is None or m.channel == wanted)
            ]

    def responses(self, response_url: str) -> list[dict[str, Any]]:
        """What the bot posted to a response_url, in order."""
        key = response_url.rstrip("/").rsplit("/", 1)[-1]
        with self._lock:
            return list(self._response_urls.get(key, []))

    def reset(self) -> None:
        """Forget calls, messages, failures, delays, left channels and response_urls."""
        with self._lock:
            self._calls.clear()
            self.state.messages.clear()
            self.state.left.clear()
            self.state.deleted.clear()
            self._delays.clear()
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
        with self._lock:
            delay = self._delays.get(method, 0.0)
        if delay > 0:  # a slow Slack: the call is answered (and recorded) late
            time.sleep(delay)
        status, body, extra = self._answer(method, path, params, headers)
        call = RecordedCall(method, path, params, headers, status, body, time.monotonic())
        with self._lock:
            self._calls.append(call)
            self._lock.notify_all()
            observers = list(self._observers)
        for observer in observers:  # outside the lock: an observer may call the fake
            observer(call)
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
        if method == OAUTH_ACCESS_METHOD:
            if self.oauth is None:
                return 200, {"ok": False, "error": "invalid_client_id"}, {}
            return 200, self.oauth.access(params, headers), {}
        handler = METHODS.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        token = token_of(params, headers)
        if not token:
            return 200, {"ok": False, "error": "not_authed"}, {}
        issued = self.oauth.lookup(token) if self.oauth is not None else None
        if isinstance(issued, str):  # token_revoked, token_expired
            return 200, {"ok": False, "error": issued}, {}
        if issued is not None:
            return 200, self._answer_installed(method, handler, params, issued), {}
        expected = {self.app_token} if method in APP_TOKEN_METHODS else {self.bot_token}
        if method in USER_TOKEN_METHODS:
            expected.add(self.admin_user_token)
        if token not in expected:
            # Like Slack: the other kind of valid token is refused by type, anything else as bad.
            known = token in (self.bot_token, self.app_token, self.admin_user_token)
            error = "not_allowed_token_type" if known else "invalid_auth"
            return 200, {"ok": False, "error": error}, {}
        kind = "user" if token == self.admin_user_token else "bot"
        with self._lock:
            return 200, handler(self.state, {**params, "_token_kind": kind}), {}

    def _answer_installed(
        self, method: str, handler: Any, params: dict[str, Any], issued: IssuedToken
    ) -> dict[str, Any]:
        """A call with a bot token issued through OAuth (one workspace's installation)."""
        if method in APP_TOKEN_METHODS:
            return {"ok": False, "error": "not_allowed_token_type"}
        if method == "auth.test":
            return auth_test_for(issued)
        with self._lock:
            return dict(handler(self.state, {**params, "_token_kind": "bot"}))

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
