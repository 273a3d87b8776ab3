"""Slack's message markup to the plain text people typed (what models see and storage keeps).

Slack sends message and slash-command text with ``&``, ``<`` and ``>`` escaped and with
control sequences in angle brackets: links ``<https://x.y|label>``, mentions ``<@U123>``,
channels ``<#C123|general>``, special mentions ``<!here>`` and user groups
``<!subteam^S123|@team>``. See https://api.slack.com/reference/surfaces/formatting.
The models were trained on plain text, so listeners decode once at the boundary; everything
shown back in Slack is escaped again by :func:`bot.ui.blocks.escape`.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"<([^<>]*)>")


def _control(match: re.Match[str]) -> str:
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):  # <@U123> or <@U123|name>
        return "@" + (label or target[1:])
    if target.startswith("#"):  # <#C123|general>
        return "#" + (label or target[1:])
    if target.startswith("!"):  # <!here>, <!channel>, <!subteam^S1|@team>, <!date^...|text>
        if label:
            return label
        return "@" + target[1:].split("^", 1)[0]
    return label or target  # a link: its label, else the URL itself


def to_plain(text: str) -> str:
    """The text as typed: control sequences resolved, then ``&lt; &gt; &amp;`` unescaped.

    Apply it once, to text exactly as Slack sent it.
    """
    if "<" in text:
        text = _CONTROL.sub(_control, text)
    if "&" in text:
        text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return text
