"""Slack's markup decoded to the text people typed, before models and storage see it."""

from __future__ import annotations

import pytest

from bot.listeners.slack_text import to_plain


@pytest.mark.parametrize(
    ("sent", "typed"),
    [
        ("plain words", "plain words"),
        ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
        ("&amp;lt; is how you write &lt;", "&lt; is how you write <"),
        ("see <https://example.com/x?a=1&amp;b=2|the docs>", "see the docs"),
        ("go to <https://example.com>", "go to https://example.com"),
        ("hi <@U0123ABC> and <@U0456|mo>", "hi @U0123ABC and @mo"),
        ("in <#C0GENERAL|general>", "in #general"),
        ("<!here> <!channel> <!subteam^S01|@mods>", "@here @channel @mods"),
        ("'; DROP TABLE messages; --", "'; DROP TABLE messages; --"),
        ("\u200f\u200bemoji 🎉 nul\x00", "\u200f\u200bemoji 🎉 nul\x00"),
    ],
)
def test_slack_markup_becomes_the_typed_text(sent: str, typed: str) -> None:
    assert to_plain(sent) == typed
