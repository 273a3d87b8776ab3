"""``/bertbot policy``: the admins' modal over real HTTP (list, change, refuse)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.emulator.outbound import FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from bot.services.policy import REMOVE_FALLBACK, policy_subject
from bot.ui import policy as policy_ui
from storage import audit
from storage.db import Database
from storage.enums import PolicyAction
from tests.bot.conftest import ADMIN, GENERAL, MEMBER, MODERATOR, FakeModels, eventually
from tests.bot.surfaces import SurfaceBot, all_text, block_ids, serve_bot, view_submission
from trainer.tasks import TaskSpec


@pytest.fixture
def policy_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    with serve_bot(database, fake_slack, tasks, alert_policy, models) as bot:
        yield bot


def _open(bot: SurfaceBot, user: str) -> Any:
    before = len(bot.fake.calls("views.open"))
    delivery = bot.sender.command("policy", command="/bertbot", user_id=user)
    assert delivery.status == 200
    bot.settle()
    opened = bot.fake.calls("views.open")[before:]
    return opened[0] if opened else delivery


def test_an_admin_sees_every_channel_the_bot_is_in_with_its_policy(
    policy_bot: SurfaceBot,
) -> None:
    bot = policy_bot
    bot.fake.remove_bot("random")
    bot.services.policies.set(actor=ADMIN, channel_id=GENERAL, task="spam", action="remove")
    opened = _open(bot, ADMIN)
    assert isinstance(opened, RecordedCall) and opened.ok
    view = opened.params["view"]
    assert view["callback_id"] == policy_ui.POLICY_CALLBACK
    assert block_ids(view["blocks"], "channel:") == ["channel:C0GENERAL", "channel:C0MODERATORS"]
    text = all_text(view["blocks"])
    assert "alert _(asked: remove)_" in text and "channel policy" in text
    assert REMOVE_FALLBACK in text  # the policy screen says remove cannot delete here
    assert "threshold 0.80" in all_text(
        [b for b in view["blocks"] if b.get("block_id") == "default:spam"]
    )


@pytest.mark.parametrize("user", [MODERATOR, MEMBER])
def test_only_admins_get_the_modal(policy_bot: SurfaceBot, user: str) -> None:
    delivery = _open(policy_bot, user)
    assert not isinstance(delivery, RecordedCall)
    answer = eventually(lambda: policy_bot.fake.responses(delivery.response_url))[0]
    assert answer["text"] == policy_ui.NOT_ADMIN


def test_a_change_is_saved_audited_and_shown(policy_bot: SurfaceBot) -> None:
    bot = policy_bot
    view = _open(bot, ADMIN).response["view"]
    choices = {
        policy_ui.CHANNEL_BLOCK: GENERAL,
        policy_ui.TASK_BLOCK: "spam",
        policy_ui.WATCH_BLOCK: "on",
        policy_ui.THRESHOLD_BLOCK: "0.9",
        policy_ui.ACTION_BLOCK: "react",
    }
    answer = view_submission(bot.sender, user_id=ADMIN, view=view, choices=choices).json()
    assert answer["response_action"] == "update"
    assert "now: *spam*: watched · threshold 0.90 · react" in all_text(answer["view"]["blocks"])
    policy = bot.services.policies.for_channel(GENERAL)["spam"]
    assert (policy.threshold, policy.action, policy.stored) == (0.9, PolicyAction.REACT, True)
    with bot.database.begin() as session:
        (entry,) = audit.list_audit(session=session, subject_prefix=policy_subject(GENERAL, "spam"))
    assert (entry.actor, entry.action, entry.details["role"]) == (ADMIN, "policy.set", "admin")


def test_a_bad_threshold_or_a_non_admin_submission_is_refused(policy_bot: SurfaceBot) -> None:
    bot = policy_bot
    view = _open(bot, ADMIN).response["view"]
    choices = {
        policy_ui.CHANNEL_BLOCK: GENERAL,
        policy_ui.TASK_BLOCK: "spam",
        policy_ui.THRESHOLD_BLOCK: "1.5",
    }
    answer = view_submission(bot.sender, user_id=ADMIN, view=view, choices=choices).json()
    assert answer["response_action"] == "errors"
    assert "(0, 1]" in answer["errors"][policy_ui.THRESHOLD_BLOCK]
    choices[policy_ui.THRESHOLD_BLOCK] = "0.5"
    answer = view_submission(bot.sender, user_id=MEMBER, view=view, choices=choices).json()
    assert answer["errors"][policy_ui.CHANNEL_BLOCK].startswith("Only admins")
    assert bot.services.policies.for_channel(GENERAL)["spam"].stored is False
