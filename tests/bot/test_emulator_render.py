"""The emulator's mrkdwn and Block Kit rendering: faithful enough to read, and never unsafe."""

from __future__ import annotations

import pytest

from bot.emulator.render import RenderContext, blocks_html, mrkdwn_html, with_ids
from bot.ui import blocks as bot_blocks

CTX = RenderContext(
    users={"U0MO": "mo", "U0ME": "me"},
    channels={"C0GENERAL": "general"},
    team_domain="bertbot-local",
    me="U0ME",
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("*bold* and _italic_ and ~gone~", "<b>bold</b> and <i>italic</i> and <s>gone</s>"),
        ("`*not bold*` here", "<code>*not bold*</code> here"),
        ("```a\n*b*```", "<pre>a\n*b*</pre>"),
        ("snake_case_name 2*3*4", "snake_case_name 2*3*4"),
        ("hi <@U0MO>", 'hi <span class="mention">@mo</span>'),
        ("hi <@U0ME>", 'hi <span class="mention me">@me</span>'),
        ("<!here> look", '<span class="mention special">@here</span> look'),
        ("at <!date^1700000000^{date_short}|Nov 14, 2023>", "at Nov 14, 2023"),
        ("> quoted\nnot", "<blockquote>quoted</blockquote>not"),
        ("&gt; typed by a user", "&gt; typed by a user"),
        ("a &amp; b &lt;c&gt;", "a &amp; b &lt;c&gt;"),
        (":rotating_light: :no_such_emoji:", "🚨 :no_such_emoji:"),
        ("line 1\nline 2", "line 1<br>line 2"),
        ("*<https://example.com|bold link>*", "<b>"),
    ],
)
def test_mrkdwn_formats_like_slack(source: str, expected: str) -> None:
    assert expected in mrkdwn_html(source, CTX)


def test_links_keep_safe_schemes_only_and_escape_their_attributes() -> None:
    safe = mrkdwn_html('<https://example.com/?a=1&amp;b="x"|the &lt;b&gt;docs&lt;/b&gt;>', CTX)
    assert safe.startswith('<a href="https://example.com/?a=1&amp;b=&quot;x&quot;"')
    assert 'rel="noopener noreferrer">the &lt;b&gt;docs&lt;/b&gt;</a>' in safe
    assert mrkdwn_html("<javascript:alert(1)|click me>", CTX) == "click me"
    assert "<a" not in mrkdwn_html("<data:text/html,hi>", CTX)


@pytest.mark.parametrize(
    "hostile",
    [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '"><svg onload=alert(1)>',
        "<@U0MO|<script>>",
        "&lt;iframe src=x&gt;",
        "`<script>`",
        '<#C0GENERAL|x" onclick="alert(1)>',
    ],
)
def test_nothing_the_bot_sends_becomes_markup(hostile: str) -> None:
    rendered = mrkdwn_html(hostile, CTX)
    for tag in ("<img", "<script", "<svg", "<iframe", 'onclick="'):
        assert tag not in rendered


def test_a_slack_permalink_jumps_to_the_message_in_the_page() -> None:
    link = "<https://bertbot-local.slack.com/archives/C0GENERAL/p1700000000000012|View message>"
    rendered = mrkdwn_html(link, CTX)
    assert 'data-jump-channel="C0GENERAL"' in rendered
    assert 'data-jump-ts="1700000000.000012"' in rendered
    assert 'href="#"' in rendered


def test_block_kit_renders_sections_fields_context_header_divider_and_actions() -> None:
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": "Retrain <spam>"}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": "*Result*"},
            "fields": [
                {"type": "mrkdwn", "text": "*F1*\n0.91"},
                {"type": "plain_text", "text": "<b>raw</b>"},
            ],
            "accessory": {
                "type": "button",
                "action_id": "more",
                "text": {"type": "plain_text", "text": "More"},
            },
        },
        {"type": "divider"},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": "model v3"}]},
        {
            "type": "actions",
            "block_id": "label:7",
            "elements": [
                {
                    "type": "button",
                    "action_id": "bertbot_label:spam",
                    "text": {"type": "plain_text", "text": "Spam"},
                    "style": "danger",
                    "value": "spam",
                },
                {
                    "type": "static_select",
                    "action_id": "bertbot_relabel",
                    "placeholder": {"type": "plain_text", "text": "Relabel as …"},
                    "options": [{"text": {"type": "plain_text", "text": "Ham"}, "value": "ham"}],
                },
            ],
        },
        {"type": "video"},
    ]
    html = blocks_html(with_ids(blocks, "seed"), CTX)
    assert '<h3 class="block header"' in html and "Retrain &lt;spam&gt;" in html
    assert '<div class="fields">' in html and "<b>F1</b><br>0.91" in html
    assert "&lt;b&gt;raw&lt;/b&gt;" in html
    assert 'data-element="accessory" data-action-id="more"' in html
    assert '<hr class="block divider"' in html
    assert 'class="btn btn-danger" data-block="4" data-element="0"' in html
    assert 'data-action-id="bertbot_relabel"' in html and '<option value="ham">Ham</option>' in html
    assert "cannot show a <code>video</code> block" in html


def test_the_bots_own_alert_renders_with_its_buttons() -> None:
    """bot.ui.blocks' output goes through unchanged: a real builder, a real render."""
    text = bot_blocks.quote("WIN a <b>FREE</b> prize & more")
    html = mrkdwn_html(f":rotating_light: *Possible spam* from <@U0MO>\n{text}", CTX)
    assert html.startswith("🚨 <b>Possible spam</b> from")
    assert "<blockquote>WIN a &lt;b&gt;FREE&lt;/b&gt; prize &amp; more</blockquote>" in html


def test_missing_block_and_action_ids_are_generated_stably() -> None:
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": "x"}},
        {"type": "actions", "block_id": "mine", "elements": [{"type": "button", "text": {}}]},
    ]
    first, second = with_ids(blocks, "C1/1.0"), with_ids(blocks, "C1/1.0")
    assert first == second and first[1]["block_id"] == "mine"
    assert first[0]["block_id"] and first[1]["elements"][0]["action_id"]
    assert "block_id" not in blocks[0]  # the input is not modified
