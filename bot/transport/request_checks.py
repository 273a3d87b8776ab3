"""Requests Slack could never have sent are refused with a 4xx before Bolt reads them.

Bolt parses a body before it verifies the signature, and reads Slack's envelope fields
without checking their types: a body that is not UTF-8 or not a JSON object, JSON nested
a thousand levels deep (``json.loads`` raises RecursionError), or a signed one with
``"event": "x"``, ``"event": null`` or ``"actions": [1]``, raises inside Bolt and the server
answers 500. Slack's own requests always have the shape checked here, so nothing Slack sends
is refused; anything else gets a short 4xx and never reaches a listener.

Bolt also logs the whole body of a request whose signature fails (at INFO). The signature is
therefore checked here first, with Bolt's own verifier, and an unsigned request is logged as
one line naming its length and a hash, never its content.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.middleware.request_verification import RequestVerification
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_normalized_headers, extract_content_type
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

logger = logging.getLogger(__name__)

# Slack's deepest payloads (rich text lists inside a message inside an event) nest fewer
# than 30 levels; json.loads needs ~1000 to raise RecursionError.
MAX_JSON_DEPTH = 64
# A slash command has about 15 form fields, an interaction one (``payload``).
MAX_FORM_FIELDS = 100

# Fields that Bolt's matchers and context builders use as strings (ids, types, callback
# and action ids): Slack always sends them as strings (or null).
_STRING_FIELDS = frozenset(
    {
        "id",
        "type",
        "subtype",
        "command",
        "callback_id",
        "action_id",
        "block_id",
        "event_id",
        "team_id",
        "enterprise_id",
        "api_app_id",
        "user_id",
        "channel_id",
        "trigger_id",
        "response_url",
        "user_team",
        "app_installed_team_id",
        "context_team_id",
        "context_enterprise_id",
        "function_execution_id",
        "bot_access_token",
        "thread_ts",
        "ts",
    }
)
# Objects Bolt descends into (an event, a view, a clicked message, ...).
_OBJECT_FIELDS = frozenset(
    {
        "event",
        "view",
        "container",
        "message",
        "previous_message",
        "item",
        "assistant_thread",
        "function_data",
        "state",
        "selected_option",
    }
)
# Objects Bolt reads with ``body.get(key, {}).get(...)``: a null there raises inside Bolt.
# Slack leaves them out rather than sending null.
_NEVER_NULL_FIELDS = frozenset({"event", "view", "function", "context", "tokens"})
# An id or an object with an ``id`` (``"user": "U1"`` in events, ``{"id": "U1"}`` in
# interactions).
_ID_OR_OBJECT_FIELDS = frozenset({"team", "user", "channel", "enterprise"})
_OBJECT_LIST_FIELDS = frozenset({"actions", "authorizations"})
_MAX_DEPTH = 8
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


class BadRequest(ValueError):
    """A request refused before Bolt: an HTTP status and a short reason for the caller."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def envelope_problem(payload: Any, depth: int = 0) -> str | None:
    """Why a parsed body is not shaped like a Slack request, or None when it is."""
    if not isinstance(payload, Mapping):
        return "the body is not an object"
    if depth > _MAX_DEPTH:
        return "the body is nested too deeply"
    for key, value in payload.items():
        if value is None:
            if key in _NEVER_NULL_FIELDS:
                return f"{key} is null"
            continue
        if key in _STRING_FIELDS and not isinstance(value, str):
            return f"{key} is not a string"
        if key in _OBJECT_FIELDS or (key in _ID_OR_OBJECT_FIELDS and not isinstance(value, str)):
            problem = envelope_problem(value, depth + 1)
            if problem is not None:
                return f"{key}: {problem}"
        if key in _OBJECT_LIST_FIELDS:
            if not isinstance(value, list):
                return f"{key} is not a list"
            for item in value:
                problem = envelope_problem(item, depth + 1)
                if problem is not None:
                    return f"{key}: {problem}"
    return None


# Envelope types whose listeners act for a user: Slack always says who.
_USER_TYPES = frozenset(
    {
        "block_actions",
        "block_suggestion",
        "view_submission",
        "view_closed",
        "shortcut",
        "message_action",
    }
)


def missing_field(payload: Mapping[str, Any]) -> str | None:
    """A field Slack always sends with this kind of request but the payload lacks."""
    kind = payload.get("type")
    if kind is None and "command" in payload:  # a slash command (form fields)
        if not payload.get("command") or not payload.get("user_id"):
            return "a command without command or user_id"
    elif kind in _USER_TYPES:
        user = payload.get("user")
        if not isinstance(user, Mapping) or not user.get("id"):
            return f"{kind} without user.id"
        if kind == "block_actions":
            actions = payload.get("actions")
            if not actions or not all(isinstance(a.get("action_id"), str) for a in actions):
                return "block_actions without actions or an action_id"
        if kind == "block_suggestion" and not isinstance(payload.get("action_id"), str):
            return "block_suggestion without action_id"
        if kind.startswith("view_"):
            view = payload.get("view")
            if not isinstance(view, Mapping) or not all(
                isinstance(view.get(key), str) for key in ("type", "callback_id")
            ):
                return f"{kind} without view.type or view.callback_id"
        if kind in ("shortcut", "message_action") and not isinstance(
            payload.get("callback_id"), str
        ):
            return f"{kind} without callback_id"
    elif kind == "event_callback":
        event = payload.get("event")
        if not isinstance(event, Mapping) or not event.get("type") or not payload.get("event_id"):
            return "event_callback without event.type or event_id"
    return None


# What each envelope type is, for metrics: a bounded set of names.
_KINDS = {
    "event_callback": "event",
    "block_actions": "action",
    "interactive_message": "action",
    "view_submission": "view",
    "view_closed": "view",
    "block_suggestion": "options",
    "dialog_suggestion": "options",
    "shortcut": "shortcut",
    "message_action": "shortcut",
}


def request_kind(payload: Mapping[str, Any]) -> str:
    """What a Slack request is: ``command``, ``event``, ``action``, ``view``, ``options``,
    ``shortcut``, or ``other`` (a URL verification, an SSL check, a legacy dialog)."""
    kind = payload.get("type")
    if kind is None and "command" in payload:
        return "command"
    return _KINDS.get(kind, "other") if isinstance(kind, str) else "other"


# A JSON string (possessive: an unterminated one fails once, without backtracking), a
# bracket, or a quote that starts no complete string.
_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]|"', re.DOTALL)


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsing ``text`` as JSON would open more than ``limit`` arrays and objects.

    Scans without recursion (brackets inside strings do not count) and stops at the first
    unterminated string: a parser fails there too, no deeper than the scan has reached.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif token in ("]", "}"):
            depth -= 1
        elif token == '"':
            return False
    return False


def body_problem(text: str, content_type: str | None) -> str | None:
    """Why Bolt's parsing of this body could raise or take long, or None when it cannot.

    Follows Bolt's ``parse_body``: JSON for ``application/json`` or a body starting with
    ``{``, otherwise a form whose ``payload`` field (if any) is JSON.
    """
    if content_type == "application/json" or text.startswith("{"):
        return "the body is nested too deeply" if json_too_deep(text) else None
    try:
        fields = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_FIELDS
        )
    except UnicodeDecodeError:
        return "a form field is not UTF-8"
    except ValueError:
        return f"the form has more than {MAX_FORM_FIELDS} fields"
    if any(name == "payload" and json_too_deep(value) for name, value in fields):
        return "the payload is nested too deeply"
    return None


def redacted(body: bytes) -> str:
    """What a log may say about a body it must not show: its length and a short hash."""
    return f"{len(body)} bytes, sha256 {hashlib.sha256(body).hexdigest()[:16]}"


class Unverified(BadRequest):
    """A request whose Slack signature is missing, wrong or older than five minutes."""

    def __init__(self) -> None:
        super().__init__(401, "invalid request")


def checked_request(
    body: bytes,
    query: str,
    headers: dict[str, Any],
    verifier: SignatureVerifier | None = None,
) -> BoltRequest:
    """The Bolt request for a raw body, or BadRequest if Slack could not have sent it.

    Args:
        body: The raw body, as read from the socket.
        query: The query string.
        headers: The request headers, lower-case names.
        verifier: Checks the Slack signature (None: the app does not verify requests).

    Raises:
        BadRequest: 415 for a compressed body; 401 for a timestamp that is not a number;
            400 for a body that is not UTF-8, nests too deeply, has too many form fields,
            cannot be parsed the way Bolt parses it, is not shaped like Slack's envelopes or
            lacks a field Slack always sends.
        Unverified: 401 for a request not signed by Slack (checked before its envelope).
    """
    encoding = str(headers.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise BadRequest(415, "Slack requests are not compressed")
    timestamp = headers.get("x-slack-request-timestamp")
    if timestamp is not None and not _TIMESTAMP.fullmatch(str(timestamp)):
        # The signature check would call int() on it and fail with a 500.
        raise BadRequest(401, "invalid request timestamp")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, "the body is not UTF-8") from exc
    problem = body_problem(text, extract_content_type(build_normalized_headers(headers)))
    if problem is not None:
        raise BadRequest(400, problem)
    try:
        request = BoltRequest(body=text, query=query, headers=headers)
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        # Bolt's own parsing (JSON, form, payload=) and context extraction.
        raise BadRequest(400, "the body cannot be parsed as a Slack request") from exc
    # Bolt answers Slack's ssl_check before it verifies a signature, and logs no body there.
    if verifier is not None and request.body.get("ssl_check") != "1":
        signature = str(headers.get("x-slack-signature") or "")
        if not verifier.is_valid(body, str(timestamp or "0"), signature):
            raise Unverified()
    problem = envelope_problem(request.body) or missing_field(request.body)
    if problem is not None:
        raise BadRequest(400, f"not a Slack request: {problem}")
    return request


_BOLT_INVALID_SIGNATURE = "Invalid request signature detected"


class RedactUnverifiedBodies(logging.Filter):
    """Replaces the body in Bolt's "Invalid request signature detected" record by its length
    and hash.

    The handler refuses unsigned requests before Bolt sees them; this covers what it cannot:
    a request whose five minutes run out between its check and Bolt's, and an ``ssl_check``
    if Bolt's SslCheck is turned off.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(_BOLT_INVALID_SIGNATURE):
            # Bolt formats the message itself: "... (signature: s, timestamp: t, body: b)".
            body = record.msg.partition(", body: ")[2].removesuffix(")")
            record.msg = _BOLT_INVALID_SIGNATURE + " (body: %s)"
            record.args = (redacted(body.encode("utf-8", errors="replace")),)
        return True


def bolt_verification(app: App) -> RequestVerification | None:
    """Bolt's signature check in ``app``, its log redacted; None if the app has none."""
    for middleware in app._middleware_list:
        if isinstance(middleware, RequestVerification):
            if not any(isinstance(f, RedactUnverifiedBodies) for f in middleware.logger.filters):
                middleware.logger.addFilter(RedactUnverifiedBodies())
            return middleware
    return None


# The WSGI environ key where the handler leaves the kind of a request it passed to Bolt.
KIND_ENVIRON_KEY = "bertbot.request_kind"


class CheckedRequestHandler(SlackRequestHandler):
    """Bolt's WSGI handler, refusing malformed and unsigned requests before Bolt parses them.

    A request it passes to Bolt gets its :func:`request_kind` in the WSGI environ under
    :data:`KIND_ENVIRON_KEY` (for metrics around the handler).
    """

    def __init__(self, app: App, path: str = "/slack/events") -> None:
        super().__init__(app, path=path)
        verification = bolt_verification(app)
        # The verifier Bolt itself uses: the same secret and five-minute window.
        self._verifier = verification.verifier if verification is not None else None

    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        environ = request.environ
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if "wsgi.input" in environ else b""
        try:
            bolt_request = checked_request(
                body, request.query_string, request.get_headers(), self._verifier
            )
        except Unverified:
            logger.info(
                "refused an unsigned request: %s %s, %s",
                request.method,
                request.path,
                redacted(body),
            )
            # Bolt's own answer to a bad signature.
            return BoltResponse(status=401, body={"error": "invalid request"})
        except BadRequest as exc:
            logger.info("refused a request to %s: %s (%s)", request.path, exc.status, exc.reason)
            return BoltResponse(
                status=exc.status,
                body=exc.reason + "\n",
                headers={"content-type": "text/plain; charset=utf-8"},
            )
        environ[KIND_ENVIRON_KEY] = request_kind(bolt_request.body)
        return self.app.dispatch(bolt_request)
