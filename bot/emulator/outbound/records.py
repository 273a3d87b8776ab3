"""What the fake Web API keeps: the calls it received and the messages it holds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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
        return token_of(self.params, self.headers)


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


def token_of(params: Mapping[str, Any], headers: Mapping[str, str]) -> str | None:
    """The token a call carries: ``Authorization: Bearer`` first, else a ``token`` field."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    token = params.get("token")
    return str(token) if token else None
