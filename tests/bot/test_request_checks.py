"""Envelope checks: what Bolt would choke on is refused, what Slack sends is not."""

from __future__ import annotations

from typing import Any

import pytest

from bot.transport.request_checks import envelope_problem


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # found by the reliability fuzzing: Bolt reads body.get("event", {}).get(...)
        ({"event": None}, "event is null"),
        ({"type": "event_callback", "event_id": "Ev1", "event": None}, "event is null"),
        ({"type": "view_submission", "view": None}, "view is null"),
        (
            {"type": "event_callback", "event": {"type": "tokens_revoked", "tokens": None}},
            "event: tokens is null",
        ),
        ({"event": "x"}, "event: the body is not an object"),
        ({"actions": [1]}, "actions: the body is not an object"),
        ({"command": 7}, "command is not a string"),
    ],
)
def test_bodies_bolt_cannot_read_are_refused(body: dict[str, Any], problem: str) -> None:
    assert envelope_problem(body) == problem


@pytest.mark.parametrize(
    "body",
    [
        {
            "type": "event_callback",
            "event_id": "Ev1",
            "event": {"type": "message", "thread_ts": None},
        },
        {"type": "block_actions", "user": {"id": "U1"}, "message": None, "state": None},
        {"token": "t", "team_id": "T1", "enterprise_id": None, "command": "/classify"},
    ],
)
def test_nulls_slack_does_send_are_accepted(body: dict[str, Any]) -> None:
    assert envelope_problem(body) is None
