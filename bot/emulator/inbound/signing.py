"""How Slack signs the requests it sends an app, and the local signing secret."""

from __future__ import annotations

import hashlib
import hmac

# Public on purpose: requests signed with it come only from the local emulator.
LOCAL_SIGNING_SECRET = "local-signing-secret-not-for-slack"


def slack_signature(signing_secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing secret."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
