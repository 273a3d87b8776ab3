"""Slack mrkdwn and Block Kit to HTML, for the emulator's page: pure functions.

Everything the bot sends is untrusted text: it is HTML-escaped before any markup is added,
links keep only http(s) and mailto targets, and no attribute ever holds unescaped text. The
page's Content-Security-Policy forbids inline scripts and styles on top of that.

Interactive elements carry ``data-block`` (the block's index), ``data-element`` (the
element's index, or ``accessory``) and ``data-action-id``; the page sends those back and the
emulator finds the element in the blocks it stored, so a click is built from what the bot
sent, not from what the page claims.
"""

from __future__ import annotations

import hashlib
import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Private-use characters mark placeholders while the text is formatted; input never keeps them.
_OPEN, _CLOSE = "\ue000", "\ue001"
_PLACEHOLDER = re.compile(_OPEN + r"(\d+)" + _CLOSE)
_CONTROL = re.compile(r"<([^<>\n]+)>")
_CODE_BLOCK = re.compile(r"```(.+?)```", re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])")
_ITALIC = re.compile(r"(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_STRIKE = re.compile(r"(?<![\w~])~(?!\s)([^~\n]+?)(?<!\s)~(?![\w~])")
_SHORTCODE = re.compile(r":([a-z0-9_+'-]+):")
_SAFE_SCHEMES = ("http://", "https://", "mailto:")

EMOJI = {
    "rotating_light": "🚨",
    "scissors": "✂️",
    "white_check_mark": "✅",
    "heavy_check_mark": "✔️",
    "x": "❌",
    "warning": "⚠️",
    "scales": "⚖️",
    "tada": "🎉",
    "hourglass": "⌛",
    "hourglass_flowing_sand": "⏳",
    "robot_face": "🤖",
    "eyes": "👀",
    "+1": "👍",
    "thumbsup": "👍",
    "-1": "👎",
    "thumbsdown": "👎",
    "chart_with_upwards_trend": "📈",
    "chart_with_downwards_trend": "📉",
    "bar_chart": "📊",
    "arrow_up": "⬆️",
    "arrow_down": "⬇️",
    "rewind": "⏪",
    "label": "🏷️",
    "memo": "📝",
    "wave": "👋",
    "information_source": "ℹ️",
    "no_entry": "⛔",
    "lock": "🔒",
    "gear": "⚙️",
    "mag": "🔍",
    "sparkles": "✨",
    "rocket": "🚀",
    "books": "📚",
    "heart": "❤️",
    "smile": "😄",
    "slightly_smiling_face": "🙂",
    "disappointed": "😞",
    "speech_balloon": "💬",
    "stopwatch": "⏱️",
    "trophy": "🏆",
    "red_circle": "🔴",
    "large_green_circle": "🟢",
    "large_yellow_circle": "🟡",
    "no_entry_sign": "🚫",
    "ok": "🆗",
    "calendar": "📆",
    "fast_forward": "⏩",
    "grey_question": "❔",
    "arrows_counterclockwise": "🔄",
}


@dataclass(frozen=True)
class RenderContext:
    """What mrkdwn needs to know about the workspace.

    Attributes:
        users: User ids to display names (for ``<@U…>``).
        channels: Channel ids to names (for ``<#C…>``).
        team_domain: Permalinks to ``https://<team_domain>.slack.com/archives/…`` become
            jumps inside the page.
        me: The viewing user (their mentions are highlighted).
    """

    users: Mapping[str, str] = field(default_factory=dict)
    channels: Mapping[str, str] = field(default_factory=dict)
    team_domain: str = ""
    me: str | None = None


def unescape_slack(text: str) -> str:
    """Slack's three entities back to characters (what the user typed)."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def emojize(escaped: str) -> str:
    """``:tada:`` to 🎉 for known names; unknown shortcodes stay as typed."""
    return _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), escaped)


def plain_html(text: object, *, emoji: bool = True) -> str:
    """A ``plain_text`` string as HTML (escaped; emoji shortcodes when ``emoji``)."""
    escaped = html.escape(str(text if text is not None else ""), quote=True)
    return emojize(escaped) if emoji else escaped


def text_html(obj: Any, ctx: RenderContext) -> str:
    """A Block Kit text object (``mrkdwn`` or ``plain_text``) as HTML."""
    if isinstance(obj, str):
        return mrkdwn_html(obj, ctx)
    if not isinstance(obj, Mapping):
        return ""
    if obj.get("type") == "plain_text":
        return plain_html(obj.get("text"), emoji=obj.get("emoji", True) is not False)
    return mrkdwn_html(str(obj.get("text") or ""), ctx)


def mrkdwn_html(text: str, ctx: RenderContext) -> str:
    """Slack mrkdwn as safe HTML.

    Supports ``*bold*``, ``_italic_``, ``~strike~``, ```code```, ````` ```blocks``` `````,
    ``> quotes``, ``<url|text>`` links, ``<@U…>``/``<#C…>``/``<!here>`` mentions and emoji
    shortcodes. Slack's entities (``&amp;``, ``&lt;``, ``&gt;``) show as the characters.
    """
    text = text.replace(_OPEN, "").replace(_CLOSE, "").replace("\r\n", "\n")
    pieces: list[str] = []

    def hold(fragment: str) -> str:
        pieces.append(fragment)
        return f"{_OPEN}{len(pieces) - 1}{_CLOSE}"

    def code(source: str) -> str:
        plain = _CONTROL.sub(lambda m: _control_plain(m.group(1), ctx), source)
        return html.escape(unescape_slack(plain), quote=True)

    text = _CODE_BLOCK.sub(lambda m: hold(f"<pre>{code(m.group(1).strip(chr(10)))}</pre>"), text)
    text = _CODE_SPAN.sub(lambda m: hold(f"<code>{code(m.group(1))}</code>"), text)
    text = _CONTROL.sub(lambda m: hold(_control_html(m.group(1), ctx)), text)

    out: list[str] = []
    quote: list[str] = []
    for line in text.split("\n"):
        if line.startswith(">"):  # a raw ">" starts a quote; the user's ">" arrives as &gt;
            quote.append(_inline(line[1:].removeprefix(" ")))
            continue
        if quote:
            out.append("<blockquote>" + "<br>".join(quote) + "</blockquote>")
            quote = []
        out.append(_inline(line) + "<br>")
    if quote:
        out.append("<blockquote>" + "<br>".join(quote) + "</blockquote>")
    rendered = "".join(out).removesuffix("<br>")
    return _PLACEHOLDER.sub(lambda m: pieces[int(m.group(1))], rendered)


def _inline(source: str) -> str:
    escaped = html.escape(unescape_slack(source), quote=True)
    escaped = _BOLD.sub(r"<b>\1</b>", escaped)
    escaped = _ITALIC.sub(r"<i>\1</i>", escaped)
    escaped = _STRIKE.sub(r"<s>\1</s>", escaped)
    return emojize(escaped)


def _control_plain(body: str, ctx: RenderContext) -> str:
    target, _, label = body.partition("|")
    if target.startswith("@"):
        return "@" + (label or ctx.users.get(target[1:], target[1:]))
    if target.startswith("#"):
        return "#" + (label or ctx.channels.get(target[1:], target[1:]))
    if target.startswith("!"):
        return label or "@" + target[1:].split("^", 1)[0]
    return label or target


def _control_html(body: str, ctx: RenderContext) -> str:
    target, _, label = body.partition("|")
    if target.startswith("@"):
        user_id = target[1:]
        name = label.lstrip("@") or ctx.users.get(user_id, user_id)
        css = "mention me" if user_id == ctx.me else "mention"
        return f'<span class="{css}">@{html.escape(unescape_slack(name))}</span>'
    if target.startswith("#"):
        channel_id = target[1:]
        name = label or ctx.channels.get(channel_id, channel_id)
        return (
            f'<a href="#" class="channel-link" data-jump-channel="{html.escape(channel_id)}">'
            f"#{html.escape(unescape_slack(name))}</a>"
        )
    if target.startswith("!"):
        special = target[1:].split("^", 1)[0]
        if special == "date":  # <!date^epoch^format|fallback>: the fallback, as plain text
            return html.escape(unescape_slack(label or target))
        shown = label or ("@" + special)
        return f'<span class="mention special">{html.escape(unescape_slack(shown))}</span>'
    url = unescape_slack(target)
    shown = html.escape(unescape_slack(label or target))
    jump = _permalink_target(url, ctx.team_domain)
    if jump is not None:
        channel_id, ts = jump
        return (
            f'<a href="#" class="permalink" data-jump-channel="{html.escape(channel_id)}" '
            f'data-jump-ts="{html.escape(ts)}">{shown}</a>'
        )
    if not url.lower().startswith(_SAFE_SCHEMES):
        return shown
    return (
        f'<a href="{html.escape(url, quote=True)}" target="_blank" '
        f'rel="noopener noreferrer">{shown}</a>'
    )


def _permalink_target(url: str, team_domain: str) -> tuple[str, str] | None:
    if not team_domain:
        return None
    match = re.fullmatch(
        r"https://"
        + re.escape(team_domain)
        + r"\.slack\.com/archives/([CGD][A-Z0-9]+)/p(\d+)(\d{6})",
        url,
    )
    if match is None:
        return None
    return match.group(1), f"{match.group(2)}.{match.group(3)}"


# Block Kit ------------------------------------------------------------------------------


def stable_id(*parts: object) -> str:
    """A short id standing in for the one Slack generates for a block without ``block_id``."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).hexdigest()
    return digest[:5]


def with_ids(blocks: Sequence[Mapping[str, Any]], seed: str) -> list[dict[str, Any]]:
    """A copy of ``blocks`` where every block has a ``block_id`` and every interactive
    element an ``action_id``, generated as Slack does for those that lack one."""
    out: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        copy = dict(block)
        block_id = str(copy.get("block_id") or stable_id(seed, index))
        copy["block_id"] = block_id
        if isinstance(copy.get("elements"), list) and copy.get("type") == "actions":
            copy["elements"] = [
                _with_action_id(e, block_id, i) for i, e in enumerate(copy["elements"])
            ]
        for key in ("accessory", "element"):
            if isinstance(copy.get(key), Mapping):
                copy[key] = _with_action_id(copy[key], block_id, key)
        out.append(copy)
    return out


def _with_action_id(element: Mapping[str, Any], block_id: str, index: object) -> dict[str, Any]:
    copy = dict(element)
    if "action_id" not in copy and copy.get("type") not in ("image", "mrkdwn", "plain_text"):
        copy["action_id"] = stable_id(block_id, index)
    return copy


def blocks_html(
    blocks: Sequence[Mapping[str, Any]],
    ctx: RenderContext,
    *,
    errors: Mapping[str, str] | None = None,
) -> str:
    """Blocks as HTML; ``errors`` (block id to message) show under input blocks."""
    return "".join(
        block_html(block, index, ctx, errors or {}) for index, block in enumerate(blocks)
    )


def block_html(
    block: Mapping[str, Any], index: int, ctx: RenderContext, errors: Mapping[str, str]
) -> str:
    kind = block.get("type")
    block_id = str(block.get("block_id") or "")
    attrs = f'data-block="{index}" data-block-id="{html.escape(block_id)}"'
    if kind == "section":
        inner = ""
        if block.get("text"):
            inner += f'<div class="section-text">{text_html(block["text"], ctx)}</div>'
        fields = block.get("fields") or []
        if fields:
            inner += (
                '<div class="fields">'
                + "".join(f'<div class="field">{text_html(f, ctx)}</div>' for f in fields)
                + "</div>"
            )
        accessory = block.get("accessory")
        side = ""
        if isinstance(accessory, Mapping):
            side = (
                f'<div class="accessory">{element_html(accessory, index, "accessory", ctx)}</div>'
            )
        main = f'<div class="section-main">{inner}</div>'
        return f'<div class="block section" {attrs}>{main}{side}</div>'
    if kind == "context":
        parts = []
        for element in block.get("elements") or []:
            if isinstance(element, Mapping) and element.get("type") == "image":
                parts.append(
                    f'<span class="image-alt">[{plain_html(element.get("alt_text"))}]</span>'
                )
            else:
                parts.append(f"<span>{text_html(element, ctx)}</span>")
        return f'<div class="block context" {attrs}>{"".join(parts)}</div>'
    if kind == "divider":
        return f'<hr class="block divider" {attrs}>'
    if kind == "header":
        return f'<h3 class="block header" {attrs}>{text_html(block.get("text"), ctx)}</h3>'
    if kind == "actions":
        elements = "".join(
            element_html(e, index, str(i), ctx) for i, e in enumerate(block.get("elements") or [])
        )
        return f'<div class="block actions" {attrs}>{elements}</div>'
    if kind == "image":
        title = text_html(block.get("title"), ctx) if block.get("title") else ""
        return (
            f'<div class="block image" {attrs}>{title}<span class="image-alt">'
            f"[image: {plain_html(block.get('alt_text'))}]</span></div>"
        )
    if kind == "input":
        return _input_html(block, index, ctx, errors.get(block_id))
    if kind == "rich_text":
        return f'<div class="block rich-text" {attrs}>{_rich_text_html(block, ctx)}</div>'
    return (
        f'<div class="block unsupported" {attrs}>The emulator cannot show a '
        f"<code>{plain_html(kind, emoji=False)}</code> block yet.</div>"
    )


def element_html(element: Mapping[str, Any], block: int, index: str, ctx: RenderContext) -> str:
    """An interactive element of an actions block or a section's accessory."""
    kind = element.get("type")
    action_id = html.escape(str(element.get("action_id") or ""))
    attrs = f'data-block="{block}" data-element="{index}" data-action-id="{action_id}"'
    if kind == "button":
        style = element.get("style")
        css = "btn" + (f" btn-{style}" if style in ("primary", "danger") else "")
        url = element.get("url")
        if isinstance(url, str) and url.lower().startswith(_SAFE_SCHEMES):
            attrs += f' data-url="{html.escape(url, quote=True)}"'
        label = text_html(element.get("text"), ctx)
        return f'<button type="button" class="{css}" {attrs}>{label}</button>'
    if kind in ("static_select", "overflow"):
        placeholder = (
            "⋯"
            if kind == "overflow"
            else plain_html((element.get("placeholder") or {}).get("text") or "Select an item")
        )
        return (
            f'<select class="select" {attrs}>'
            f'<option value="" disabled{"" if _initial(element) else " selected"}>'
            f"{placeholder}</option>"
            f"{_options_html(element)}</select>"
        )
    if kind == "image":
        return f'<span class="image-alt">[{plain_html(element.get("alt_text"))}]</span>'
    return (
        f'<span class="unsupported" {attrs}>[{plain_html(kind, emoji=False)} is not supported '
        "by the emulator]</span>"
    )


def _initial(element: Mapping[str, Any]) -> str | None:
    initial = element.get("initial_option")
    return str(initial.get("value")) if isinstance(initial, Mapping) else None


def _option_html(option: Mapping[str, Any], selected: str | None) -> str:
    value = str(option.get("value") or "")
    chosen = " selected" if value == selected else ""
    label = plain_html((option.get("text") or {}).get("text"))
    return f'<option value="{html.escape(value, quote=True)}"{chosen}>{label}</option>'


def _options_html(element: Mapping[str, Any]) -> str:
    selected = _initial(element)
    parts = [_option_html(o, selected) for o in element.get("options") or []]
    for group in element.get("option_groups") or []:
        label = plain_html((group.get("label") or {}).get("text"))
        inner = "".join(_option_html(o, selected) for o in group.get("options") or [])
        parts.append(f'<optgroup label="{label}">{inner}</optgroup>')
    return "".join(parts)


INPUT_TYPES = (
    "plain_text_input",
    "static_select",
    "radio_buttons",
    "checkboxes",
    "number_input",
    "email_text_input",
    "url_text_input",
)


def _input_html(block: Mapping[str, Any], index: int, ctx: RenderContext, error: str | None) -> str:
    element = block.get("element") or {}
    kind = str(element.get("type") or "")
    block_id = html.escape(str(block.get("block_id") or ""))
    action_id = html.escape(str(element.get("action_id") or ""))
    optional = bool(block.get("optional"))
    label = plain_html((block.get("label") or {}).get("text"))
    if optional:
        label += ' <span class="optional">(optional)</span>'
    name = f"{block_id}/{action_id}"
    attrs = (
        f'data-input-block="{block_id}" data-action-id="{action_id}" '
        f'data-type="{html.escape(kind)}" data-required="{"false" if optional else "true"}"'
    )
    placeholder = html.escape(str((element.get("placeholder") or {}).get("text") or ""), quote=True)
    if kind == "plain_text_input" and element.get("multiline"):
        control = (
            f'<textarea name="{name}" placeholder="{placeholder}">'
            f"{html.escape(str(element.get('initial_value') or ''))}</textarea>"
        )
    elif kind in ("plain_text_input", "number_input", "email_text_input", "url_text_input"):
        input_type = {
            "number_input": "number",
            "email_text_input": "email",
            "url_text_input": "url",
        }
        control = (
            f'<input type="{input_type.get(kind, "text")}" name="{name}" '
            f'placeholder="{placeholder}" '
            f'value="{html.escape(str(element.get("initial_value") or ""), quote=True)}">'
        )
    elif kind == "static_select":
        initial = _initial(element)
        control = (
            f'<select name="{name}"><option value=""{"" if initial else " selected"}>'
            f"{placeholder or 'Select an item'}</option>{_options_html(element)}</select>"
        )
    elif kind in ("radio_buttons", "checkboxes"):
        box = "radio" if kind == "radio_buttons" else "checkbox"
        initial_values = {_initial(element)} | {
            str(o.get("value")) for o in element.get("initial_options") or []
        }
        control = "".join(
            f'<label class="choice"><input type="{box}" name="{name}" '
            f'value="{html.escape(str(o.get("value") or ""), quote=True)}"'
            f"{' checked' if str(o.get('value')) in initial_values else ''}> "
            f"{text_html(o.get('text'), ctx)}</label>"
            for o in element.get("options") or []
        )
    else:
        control = (
            f'<span class="unsupported">[{plain_html(kind, emoji=False)} is not supported by the '
            "emulator]</span>"
        )
    hint = block.get("hint")
    hint_html = f'<div class="hint">{text_html(hint, ctx)}</div>' if hint else ""
    error_html = f'<div class="input-error">{plain_html(error)}</div>' if error else ""
    return (
        f'<div class="block input" data-block="{index}" {attrs}><label class="input-label">'
        f"{label}</label>{control}{hint_html}{error_html}</div>"
    )


def _rich_text_html(block: Mapping[str, Any], ctx: RenderContext) -> str:
    out: list[str] = []
    for section in block.get("elements") or []:
        for element in section.get("elements") or []:
            kind = element.get("type")
            if kind == "text":
                out.append(html.escape(str(element.get("text") or "")).replace("\n", "<br>"))
            elif kind == "link":
                out.append(_control_html(f"{element.get('url')}|{element.get('text') or ''}", ctx))
            elif kind == "user":
                out.append(_control_html(f"@{element.get('user_id')}", ctx))
            elif kind == "channel":
                out.append(_control_html(f"#{element.get('channel_id')}", ctx))
            elif kind == "emoji":
                out.append(emojize(f":{html.escape(str(element.get('name') or ''))}:"))
    return "".join(out)


def clock(ts: str) -> str:
    """A message timestamp as the local ``HH:MM`` the page shows."""
    try:
        return time.strftime("%H:%M", time.localtime(float(ts)))
    except ValueError:
        return ""
