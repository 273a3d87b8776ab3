"""Exemptions by user group: members listed by Slack, cached, empty when Slack cannot say."""

from __future__ import annotations

from bot.app import make_client
from bot.emulator.outbound import FakeSlack
from bot.services.user_groups import SlackUserGroups
from tests.bot.conftest import BOT_TOKEN, MEMBER


def test_members_are_listed_once_per_ttl_and_a_failure_exempts_nobody(
    fake_slack: FakeSlack,
) -> None:
    fake_slack.state.usergroups["S0VENDORS"] = [MEMBER]
    now = [0.0]
    groups = SlackUserGroups(
        make_client(BOT_TOKEN, base_url=fake_slack.api_url), ttl_s=60, clock=lambda: now[0]
    )
    assert groups("S0VENDORS") == {MEMBER}
    assert groups("S0VENDORS") == {MEMBER}
    assert len(fake_slack.calls("usergroups.users.list")) == 1
    assert groups("S0UNKNOWN") == frozenset()
    now[0] = 61.0
    fake_slack.state.usergroups["S0VENDORS"] = []
    assert groups("S0VENDORS") == frozenset()
