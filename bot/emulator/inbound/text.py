"""What people type, as Slack sends it on: escaped, with ``@name`` as a mention."""

from __future__ import annotations

import re
from collections.abc import Mapping

_MENTION = re.compile(r"(?<![\w@<])@([a-z0-9][a-z0-9._-]*)")


def escape(text: str) -> str:
    """Slack's escaping of what people type: ``&``, ``<`` and ``>`` as entities."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def message_text(text: str, names: Mapping[str, str]) -> str:
    """A message's text as Slack sends it: escaped, ``@name`` as ``<@U…>`` (``names``:
    user names to ids) and ``@here``/``@channel``/``@everyone`` as ``<!here>`` and so on."""

    def mention(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in ("here", "channel", "everyone"):
            return f"<!{name}>"
        return f"<@{names[name]}>" if name in names else match.group(0)

    return _MENTION.sub(mention, escape(text))
