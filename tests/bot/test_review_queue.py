"""The active review queue in Slack: Skip and Not sure in App Home (over real HTTP), the
daily label budget, and the moderators' digest (DMs asserted on the fake Slack Web API)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import make_client
from bot.emulator.outbound import LOCAL_TEAM_ID, FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from bot.services.review_digest import ReviewDigest
from bot.services.review_queue import ReviewOptions, ReviewQueueService
from bot.services.roles import Roles
from storage import annotations, messages, review_queue
from storage.db import Database
from storage.enums import AnnotationSource
from tests.bot.conftest import ADMIN, BOT_TOKEN, GENERAL, MEMBER, MODERATOR, FakeModels
from tests.bot.surfaces import SurfaceBot, all_text, block_ids, home_opened, serve_bot, view_click
from trainer.tasks import TaskSpec

SKIP, NOT_SURE = "bertbot_home_skip", "bertbot_home_not_sure"
SECOND_MODERATOR = "U0MODERAT2"
_TS = itertools.count()
NOT_ALLOWED = "Only moderators and admins can label messages. Nothing was stored."


def _store(database: Database, texts_and_spam: list[tuple[str, float]]) -> list[int]:
    """Channel messages with a spam prediction each; returns their message ids."""
    ids = []
    with database.begin() as session:
        for text, spam in texts_and_spam:
            n = next(_TS)
            message = messages.add_message(
                session=session,
                team_id=LOCAL_TEAM_ID,
                channel_id=GENERAL,
                ts=f"1700000{n:03d}.000100",
                text=text,
                user_id=MEMBER,
            )
            messages.add_prediction(
                session=session,
                task="spam",
                model_version="3",
                label="spam" if spam >= 0.5 else "ham",
                scores={"ham": 1.0 - spam, "spam": spam},
                latency_ms=1.0,
                message_id=message.id,
            )
            ids.append(message.id)
    return ids


def _label(database: Database, user_id: str, count: int) -> None:
    with database.begin() as session:
        for n in range(count):
            annotations.add_annotation(
                session=session,
                task="spam",
                text=f"labelled today {user_id} {n}",
                label="ham",
                annotator=user_id,
                source=AnnotationSource.CORRECTION,
            )


@pytest.fixture
def queue_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    with serve_bot(
        database, fake_slack, tasks, alert_policy, models, review=ReviewOptions(daily_budget=3)
    ) as bot:
        yield bot


def _open_home(bot: SurfaceBot, user_id: str) -> RecordedCall:
    before = len(bot.fake.calls("views.publish"))
    assert home_opened(bot.sender, user_id).status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    return call


def _click(bot: SurfaceBot, user_id: str, view: dict[str, Any], action: str, value: str) -> Any:
    before = len(bot.fake.calls("views.publish"))
    delivery = view_click(bot.sender, user_id=user_id, view=view, action_id=action, value=value)
    assert delivery.status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    return call


def _queued_messages(bot: SurfaceBot, user_id: str) -> list[str]:
    view = _open_home(bot, user_id).params["view"]
    return [b["block_id"] for b in view["blocks"] if b.get("block_id", "").startswith("review:")]


def test_skip_hides_an_item_from_that_moderator_only_and_a_second_pass_removes_it(
    queue_bot: SurfaceBot,
) -> None:
    coin, other = _store(queue_bot.database, [("coin toss", 0.5), ("leaning", 0.3)])
    view = _open_home(queue_bot, MODERATOR).params["view"]
    controls = next(b for b in view["blocks"] if b["type"] == "actions")
    assert [e["action_id"] for e in controls["elements"]][-2:] == [SKIP, NOT_SURE]
    assert "uncertain: margin 0.00" in all_text(view["blocks"])

    after = _click(queue_bot, MODERATOR, view, SKIP, f"spam:{coin}")
    notice = all_text(after.params["view"]["blocks"][:1])
    assert "Skipped" in notice and "left your spam queue" in notice
    moderators_queue = [
        b["block_id"] for b in after.params["view"]["blocks"] if "review:" in b.get("block_id", "")
    ]
    assert len(moderators_queue) == 1
    assert len(_queued_messages(queue_bot, ADMIN)) == 2  # still in the admin's queue

    admin_view = _open_home(queue_bot, ADMIN).params["view"]
    _click(queue_bot, ADMIN, admin_view, NOT_SURE, f"spam:{coin}")
    with queue_bot.database.begin() as session:
        skips = review_queue.skips_for(session=session, task="spam", message_id=coin)
    assert [(s.user_id, str(s.kind)) for s in skips] == [(MODERATOR, "skip"), (ADMIN, "not_sure")]
    left = queue_bot.services.review.next("spam", user_id=SECOND_MODERATOR)
    assert [item.message.id for item in left] == [other]  # passed on twice: gone for everyone


def test_a_member_gets_the_label_buttons_refusal_and_nothing_is_stored(
    queue_bot: SurfaceBot,
) -> None:
    (coin,) = _store(queue_bot.database, [("coin toss", 0.5)])
    view = _open_home(queue_bot, MODERATOR).params["view"]
    for action in (SKIP, NOT_SURE):
        refused = _click(queue_bot, MEMBER, view, action, f"spam:{coin}")
        assert NOT_ALLOWED in all_text(refused.params["view"]["blocks"][:1])
    member_view = _open_home(queue_bot, MEMBER).params["view"]
    assert block_ids(member_view["blocks"], "review:") == []
    with queue_bot.database.begin() as session:
        assert review_queue.skips_for(session=session, task="spam", message_id=coin) == []


def test_home_says_when_the_days_label_budget_is_reached(queue_bot: SurfaceBot) -> None:
    _store(queue_bot.database, [("coin toss", 0.5)])
    _label(queue_bot.database, MODERATOR, 2)
    budget = next(
        b
        for b in _open_home(queue_bot, MODERATOR).params["view"]["blocks"]
        if b.get("block_id") == "budget"
    )
    assert "Labels today: 2 of 3" in all_text([budget])
    _label(queue_bot.database, MODERATOR, 1)
    blocks = _open_home(queue_bot, MODERATOR).params["view"]["blocks"]
    assert "You reached today's label budget (3 of 3)" in all_text(blocks)
    assert block_ids(blocks, "review:")  # the queue stays: more labels are welcome


def test_near_duplicates_are_one_item_in_the_home_queue(queue_bot: SurfaceBot) -> None:
    _store(queue_bot.database, [("WIN a prize", 0.5), ("win a PRIZE", 0.55), ("hello", 0.3)])
    blocks = _open_home(queue_bot, MODERATOR).params["view"]["blocks"]
    assert len(block_ids(blocks, "review:")) == 2
    assert "1 near-duplicate" in all_text(blocks)


@pytest.fixture
def digest_slack() -> Iterator[FakeSlack]:
    users = {MODERATOR: "mo", SECOND_MODERATOR: "mo2", ADMIN: "ad", MEMBER: "me"}
    with FakeSlack(bot_token=BOT_TOKEN, users=users) as fake:
        yield fake


class _Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _digest(
    database: Database,
    fake: FakeSlack,
    tasks: dict[str, TaskSpec],
    models: FakeModels,
    clock: _Clock,
    **options: Any,
) -> ReviewDigest:
    roles = Roles.of(admins=[ADMIN], moderators=[MODERATOR, SECOND_MODERATOR])
    review = ReviewQueueService(
        database, models, tasks, roles, ReviewOptions(**options), clock=clock
    )
    client = make_client(BOT_TOKEN, base_url=fake.api_url)
    return ReviewDigest(database, client, review, sorted(roles.moderators), clock=clock)


def _dms(fake: FakeSlack) -> dict[str, list[str]]:
    sent: dict[str, list[str]] = {}
    for call in fake.calls("chat.postMessage"):
        sent.setdefault(call.params["channel"], []).append(call.params["text"])
    return sent


def test_the_digest_goes_to_moderators_once_per_period_even_across_a_restart(
    database: Database, digest_slack: FakeSlack, tasks: dict[str, TaskSpec], models: FakeModels
) -> None:
    fake_slack = digest_slack
    clock = _Clock()
    _store(database, [(f"message {n}", 0.5 + n / 100) for n in range(4)])
    digest = _digest(database, fake_slack, tasks, models, clock, digest_min_items=6)
    assert {o.outcome for o in digest.send_due()} == {"too few"}
    ids = _store(database, [("message 4", 0.45), ("MESSAGE 4", 0.4), ("fresh", 0.4)])
    outcomes = {o.user_id: o for o in digest.send_due()}
    assert {u: o.outcome for u, o in outcomes.items()} == {
        MODERATOR: "sent",
        SECOND_MODERATOR: "sent",
    }
    assert outcomes[MODERATOR].waiting == 6  # equal texts count once
    sent = _dms(fake_slack)
    assert set(sent) == {MODERATOR, SECOND_MODERATOR}  # moderators only: not the admin
    assert "6 messages wait for a label (6 spam)" in sent[MODERATOR][0]
    assert "label 6 of them" in sent[MODERATOR][0] and "*Home* tab" in sent[MODERATOR][0]

    clock.now += timedelta(hours=23)
    assert {o.outcome for o in digest.send_due()} == {"sent recently"}
    restarted = _digest(database, fake_slack, tasks, models, clock, digest_min_items=6)
    assert {o.outcome for o in restarted.send_due()} == {"sent recently"}
    assert len(fake_slack.calls("chat.postMessage")) == 2

    # A moderator's skips are theirs: their count drops below the minimum.
    service = ReviewQueueService(
        database, models, tasks, Roles.of(moderators=[SECOND_MODERATOR]), clock=clock
    )
    service.skip(task="spam", message_id=ids[-1], user_id=SECOND_MODERATOR, kind="skip")
    clock.now += timedelta(hours=2)
    outcomes = {o.user_id: o.outcome for o in restarted.send_due()}
    assert outcomes == {MODERATOR: "sent", SECOND_MODERATOR: "too few"}
    assert len(_dms(fake_slack)[MODERATOR]) == 2


def test_the_digest_offers_what_is_left_of_the_budget_and_nothing_once_it_is_used(
    database: Database, digest_slack: FakeSlack, tasks: dict[str, TaskSpec], models: FakeModels
) -> None:
    fake_slack = digest_slack
    clock = _Clock()
    _store(database, [(f"message {n}", 0.5) for n in range(8)])
    _label(database, MODERATOR, 3)
    _label(database, SECOND_MODERATOR, 4)
    digest = _digest(database, fake_slack, tasks, models, clock, daily_budget=4)
    outcomes = {o.user_id: o for o in digest.send_due()}
    assert outcomes[MODERATOR].outcome == "sent" and outcomes[MODERATOR].offered == 1
    assert outcomes[SECOND_MODERATOR].outcome == "budget reached"
    (text,) = _dms(fake_slack)[MODERATOR]
    assert "label 1 of them" in text
    assert "1 of 4 labels left" in all_text(
        fake_slack.calls("chat.postMessage")[0].params["blocks"]
    )


def test_a_failed_digest_is_tried_again_next_run(
    database: Database, digest_slack: FakeSlack, tasks: dict[str, TaskSpec], models: FakeModels
) -> None:
    fake_slack = digest_slack
    clock = _Clock()
    _store(database, [(f"message {n}", 0.5) for n in range(5)])
    digest = _digest(database, fake_slack, tasks, models, clock)
    fake_slack.fail_next("chat.postMessage", times=2, status=503)  # no retry on a 5xx
    assert {o.outcome for o in digest.send_due()} == {"failed"}
    with database.begin() as session:
        assert review_queue.digest_sent_at(session=session, user_id=MODERATOR) is None
    assert {o.outcome for o in digest.send_due()} == {"sent"}
