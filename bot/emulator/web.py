"""The emulator's page: static files and a small JSON API over an :class:`Emulator`.

``GET /`` is the page; it polls ``GET /emulator/api/state`` and posts what people do to
``/emulator/api/<send|action|submit|close|home|shortcut>``. It listens on loopback only,
answers only requests addressed to it by a loopback Host (no DNS rebinding), takes only
JSON posts (no cross-site form posts) and forbids inline scripts with a
Content-Security-Policy.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from bot.emulator.inbound.actions import Outcome
from bot.emulator.workspace import Emulator

logger = logging.getLogger(__name__)

API = "/emulator/api/"
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MAX_BODY = 1_000_000
_LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EmulatorWebServer:
    """Serves the page for ``emulator`` on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 3000) -> None:
        if not is_loopback(host):
            raise ValueError(
                "the emulator listens on a loopback address only (its credentials are public)"
            )
        self.emulator = emulator
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{host}:{self.port}"

    def start(self) -> EmulatorWebServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="emulator-web",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> EmulatorWebServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Routes (called on the server's threads) --------------------------------------------

    def get(self, path: str, query: Mapping[str, str]) -> tuple[int, str, bytes]:
        if path in ("/", "/index.html"):
            return _static("index.html")
        if path.startswith("/static/"):
            return _static(path[len("/static/") :])
        if path == "/healthz":
            return 200, "text/plain; charset=utf-8", b"ok\n"
        if path == API + "config":
            return _json(200, self.emulator.config())
        if path == API + "state":
            since = query.get("since", "")
            try:
                state = self.emulator.state(
                    query.get("user", ""), int(since) if since.lstrip("-").isdigit() else None
                )
            except LookupError as exc:
                return _json(404, {"ok": False, "error": str(exc)})
            return _json(200, state)
        return _json(404, {"ok": False, "error": "not_found"})

    def post(self, path: str, body: Mapping[str, Any]) -> tuple[int, str, bytes]:
        route = _ROUTES.get(path[len(API) :] if path.startswith(API) else "")
        if route is None:
            return _json(404, {"ok": False, "error": "not_found"})
        try:
            outcome = route(self.emulator, body)
        except LookupError as exc:
            return _json(400, {"ok": False, "error": str(exc)})
        except (KeyError, TypeError, ValueError) as exc:
            return _json(400, {"ok": False, "error": f"bad request: {exc}"})
        return _json(200, outcome.to_json())


def _send(emulator: Emulator, body: Mapping[str, Any]) -> Outcome:
    return emulator.send(str(body["user"]), str(body["channel"]), str(body["text"]))


def _action(emulator: Emulator, body: Mapping[str, Any]) -> Outcome:
    value = body.get("value")
    return emulator.click(
        str(body["user"]),
        str(body["ref"]),
        int(body["block"]),
        str(body["element"]),
        str(body["action_id"]),
        value=None if value is None else str(value),
        inputs=_inputs(body.get("inputs")),
    )


def _submit(emulator: Emulator, body: Mapping[str, Any]) -> Outcome:
    return emulator.submit(str(body["user"]), str(body["view_id"]), _inputs(body.get("inputs")))


def _close(emulator: Emulator, body: Mapping[str, Any]) -> Outcome:
    return emulator.close(str(body["user"]), str(body["view_id"]))


def _home(emulator: Emulator, body: Mapping[str, Any]) -> Outcome:
    return emulator.open_home(str(body["user"]))


def _shortcut(emulator: Emulator, body: Mapping[str, Any]) -> Outcome:
    return emulator.shortcut(str(body["user"]), int(body["entry"]), str(body["callback_id"]))


def _inputs(value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): dict(v) for k, v in value.items() if isinstance(v, Mapping)}


_ROUTES: dict[str, Callable[[Emulator, Mapping[str, Any]], Outcome]] = {
    "send": _send,
    "action": _action,
    "submit": _submit,
    "close": _close,
    "home": _home,
    "shortcut": _shortcut,
}


def _json(status: int, data: Any) -> tuple[int, str, bytes]:
    return status, "application/json; charset=utf-8", json.dumps(data).encode("utf-8")


def _static(name: str) -> tuple[int, str, bytes]:
    content_type = _STATIC.get(name)
    if content_type is None:  # only the known files: no path traversal to worry about
        return _json(404, {"ok": False, "error": "not_found"})
    data = resources.files("bot.emulator").joinpath("static", name).read_bytes()
    return 200, content_type, data


class _Handler(BaseHTTPRequestHandler):
    server_owner: EmulatorWebServer
    server_version = "bertbot-emulator/1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if not self._host_ok():
            return
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        self._answer(*self.server_owner.get(url.path, query))

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return
        url = urllib.parse.urlsplit(self.path)
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._answer(*_json(415, {"ok": False, "error": "send application/json"}))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            self._answer(*_json(413, {"ok": False, "error": "too large"}))
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            self._answer(*_json(400, {"ok": False, "error": "invalid JSON"}))
            return
        if not isinstance(body, dict):
            self._answer(*_json(400, {"ok": False, "error": "expected a JSON object"}))
            return
        self._answer(*self.server_owner.post(url.path, body))

    def _host_ok(self) -> bool:
        host = urllib.parse.urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        if is_loopback(host):
            return True
        self._answer(*_json(421, {"ok": False, "error": "misdirected request"}))
        return False

    def _answer(self, status: int, content_type: str, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        try:
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The browser (or a health probe) went away before the answer: nothing to do.
            logger.debug("emulator web: the client closed the connection before the answer")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("emulator web: " + format, *args)
